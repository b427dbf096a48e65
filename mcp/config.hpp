#pragma once
// The `mcp_servers` and `tool_names` sections of the config, parsed by the MCP library.
#include <vector>

#include "common/config_reader.hpp"
#include "mcp/aggregator.hpp"

namespace toolgate::mcp {

std::vector<server_config> parse_servers(reader const& r, YAML::Node const& ms);
prefix_mode parse_tool_names(reader const& r, YAML::Node const& tn);

}  // namespace toolgate::mcp
