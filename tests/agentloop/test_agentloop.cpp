// The agent loop against a fake model (scripted turns, streamed in fragments like real providers)
// and fake tools (delays, failures, hangs), on a manual clock: every delay and deadline is
// simulated time, so the tests never sleep and give the same answer on a loaded machine.
// Coroutine bodies here avoid braced lists and gtest macros with string literals (GCC 12); the
// assertions run after the loop, outside coroutines.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "agentloop/loop.hpp"
#include "fakes/capture_sink.hpp"
#include "fakes/manual_clock.hpp"
#include "fakes/model.hpp"
#include "fakes/toolbox.hpp"

using namespace toolgate;
using namespace toolgate::fakes;
namespace asio = boost::asio;
namespace json = boost::json;
using agentloop::stop_reason;

namespace {

json::object request_body() {
    return json::object{{"model", "fake-model"},
                        {"messages", json::array{json::object{{"role", "user"}, {"content", "hi"}}}}};
}

struct harness {
    manual_clock clk;
    fake_model model;
    fake_tools tools;
    capture_sink sink;
    cancel_token cancel;
    agentloop::loop_input in;
    int cancel_after_ms = 0;  // cancel the request (the client leaves) after this long

    explicit harness(bool stream) {
        in.body = request_body();
        in.stream = stream;
        in.sink = stream ? &sink : nullptr;
        in.cancel = &cancel;
        in.tools = &tools;
        in.fallback_model = "fake-model";
        in.clock = &clk;
        model.clk = &clk;
        tools.clk = &clk;
    }

    // Runs the loop to its end on simulated time (a loop that would wait forever fails the test).
    agentloop::loop_result run() {
        asio::io_context ioc;
        agentloop::loop_result res;
        bool done = false;
        auto fn = model.fn();
        asio::co_spawn(ioc, go(res, fn, done), asio::detached);
        if (cancel_after_ms > 0) asio::co_spawn(ioc, canceller(), asio::detached);
        EXPECT_TRUE(run_simulated(ioc, clk, [&] { return done; })) << "the loop never ended";
        return res;
    }

    asio::awaitable<void> go(agentloop::loop_result& res, agentloop::turn_fn const& fn, bool& done) {
        res = co_await agentloop::run(in, fn);
        done = true;
    }
    asio::awaitable<void> canceller() {
        alarm_timer a(clk, co_await asio::this_coro::executor);
        a.expires_after(std::chrono::milliseconds(cancel_after_ms));
        auto ec = co_await a.wait();
        if (!ec) cancel.cancel();
    }
};

std::string message_content(json::object const& response) {
    auto const& c = response.at("choices").as_array()[0].as_object().at("message").as_object().at("content");
    return c.is_string() ? std::string(c.as_string()) : std::string();
}

std::vector<json::object> tool_messages(json::object const& body) {
    std::vector<json::object> out;
    for (auto const& m : body.at("messages").as_array())
        if (m.as_object().at("role") == "tool") out.push_back(m.as_object());
    return out;
}

}  // namespace

TEST(agent_loop, runs_a_tool_and_answers_with_usage_summed_and_a_record) {
    harness h(false);
    h.tools.tools["lookup"].text = "42";
    h.model.turns = {call("lookup", R"({"q":"answer"})"), say("The answer is 42.")};
    auto res = h.run();
    ASSERT_FALSE(res.outcome.error);
    EXPECT_EQ(res.iterations, 2u);
    EXPECT_EQ(res.finish_reason, "stop");
    auto const& r = res.outcome.response;
    EXPECT_EQ(message_content(r), "The answer is 42.");
    EXPECT_EQ(r.at("id"), "chatcmpl-fake-1");  // one message: the first turn's id
    EXPECT_EQ(r.at("usage").at("prompt_tokens"), 20);
    EXPECT_EQ(r.at("usage").at("completion_tokens"), 10);
    EXPECT_EQ(r.at("usage").at("total_tokens"), 30);
    auto const& calls = r.at("toolgate").at("tool_calls").as_array();
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0].at("name"), "lookup");
    EXPECT_EQ(calls[0].at("ok"), true);
    // The second turn saw the assistant's call and the tool's answer.
    ASSERT_EQ(h.model.requests.size(), 2u);
    auto const& msgs = h.model.requests[1].at("messages").as_array();
    ASSERT_EQ(msgs.size(), 3u);
    EXPECT_EQ(msgs[1].at("role"), "assistant");
    EXPECT_EQ(msgs[1].at("tool_calls").as_array()[0].at("function").at("arguments"), R"({"q":"answer"})");
    EXPECT_EQ(msgs[2].at("role"), "tool");
    EXPECT_EQ(msgs[2].at("tool_call_id"), "call_1_0");
    EXPECT_EQ(msgs[2].at("content"), "42");
    EXPECT_EQ(h.tools.arguments_seen[0], R"({"q":"answer"})");
}

