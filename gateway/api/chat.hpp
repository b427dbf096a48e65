#pragma once
// The chat route's machinery, shared with the AI endpoints (endpoints.cpp): a chat body run as a
// plain turn or the agent loop, on a session or not, answered or kept for the caller.
#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "agentloop/loop.hpp"
#include "gateway/api/request.hpp"
#include "sessions/service.hpp"

namespace toolgate::gateway::api {

// A request on a server-side session: the lease, the client's new messages, and what the request
// added (set by the code that produced the answer), stored before the answer's last bytes go out,
// so that a client's next turn finds it.
struct session_hold {
    sessions::service* svc = nullptr;
    sessions::turn t;
    boost::json::array incoming;
    boost::json::array added;  // the answer's messages (assistant turns, tool results)
};

struct chat_run {
    bool stream = false;
    session_hold* hold = nullptr;
    // Non-null: only these MCP servers' tools (empty: none), instead of the request's header.
    std::vector<std::string> const* mcp_servers = nullptr;
    // Non-null (never with stream): the outcome is kept here; nothing is sent or stored, and the
    // caller ends the request with finish_answer().
    providers::chat_outcome* capture = nullptr;
    // The Responses ingress's mcp tools: non-null, only these MCP tools (exposed names) are offered;
    // calls of the `hand_back` ones go back to the client (for its approval) instead of running;
    // `run_first` are approved calls the loop runs before its first turn (a 400 when the request
    // offers no MCP tools to run them with).
    std::unordered_set<std::string> const* mcp_tools = nullptr;
    std::unordered_set<std::string> const* hand_back = nullptr;
    std::vector<agentloop::assembled_call> run_first;
    agentloop::loop_observer* observer = nullptr;
    // Called with the offered MCP tools (exposed names) when the agent loop runs.
    std::function<void(std::vector<std::string> const&)> on_offered;
    // Hybrid turns without a session are remembered and put back (off where the caller keeps the
    // whole conversation itself).
    bool hybrid = true;
};

// The session `id` (started with `limits` when it is new) in front of body["messages"]; the error
// to answer when it cannot be used. The lease is held when it returns no error: the caller gives
// it back with hold.svc->release(hold.t) in any case (a no-op after a commit).
asio::awaitable<std::optional<api_error>> open_session(api_request& r, std::string_view id, boost::json::object& body,
                                                       session_hold& hold, sessions::limits const* limits);
// A chat request's body after parsing, as /v1/chat/completions runs it: checked, on the session
// of x-session-id when there is one, answered (the Messages ingress runs its translation here).
asio::awaitable<void> chat_body(api_request& r, boost::json::object& body);
// Runs a checked chat body (messages present, stream as in `how`).
asio::awaitable<void> run_chat(api_request& r, boost::json::object& body, chat_run const& how);
// Stores what the request added to its session (a successful answer), before the answer's end
// is sent; logs when the store refuses.
asio::awaitable<void> store_turn(api_request& r, session_hold* hold);
// Ends a captured, non-streamed request: stores the session's turn when it succeeded, then sends
// the answer or the error.
asio::awaitable<void> finish_answer(api_request& r, providers::chat_outcome& result, session_hold* hold);
// The assistant message of a JSON answer's first choice.
boost::json::object answer_message(boost::json::object const& response);

}  // namespace toolgate::gateway::api
