// The Responses API ingress without sockets (gateway/api/responses_wire.hpp): a Responses request
// as a chat body, a chat.completion as a Response, and a chat stream as Responses events.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <array>
#include <string>
#include <vector>

#include "gateway/api/responses_wire.hpp"

namespace toolgate::gateway {

namespace json = boost::json;
namespace rw = responses_wire;

namespace {

std::vector<std::string> servers() { return {"docs", "fs"}; }

// Two servers' tools as the catalog has them: docs (search, read-only) and fs (read_file, write_file).
json::object const& definition(std::string_view name) {
    static json::object const search = json::parse(R"({"name":"search","description":"Search the docs.",
        "inputSchema":{"type":"object","properties":{"q":{"type":"string"}}},"annotations":{"readOnlyHint":true}})").as_object();
    static json::object const read = json::parse(R"({"name":"read_file","inputSchema":{"type":"object"},
        "annotations":{"readOnlyHint":true}})").as_object();
    static json::object const write = json::parse(R"({"name":"write_file","inputSchema":{"type":"object"}})").as_object();
    return name == "search" ? search : name == "read_file" ? read : write;
}

rw::mcp_offer const& offer() {
    static rw::mcp_offer const o = [] {
        rw::mcp_offer m;
        m.servers = servers();
        for (auto [exposed, server, name] : std::vector<std::array<std::string_view, 3>>{
                 {"docs__search", "docs", "search"}, {"fs__read_file", "fs", "read_file"}, {"fs__write_file", "fs", "write_file"}})
            m.tools.push_back(rw::gateway_tool{exposed, server, name, &definition(name)});
        return m;
    }();
    return o;
}

rw::translated translate(std::string const& text) {
    auto r = rw::to_chat(json::parse(text).as_object(), "resp_abc", offer());
    if (auto* err = std::get_if<api_error>(&r)) ADD_FAILURE() << err->message;
    auto* t = std::get_if<rw::translated>(&r);
    return t ? *t : rw::translated{};
}

std::string error_of(std::string const& text) {
    auto r = rw::to_chat(json::parse(text).as_object(), "resp_abc", offer());
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
    EXPECT_NE(error_of(R"({"model":"m","input":"x","tools":[{"type":"mcp","server_label":"fs","require_approval":"sometimes"}]})")
                  .find("require_approval: must be"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"model":"m","input":"x","tools":[{"type":"mcp","server_label":"fs","allowed_tools":"read_file"}]})")
                  .find("allowed_tools: must be a list"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"model":"m","input":"x","tools":[{"type":"mcp","server_label":"fs"},{"type":"mcp","server_label":"fs"}]})")
                  .find("named twice"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"model":"m","input":[{"type":"mcp_approval_response","approval_request_id":"call_1","approve":true}]})")
                  .find("must name an mcp_approval_request"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"model":"m","input":[{"type":"mcp_approval_response","approval_request_id":"mcpr_c","approve":"yes"}]})")
                  .find("approve: must be true or false"),
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
    EXPECT_EQ(rw::output_messages(r, offer()), json::parse(R"([{"role":"assistant","content":"Let me look.","tool_calls":[
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

TEST(responses_wire, mcp_tools_offer_the_gateway_tools_they_name) {
    // Under a server's label the tools keep their own names; under "toolgate" the exposed ones.
    auto fs = translate(R"({"model":"m","input":"x","tools":[{"type":"mcp","server_label":"fs"}]})");
    ASSERT_EQ(fs.view.mcp_tools.size(), 2u);
    EXPECT_EQ(fs.view.mcp_tools.at("fs__read_file").name, "read_file");
    EXPECT_EQ(fs.view.mcp_tools.at("fs__read_file").label, "fs");
    EXPECT_FALSE(fs.view.mcp_tools.at("fs__write_file").approval);
    EXPECT_EQ(fs.view.mcp_labels, std::vector<std::string>{"fs"});
    auto all = translate(R"({"model":"m","input":"x","tools":[{"type":"mcp","server_label":"toolgate",
        "allowed_tools":["docs__search","fs__write_file"],"require_approval":"always"}]})");
    ASSERT_EQ(all.view.mcp_tools.size(), 2u);
    EXPECT_EQ(all.view.mcp_tools.at("docs__search").name, "docs__search");
    EXPECT_TRUE(all.view.mcp_tools.at("fs__write_file").approval);
    EXPECT_EQ(*all.view.mcp_servers, servers());
    // {tool_names, read_only} and the approval filters: a tool in neither list needs approval.
    auto ro = translate(R"({"model":"m","input":"x","tools":[{"type":"mcp","server_label":"toolgate",
        "allowed_tools":{"read_only":true},"require_approval":{"never":{"tool_names":["docs__search"]}}}]})");
    ASSERT_EQ(ro.view.mcp_tools.size(), 2u);
    EXPECT_FALSE(ro.view.mcp_tools.at("docs__search").approval);
    EXPECT_TRUE(ro.view.mcp_tools.at("fs__read_file").approval);
    // A filter's read_only: the read-only tools need no approval, the others do.
    auto ro_filter = translate(R"({"model":"m","input":"x","tools":[{"type":"mcp","server_label":"fs",
        "require_approval":{"never":{"read_only":true}}}]})");
    EXPECT_FALSE(ro_filter.view.mcp_tools.at("fs__read_file").approval);
    EXPECT_TRUE(ro_filter.view.mcp_tools.at("fs__write_file").approval);
    auto named = translate(R"({"model":"m","input":"x","tools":[{"type":"mcp","server_label":"fs",
        "allowed_tools":{"tool_names":["write_file"]},"require_approval":{"always":{"tool_names":["write_file"]}}}]})");
    ASSERT_EQ(named.view.mcp_tools.size(), 1u);
    EXPECT_TRUE(named.view.mcp_tools.at("fs__write_file").approval);
    // A tool the request's mcp tools do not name shows under "toolgate".
    EXPECT_EQ(rw::tool_ref(named.view, "docs__search").label, "toolgate");
}

