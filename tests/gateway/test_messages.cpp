// The Anthropic Messages ingress without sockets (gateway/api/messages_wire.hpp): a Messages request
// as a chat body, a chat.completion as a message, errors in Anthropic's shape, and a chat stream
// as Messages events, fed whole and byte by byte.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <string>
#include <vector>

#include "gateway/api/messages_wire.hpp"

namespace toolgate::gateway {

namespace json = boost::json;
namespace mw = messages_wire;

namespace {

json::object chat_of(std::string const& text) {
    auto r = mw::to_chat(json::parse(text).as_object());
    if (auto* err = std::get_if<api_error>(&r)) ADD_FAILURE() << err->message;
    auto* o = std::get_if<json::object>(&r);
    return o ? *o : json::object();
}

std::string error_of(std::string const& text) {
    auto r = mw::to_chat(json::parse(text).as_object());
    auto* err = std::get_if<api_error>(&r);
    return err ? std::to_string(err->status) + " " + err->message : "no error";
}

struct event {
    std::string type;
    json::object data;
};

// The events of a Messages stream, checked for the framing (event: TYPE / data: JSON).
std::vector<event> events_of(std::string const& text) {
    std::vector<event> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto end = text.find("\n\n", pos);
        EXPECT_NE(end, std::string::npos) << "an event without its blank line";
        if (end == std::string::npos) break;
        auto block = text.substr(pos, end - pos);
        auto nl = block.find('\n');
        EXPECT_EQ(block.substr(0, 7), "event: ");
        EXPECT_EQ(block.substr(nl + 1, 6), "data: ");
        event e{block.substr(7, nl - 7), json::parse(block.substr(nl + 7)).as_object()};
        EXPECT_EQ(e.data.at("type").as_string(), e.type);
        out.push_back(std::move(e));
        pos = end + 2;
    }
    return out;
}

std::vector<std::string> types_of(std::vector<event> const& evs) {
    std::vector<std::string> out;
    for (auto const& e : evs) out.push_back(e.type);
    return out;
}

std::string sse(std::string const& json_text) { return "data: " + json_text + "\n\n"; }

// A chat stream: text, then two tool calls in fragments, the finish, the usage chunk, [DONE].
std::string tool_stream() {
    std::string s;
    s += sse(R"({"id":"c1","object":"chat.completion.chunk","model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})");
    s += sse(R"({"choices":[{"index":0,"delta":{"content":"Let me "}}]})");
    s += ": keep-alive\n\n";
    s += sse(R"({"choices":[{"index":0,"delta":{"content":"check."}}]})");
    s += sse(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]})");
    s += sse(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]})");
    s += sse(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Oslo\"}"}}]}}]})");
    s += sse(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]})");
    s += sse(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})");
    s += sse(R"({"choices":[],"usage":{"prompt_tokens":31,"completion_tokens":12,"total_tokens":43}})");
    s += "data: [DONE]\n\n";
    return s;
}

}  // namespace

TEST(messages_wire, a_request_becomes_a_chat_body) {
    auto c = chat_of(R"({
        "model": "claude-x", "max_tokens": 256, "system": [{"type":"text","text":"Be brief."},{"type":"text","text":"Be kind."}],
        "stop_sequences": ["END"], "temperature": 0.5, "top_k": 5, "metadata": {"user_id": "u-1"}, "stream": true,
        "tools": [{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
        "tool_choice": {"type":"any","disable_parallel_tool_use":true},
        "messages": [
          {"role":"user","content":"Weather in Oslo?"},
          {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"text","text":"Checking."},
                                          {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Oslo"}}]},
          {"role":"user","content":[{"type":"text","text":"Also this:"},
                                     {"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"3 C"}]},
                                     {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}}]},
          {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_2","content":"boom","is_error":true}]}
        ]})");
    EXPECT_EQ(c.at("model"), "claude-x");
    EXPECT_EQ(c.at("max_tokens"), 256);
    EXPECT_EQ(c.at("stop"), json::parse(R"(["END"])"));
    EXPECT_EQ(c.at("temperature"), 0.5);
    EXPECT_FALSE(c.contains("top_k"));
    EXPECT_EQ(c.at("user"), "u-1");
    EXPECT_EQ(c.at("stream"), true);
    EXPECT_EQ(c.at("stream_options"), json::parse(R"({"include_usage":true})"));
    EXPECT_EQ(c.at("tool_choice"), "required");
    EXPECT_EQ(c.at("parallel_tool_calls"), false);
    EXPECT_EQ(c.at("tools"), json::parse(R"([{"type":"function","function":{"name":"get_weather","description":"Weather",
        "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}])"));
    auto const& m = c.at("messages").as_array();
    ASSERT_EQ(m.size(), 6u) << json::serialize(m);
    EXPECT_EQ(m[0], json::parse(R"({"role":"system","content":"Be brief.\nBe kind."})"));
    EXPECT_EQ(m[1], json::parse(R"({"role":"user","content":"Weather in Oslo?"})"));
    EXPECT_EQ(m[2], json::parse(R"({"role":"assistant","content":"Checking.","tool_calls":[{"id":"toolu_1","type":"function",
        "function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]})"));
    // The tool's result answers the turn before: it comes first, then the rest of the user's turn.
    EXPECT_EQ(m[3], json::parse(R"({"role":"tool","tool_call_id":"toolu_1","content":"3 C"})"));
    EXPECT_EQ(m[4], json::parse(R"({"role":"user","content":[{"type":"text","text":"Also this:"},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBOR"}}]})"));
    EXPECT_EQ(m[5], json::parse(R"({"role":"tool","tool_call_id":"toolu_2","content":"Error: boom"})"));
}

