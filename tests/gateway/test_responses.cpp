// The Responses API ingress without sockets (gateway/api/responses_wire.hpp): a Responses request
// as a chat body, a chat.completion as a Response, and a chat stream as Responses events.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <string>
#include <vector>

#include "gateway/api/responses_wire.hpp"

namespace toolgate::gateway {

namespace json = boost::json;
namespace rw = responses_wire;

namespace {

std::vector<std::string> servers() { return {"docs", "fs"}; }

rw::translated translate(std::string const& text) {
    auto r = rw::to_chat(json::parse(text).as_object(), "resp_abc", servers());
    if (auto* err = std::get_if<api_error>(&r)) ADD_FAILURE() << err->message;
    auto* t = std::get_if<rw::translated>(&r);
    return t ? *t : rw::translated{};
}

std::string error_of(std::string const& text) {
    auto r = rw::to_chat(json::parse(text).as_object(), "resp_abc", servers());
    auto* err = std::get_if<api_error>(&r);
    return err ? std::to_string(err->status) + " " + err->message : "no error";
}

struct event {
    std::string type;
    json::object data;
};

std::vector<event> events_of(std::string const& text) {
    std::vector<event> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto end = text.find("\n\n", pos);
        if (end == std::string::npos) break;
        auto block = text.substr(pos, end - pos);
        pos = end + 2;
        if (block.starts_with(":")) continue;  // a keep-alive comment
        auto nl = block.find('\n');
        EXPECT_EQ(block.substr(0, 7), "event: ");
        event e{block.substr(7, nl - 7), json::parse(block.substr(nl + 7)).as_object()};
        EXPECT_EQ(e.data.at("type").as_string(), e.type);
        out.push_back(std::move(e));
    }
    return out;
}

std::string sse(std::string const& json_text) { return "data: " + json_text + "\n\n"; }

}  // namespace

TEST(responses_wire, a_request_becomes_a_chat_body) {
    auto t = translate(R"({"model":"gpt-x","instructions":"Be brief.","max_output_tokens":99,"temperature":0.2,
        "user":"u1","reasoning":{"effort":"low"},"metadata":{"k":"v"},"parallel_tool_calls":false,
        "text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"},"strict":true}},
        "tools":[{"type":"function","name":"get_weather","description":"W","parameters":{"type":"object"},"strict":false}],
        "tool_choice":{"type":"function","name":"get_weather"},
        "input":[{"role":"user","content":[{"type":"input_text","text":"Oslo?"},{"type":"input_image","image_url":"https://x/img.png","detail":"low"}]},
                 {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Checking."}]},
                 {"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{\"city\":\"Oslo\"}"},
                 {"type":"function_call","call_id":"c2","name":"get_weather","arguments":"{}"},
                 {"type":"function_call_output","call_id":"c1","output":"3 C"},
                 {"type":"reasoning","id":"rs_1","summary":[]},
                 {"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"4 C"}]}]})");
    auto const& c = t.chat;
    EXPECT_EQ(c.at("model"), "gpt-x");
    EXPECT_EQ(c.at("max_tokens"), 99);
    EXPECT_EQ(c.at("temperature"), 0.2);
    EXPECT_EQ(c.at("user"), "u1");
    EXPECT_EQ(c.at("reasoning_effort"), "low");
    EXPECT_EQ(c.at("parallel_tool_calls"), false);
    EXPECT_FALSE(c.contains("metadata"));
    EXPECT_EQ(c.at("response_format"),
              json::parse(R"({"type":"json_schema","json_schema":{"name":"out","schema":{"type":"object"},"strict":true}})"));
    EXPECT_EQ(c.at("tools"), json::parse(R"([{"type":"function","function":{"name":"get_weather","description":"W",
        "parameters":{"type":"object"},"strict":false}}])"));
    EXPECT_EQ(c.at("tool_choice"), json::parse(R"({"type":"function","function":{"name":"get_weather"}})"));
    EXPECT_EQ(c.at("stream"), false);
    auto const& m = c.at("messages").as_array();
    ASSERT_EQ(m.size(), 5u) << json::serialize(m);
    EXPECT_EQ(m[0], json::parse(R"({"role":"system","content":"Be brief."})"));
    EXPECT_EQ(m[1], json::parse(R"({"role":"user","content":[{"type":"text","text":"Oslo?"},
        {"type":"image_url","image_url":{"url":"https://x/img.png","detail":"low"}}]})"));
    // The assistant's text and the calls after it are one turn.
    EXPECT_EQ(m[2], json::parse(R"({"role":"assistant","content":"Checking.","tool_calls":[
        {"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}},
        {"id":"c2","type":"function","function":{"name":"get_weather","arguments":"{}"}}]})"));
    EXPECT_EQ(m[3], json::parse(R"({"role":"tool","tool_call_id":"c1","content":"3 C"})"));
    EXPECT_EQ(m[4], json::parse(R"({"role":"tool","tool_call_id":"c2","content":"4 C"})"));
    // Every input item is kept with an id (for input_items); the echo has the request's fields.
    ASSERT_EQ(t.view.input_items.size(), 7u);
    EXPECT_EQ(t.view.input_items[0].at("id"), "item_abc_0");
    EXPECT_EQ(t.view.input_items[5].at("id"), "rs_1");
    EXPECT_EQ(t.view.echo.at("instructions"), "Be brief.");
    EXPECT_EQ(t.view.echo.at("metadata"), json::parse(R"({"k":"v"})"));
    EXPECT_EQ(t.view.echo.at("top_p"), 1.0);
    EXPECT_TRUE(t.view.store);
    EXPECT_FALSE(t.view.mcp_servers);
}