TEST(agent_loop, calls_of_one_turn_run_in_parallel_up_to_the_bound) {
    for (unsigned bound : {8u, 2u, 1u}) {
        harness h(false);
        h.in.lim.max_parallel_tools = bound;
        for (auto name : {"a", "b", "c", "d"}) h.tools.tools[name].delay_ms = 30;
        scripted_turn t;
        for (auto name : {"a", "b", "c", "d"}) t.calls.emplace_back(name, "{}");
        h.model.turns = {t, say("done")};
        auto res = h.run();
        ASSERT_FALSE(res.outcome.error);
        EXPECT_EQ(h.tools.calls, 4);
        EXPECT_EQ(h.tools.max_seen, static_cast<int>(std::min(bound, 4u))) << "bound " << bound;
        // 30 ms each, `bound` at a time: the turn took ceil(4 / bound) * 30 ms of (simulated) time.
        EXPECT_EQ(h.clk.elapsed(), std::chrono::milliseconds(30 * ((4 + bound - 1) / bound))) << "bound " << bound;
        // Tool messages follow the order of the calls, whatever order they finished in.
        auto tm = tool_messages(h.model.requests[1]);
        ASSERT_EQ(tm.size(), 4u);
        EXPECT_EQ(tm[0].at("tool_call_id"), "call_1_0");
        EXPECT_EQ(tm[3].at("tool_call_id"), "call_1_3");
    }
}

TEST(agent_loop, failing_erroring_unknown_and_malformed_calls_become_tool_messages) {
    harness h(false);
    h.tools.tools["down"].fail = true;
    h.tools.tools["grumpy"] = fake_tool{"no such city", 0, false, true, false};
    scripted_turn t;
    t.calls = {{"down", "{}"}, {"grumpy", R"({"city":"x"})"}, {"ghost", "{}"}, {"grumpy", "{not json"}};
    h.model.turns = {t, say("recovered")};
    auto res = h.run();
    ASSERT_FALSE(res.outcome.error);
    EXPECT_EQ(message_content(res.outcome.response), "recovered");
    auto tm = tool_messages(h.model.requests[1]);
    ASSERT_EQ(tm.size(), 4u);
    EXPECT_NE(std::string(tm[0].at("content").as_string()).find("could not be run (unavailable)"), std::string::npos);
    EXPECT_EQ(tm[1].at("content"), "Error reported by the tool 'grumpy': no such city");
    EXPECT_EQ(tm[2].at("content"), "Error: there is no tool named 'ghost'.");
    EXPECT_NE(std::string(tm[3].at("content").as_string()).find("not valid JSON"), std::string::npos);
    ASSERT_EQ(res.calls.size(), 4u);
    EXPECT_EQ(res.calls[0].error, "unavailable");
    EXPECT_EQ(res.calls[1].error, "tool_error");
    EXPECT_EQ(res.calls[2].error, "unknown_tool");
    EXPECT_EQ(res.calls[3].error, "invalid_arguments");
    EXPECT_EQ(h.tools.calls, 2);  // the unknown and the malformed never reached a tool
}