TEST(responses_wire, the_mcp_history_a_client_sends_back_becomes_calls_and_results) {
    auto t = translate(R"({"model":"m","input":[
        {"role":"user","content":"go"},
        {"type":"mcp_list_tools","id":"mcpl_1","server_label":"fs","tools":[]},
        {"type":"mcp_call","id":"mcp_c1","server_label":"fs","name":"read_file","arguments":"{}","output":"text"},
        {"type":"mcp_call","id":"mcp_c2","server_label":"toolgate","name":"docs__search","arguments":"{}","output":null,"error":"boom"},
        {"type":"mcp_approval_request","id":"mcpr_c3","server_label":"fs","name":"write_file","arguments":"{\"p\":1}"},
        {"type":"mcp_approval_request","id":"mcpr_c4","server_label":"fs","name":"write_file","arguments":"{}"},
        {"type":"mcp_approval_response","approval_request_id":"mcpr_c3","approve":true},
        {"type":"mcp_approval_response","approval_request_id":"mcpr_c4","approve":false,"reason":"no"}]})");
    auto const& m = t.chat.at("messages").as_array();
    ASSERT_EQ(m.size(), 7u);
    EXPECT_EQ(m[1], json::parse(R"({"role":"assistant","content":null,"tool_calls":[
        {"id":"c1","type":"function","function":{"name":"fs__read_file","arguments":"{}"}}]})"));
    EXPECT_EQ(m[2], json::parse(R"({"role":"tool","tool_call_id":"c1","content":"text"})"));
    EXPECT_EQ(m[3].at("tool_calls").as_array()[0].at("function").at("name"), "docs__search");
    EXPECT_EQ(m[4].at("content"), "boom");
    EXPECT_EQ(m[5].at("tool_calls").as_array().size(), 2u);  // both requests: one turn
    EXPECT_EQ(m[5].at("tool_calls").as_array()[0].at("function").at("name"), "fs__write_file");
    // The approved call is left for the loop; the declined one is answered.
    EXPECT_EQ(t.view.approved, std::vector<std::string>{"c3"});
    EXPECT_EQ(m[6].at("tool_call_id"), "c4");
    auto only = translate(R"({"model":"m","previous_response_id":"resp_1","input":[
        {"type":"mcp_approval_response","approval_request_id":"mcpr_c4","approve":false,"reason":"no"}]})");
    EXPECT_EQ(only.chat.at("messages").as_array()[0],
              json::parse(R"({"role":"tool","tool_call_id":"c4","content":"The user did not approve this tool call; it was not run. Reason: no"})"));
    auto approve_only = translate(R"({"model":"m","previous_response_id":"resp_1","input":[
        {"type":"mcp_approval_response","approval_request_id":"mcpr_c4","approve":true}]})");
    EXPECT_TRUE(approve_only.chat.at("messages").as_array().empty());
    EXPECT_EQ(approve_only.view.approved, std::vector<std::string>{"c4"});
}