TEST(responses_wire, text_input_stream_store_and_mcp_tools) {
    auto t = translate(R"({"model":"m","input":"hi","stream":true,"store":false,"previous_response_id":"resp_old",
        "tools":[{"type":"mcp","server_label":"fs","require_approval":"never"}]})");
    EXPECT_EQ(t.chat.at("messages"), json::parse(R"([{"role":"user","content":"hi"}])"));
    EXPECT_EQ(t.chat.at("stream_options"), json::parse(R"({"include_usage":true})"));
    EXPECT_FALSE(t.chat.contains("tools"));  // an mcp tool is the loop's, not a function for the client
    EXPECT_FALSE(t.view.store);
    EXPECT_EQ(t.view.previous_response_id, "resp_old");
    ASSERT_TRUE(t.view.mcp_servers);
    EXPECT_EQ(*t.view.mcp_servers, std::vector<std::string>{"fs"});
    auto all = translate(R"({"model":"m","input":"hi","tools":[{"type":"mcp","server_label":"toolgate"}]})");
    EXPECT_EQ(*all.view.mcp_servers, servers());
}

TEST(responses_wire, what_it_refuses_is_named) {
    EXPECT_EQ(error_of(R"({"input":"hi"})"), "400 model: required");
    EXPECT_EQ(error_of(R"({"model":"m"})"), "400 input: required");
    EXPECT_EQ(error_of(R"({"model":"m","input":[]})"), "400 input: must not be empty");
    EXPECT_EQ(error_of(R"({"model":"m","instructions":"i","input":[{"type":"reasoning","id":"rs_1"}]})"),
              "400 input: has no message, call or call output to answer");
    EXPECT_NE(error_of(R"({"model":"m","input":"x","tools":[{"type":"web_search_preview"}]})").find("'web_search_preview' tools"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"model":"m","input":"x","tools":[{"type":"mcp","server_label":"elsewhere","server_url":"https://e"}]})")
                  .find("not one of the gateway's MCP servers"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"model":"m","input":"x","tools":[{"type":"mcp","server_label":"fs","require_approval":"always"}]})")
                  .find("only \"never\""),
              std::string::npos);
    EXPECT_NE(error_of(R"({"model":"m","input":"x","background":true})").find("background"), std::string::npos);
    EXPECT_NE(error_of(R"({"model":"m","input":[{"type":"item_reference","id":"x"}]})").find("'item_reference' item"),
              std::string::npos);
    EXPECT_EQ(error_of(R"({"model":"m","input":"x","max_output_tokens":0})"), "400 max_output_tokens: must be a whole number >= 1");
}

