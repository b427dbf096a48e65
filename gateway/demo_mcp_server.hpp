#pragma once

namespace toolgate::gateway {

// Serves the demo tools (get_current_time, add, echo) as an MCP server on stdin/stdout until EOF.
int run_demo_mcp_server();

}  // namespace toolgate::gateway
