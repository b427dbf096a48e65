#pragma once
// Routing settings: aliases, the default pool (`strategy`), named pools, and per-target retry,
// circuit breaker and concurrency settings. Parsed and validated once at start-up (parse.cpp);
// immutable afterwards and shared by all worker threads.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gateway/routing/strategy.hpp"

namespace toolgate::gateway::routing {

struct retry_policy {
    unsigned attempts = 1;  // on this target, the first one included
    std::vector<int> on_status_codes{429, 500, 502, 503, 504};
    milliseconds backoff{200};
    milliseconds max_backoff{5000};
    // An upstream Retry-After up to this long is waited for; a longer one moves on to the next target.
    milliseconds max_retry_after{60'000};
};

struct breaker_policy {
    unsigned failure_threshold = 5;
    unsigned success_threshold = 2;
    milliseconds timeout{30'000};  // open this long before half-open probes
};

struct target_config {
    std::string provider;
    std::string model;  // the upstream model; empty: the requested one (default pool) or the provider's default_model
    unsigned weight = 1;
    retry_policy retry;
    std::optional<breaker_policy> breaker = breaker_policy{};  // nullopt: circuit_breaker: false
    unsigned max_concurrency = 0;                              // 0: unlimited
    unsigned max_queue = 256;                                  // waiting for a slot; more are refused
    milliseconds queue_timeout{30'000};
};

struct pool_config {
    std::string name;  // "default" for `strategy`
    strategy_settings strategy;
    std::vector<target_config> targets;
};

struct routing_config {
    std::map<std::string, std::string, std::less<>> aliases;  // alias -> pool, provider/model or model
    std::optional<pool_config> default_pool;                  // `strategy`: every model that names no pool
    std::vector<pool_config> pools;
    std::string tool_turn_model;  // agent_loop.tool_turn_model: routes turns that follow tool results
    bool enabled() const { return default_pool.has_value() || !pools.empty(); }
};

}  // namespace toolgate::gateway::routing