TEST(responses_wire, a_completion_becomes_a_response) {
    auto t = translate(R"({"model":"m","input":"hi","instructions":"I"})");
    auto done = json::parse(R"({"model":"m-2024","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant",
        "content":"Let me look.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}}],
        "usage":{"prompt_tokens":7,"completion_tokens":3}})").as_object();
    auto r = rw::to_response(done, "resp_abc", t.view, 1700000000);
    EXPECT_EQ(r.at("id"), "resp_abc");
    EXPECT_EQ(r.at("object"), "response");
    EXPECT_EQ(r.at("status"), "completed");
    EXPECT_EQ(r.at("model"), "m-2024");
    EXPECT_EQ(r.at("instructions"), "I");
    EXPECT_EQ(r.at("output"), json::parse(R"([
        {"type":"message","id":"msg_abc","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Let me look.","annotations":[]}]},
        {"type":"function_call","id":"fc_call_1","call_id":"call_1","name":"f","arguments":"{\"a\":1}","status":"completed"}])"));
    EXPECT_EQ(r.at("usage").at("total_tokens"), 10);
    // As chat messages again, for the stored conversation.
    EXPECT_EQ(rw::output_messages(r), json::parse(R"([{"role":"assistant","content":"Let me look.","tool_calls":[
        {"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}])"));
    auto cut = json::parse(R"({"choices":[{"finish_reason":"length","message":{"content":"Trunc"}}]})").as_object();
    auto rc = rw::to_response(cut, "resp_abc", t.view, 1);
    EXPECT_EQ(rc.at("status"), "incomplete");
    EXPECT_EQ(rc.at("incomplete_details"), json::parse(R"({"reason":"max_output_tokens"})"));
}

TEST(responses_wire, a_chat_stream_becomes_responses_events) {
    auto t = translate(R"({"model":"m","input":"hi","stream":true})");
    rw::stream_translator tr("resp_abc", t.view, 5);
    std::string s;
    s += sse(R"({"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]})");
    s += ": keep-alive\n\n";
    s += sse(R"({"choices":[{"index":0,"delta":{"content":"lo"}}]})");
    s += sse(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{\"a\""}}]}}]})");
    s += sse(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]})");
    s += sse(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})");
    s += sse(R"({"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":6}})");
    s += "data: [DONE]\n\n";
    // Fed in two pieces, cut inside an event.
    auto text = tr.feed(s.substr(0, 101));
    text += tr.feed(s.substr(101));
    text += tr.finish();
    EXPECT_NE(text.find(": keep-alive\n\n"), std::string::npos);
    auto evs = events_of(text);
    std::vector<std::string> types;
    for (auto const& e : evs) types.push_back(e.type);
    EXPECT_EQ(types, (std::vector<std::string>{
                         "response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                         "response.output_text.done", "response.content_part.done", "response.output_item.done",
                         "response.output_item.added", "response.function_call_arguments.delta",
                         "response.function_call_arguments.delta", "response.function_call_arguments.done",
                         "response.output_item.done", "response.completed"}));
    for (std::size_t i = 0; i < evs.size(); ++i) EXPECT_EQ(evs[i].data.at("sequence_number"), static_cast<std::int64_t>(i));
    EXPECT_EQ(evs[0].data.at("response").at("status"), "in_progress");
    EXPECT_EQ(evs[6].data.at("text"), "Hello");
    EXPECT_EQ(evs[9].data.at("output_index"), 1);
    EXPECT_EQ(evs[12].data.at("arguments"), "{\"a\":1}");
    auto const& fin = evs.back().data.at("response").as_object();
    EXPECT_EQ(fin, tr.final_response());
    EXPECT_EQ(fin.at("status"), "completed");
    EXPECT_EQ(fin.at("model"), "m1");
    EXPECT_EQ(fin.at("output").as_array().size(), 2u);
    EXPECT_EQ(fin.at("output").as_array()[0].at("content").as_array()[0].at("text"), "Hello");
    EXPECT_EQ(fin.at("usage").at("output_tokens"), 6);
    EXPECT_EQ(tr.finish(), "");
}

TEST(responses_wire, an_error_in_the_stream_is_an_error_event_with_the_error_inside) {
    auto t = translate(R"({"model":"m","input":"hi","stream":true})");
    rw::stream_translator tr("resp_abc", t.view, 5);
    auto text = tr.feed(sse(R"({"choices":[{"index":0,"delta":{"content":"x"}}]})") +
                        sse(R"({"error":{"message":"gone","type":"server_error","code":"upstream_error"}})"));
    text += tr.finish();
    auto evs = events_of(text);
    ASSERT_FALSE(evs.empty());
    EXPECT_EQ(evs.back().type, "error");
    EXPECT_EQ(evs.back().data.at("message"), "gone");
    EXPECT_EQ(evs.back().data.at("error").at("code"), "upstream_error");
    EXPECT_TRUE(tr.final_response().empty());
}

}  // namespace toolgate::gateway