TEST(agent_loop, a_hanging_tool_times_out_and_is_cancelled) {
    harness h(false);
    h.in.lim.tool_timeout = std::chrono::milliseconds(50);
    h.tools.tools["slow"].hang = true;
    h.model.turns = {call("slow", "{}"), say("gave up on it")};
    auto res = h.run();
    ASSERT_FALSE(res.outcome.error);
    EXPECT_EQ(h.tools.cancelled, 1);
    ASSERT_EQ(res.calls.size(), 1u);
    EXPECT_EQ(res.calls[0].error, "timeout");
    EXPECT_EQ(res.calls[0].duration, std::chrono::milliseconds(50));  // cancelled at its deadline, not later
    auto tm = tool_messages(h.model.requests[1]);
    EXPECT_NE(std::string(tm[0].at("content").as_string()).find("no answer within 50 ms"), std::string::npos);
}

TEST(agent_loop, max_iterations_ends_with_an_honest_message_and_length) {
    harness h(false);
    h.in.lim.max_iterations = 3;
    h.tools.tools["again"].text = "more";
    h.model.forever = call("again", "{}");
    auto res = h.run();
    ASSERT_FALSE(res.outcome.error);
    EXPECT_EQ(res.stopped, stop_reason::max_iterations);
    EXPECT_EQ(res.finish_reason, "length");
    EXPECT_EQ(h.model.requests.size(), 3u);
    EXPECT_EQ(h.tools.calls, 2);  // the third turn's call is not run
    auto const& r = res.outcome.response;
    EXPECT_EQ(r.at("choices").as_array()[0].at("finish_reason"), "length");
    EXPECT_NE(message_content(r).find("stopped after 3 model turns (max_iterations)"), std::string::npos);
    EXPECT_EQ(r.at("toolgate").at("stopped"), "max_iterations");
}

TEST(agent_loop, max_tool_calls_per_turn_answers_the_rest_not_run) {
    harness h(false);
    h.in.lim.max_tool_calls_per_turn = 2;
    h.tools.tools["t"].text = "x";
    scripted_turn t;
    t.calls = {{"t", "{}"}, {"t", "{}"}, {"t", "{}"}};
    h.model.turns = {t, say("ok")};
    auto res = h.run();
    EXPECT_EQ(h.tools.calls, 2);
    auto tm = tool_messages(h.model.requests[1]);
    ASSERT_EQ(tm.size(), 3u);
    EXPECT_NE(std::string(tm[2].at("content").as_string()).find("Not run"), std::string::npos);
    EXPECT_EQ(res.calls[2].error, "not_run");
}

TEST(agent_loop, large_results_are_cut_with_a_notice) {
    harness h(false);
    h.in.lim.max_tool_result_bytes = 1000;
    h.tools.tools["big"].text = std::string(5000, 'x');
    h.model.turns = {call("big", "{}"), say("ok")};
    h.run();
    auto tm = tool_messages(h.model.requests[1]);
    auto text = std::string(tm[0].at("content").as_string());
    EXPECT_LT(text.size(), 1100u);
    EXPECT_NE(text.find("[toolgate: tool result cut at 1000 of 5000 bytes]"), std::string::npos);
}

TEST(agent_loop, token_and_cost_limits_stop_the_loop) {
    {
        harness h(false);
        h.in.lim.max_total_tokens = 40;  // 15 per turn
        h.tools.tools["t"].text = "x";
        h.model.forever = call("t", "{}");
        auto res = h.run();
        EXPECT_EQ(res.stopped, stop_reason::max_total_tokens);
        EXPECT_EQ(h.model.requests.size(), 3u);  // 45 > 40 after the third turn
        EXPECT_NE(message_content(res.outcome.response).find("used 45 tokens, over its limit of 40"), std::string::npos);
    }
    {
        harness h(false);
        h.in.lim.max_cost_usd = 0.25;
        h.in.cost = [](std::string_view, providers::usage const&) { return 0.1; };
        h.tools.tools["t"].text = "x";
        h.model.forever = call("t", "{}");
        auto res = h.run();
        EXPECT_EQ(res.stopped, stop_reason::max_cost);
        EXPECT_EQ(h.model.requests.size(), 3u);
        EXPECT_NEAR(res.outcome.response.at("toolgate").at("cost_usd").as_double(), 0.3, 1e-9);
    }
}