TEST(responses_wire, a_response_shows_the_mcp_activity_and_asks_for_approvals) {
    auto t = translate(R"({"model":"m","input":"hi","tools":[{"type":"mcp","server_label":"fs",
        "require_approval":{"never":{"tool_names":["read_file"]}}}]})");
    json::array items;
    json::array listed;
    listed.push_back(rw::listed_tool("read_file", definition("read_file")));
    items.push_back(rw::list_tools_item("mcpl_abc_0", "fs", listed));
    items.push_back(rw::mcp_call_item("c1", rw::tool_ref(t.view, "fs__read_file"), "{}", "the text", ""));
    auto done = json::parse(R"({"model":"m","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant",
        "content":"Reading, then writing.","tool_calls":[{"id":"c2","type":"function","function":{"name":"fs__write_file","arguments":"{\"p\":1}"}}]}}]})")
                    .as_object();
    auto r = rw::to_response(done, "resp_abc", t.view, 1, items);
    auto const& out = r.at("output").as_array();
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ(out[0].at("type"), "mcp_list_tools");
    EXPECT_EQ(out[0].at("tools").as_array()[0].at("annotations").at("readOnlyHint"), true);
    EXPECT_EQ(out[1], json::parse(R"({"type":"mcp_call","id":"mcp_c1","server_label":"fs","name":"read_file","arguments":"{}",
        "output":"the text","error":null,"status":"completed"})"));
    EXPECT_EQ(out[2].at("type"), "message");
    EXPECT_EQ(out[3], json::parse(R"({"type":"mcp_approval_request","id":"mcpr_c2","server_label":"fs","name":"write_file",
        "arguments":"{\"p\":1}"})"));
    // Kept as the conversation: the run call with its result, then the turn that waits for approval.
    EXPECT_EQ(rw::output_messages(r, offer()), json::parse(R"([
        {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"fs__read_file","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"c1","content":"the text"},
        {"role":"assistant","content":"Reading, then writing.","tool_calls":[{"id":"c2","type":"function","function":{"name":"fs__write_file","arguments":"{\"p\":1}"}}]}])"));
    auto failed = rw::mcp_call_item("c9", rw::tool_ref(t.view, "fs__read_file"), "{}", "ignored", "no such file");
    EXPECT_EQ(failed.at("status"), "failed");
    EXPECT_EQ(failed.at("output"), nullptr);
    EXPECT_EQ(failed.at("error"), "no such file");
}

