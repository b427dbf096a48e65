#pragma once
// The `agent_loop` section of the config, parsed by the agent loop's library.
#include <chrono>
#include <optional>
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
};

void parse_agent_loop(reader const& r, YAML::Node const& al, agent_loop_config& cfg);

}  // namespace toolgate::agentloop