TEST(agent_loop, loop_timeout_cancels_a_slow_model_turn) {
    harness h(true);
    h.in.lim.loop_timeout = std::chrono::milliseconds(80);
    h.tools.tools["t"].text = "x";
    scripted_turn hang;
    hang.hang = true;
    h.model.turns = {call("t", "{}", "Checking."), hang};
    auto res = h.run();
    ASSERT_FALSE(res.outcome.error);
    EXPECT_EQ(res.stopped, stop_reason::loop_timeout);
    EXPECT_EQ(h.clk.elapsed(), std::chrono::milliseconds(80));  // the hanging turn was cut at the deadline
    EXPECT_EQ(h.sink.finish_reasons(), std::vector<std::string>{"length"});
    EXPECT_NE(h.sink.content().find("Checking.\n\n[toolgate] The agent loop stopped: it ran out of time (80 ms"),
              std::string::npos);
}

TEST(agent_loop, stream_is_one_message_with_comments_and_summed_usage) {
    harness h(true);
    h.in.include_usage = true;
    h.tools.tools["weather"].text = "sunny";
    h.model.turns = {call("weather", R"({"city":"Paris","days":3})", "Let me check."), say("It is sunny in Paris.")};
    auto res = h.run();
    ASSERT_FALSE(res.outcome.error);
    EXPECT_EQ(h.tools.arguments_seen.at(0), R"({"city":"Paris","days":3})");  // fragments reassembled
    EXPECT_EQ(h.sink.content(), "Let me check.\n\nIt is sunny in Paris.");
    EXPECT_EQ(h.sink.finish_reasons(), std::vector<std::string>{"stop"});  // no intermediate finish_reason
    int roles = 0, usage_chunks = 0, gateway_fragments = 0;
    for (auto const& c : h.sink.chunks) {
        EXPECT_EQ(c.at("id"), "chatcmpl-fake-1");
        auto const& choices = c.at("choices").as_array();
        if (choices.empty()) {
            ++usage_chunks;
            EXPECT_EQ(c.at("usage").at("total_tokens"), 30);
            continue;
        }
        auto const& d = choices[0].at("delta").as_object();
        roles += d.contains("role");
        gateway_fragments += d.contains("tool_calls");
    }
    EXPECT_EQ(roles, 1);
    EXPECT_EQ(usage_chunks, 1);
    EXPECT_EQ(gateway_fragments, 0);  // the gateway's own calls never reach the client
    EXPECT_EQ(h.sink.chunks.back().at("choices").as_array().size(), 0u);  // usage comes last
    ASSERT_EQ(h.sink.comments.size(), 2u);
    EXPECT_EQ(h.sink.comments[0], "tool weather started");
    EXPECT_EQ(h.sink.comments[1].rfind("tool weather done in ", 0), 0u);
}

TEST(agent_loop, keepalive_comments_while_tools_run_long) {
    harness h(true);
    h.in.lim.keepalive_interval = std::chrono::milliseconds(20);
    h.tools.tools["slow"].delay_ms = 110;
    h.model.turns = {call("slow", "{}"), say("done")};
    h.run();
    int keepalives = 0;
    for (auto const& c : h.sink.comments) keepalives += c == "keep-alive";
    EXPECT_EQ(keepalives, 5);  // at 20, 40, 60, 80 and 100 ms; the tool ends at 110
}