TEST(messages_wire, tool_choice_forms) {
    auto base = std::string(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"}],"tool_choice":)");
    EXPECT_EQ(chat_of(base + R"({"type":"auto"}})").at("tool_choice"), "auto");
    EXPECT_EQ(chat_of(base + R"({"type":"none"}})").at("tool_choice"), "none");
    EXPECT_EQ(chat_of(base + R"({"type":"tool","name":"f"}})").at("tool_choice"),
              json::parse(R"({"type":"function","function":{"name":"f"}})"));
    EXPECT_EQ(error_of(base + R"({"type":"sometimes"}})"), "400 tool_choice.type: must be auto, any, tool or none");
}

TEST(messages_wire, what_it_refuses_is_named) {
    std::string q = R"("messages":[{"role":"user","content":"q"}])";
    EXPECT_EQ(error_of(R"({"model":"m",)" + q + "}"), "400 max_tokens: Field required (a whole number >= 1)");
    EXPECT_EQ(error_of(R"({"max_tokens":1,)" + q + "}"), "400 model: Field required");
    EXPECT_EQ(error_of(R"({"model":"m","max_tokens":1,"messages":[]})"), "400 messages: Field required (a non-empty list)");
    EXPECT_EQ(error_of(R"({"model":"m","max_tokens":1,"colour":"red",)" + q + "}"), "400 colour: Extra inputs are not permitted");
    EXPECT_NE(error_of(R"({"model":"m","max_tokens":1,"mcp_servers":[],)" + q + "}").find("toolgate offers its own MCP"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"model":"m","max_tokens":1,"tools":[{"type":"web_search_20250305","name":"web_search"}],)" + q + "}")
                  .find("Anthropic's server tools"),
              std::string::npos);
    EXPECT_EQ(error_of(R"({"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]})"),
              "400 messages[0].role: must be user or assistant");
    EXPECT_EQ(error_of(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"b"}]}]})"),
              "400 messages[0].content[0]: a tool_use block is not supported in a user message");
    EXPECT_EQ(error_of(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file"}}]}]})"),
              "400 messages[0].content[0].source.type: must be base64 or url");
}

TEST(messages_wire, a_completion_becomes_a_message) {
    auto done = json::parse(R"({"id":"chatcmpl-1","model":"m1","choices":[{"index":0,"finish_reason":"tool_calls",
        "message":{"role":"assistant","content":"On it.","tool_calls":[{"id":"call_a","type":"function",
        "function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}},{"id":"call_b","type":"function",
        "function":{"name":"broken","arguments":"not json"}}]}}],"usage":{"prompt_tokens":9,"completion_tokens":4},
        "toolgate":{"iterations":1}})").as_object();
    auto m = mw::to_message(done, "msg_1");
    EXPECT_EQ(m, json::parse(R"({"id":"msg_1","type":"message","role":"assistant","model":"m1","content":[
        {"type":"text","text":"On it."},
        {"type":"tool_use","id":"call_a","name":"get_weather","input":{"city":"Oslo"}},
        {"type":"tool_use","id":"call_b","name":"broken","input":{}}],
        "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":4},"toolgate":{"iterations":1}})"));
    auto plain = json::parse(R"({"model":"m","choices":[{"finish_reason":"length","message":{"content":""}}]})").as_object();
    auto p = mw::to_message(plain, "msg_2");
    EXPECT_EQ(p.at("stop_reason"), "max_tokens");
    EXPECT_TRUE(p.at("content").as_array().empty());
}

TEST(messages_wire, errors_take_anthropics_shape_and_types) {
    EXPECT_EQ(json::parse(mw::error_body(429, R"({"error":{"message":"slow down","type":"rate_limit_error"}})")),
              json::parse(R"({"type":"error","error":{"type":"rate_limit_error","message":"slow down"}})"));
    EXPECT_EQ(json::parse(mw::error_body(502, "upstream said no")).at("error").at("message"), "upstream said no");
    EXPECT_EQ(mw::error_type(400), "invalid_request_error");
    EXPECT_EQ(mw::error_type(422), "invalid_request_error");
    EXPECT_EQ(mw::error_type(401), "authentication_error");
    EXPECT_EQ(mw::error_type(403), "permission_error");
    EXPECT_EQ(mw::error_type(404), "not_found_error");
    EXPECT_EQ(mw::error_type(413), "request_too_large");
    EXPECT_EQ(mw::error_type(503), "overloaded_error");
    EXPECT_EQ(mw::error_type(500), "api_error");
}

