#pragma once
// The in-process stores: exact for one gateway process, nothing shared, nothing kept across
// restarts. Counters are the default for rate limits (a replica set uses redis.hpp instead).
#include <cstddef>
#include <memory>

#include "state/counter_store.hpp"
#include "state/key_store.hpp"
#include "state/ledger.hpp"
#include "state/log_store.hpp"

namespace toolgate::state {

struct memory_options {
    // Distinct counters kept (a `user` scope makes one per user); past it, idle ones are dropped
    // first, then the least recently used.
    std::size_t max_counters = 100'000;
    std::size_t log_rows = 10'000;  // the memory log keeps the newest rows
};

std::shared_ptr<counter_store> make_memory_counters(memory_options const& opts = {});
std::shared_ptr<ledger> make_memory_ledger();
std::shared_ptr<key_store> make_memory_keys();
std::shared_ptr<log_store> make_memory_log(memory_options const& opts = {});

// The reservation bookkeeping the memory and sqlite ledgers share (thread-safe): totals of
// settled spend and of open reservations per (scope, period).
class ledger_book {
public:
    ledger_book();
    ~ledger_book();
    reserve_result reserve(std::vector<budget_line> const& lines, std::string const& reservation, std::int64_t micros,
                           std::int64_t now_ms, std::int64_t lease_ms);
    void settle(std::vector<budget_line> const& lines, std::string const& reservation, std::int64_t actual_micros);
    // Adds spend loaded from a durable store.
    void load(std::string const& scope, std::string const& period, std::int64_t micros);
    std::int64_t spent(std::string const& scope, std::string const& period) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace toolgate::state
