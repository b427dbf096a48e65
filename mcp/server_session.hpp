#pragma once
// The gateway as one MCP server, sans transport: one downstream client's session, answering its
// JSON-RPC messages from the aggregated catalog and forwarding calls to the right upstream server.
// Used by the /mcp front (Streamable HTTP) and by `toolgate mcp-stdio`. Runs on the aggregator's
// executor: every function of a session is called there.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/cancel.hpp"
#include "mcp/aggregator.hpp"
#include "mcp/client_session.hpp"
#include "mcp/jsonrpc.hpp"

namespace toolgate::mcp {

struct server_session_options {
    std::string version = "0.1.0";
    std::size_t page_size = 100;  // tools/list, resources/list, ... entries per page
    std::string instructions;
    // Tools this session may see and call: exposed names, or prefixes ending in '*'; nullopt: all.
    std::optional<std::vector<std::string>> allowed_tools;
    // Set when this session is the aggregator's only client (mcp-stdio): called once at initialize
    // instead of opening the client's own upstream sessions, to start the shared ones for it.
    std::function<void(client_link)> serve_alone;
    // How long a client's first list or call waits for the upstream servers to come up.
    std::chrono::milliseconds settle_timeout{15'000};
    // The gateway's guardrails on MCP traffic (MCP thread): a tools/call's arguments before they go
    // upstream, its result before the client sees it. They may rewrite them (redact); a returned
    // text refuses the call or withholds the result: the client gets an isError result with it.
    std::function<std::optional<std::string>(std::string const& tool, json::object& arguments)> screen_arguments;
    std::function<std::optional<std::string>(std::string const& tool, json::object& result)> screen_result;
};

// Owned by a shared_ptr: the upstream sessions of its client hold a weak reference.
class server_session : public std::enable_shared_from_this<server_session> {
public:
    // Messages the session sends on its own while handling a request (progress, log messages).
    using emit_fn = std::function<void(std::string message)>;

    server_session(aggregator& agg, server_session_options opts) : agg_(agg), opts_(std::move(opts)) {}

    // Where messages go that belong to no request of the client (list_changed, and requests or log
    // messages of its upstream sessions outside any call): the GET stream, or stdout.
    void set_channel(emit_fn channel) { channel_ = std::move(channel); }

    // One message from the client. Returns the response text for a request (a result or an error);
    // nothing for notifications and for responses.
    asio::awaitable<std::optional<std::string>> handle(message msg, emit_fn emit);

    bool initialized() const { return !protocol_.empty(); }
    std::string const& protocol_version() const { return protocol_; }
    // The session ends: cancels every request in flight and closes the client's own upstream sessions.
    asio::awaitable<void> close();
    // MCP thread. The catalog this client sees changed: tells it list_changed on its channel.
    void catalog_changed();

private:
    asio::awaitable<std::optional<std::string>> dispatch(message& msg, emit_fn& emit, cancel_token& cancel);
    std::optional<std::string> list(message const& msg, std::string_view what) const;
    asio::awaitable<std::string> call_tool(message const& msg, emit_fn& emit, cancel_token& cancel);
    asio::awaitable<std::string> forward(message const& msg, std::string server, json::object params, cancel_token& cancel);
    std::string initialize(message const& msg);
    bool tool_allowed(std::string const& exposed) const;
    std::string exposed_prompt_name(std::string const& server, std::string_view name) const;

    aggregator& agg_;
    server_session_options opts_;
    asio::awaitable<call_result> ask_client(std::string const& method, json::value params, emit_fn emit);
    static asio::awaitable<call_result> ask_outside_calls(std::weak_ptr<server_session> weak, std::string method,
                                                          json::value params);
    client_link make_link();
    bool log_wanted(json::value const& params) const;

    emit_fn channel_;
    std::shared_ptr<aggregator::view> view_;  // the client's own upstream sessions, if it has any
    bool settled_ = false;
    bool closed_ = false;
    std::string protocol_;
    std::string log_level_ = "info";
    json::object client_capabilities_;
    std::int64_t next_outgoing_ = 1;
    struct outgoing;
    std::unordered_map<std::string, std::shared_ptr<outgoing>> outgoing_;  // our requests to the client, by id
    std::unordered_map<std::string, std::shared_ptr<cancel_token>> inflight_;  // by request id
};

}  // namespace toolgate::mcp
