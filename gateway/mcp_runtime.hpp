#pragma once
// The MCP side of the gateway: its own io_context thread (MCP traffic is light next to chat
// traffic) running the aggregator. Destroying it stops every MCP server, bounded in time (10 s).
// Construct and destroy from one thread; aggregator() may be used from any (see mcp/aggregator.hpp).
#include <memory>

#include "gateway/config.hpp"
#include "mcp/aggregator.hpp"

namespace toolgate::state {
class secret_store;
}

namespace toolgate::gateway {

class mcp_runtime {
public:
    // `start`: start the servers now (else the owner calls aggregator().start(...) itself).
    // `secrets`: where upstream OAuth tokens are kept; null: the state's SQLite file (state.sqlite
    // or the default path), or memory with state.persist: false. Opened only for OAuth servers.
    explicit mcp_runtime(gateway_config const& cfg, bool start = true, std::shared_ptr<state::secret_store> secrets = nullptr);
    ~mcp_runtime();
    mcp_runtime(mcp_runtime const&) = delete;
    mcp_runtime& operator=(mcp_runtime const&) = delete;

    mcp::aggregator& aggregator();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace toolgate::gateway
