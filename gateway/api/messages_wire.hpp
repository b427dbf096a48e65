#pragma once
// The Anthropic Messages API as an ingress (POST /v1/messages), without I/O: a Messages request
// becomes a chat body that runs through the chat route's machinery (any provider, the agent loop,
// every policy), and what that machinery answers (a chat.completion, a stream of chunks, an error
// in OpenAI's shape) goes back in the Messages shapes. The unit tests call these directly.
#include <boost/json/object.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>

#include "common/api_error.hpp"
#include "gateway/api/chat_stream.hpp"

namespace toolgate::gateway::messages_wire {

// A Messages request as a chat body ("model", "messages", "tools", ...): system text first, tool
// results as tool messages right after the assistant turn that called them, images as data: or
// https: URLs. Errors are 400s naming the field.
std::variant<boost::json::object, api_error> to_chat(boost::json::object const& in);

// A chat.completion as a Messages response (`id` "msg_...").
boost::json::object to_message(boost::json::object const& completion, std::string const& id);

// Anthropic's error type for an HTTP status (invalid_request_error, authentication_error, ...).
std::string_view error_type(int status);
// An OpenAI-shaped error body (or any text) as Anthropic's {"type":"error","error":{...}}.
std::string error_body(int status, std::string_view openai_body);

// The tokens a Messages request would take, estimated on its chat form (count_tokens).
std::int64_t count_tokens(boost::json::object const& chat_body);

// A chat stream ("data: {chunk}\n\n", ": keep-alive", "data: [DONE]", an error object) turned into
// Messages events (message_start, content_block_start/delta/stop with text_delta and
// input_json_delta, message_delta with the stop reason and usage, message_stop, ping, error).
class stream_translator {
public:
    stream_translator(std::string id, std::string model) : id_(std::move(id)), model_(std::move(model)) {}

    // Bytes of the chat stream, in any pieces; returns the events to write (maybe none yet).
    std::string feed(std::string_view bytes);
    // The stream ended: closes what is open (message_delta and message_stop once).
    std::string finish();

private:
    void item(chat_stream_item const& it, std::string& out);
    void chunk(boost::json::object const& c, std::string& out);
    void start(std::string& out);
    void open_block(boost::json::object block, std::string& out);
    void close_block(std::string& out);
    void close(std::string& out);  // message_delta and message_stop, once

    std::string id_, model_;
    chat_stream_reader reader_;
    bool started_ = false, ended_ = false, failed_ = false;
    int block_ = -1;        // the open content block's index; -1: none
    bool text_open_ = false;
    int next_block_ = 0;
    std::map<std::int64_t, int> tool_blocks_;  // a chunk's tool_calls[].index -> its block
    call_indexer calls_index_;  // a tool_calls fragment -> its call
    std::string stop_reason_ = "end_turn";
    std::int64_t input_tokens_ = 0, output_tokens_ = 0;
};

}  // namespace toolgate::gateway::messages_wire