TEST(agent_loop, hybrid_turn_runs_gateway_calls_and_returns_client_calls) {
    for (bool stream : {false, true}) {
        harness h(stream);
        h.in.client_tools = {"client_fn"};
        h.tools.tools["srv"].text = "from server";
        scripted_turn t;
        t.calls = {{"srv", R"({"a":1})"}, {"client_fn", R"({"b":2})"}};
        h.model.turns = {call("srv", "{}", "First."), t};
        auto res = h.run();
        ASSERT_FALSE(res.outcome.error);
        EXPECT_EQ(res.finish_reason, "tool_calls");
        EXPECT_EQ(h.tools.calls, 2);  // both gateway calls ran
        EXPECT_EQ(res.client_call_ids, std::vector<std::string>{"call_2_1"});
        // transcript: assistant(srv), tool, assistant(srv + client_fn), tool(srv)
        ASSERT_EQ(res.transcript.size(), 4u);
        EXPECT_EQ(res.transcript[2].at("tool_calls").as_array().size(), 2u);
        if (!stream) {
            auto const& msg = res.outcome.response.at("choices").as_array()[0].at("message");
            auto const& tc = msg.at("tool_calls").as_array();
            ASSERT_EQ(tc.size(), 1u);
            EXPECT_EQ(tc[0].at("function").at("name"), "client_fn");
            EXPECT_EQ(tc[0].at("function").at("arguments"), R"({"b":2})");
        } else {
            EXPECT_EQ(h.sink.finish_reasons(), std::vector<std::string>{"tool_calls"});
            std::string args;
            int headers = 0;
            for (auto const& c : h.sink.chunks) {
                auto const& choices = c.at("choices").as_array();
                if (choices.empty()) continue;
                auto const* tc = choices[0].at("delta").as_object().if_contains("tool_calls");
                if (!tc) continue;
                for (auto const& f : tc->as_array()) {
                    EXPECT_EQ(f.at("index"), 0);  // renumbered among the client's calls
                    if (f.as_object().contains("id")) {
                        ++headers;
                        EXPECT_EQ(f.at("function").at("name"), "client_fn");
                    }
                    args += f.at("function").at("arguments").as_string();
                }
            }
            EXPECT_EQ(headers, 1);
            EXPECT_EQ(args, R"({"b":2})");
        }
    }
}

TEST(agent_loop, first_turn_tool_choice_is_relaxed_afterwards) {
    harness h(false);
    h.in.body["tool_choice"] = "required";
    h.tools.tools["t"].text = "x";
    h.model.turns = {call("t", "{}"), say("ok")};
    h.run();
    EXPECT_EQ(h.model.requests[0].at("tool_choice"), "required");
    EXPECT_EQ(h.model.requests[1].at("tool_choice"), "auto");
}

TEST(agent_loop, a_model_error_fails_the_request_and_a_client_leaving_cancels_tools) {
    {
        harness h(false);
        scripted_turn bad;
        bad.error = api_error::upstream(502, "upstream failed");
        h.tools.tools["t"].text = "x";
        h.model.turns = {call("t", "{}"), bad};
        auto res = h.run();
        ASSERT_TRUE(res.outcome.error);
        EXPECT_EQ(res.outcome.error->status, 502);
    }
    {
        harness h(true);
        h.cancel_after_ms = 30;
        h.tools.tools["slow"].hang = true;
        h.model.turns = {call("slow", "{}"), say("never")};
        auto res = h.run();
        EXPECT_TRUE(h.cancel.cancelled());
        EXPECT_EQ(h.tools.cancelled, 1);
        EXPECT_EQ(h.model.requests.size(), 1u);
    }
}

TEST(agent_loop, call_assembler_merges_fragments_by_index_and_without) {
    agentloop::call_assembler a;
    a.add(json::parse(R"({"index":0,"id":"c1","type":"function","function":{"name":"get_","arguments":""}})").as_object());
    a.add(json::parse(R"({"index":1,"id":"c2","function":{"name":"other","arguments":"{}"}})").as_object());
    a.add(json::parse(R"({"index":0,"function":{"name":"weather","arguments":"{\"ci"}})").as_object());
    a.add(json::parse(R"({"index":0,"function":{"arguments":"ty\":1}"}})").as_object());
    ASSERT_EQ(a.calls().size(), 2u);
    EXPECT_EQ(a.calls()[0].name, "get_weather");
    EXPECT_EQ(a.calls()[0].arguments, R"({"city":1})");
    EXPECT_EQ(a.calls()[1].id, "c2");
    agentloop::call_assembler b;  // no index at all: a new id starts a new call
    b.add(json::parse(R"({"id":"x","function":{"name":"f","arguments":"{\"a\""}})").as_object());
    b.add(json::parse(R"({"function":{"arguments":":1}"}})").as_object());
    b.add(json::parse(R"({"id":"y","function":{"name":"g","arguments":"{}"}})").as_object());
    ASSERT_EQ(b.calls().size(), 2u);
    EXPECT_EQ(b.calls()[0].arguments, R"({"a":1})");
    EXPECT_EQ(b.calls()[1].name, "g");
}

