#pragma once
// Redis, for state that several gateway replicas share: rate-limit counters, the spend ledger,
// and virtual keys. The protocol is read by hiredis's redisReader over our own Asio socket; each
// worker thread (executor) has its own pipelined connection, created on first use and reconnected
// after a failure. Every check-and-count is one Lua script (EVALSHA, EVAL on NOSCRIPT) that takes
// the time as an argument, so replicas with skewed clocks still agree on one sequence.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "state/cache_store.hpp"
#include "state/counter_store.hpp"
#include "state/key_store.hpp"
#include "state/ledger.hpp"
#include "state/turn_gate.hpp"

namespace toolgate::state {

struct redis_options {
    std::string url = "redis://127.0.0.1:6379/0";  // redis://[:password@]host[:port][/db]
    std::string prefix = "tg:";
    std::chrono::milliseconds timeout{50};          // per command, connecting included
    std::chrono::milliseconds reconnect_backoff{250};  // at most one connect attempt per executor in this time
};

struct redis_stats {
    std::atomic<bool> up{false};
    std::atomic<std::uint64_t> commands{0};
    std::atomic<std::uint64_t> failures{0};    // commands that got no answer
    std::atomic<std::uint64_t> reconnects{0};  // connections made after a lost one
    std::atomic<std::uint64_t> recoveries{0};  // times the store came back after being down
};

class redis_pool;

// Parses the URL; throws std::invalid_argument naming what is wrong (start-up only). Connects
// lazily: a Redis that is down at start-up is "unavailable", not a start-up failure.
std::shared_ptr<redis_pool> make_redis_pool(redis_options const& opts);
redis_stats const& stats(redis_pool const& pool);

std::shared_ptr<counter_store> make_redis_counters(std::shared_ptr<redis_pool> pool);
std::shared_ptr<ledger> make_redis_ledger(std::shared_ptr<redis_pool> pool);
// A turn's admission and reservation in one script, its corrections and settle in another.
std::shared_ptr<turn_gate> make_redis_gate(std::shared_ptr<redis_pool> pool);
std::shared_ptr<key_store> make_redis_keys(std::shared_ptr<redis_pool> pool);
// The response cache (GET / SET PX; erase by SCAN MATCH and UNLINK), its keys under
// "<prefix><space>"; other users of the same kind of store (hybrid turns) take their own space.
std::shared_ptr<cache_store> make_redis_cache(std::shared_ptr<redis_pool> pool, std::string const& space = "cache:");

}  // namespace toolgate::state