TEST(responses_wire, a_streamed_loop_shows_each_call_where_it_happened) {
    auto t = translate(R"({"model":"m","input":"hi","stream":true,"tools":[{"type":"mcp","server_label":"fs",
        "require_approval":{"always":{"tool_names":["write_file"]}}}]})");
    rw::stream_translator tr("resp_abc", t.view, 5);
    tr.list_tools(rw::list_tools_item("mcpl_abc_0", "fs", json::array()));
    std::string text = tr.feed(sse(R"({"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":"Let me read."}}]})"));
    // The loop runs a call: the observer hears it before the comment line that follows it.
    tr.call_started("c1", "fs__read_file", "{\"path\":\"a\"}");
    text += tr.feed(": tool fs__read_file started\n\n");
    tr.call_finished("c1", "A", "");
    text += tr.feed(": tool fs__read_file done in 3 ms\n\n");
    text += tr.feed(sse(R"({"choices":[{"index":0,"delta":{"content":"Now writing."}}]})"));
    text += tr.feed(sse(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c2","function":{"name":"fs__write_file","arguments":"{}"}}]}}]})"));
    text += tr.feed(sse(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})"));
    text += tr.feed("data: [DONE]\n\n");
    text += tr.finish();
    auto evs = events_of(text);
    std::vector<std::string> types;
    for (auto const& e : evs) types.push_back(e.type);
    EXPECT_EQ(types, (std::vector<std::string>{
                         "response.created", "response.in_progress",
                         "response.output_item.added", "response.mcp_list_tools.in_progress",
                         "response.mcp_list_tools.completed", "response.output_item.done",
                         "response.output_item.added", "response.content_part.added", "response.output_text.delta",
                         "response.output_text.done", "response.content_part.done", "response.output_item.done",
                         "response.output_item.added", "response.mcp_call.in_progress",
                         "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done",
                         "response.mcp_call.completed", "response.output_item.done",
                         "response.output_item.added", "response.content_part.added", "response.output_text.delta",
                         "response.output_text.done", "response.content_part.done", "response.output_item.done",
                         "response.output_item.added", "response.output_item.done", "response.completed"}));
    for (std::size_t i = 0; i < evs.size(); ++i) EXPECT_EQ(evs[i].data.at("sequence_number"), static_cast<std::int64_t>(i));
    EXPECT_EQ(evs[12].data.at("item").at("status"), "in_progress");
    EXPECT_EQ(evs[13].data.at("item_id"), "mcp_c1");
    EXPECT_EQ(evs[13].data.at("output_index"), 2);
    EXPECT_EQ(evs[17].data.at("item").at("output"), "A");
    auto const& out = tr.final_response().at("output").as_array();
    ASSERT_EQ(out.size(), 5u);
    std::vector<std::string> kinds;
    for (auto const& o : out) kinds.push_back(std::string(o.at("type").as_string()));
    EXPECT_EQ(kinds, (std::vector<std::string>{"mcp_list_tools", "message", "mcp_call", "message", "mcp_approval_request"}));
    EXPECT_EQ(out[4].at("id"), "mcpr_c2");
    EXPECT_EQ(evs[24].data.at("output_index"), 4);
    // A call cut short (the loop ended before it finished) ends failed.
    rw::stream_translator cut("resp_abc", t.view, 5);
    cut.call_started("c7", "fs__read_file", "{}");
    auto ct = cut.feed(": tool started\n\n") + cut.finish();
    auto const& co = cut.final_response().at("output").as_array();
    ASSERT_EQ(co.size(), 1u);
    EXPECT_EQ(co[0].at("status"), "failed");
    EXPECT_NE(ct.find("response.mcp_call.failed"), std::string::npos);
}

}  // namespace toolgate::gateway

namespace toolgate::gateway {

// Both ingresses' stream translators find a fragment's call the same way.
TEST(call_indexer, an_index_wins_else_a_new_id_starts_the_next_call) {
    call_indexer ix;
    auto f = [](char const* text) { return json::parse(text).as_object(); };
    EXPECT_EQ(ix.index_of(f(R"({"function":{"arguments":"{"}})")), 0);  // nothing yet: the first call
    EXPECT_EQ(ix.index_of(f(R"({"id":"a","function":{"name":"x"}})")), 1);
    EXPECT_EQ(ix.index_of(f(R"({"function":{"arguments":"}"}})")), 1);  // continues a
    EXPECT_EQ(ix.index_of(f(R"({"index":4,"id":"b"})")), 4);
    EXPECT_EQ(ix.index_of(f(R"({"id":"c"})")), 5);  // after the highest so far
    EXPECT_EQ(ix.index_of(f(R"({"id":"c"})")), 5);
    EXPECT_EQ(ix.index_of(f(R"({"index":18446744073709551615})")), std::int64_t(1) << 30);  // bounded
}

}  // namespace toolgate::gateway
