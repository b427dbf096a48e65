#pragma once
// `toolgate mcp-login SERVER`: authorize one OAuth-protected upstream MCP server from a terminal.
#include <string>

#include "gateway/config.hpp"

namespace toolgate::gateway {

// Exit status: 0 authorized (tokens kept), 1 failed, 2 not applicable (no such OAuth server, ...).
int run_mcp_login(gateway_config const& cfg, std::string const& server);

}  // namespace toolgate::gateway