TEST(messages_wire, a_chat_stream_becomes_messages_events) {
    mw::stream_translator t("msg_1", "");
    auto text = t.feed(tool_stream());
    text += t.finish();
    auto evs = events_of(text);
    ASSERT_EQ(evs.size(), 15u);
    EXPECT_EQ(types_of(evs), (std::vector<std::string>{
                                 "message_start", "content_block_start", "content_block_delta", "ping",
                                 "content_block_delta", "content_block_stop", "content_block_start", "content_block_delta",
                                 "content_block_delta", "content_block_stop", "content_block_start", "content_block_delta",
                                 "content_block_stop", "message_delta", "message_stop"}));
    EXPECT_EQ(evs[0].data.at("message").at("id"), "msg_1");
    EXPECT_EQ(evs[0].data.at("message").at("model"), "m1");
    EXPECT_EQ(evs[1].data, json::parse(R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"));
    EXPECT_EQ(evs[2].data.at("delta"), json::parse(R"({"type":"text_delta","text":"Let me "})"));
    EXPECT_EQ(evs[6].data, json::parse(R"({"type":"content_block_start","index":1,
        "content_block":{"type":"tool_use","id":"call_a","name":"get_weather","input":{}}})"));
    EXPECT_EQ(evs[7].data.at("delta"), json::parse(R"({"type":"input_json_delta","partial_json":"{\"city\":"})"));
    EXPECT_EQ(evs[10].data.at("index"), 2);
    EXPECT_EQ(evs[13].data, json::parse(R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},
        "usage":{"input_tokens":31,"output_tokens":12}})"));
    EXPECT_EQ(t.finish(), "");  // once
}

TEST(messages_wire, the_stream_reads_the_same_in_any_pieces) {
    mw::stream_translator whole("msg_1", "m1");
    auto expected = whole.feed(tool_stream());
    expected += whole.finish();
    mw::stream_translator bytes("msg_1", "m1");
    std::string got;
    for (char c : tool_stream()) got += bytes.feed(std::string_view(&c, 1));
    got += bytes.finish();
    EXPECT_EQ(got, expected);
}

TEST(messages_wire, an_error_in_the_stream_is_an_error_event_and_the_end) {
    mw::stream_translator t("msg_1", "m1");
    std::string s = sse(R"({"choices":[{"index":0,"delta":{"content":"Hal"}}]})");
    s += sse(R"({"error":{"message":"upstream went away","type":"server_error","code":"upstream_error"}})");
    auto text = t.feed(s);
    text += t.finish();
    auto evs = events_of(text);
    ASSERT_EQ(types_of(evs), (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta", "error"}));
    EXPECT_EQ(evs[3].data, json::parse(R"({"type":"error","error":{"type":"api_error","message":"upstream went away"}})"));
}

TEST(messages_wire, an_empty_stream_still_has_its_frame) {
    mw::stream_translator t("msg_1", "m1");
    EXPECT_EQ(types_of(events_of(t.finish())), (std::vector<std::string>{"message_start", "message_delta", "message_stop"}));
}

TEST(messages_wire, count_tokens_grows_with_the_request) {
    auto small = chat_of(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]})");
    auto big = chat_of(R"({"model":"m","max_tokens":1,"system":"You are a careful assistant who reads everything twice.",
        "messages":[{"role":"user","content":"hi there, please summarize the following long text for me"}],
        "tools":[{"name":"f","input_schema":{"type":"object"}}]})");
    EXPECT_GT(mw::count_tokens(small), 0);
    EXPECT_GT(mw::count_tokens(big), mw::count_tokens(small) + 10);
}

}  // namespace toolgate::gateway

namespace toolgate::gateway {

TEST(messages_wire, tool_call_fragments_without_an_index_are_told_apart_by_their_id) {
    mw::stream_translator t("msg_1", "m1");
    std::string s;
    s += "data: " + std::string(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"x\":"}}]}}]})") + "\n\n";
    s += "data: " + std::string(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]})") + "\n\n";
    s += "data: " + std::string(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]})") + "\n\n";
    auto text = t.feed(s);
    text += t.finish();
    auto evs = events_of(text);
    std::vector<std::string> starts;
    for (auto const& e : evs)
        if (e.type == "content_block_start") starts.emplace_back(e.data.at("content_block").at("name").as_string());
    EXPECT_EQ(starts, (std::vector<std::string>{"f", "g"}));
}

}  // namespace toolgate::gateway
