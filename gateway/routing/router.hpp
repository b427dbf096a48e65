#pragma once
// The router: the innermost turn filter. It resolves the requested model (aliases, then a named
// pool, provider/model, a provider's name, the default pool `strategy`, or the plain resolution
// without routing config), orders the pool's targets by its strategy, and calls them with retries
// (exponential backoff with full jitter, Retry-After honoured, a retry budget per target),
// fallback, circuit breakers, bounded concurrency and credential rotation. Streams fall back only
// while nothing has reached the client: chunks are held until the first one with content.
//
// Built once from the validated config; run() is called concurrently from every worker thread.
// Shared state (breakers, budgets, latency samples, key cooldowns) sits behind short locks.
#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>

#include <memory>
#include <string>
#include <vector>

#include "gateway/pipeline.hpp"
#include "gateway/policy/filters.hpp"
#include "gateway/routing/config.hpp"

namespace toolgate::gateway::routing {

// What the router does after one failed attempt (pure; see classify()).
enum class verdict {
    success,
    cancelled,    // the client left or the request timed out: stop
    give_up,      // a failure the next target would see alike (a 400), or the stream already started
    next_target,  // move on without retrying here
    retry,        // retry here if the policy and budget allow, else move on
    rotate_key,   // this credential is refused or rate limited: the next key of the same target
};
verdict classify(turn_result const& r, bool cancelled, bool delivered, retry_policy const& policy, bool more_keys);
// Whether an attempt that ended so counts against the target's circuit breaker.
bool counts_as_failure(turn_result const& r);

using policy::price_quote;

class router {
public:
    router(routing_config const& cfg, std::vector<providers::provider*> providers);
    ~router();
    router(router const&) = delete;
    router& operator=(router const&) = delete;

    asio::awaitable<turn_result> run(turn_context& ctx) const;
    // The dearest price per million tokens among the targets that may serve `ctx` (budgets).
    policy::price_quote quote(turn_context const& ctx) const;
    // What a cached answer of `ctx` is bound to (the response cache's key): the pool with the
    // targets that may serve it, or the provider and upstream model.
    std::string route_identity(turn_context const& ctx) const;

    // /health: every pool's targets with breaker state and figures (empty without pools).
    boost::json::array health() const;
    // Prometheus text for the targets.
    std::string metrics() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// The router as the chain's innermost filter.
std::shared_ptr<turn_filter> make_router_filter(router const& r);

}  // namespace toolgate::gateway::routing
