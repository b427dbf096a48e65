#pragma once
// The OpenAI Responses API as an ingress (POST /v1/responses), without I/O: a Responses request
// becomes a chat body that runs through the chat route's machinery, and the chat answer (a
// chat.completion or a stream of chunks) becomes a Response object or the Responses event stream.
// The unit tests call these directly.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/api_error.hpp"
#include "gateway/api/chat_stream.hpp"

namespace toolgate::gateway::responses_wire {

// A gateway MCP tool as the request may name it (pointing into the aggregator's catalog, which
// outlives the call).
struct gateway_tool {
    std::string_view exposed;  // the name models see
    std::string_view server;
    std::string_view name;  // the server's own name
    boost::json::object const* definition = nullptr;  // description, inputSchema, annotations
};

// What an `mcp` tool of a request may name: the configured servers and their tools.
struct mcp_offer {
    std::vector<std::string> servers;
    std::vector<gateway_tool> tools;
};

// How a gateway tool's calls show in Responses items: under the mcp tool's server_label, by its name
// there (the server's own name under a server's label, the exposed name under "toolgate").
struct mcp_tool_ref {
    std::string label;
    std::string name;
    bool approval = false;  // its calls wait for the client's mcp_approval_response
};

// What a Response echoes of its request, and what the route needs besides the chat body.
struct request_view {
    boost::json::object echo;  // instructions, model, tools, tool_choice, text, temperature, ...
    bool stream = false;
    bool store = true;
    std::string previous_response_id;
    // `tools: [{"type":"mcp", "server_label": ...}]`: the agent loop with these MCP servers
    // ("toolgate": all of them); absent: the request's headers decide, as on chat.
    std::optional<std::vector<std::string>> mcp_servers;
    // With mcp tools: the gateway tools they offer (after allowed_tools), by exposed name.
    std::map<std::string, mcp_tool_ref> mcp_tools;
    std::vector<std::string> mcp_labels;  // the mcp tools' server_labels, in order: one mcp_list_tools item each
    std::vector<std::string> approved;    // call ids of the input's mcp_approval_response items that approve
    boost::json::array input_items;  // the request's input as items, each with an id
};

// How a gateway tool's call shows: its entry in v.mcp_tools, else under "toolgate" by its exposed name.
mcp_tool_ref tool_ref(request_view const& v, std::string_view exposed);

// The output items of the gateway's own MCP activity.
boost::json::object list_tools_item(std::string id, std::string_view label, boost::json::array tools);
// One tool of an mcp_list_tools item, from the server's tool definition.
boost::json::object listed_tool(std::string_view name, boost::json::object const& definition);
// A finished mcp_call: `error` empty when it succeeded (then `output` is its text; else the error).
boost::json::object mcp_call_item(std::string_view call_id, mcp_tool_ref const& ref, std::string_view arguments,
                                  std::string_view output, std::string_view error);
// A call the client approved (v.approved) names its approval request in approval_request_id.
void mark_approved(boost::json::object& item, std::string_view call_id, request_view const& v);

struct translated {
    boost::json::object chat;  // "model", "messages" (instructions first), "tools", ...
    request_view view;
};

// `mcp`: the configured MCP servers and tools (what an mcp tool's server_label may name). Input
// items of the gateway's MCP activity (mcp_call, mcp_approval_request, mcp_approval_response,
// mcp_list_tools) become the conversation's tool calls and results; an approval that approves is
// left for the route (view.approved), which has the loop run the call.
std::variant<translated, api_error> to_chat(boost::json::object const& in, std::string const& response_id,
                                            mcp_offer const& mcp);

// A chat.completion as a Response. `mcp_items`: the gateway's MCP activity (mcp_list_tools and
// mcp_call items, in order), before the answer; calls of tools that need approval become
// mcp_approval_request items.
boost::json::object to_response(boost::json::object const& completion, std::string const& id, request_view const& v,
                                std::int64_t created_at, boost::json::array mcp_items = {});

// A Response's output as chat messages (to keep the conversation for previous_response_id); an
// mcp_call becomes the call and its result, named as the model saw it (`mcp`'s exposed names).
boost::json::array output_messages(boost::json::object const& response, mcp_offer const& mcp);

// The exposed name of the tool `name` under an mcp tool's `label` (a server's name or "toolgate").
std::string exposed_name(mcp_offer const& mcp, std::string_view label, std::string_view name);

// A chat stream ("data: {chunk}\n\n", ": keep-alive", "data: [DONE]", an error object) as the
// Responses events (response.created, response.in_progress, response.output_item.added,
// response.content_part.added, response.output_text.delta, response.function_call_arguments.delta,
// the .done events, response.completed with the whole Response; an error event on failure).
class stream_translator {
public:
    stream_translator(std::string id, request_view const& v, std::int64_t created_at);

    std::string feed(std::string_view bytes);
    // The gateway's MCP activity, in the order it happened. It shows at the start, at the chat
    // stream's next comment line (the agent loop writes one after each call's start and end) or
    // at the end, whichever comes first; so a call shows between the text before and after it.
    void list_tools(boost::json::object item);
    void call_started(std::string call_id, std::string_view exposed, std::string arguments);
    void call_finished(std::string_view call_id, std::string output, std::string error);
    // The stream ended: closes what is open and ends with response.completed (once).
    std::string finish();
    // The Response as completed (status "completed" or "incomplete"); empty before finish() or
    // after a failure.
    boost::json::object const& final_response() const { return final_; }

private:
    struct call_item {
        std::string id, call_id, name, arguments;
        int output_index = 0;
        bool approval = false;  // shown whole at the end, as an mcp_approval_request
    };
    struct mcp_event {
        enum class kind { list_tools, started, finished } what;
        boost::json::object item;  // list_tools
        std::string call_id, exposed, text, error;
    };
    struct mcp_running {
        int output_index = 0;
        mcp_tool_ref ref;
        std::string arguments;
    };
    void drain(std::string& out);
    void show(mcp_event& e, std::string& out);
    void item(chat_stream_item const& it, std::string& out);
    void chunk(boost::json::object const& c, std::string& out);
    void start(std::string& out);
    void emit(std::string_view type, boost::json::object data, std::string& out);
    void close_message(std::string& out);
    void close(std::string& out);
    boost::json::object snapshot(std::string_view status) const;

    std::string id_;
    request_view const& view_;
    std::int64_t created_at_;
    std::string model_;
    chat_stream_reader reader_;
    std::int64_t seq_ = 0;
    bool started_ = false, ended_ = false, failed_ = false;
    int next_output_ = 0;
    int message_index_ = -1;  // the open message item's output_index; -1: none
    std::string message_id_, text_;
    std::vector<boost::json::object> done_items_;  // output items closed so far, by output_index
    std::map<std::int64_t, call_item> calls_;      // a chunk's tool_calls[].index -> its item
    call_indexer calls_index_;  // a tool_calls fragment -> its call
    std::string finish_reason_;
    std::int64_t input_tokens_ = 0, output_tokens_ = 0;
    boost::json::object final_;
    std::vector<mcp_event> pending_;
    std::map<std::string, mcp_running> running_;  // call id -> its open mcp_call item
};

}  // namespace toolgate::gateway::responses_wire
