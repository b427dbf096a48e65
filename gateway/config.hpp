#pragma once
// The gateway's configuration: one YAML file, ${ENV} expanded, validated completely at start-up.
// Errors name the file, line and key path; unknown keys are rejected rather than ignored.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "agentloop/config.hpp"
#include "agentloop/loop.hpp"
#include "common/config_env.hpp"
#include "mcp/aggregator.hpp"
#include "gateway/server_limits.hpp"
#include "providers/provider.hpp"

namespace toolgate::sessions {
struct settings;
}

namespace toolgate::gateway {
struct endpoint_config;

namespace policy {
struct guardrail_settings;
struct cache_settings;
struct access_settings;
}
namespace routing {
struct routing_config;
}

using toolgate::config_error;
using toolgate::env_lookup;
using toolgate::expand_env;

struct listen_address {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    std::string to_string() const;
};

// Parses "HOST:PORT", "[V6]:PORT" or ":PORT"; nullopt when malformed.
std::optional<listen_address> parse_listen(std::string const& text);

struct server_config : server_limits {
    listen_address listen;
    unsigned threads = 0;  // 0: one per core
};

struct log_config {
    std::string level = "info";
    bool requests = true;  // one JSON line per request
};

using agentloop::agent_loop_config;

struct mcp_front_key {
    std::string name;
    std::string key;
    std::optional<std::vector<std::string>> tools;  // exposed names or "prefix*"; nullopt: all
};

// /mcp as an OAuth-protected resource (RFC 9728): JWT access tokens of one issuer.
struct mcp_front_oauth {
    std::string issuer;    // its metadata names the JWK set (unless jwks_uri is given)
    std::string audience;  // this resource's identifier, e.g. https://gateway.example.com/mcp
    std::string jwks_uri;
    // scope -> the exposed tool names or "prefix*" it grants ("*": all); in config order
    std::vector<std::pair<std::string, std::vector<std::string>>> scopes_to_tools;
    std::chrono::seconds clock_skew{60};
    bool allow_insecure_http = false;  // plain http to a non-loopback issuer
};

// The gateway as one MCP server: /mcp (Streamable HTTP) and `toolgate mcp-stdio`.
struct mcp_front_config {
    bool enabled = true;
    std::string path = "/mcp";
    std::vector<std::string> allowed_origins;  // besides http(s)://localhost|127.0.0.1|[::1] on any port
    std::vector<std::string> allowed_hosts;    // Host header names besides localhost, 127.0.0.1, ::1 and the listen host
    std::chrono::milliseconds session_idle_timeout{30 * 60 * 1000};
    std::size_t max_sessions = 1000;
    std::size_t page_size = 100;
    std::vector<mcp_front_key> keys;  // empty: no authentication (unless oauth)
    std::optional<mcp_front_oauth> oauth;  // JWT access tokens (beside the keys)
};

struct gateway_config {
    server_config server;
    mcp_front_config mcp_front;
    agent_loop_config agent_loop;
    std::vector<mcp::server_config> mcp_servers;
    mcp::prefix_mode tool_prefix_mode = mcp::prefix_mode::always;
    log_config log;
    std::vector<providers::provider_config> providers;
    bool providers_from_env = true;
    std::vector<std::string> env_provider_names;  // providers added from environment variables
    // Aliases and pools (gateway/routing/config.hpp), set by parse_config; held by pointer so that
    // this header stays below the routing layer. routing() is empty when none was parsed.
    std::shared_ptr<routing::routing_config const> routing_settings;
    routing::routing_config const& routing() const;
    // The guardrail plugins (gateway/policy/guardrails.hpp), built while parsing; null: none.
    std::shared_ptr<policy::guardrail_settings const> guardrail_settings;
    // The response cache (plugin response-cache; gateway/policy/cache.hpp); null: none.
    std::shared_ptr<policy::cache_settings const> cache_settings;
    // Keys, teams, rate limits, budgets, the request log and the state stores
    // (gateway/policy/access.hpp); null: none configured.
    std::shared_ptr<policy::access_settings const> access_settings;
    // Server-side sessions (sessions/session.hpp); null: the section is absent (sessions are off).
    std::shared_ptr<sessions::settings const> session_settings;
    // AI endpoints (gateway/api/endpoint_config.hpp), in config order.
    std::vector<std::shared_ptr<endpoint_config const>> endpoints;
    // The providers, built (and so validated) once while parsing, in the order of `providers`;
    // shared by every copy of the config and all worker threads.
    std::vector<std::shared_ptr<providers::provider>> built_providers;
};

env_lookup process_env();


}  // namespace toolgate::gateway
