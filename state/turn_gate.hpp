#pragma once
// What one model turn asks of the counters and the ledger, as two calls: open (count the rate-limit
// checks and reserve the turn's maximum cost, all or nothing) and close (correct the token counts
// by what the provider reported, settle the real cost). On Redis each call is one script, one round
// trip; over memory counters and a memory or SQLite ledger it is the stores' own calls, answered at
// once where they need no I/O.
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "state/counter_store.hpp"
#include "state/errors.hpp"
#include "state/ledger.hpp"

namespace toolgate::state {

namespace asio = boost::asio;

// The pointers are the caller's and must outlive the call (set each field; no braced init in a
// coroutine body).
struct turn_open {
    std::vector<limit_check> const* checks = nullptr;  // required; counted all or nothing
    std::vector<budget_line> const* lines = nullptr;   // empty or null: nothing reserved
    std::string const* reservation = nullptr;          // new for each turn; required with lines
    std::int64_t micros = 0;
    std::int64_t now_ms = 0;
    std::int64_t lease_ms = 0;
};

struct turn_admission {
    result<admit_result> admitted = admit_result{};
    // nullopt: not asked (no lines, or a check refused). When the budget refuses, no check was
    // counted: a turn refused for its cost does not use up rate limits.
    std::optional<result<reserve_result>> reserved;
};

struct turn_close {
    std::string const* id = nullptr;  // unique per turn (required by the Redis gate: a close counts once)
    std::vector<limit_check> const* adjust = nullptr;  // counted at at_ms, each corrected by delta
    std::int64_t at_ms = 0;
    std::int64_t delta = 0;
    std::int64_t now_ms = 0;
    std::vector<budget_line> const* lines = nullptr;  // empty or null: nothing to settle
    std::string const* reservation = nullptr;          // required with lines; empty: nothing was reserved
    std::int64_t micros = 0;
    spend_entry const* who = nullptr;  // required with lines
    std::int64_t reserved_micros = -1;  // what open reserved under `reservation` (-1: not known)
};

class turn_gate {
public:
    virtual ~turn_gate() = default;
    // Answered at once when no store needs I/O for it; nullopt: await open() instead (nothing was done).
    virtual std::optional<turn_admission> open_now(turn_open const& t) = 0;
    virtual asio::awaitable<turn_admission> open(turn_open const& t) = 0;
    // The same for close: false when it must be awaited (nothing was done).
    virtual bool close_now(turn_close const& t) = 0;
    virtual asio::awaitable<result<void>> close(turn_close const& t) = 0;
    // Whether close may run after the answer went out (its store keeps nothing of the caller's
    // that a crash could lose once the call is written: Redis). A SQLite settle is durable only
    // when it returns, so it is awaited.
    virtual bool close_after_answer() const { return false; }
};

// Over counters that answer at once (memory) and any ledger: "all or nothing" is counted, then
// undone when the budget refuses (a concurrent turn may see the count for that moment). Throws std::invalid_argument for
// counters that need I/O (use the Redis gate with Redis counters).
std::shared_ptr<turn_gate> make_store_gate(std::shared_ptr<counter_store> counters, std::shared_ptr<ledger> ledger);

}  // namespace toolgate::state
