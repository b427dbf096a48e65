#pragma once
// The `mcp_front` section of the config (the gateway as one MCP server).
#include "common/config_reader.hpp"
#include "gateway/config.hpp"

namespace toolgate::gateway {

void parse_mcp_front(reader const& r, YAML::Node const& mf, mcp_front_config& f);

}  // namespace toolgate::gateway
