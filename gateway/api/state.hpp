#pragma once
// What the route handlers share: built once from the validated config in app.cpp, then read by
// every worker thread. Mutable parts say how they are guarded: the metrics and the injected-tool
// cache take their own short locks, the hybrid store is thread-safe, the router's targets keep
// their own locks and atomics.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "agentloop/loop.hpp"
#include "gateway/config.hpp"
#include "gateway/metrics.hpp"
#include "gateway/pipeline.hpp"
#include "mcp/aggregator.hpp"

namespace spdlog {
class logger;
}

namespace toolgate::gateway {

class mcp_runtime;
class mcp_front;
namespace routing {
class router;
}
namespace policy {
class access_runtime;
class cache_runtime;
}

// The MCP tools as the model sees them (OpenAI function entries), rebuilt when the catalog changes.
struct injected_catalog {
    std::shared_ptr<mcp::catalog const> source;
    boost::json::array definitions;  // same order as source->tools
};

class token_verifier;
class endpoint_directory;
}  // namespace toolgate::gateway

namespace toolgate::sessions {
class service;
class hybrid_turns;
class response_store;
}

namespace toolgate::gateway {

struct app_state {
    explicit app_state(gateway_config const& cfg);
    ~app_state();

    gateway_config cfg;
    std::unique_ptr<mcp_runtime> mcp;
    std::unique_ptr<mcp_front> front;  // destroyed before the MCP runtime
    std::unique_ptr<token_verifier> mcp_oauth;  // mcp_front.auth: JWT access tokens on /mcp
    std::vector<std::shared_ptr<providers::provider>> providers;
    std::unique_ptr<routing::router> router;
    // Keys, limits, budgets, the request log; null when none is configured.
    std::unique_ptr<policy::access_runtime> access;
    // The response cache; null when the plugin is not configured.
    std::unique_ptr<policy::cache_runtime> cache;
    // Server-side sessions; null when the config has no sessions section.
    std::unique_ptr<sessions::service> sessions;
    std::unique_ptr<turn_pipeline> chat_pipeline;
    std::unique_ptr<turn_pipeline> embeddings_pipeline;
    // Hybrid turns without a session: this process's memory, and Redis when state.redis is set.
    std::unique_ptr<sessions::hybrid_turns> hybrid;
    // Stored responses of the Responses API (store, previous_response_id).
    std::unique_ptr<sessions::response_store> responses;
    // AI endpoints: the config's, and those made through /admin/endpoints.
    std::unique_ptr<endpoint_directory> endpoints;
    std::atomic<std::size_t> loops_running{0};  // agent loops in progress, against agent_loop.max_concurrent
    metrics stats;
    std::shared_ptr<spdlog::logger> access_log;
    std::shared_ptr<spdlog::logger> log;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

    mcp::aggregator& aggregator();
    // The injected tool definitions for the current catalog (cached until it changes).
    std::shared_ptr<injected_catalog const> injected();

    // The routing targets for /health (empty without pools) and their Prometheus text.
    boost::json::array routing_health() const;
    std::string routing_metrics() const;

    // /v1/models, built once.
    std::string models_json;
    std::unordered_map<std::string, std::string> models_by_id;

private:
    std::mutex injected_mu_;
    std::shared_ptr<injected_catalog const> injected_;
};

}  // namespace toolgate::gateway
