#pragma once
// The gateway as one MCP server over Streamable HTTP (/mcp): sessions (Mcp-Session-Id), POST for
// client messages (JSON answers, or an SSE stream when a tool call reports progress), GET for the
// server's own stream, DELETE to end a session, SSE event ids with Last-Event-ID resumption,
// Origin/Host checks against DNS rebinding, bearer keys with per-key tool lists, idle expiry. The
// protocol itself is mcp::server_session; `toolgate mcp-stdio` serves the same over stdin/stdout.
#include <boost/asio/awaitable.hpp>

#include <memory>

#include "gateway/config.hpp"
#include "gateway/server.hpp"
#include "mcp/aggregator.hpp"

namespace toolgate::gateway {

class mcp_front {
public:
    mcp_front(gateway_config const& cfg, mcp::aggregator& agg);
    ~mcp_front();
    mcp_front(mcp_front const&) = delete;
    mcp_front& operator=(mcp_front const&) = delete;

    // Answers one HTTP request to the MCP path; returns the status for the access log.
    // `identity`: the caller as the gateway's virtual keys already established it (its name and
    // tools); null: /mcp checks its own mcp_front.keys.
    asio::awaitable<int> handle(inbound_request& req, response_channel& out, cancel_token& cancel,
                                mcp_front_key const* identity = nullptr);
    std::size_t session_count() const;
    // Ends the sessions' GET streams (the gateway is stopping); calls in flight may still finish.
    void shutdown();

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

// `toolgate mcp-stdio`: the same MCP server on stdin/stdout until stdin closes. Logs go to stderr.
int run_mcp_stdio(gateway_config const& cfg);

}  // namespace toolgate::gateway
