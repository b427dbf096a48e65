#pragma once
// The spend ledger behind budgets: per (scope, period) the USD spent, in micro-dollars (integers:
// additions are exact and commutative across replicas), plus the reservations of turns in flight.
//
// A turn reserves its maximum cost on every line that applies (the key's day and month, the
// team's...) before the provider is called; reserve() refuses when spent + reserved + amount would
// pass a line's limit. settle() then releases the reservation and adds the real cost (which may be
// more than reserved: a provider that overran max_tokens is still charged). Implementations:
// memory, sqlite (spent survives restarts; reservations are the process's own), redis (both shared
// by replicas; a reservation lapses after its lease so a dead replica holds nothing forever).
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "state/errors.hpp"

namespace toolgate::state {

namespace asio = boost::asio;

struct budget_line {
    std::string scope;   // "key:key_ab12", "team:support"
    std::string period;  // "2026-12-02" (a UTC day) or "2026-12" (a UTC month)
    std::int64_t limit_micros = 0;
};

struct reserve_result {
    bool allowed = false;
    std::size_t rejected = 0;                // when refused: the first line that could not take it
    std::vector<std::int64_t> spent_micros;  // per line: spent + reserved by others, before this call
};

// Who spent it, for the journal and /admin/spend.
struct spend_entry {
    std::string request_id;
    std::string key;  // the key's id
    std::string team;
    std::string model;
    std::string provider;
    std::int64_t ts_ms = 0;
};

class ledger {
public:
    virtual ~ledger() = default;
    virtual std::string_view kind() const = 0;

    virtual asio::awaitable<result<reserve_result>> reserve(std::vector<budget_line> const& lines,
                                                            std::string const& reservation, std::int64_t micros,
                                                            std::int64_t now_ms, std::int64_t lease_ms) = 0;
    // Releases `reservation` on `lines` and adds `actual_micros` to each; durable when it returns.
    virtual asio::awaitable<result<void>> settle(std::vector<budget_line> const& lines, std::string const& reservation,
                                                 std::int64_t actual_micros, spend_entry const& who) = 0;
    // The same, answered at once by a ledger whose step needs no I/O (memory; sqlite's reserve),
    // sparing a coroutine frame per call; nullopt / false: await the call above instead.
    virtual std::optional<result<reserve_result>> reserve_now(std::vector<budget_line> const& lines,
                                                              std::string const& reservation, std::int64_t micros,
                                                              std::int64_t now_ms, std::int64_t lease_ms) {
        (void)lines;
        (void)reservation;
        (void)micros;
        (void)now_ms;
        (void)lease_ms;
        return std::nullopt;
    }
    virtual bool settle_now(std::vector<budget_line> const& lines, std::string const& reservation,
                            std::int64_t actual_micros, spend_entry const& who) {
        (void)lines;
        (void)reservation;
        (void)actual_micros;
        (void)who;
        return false;
    }
    // Whether reserve_now / settle_now always answer (never nullopt / false) for this ledger.
    virtual bool reserves_at_once() const { return false; }
    virtual bool settles_at_once() const { return false; }
    // What `scope` spent in `period` (settled only).
    virtual asio::awaitable<result<std::int64_t>> spent(std::string const& scope, std::string const& period) = 0;
};

// The UTC day ("2026-12-02") and month ("2026-12") that `ms` (since the Unix epoch) falls in, and
// when they end (ms).
std::string utc_day(std::int64_t ms);
std::string utc_month(std::int64_t ms);
std::int64_t utc_day_end(std::int64_t ms);
std::int64_t utc_month_end(std::int64_t ms);

}  // namespace toolgate::state