TEST(agent_loop, tool_message_text_describes_every_part_and_cuts_on_utf8_boundaries) {
    mcp::tool_outcome o;
    o.ok = true;
    o.result = json::parse(R"({"content":[{"type":"text","text":"hello"},
        {"type":"image","mimeType":"image/png","data":"AAAA"},
        {"type":"resource","resource":{"uri":"file:///a","text":"inside"}},
        {"type":"resource_link","uri":"file:///b","name":"b"}]})").as_object();
    EXPECT_EQ(agentloop::tool_message_text("t", o, 10000),
              "hello\n[image image/png, 4 bytes base64, not shown]\ninside\n[resource link file:///b b]");
    o.result = json::parse(R"({"content":[],"structuredContent":{"x":1}})").as_object();
    EXPECT_EQ(agentloop::tool_message_text("t", o, 10000), R"({"x":1})");
    o.result = json::parse(R"({"content":[{"type":"text","text":"ééééé"}]})").as_object();  // 2 bytes each
    auto cut = agentloop::tool_message_text("t", o, 5);
    EXPECT_EQ(cut.substr(0, cut.find('\n')), "éé");
    o = {};
    o.code = mcp::tool_errc::timeout;
    o.error = "no answer";
    EXPECT_EQ(agentloop::tool_message_text("t", o, 1000), "Error: the tool 't' could not be run (timeout): no answer");
}

// ---- the after-turn decision, table-driven (no I/O, no clock) ----

namespace {

// What an observer heard, in order.
struct recorder final : agentloop::loop_observer {
    std::vector<std::string> heard;
    capture_sink* sink = nullptr;
    void tool_started(std::string_view id, std::string_view name, std::string_view arguments) override {
        heard.push_back("start " + std::string(id) + " " + std::string(name) + " " + std::string(arguments) + " after " +
                        std::to_string(sink ? sink->comments.size() : 0) + " comments");
    }
    void tool_finished(agentloop::tool_call_record const& r, std::string_view output) override {
        heard.push_back("end " + r.id + " " + (r.ok ? "ok " : "failed ") + std::string(output));
    }
};

}  // namespace

TEST(agent_loop, an_observer_hears_each_call_before_its_comment) {
    harness h(true);
    recorder obs;
    obs.sink = &h.sink;
    h.in.observer = &obs;
    h.tools.tools["lookup"].text = "42";
    h.model.turns = {call("lookup", R"({"q":1})"), say("done")};
    auto res = h.run();
    ASSERT_FALSE(res.outcome.error);
    EXPECT_EQ(obs.heard, (std::vector<std::string>{"start call_1_0 lookup {\"q\":1} after 0 comments", "end call_1_0 ok 42"}));
    ASSERT_GE(h.sink.comments.size(), 2u);
    EXPECT_EQ(h.sink.comments[0], "tool lookup started");
}

TEST(agent_loop, approved_calls_run_before_the_first_turn) {
    harness h(false);
    recorder obs;
    h.in.observer = &obs;
    h.tools.tools["write"].text = "written";
    // The conversation ends with the assistant's call that waited for approval.
    auto& msgs = h.in.body.at("messages").as_array();
    msgs.push_back(json::parse(R"({"role":"assistant","content":null,"tool_calls":[
        {"id":"c9","type":"function","function":{"name":"write","arguments":"{\"p\":1}"}}]})"));
    h.in.run_first.push_back(agentloop::assembled_call{"c9", "write", R"({"p":1})"});
    h.model.turns = {say("Written.")};
    auto res = h.run();
    ASSERT_FALSE(res.outcome.error);
    EXPECT_EQ(message_content(res.outcome.response), "Written.");
    EXPECT_EQ(res.iterations, 1u);
    ASSERT_EQ(res.calls.size(), 1u);
    EXPECT_TRUE(res.calls[0].ok);
    EXPECT_EQ(h.tools.arguments_seen[0], R"({"p":1})");
    // The one turn read the call's result after the call.
    auto const& seen = h.model.requests[0].at("messages").as_array();
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_EQ(seen[2].at("role"), "tool");
    EXPECT_EQ(seen[2].at("tool_call_id"), "c9");
    EXPECT_EQ(seen[2].at("content"), "written");
    EXPECT_EQ(obs.heard.size(), 2u);
    ASSERT_EQ(res.transcript.size(), 1u);  // the tool message is the loop's own
}

