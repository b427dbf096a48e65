#pragma once
// The `agent_loop` section of the config, parsed by the agent loop's library.
#include <chrono>
#include <optional>
#include <span>
#include <string_view>
#include <string>

#include "agentloop/loop.hpp"
#include "common/config_env.hpp"

namespace YAML {
class Node;
}

namespace toolgate {
class reader;
}

namespace toolgate::agentloop {

struct agent_loop_config {
    bool inject_tools = true;  // offer the MCP tools to every chat request and run them server-side
    agentloop::limits limits;
    std::optional<std::chrono::milliseconds> loop_timeout;  // as configured; the gateway derives a default
    std::string tool_turn_model;  // turns that read tool results are routed through this model or pool
    // Agent loops running at once over the gateway; one more is answered 503 overloaded at once.
    std::size_t max_concurrent = 1024;
};

void parse_agent_loop(reader const& r, YAML::Node const& al, agent_loop_config& cfg);

// Each loop limit described once: its config key (agent_loop.<key>), the request header that may
// tighten it (empty: config only), its unit and bounds (a header's value is clamped into them), and
// how to read and write it. The config parser and the header parser both walk this list.
struct limit_descriptor {
    enum class unit { count, bytes, tokens, usd, duration };
    std::string_view key;
    std::string_view header;
    unit kind;
    double min;  // durations in milliseconds
    double max;
    double (*get)(limits const&);
    void (*set)(limits&, double);
};
std::span<limit_descriptor const> limit_descriptors();

}  // namespace toolgate::agentloop
