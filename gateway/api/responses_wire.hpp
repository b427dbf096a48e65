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

// What a Response echoes of its request, and what the route needs besides the chat body.
struct request_view {
    boost::json::object echo;  // instructions, model, tools, tool_choice, text, temperature, ...
    bool stream = false;
    bool store = true;
    std::string previous_response_id;
    // `tools: [{"type":"mcp", "server_label": ...}]`: the agent loop with these MCP servers
    // ("toolgate": all of them); absent: the request's headers decide, as on chat.
    std::optional<std::vector<std::string>> mcp_servers;
    boost::json::array input_items;  // the request's input as items, each with an id
};

struct translated {
    boost::json::object chat;  // "model", "messages" (instructions first), "tools", ...
    request_view view;
};

// `mcp_servers`: the configured MCP servers' names (what an mcp tool's server_label may name).
std::variant<translated, api_error> to_chat(boost::json::object const& in, std::string const& response_id,
                                            std::vector<std::string> const& mcp_servers);

// A chat.completion as a Response.
boost::json::object to_response(boost::json::object const& completion, std::string const& id, request_view const& v,
                                std::int64_t created_at);

// A Response's output as chat messages (to keep the conversation for previous_response_id).
boost::json::array output_messages(boost::json::object const& response);

// A chat stream ("data: {chunk}\n\n", ": keep-alive", "data: [DONE]", an error object) as the
// Responses events (response.created, response.in_progress, response.output_item.added,
// response.content_part.added, response.output_text.delta, response.function_call_arguments.delta,
// the .done events, response.completed with the whole Response; an error event on failure).
class stream_translator {
public:
    stream_translator(std::string id, request_view const& v, std::int64_t created_at);

    std::string feed(std::string_view bytes);
    // The stream ended: closes what is open and ends with response.completed (once).
    std::string finish();
    // The Response as completed (status "completed" or "incomplete"); empty before finish() or
    // after a failure.
    boost::json::object const& final_response() const { return final_; }

private:
    struct call_item {
        std::string id, call_id, name, arguments;
        int output_index = 0;
    };
    void item(chat_stream_item const& it, std::string& out);
    void chunk(boost::json::object const& c, std::string& out);
    void start(std::string& out);
    void emit(std::string_view type, boost::json::object data, std::string& out);
    void close_message(std::string& out);
    void close(std::string& out);
    std::int64_t call_index(boost::json::object const& tc);
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
    std::string last_call_id_;                     // fragments without an index: the call they continue
    std::int64_t last_index_ = 0;
    std::string finish_reason_;
    std::int64_t input_tokens_ = 0, output_tokens_ = 0;
    boost::json::object final_;
};

}  // namespace toolgate::gateway::responses_wire