TEST(next_step, decides_answer_stop_or_act_from_the_calls_the_spent_and_the_limits) {
    using agentloop::call_kind;
    using agentloop::step;
    constexpr auto G = call_kind::gateway;
    constexpr auto C = call_kind::client;
    using ix = std::vector<std::size_t>;
    auto t0 = time_source::time_point{} + std::chrono::hours(1);
    auto deadline = t0 + std::chrono::seconds(10);
    agentloop::limits lim;
    lim.max_iterations = 5;
    lim.max_tool_calls_per_turn = 2;
    lim.max_total_tokens = 1000;
    lim.max_cost_usd = 1.0;

    struct row {
        char const* what;
        std::vector<call_kind> calls;
        agentloop::loop_counters spent;
        time_source::time_point now;
        step::kind kind;
        stop_reason reason;
        ix run, refused, hand_back;
    };
    agentloop::loop_counters fresh{1, 100, 0.1};
    std::vector<row> rows = {
        {"no calls: the turn is the answer", {}, fresh, t0, step::kind::answer, stop_reason::none, {}, {}, {}},
        {"no calls, even past every limit", {}, {9, 5000, 9.0}, deadline, step::kind::answer, stop_reason::none, {}, {}, {}},
        {"gateway calls within the limits run", {G, G}, fresh, t0, step::kind::act, stop_reason::none, {0, 1}, {}, {}},
        {"beyond max_tool_calls_per_turn: not run", {G, G, G, G}, fresh, t0, step::kind::act, stop_reason::none, {0, 1}, {2, 3}, {}},
        {"client calls are handed back", {C}, fresh, t0, step::kind::act, stop_reason::none, {}, {}, {0}},
        {"mixed: gateway calls run, client calls handed back, in order", {C, G, C, G, G}, fresh, t0, step::kind::act,
         stop_reason::none, {1, 3}, {4}, {0, 2}},
        {"client calls only: no limit applies", {C, C}, {5, 5000, 9.0}, deadline, step::kind::act, stop_reason::none, {}, {},
         {0, 1}},
        {"max_iterations reached", {G}, {5, 100, 0.1}, t0, step::kind::stop, stop_reason::max_iterations, {}, {}, {}},
        {"tokens over the limit", {G}, {2, 1001, 0.1}, t0, step::kind::stop, stop_reason::max_total_tokens, {}, {}, {}},
        {"tokens at the limit still run", {G}, {2, 1000, 0.1}, t0, step::kind::act, stop_reason::none, {0}, {}, {}},
        {"cost over the limit", {G}, {2, 100, 1.5}, t0, step::kind::stop, stop_reason::max_cost, {}, {}, {}},
        {"deadline passed", {G}, fresh, deadline, step::kind::stop, stop_reason::loop_timeout, {}, {}, {}},
        {"iterations are checked before tokens", {G}, {5, 5000, 9.0}, deadline, step::kind::stop, stop_reason::max_iterations,
         {}, {}, {}},
    };
    for (auto const& r : rows) {
        auto s = agentloop::next_step(r.calls, r.spent, lim, r.now, deadline);
        EXPECT_EQ(s.what, r.kind) << r.what;
        EXPECT_EQ(s.reason, r.reason) << r.what;
        EXPECT_EQ(s.run, r.run) << r.what;
        EXPECT_EQ(s.refused, r.refused) << r.what;
        EXPECT_EQ(s.hand_back, r.hand_back) << r.what;
    }
    agentloop::limits unlimited;  // 0 tokens and 0 cost: no limit
    unlimited.max_iterations = 100;
    auto s = agentloop::next_step({G}, {3, 1'000'000, 99.0}, unlimited, t0, deadline);
    EXPECT_EQ(s.what, step::kind::act);
}
