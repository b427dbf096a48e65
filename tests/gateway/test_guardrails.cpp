// The guardrails' turn filter without a server: a fake router streams or answers, a capturing
// sink sees what the client would. Streams are split at awkward places on purpose.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <string>
#include <vector>

#include "fakes/capture_sink.hpp"
#include "gateway/pipeline.hpp"
#include "gateway/policy/guardrails.hpp"

using namespace toolgate;
using namespace toolgate::gateway;
namespace gr = toolgate::guardrails;
namespace json = boost::json;
namespace asio = boost::asio;

namespace {

json::object chunk_with(std::string const& content, bool finish) {
    json::object delta;
    if (!content.empty()) delta["content"] = content;
    json::object choice;
    choice["index"] = 0;
    choice["delta"] = std::move(delta);
    choice["finish_reason"] = finish ? json::value("stop") : json::value(nullptr);
    json::array choices;
    choices.push_back(std::move(choice));
    json::object c;
    c["id"] = "x";
    c["object"] = "chat.completion.chunk";
    c["choices"] = std::move(choices);
    return c;
}

json::object tool_chunk_with(std::string const& args) {
    auto c = chunk_with("", false);
    json::object fn;
    fn["arguments"] = args;
    json::object call;
    call["index"] = 0;
    call["function"] = std::move(fn);
    json::array calls;
    calls.push_back(std::move(call));
    c.at("choices").as_array()[0].as_object().at("delta").as_object()["tool_calls"] = std::move(calls);
    return c;
}

json::object answer_with(std::string const& content) {
    return json::parse(R"({"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":)" +
                       json::serialize(json::value(content)) + R"(},"finish_reason":"stop"}]})")
        .as_object();
}

// Streams `pieces` (then a finish chunk) into ctx.sink, or answers `whole`; records what it was sent.
class fake_router final : public turn_filter {
public:
    std::vector<std::string> pieces;
    std::vector<std::string> arg_pieces;  // a tool call's arguments, streamed after the pieces
    bool finish = true;         // send a finish chunk at the end
    bool finish_delta = true;   // the finish chunk has a delta object
    std::string whole;
    std::vector<json::object> requests;
    std::string_view name() const override { return "router"; }
    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const&) override {
        requests.push_back(ctx.request.body);
        turn_result r;
        std::string_view no_raw;  // (named: no braced temporary inside co_await, CONTRIBUTING.md)
        if (ctx.sink) {
            for (auto const& p : pieces) {
                auto c = chunk_with(p, false);
                if (!co_await ctx.sink->on_chunk(c, no_raw)) co_return r;
            }
            for (auto const& a : arg_pieces) {
                auto c = tool_chunk_with(a);
                if (!co_await ctx.sink->on_chunk(c, no_raw)) co_return r;
            }
            if (!finish) co_return r;
            auto fin = chunk_with("", true);
            if (!finish_delta) fin.at("choices").as_array()[0].as_object().erase("delta");
            co_await ctx.sink->on_chunk(fin, no_raw);
            co_return r;
        }
        r.response = answer_with(whole);
        co_return r;
    }
};

std::shared_ptr<policy::guardrail_settings> settings_with(char const* plugin, char const* config, policy::plugin_stage stage,
                                                          bool restore = false) {
    auto s = std::make_shared<policy::guardrail_settings>();
    auto p = std::make_unique<policy::guardrail_plugin>();
    p->name = plugin;
    p->stage = stage;
    p->impl = gr::make(plugin, json::parse(config).as_object(), gr::build_context{});
    p->restore = restore;
    p->apply_to = stage == policy::plugin_stage::after_request ? std::vector<gr::part_kind>{gr::part_kind::assistant}
                                                               : std::vector<gr::part_kind>{gr::part_kind::user, gr::part_kind::tool};
    s->plugins.push_back(std::move(p));
    return s;
}

struct run_result {
    turn_result result;
    std::string streamed;  // the content the client received
    std::string arguments;  // the streamed tool-call arguments, joined
    std::size_t finishes = 0;
};

run_result run_body(std::shared_ptr<policy::guardrail_settings> s, fake_router& router, json::object body, bool stream,
                    bool loop_turn = false);

run_result run(std::shared_ptr<policy::guardrail_settings> s, fake_router& router, std::string const& user_text, bool stream) {
    return run_body(std::move(s), router,
                    json::parse(R"({"model":"m","messages":[{"role":"user","content":)" + json::serialize(json::value(user_text)) + "}]}")
                        .as_object(),
                    stream);
}

run_result run_body(std::shared_ptr<policy::guardrail_settings> s, fake_router& router, json::object body, bool stream,
                    bool loop_turn) {
    auto filter = policy::make_guardrail_filter(s);
    std::vector<std::shared_ptr<turn_filter>> chain;
    chain.push_back(filter);
    chain.push_back(std::shared_ptr<turn_filter>(&router, [](turn_filter*) {}));
    turn_pipeline p(chain);
    fakes::capture_sink sink;
    run_result out;
    asio::io_context ioc;
    turn_context ctx;
    ctx.request.body = std::move(body);
    ctx.loop_turn = loop_turn;
    if (stream) ctx.sink = &sink;
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> { out.result = co_await p.run(ctx); }, asio::detached);
    ioc.run();
    out.streamed = sink.content();
    for (auto const& c : sink.chunks) {
        auto const& choices = c.at("choices").as_array();
        if (choices.empty()) continue;
        auto const* d = choices[0].as_object().if_contains("delta");
        auto const* tc = d && d->is_object() ? d->as_object().if_contains("tool_calls") : nullptr;
        if (!tc) continue;
        for (auto const& call : tc->as_array())
            out.arguments += std::string(call.at("function").at("arguments").as_string());
    }
    out.finishes = sink.finish_reasons().size();
    return out;
}

}  // namespace

TEST(guardrail_filter, a_match_split_across_stream_chunks_is_stopped_before_any_of_it_is_sent) {
    auto s = settings_with("regex-guard", R"({"patterns":["(?i)project\\s+aurora"],"max_match_bytes":32})",
                           policy::plugin_stage::after_request);
    fake_router router;
    // Long enough that text is released before the match arrives.
    router.pieces = {"safe text. " + std::string(100, 'a') + " Then proj", "ect Au", "rora and more."};
    auto r = run(s, router, "hi", true);
    ASSERT_TRUE(r.result.error);
    EXPECT_EQ(r.result.error->code, "regex-guard");
    EXPECT_TRUE(r.result.chunks_sent);
    EXPECT_EQ(r.streamed.find("proj"), std::string::npos) << r.streamed;
    EXPECT_NE(r.streamed.find("safe"), std::string::npos) << "text that could no longer match went out";
    EXPECT_EQ(r.finishes, 0u) << "no finish after a violation";
}

TEST(guardrail_filter, a_clean_stream_is_relayed_whole_with_one_finish) {
    auto s = settings_with("regex-guard", R"({"patterns":["(?i)project\\s+aurora"],"max_match_bytes":16})",
                           policy::plugin_stage::after_request);
    fake_router router;
    router.pieces = {"Hello ", "there, ", "this is all fine and rather long so that it is released in parts."};
    auto r = run(s, router, "hi", true);
    EXPECT_FALSE(r.result.error);
    EXPECT_EQ(r.streamed, "Hello there, this is all fine and rather long so that it is released in parts.");
    EXPECT_EQ(r.finishes, 1u);
}

TEST(guardrail_filter, redacted_pii_is_restored_in_a_stream_split_inside_the_placeholder) {
    auto s = settings_with("pii-redact", R"({"entities":["email"],"action":"redact","restore":true})",
                           policy::plugin_stage::before_request, true);
    fake_router router;
    router.pieces = {"Writing to <EM", "AIL_", "1> now."};
    auto r = run(s, router, "mail dave@example.com", true);
    EXPECT_FALSE(r.result.error);
    ASSERT_EQ(router.requests.size(), 1u);
    EXPECT_EQ(router.requests[0].at("messages").as_array()[0].at("content"), "mail <EMAIL_1>");
    EXPECT_EQ(r.streamed, "Writing to dave@example.com now.");
}

TEST(guardrail_filter, a_blocked_request_never_reaches_the_router_and_names_the_message) {
    auto s = settings_with("regex-guard", R"({"patterns":["forbidden"]})", policy::plugin_stage::before_request);
    fake_router router;
    router.whole = "never";
    auto r = run(s, router, "this is forbidden", false);
    ASSERT_TRUE(r.result.error);
    EXPECT_EQ(r.result.error->status, 400);
    EXPECT_EQ(r.result.error->type, "guardrail_violation");
    EXPECT_EQ(r.result.error->param, "messages[0]");
    EXPECT_EQ(r.result.error->message.find("this is forbidden"), std::string::npos);
    EXPECT_TRUE(router.requests.empty());
}

TEST(guardrail_filter, held_text_is_sent_when_a_stream_ends_without_a_finish_reason) {
    auto s = settings_with("regex-guard", R"({"patterns":["(?i)project\\s+aurora"],"max_match_bytes":64})",
                           policy::plugin_stage::after_request);
    fake_router router;
    router.pieces = {"Short answer, ", "all of it held back."};
    router.finish = false;
    auto r = run(s, router, "hi", true);
    EXPECT_FALSE(r.result.error);
    EXPECT_EQ(r.streamed, "Short answer, all of it held back.");
}

TEST(guardrail_filter, a_finish_chunk_without_a_delta_still_carries_the_held_text) {
    auto s = settings_with("regex-guard", R"({"patterns":["(?i)project\\s+aurora"],"max_match_bytes":64})",
                           policy::plugin_stage::after_request);
    fake_router router;
    router.pieces = {"Held ", "until the end."};
    router.finish_delta = false;
    auto r = run(s, router, "hi", true);
    EXPECT_FALSE(r.result.error);
    EXPECT_EQ(r.streamed, "Held until the end.");
    EXPECT_EQ(r.finishes, 1u);
}

TEST(guardrail_filter, in_an_agent_loop_every_blocked_tool_result_is_withheld_not_only_the_first) {
    auto s = settings_with("secret-scan", R"({"action":"block"})", policy::plugin_stage::before_request);
    fake_router router;
    router.whole = "ok";
    auto body = json::parse(R"({"model":"m","messages":[
        {"role":"user","content":"look both up"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},
                                                        {"id":"b","type":"function","function":{"name":"f","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"a","content":"key AKIAZ7QK3VXRM2PLN4TB"},
        {"role":"tool","tool_call_id":"b","content":"other key AKIAZ7QK3VXRM2PLN4TB, again"}]})")
                    .as_object();
    auto r = run_body(s, router, std::move(body), false, true);
    EXPECT_FALSE(r.result.error);
    ASSERT_EQ(router.requests.size(), 1u);
    auto const& msgs = router.requests[0].at("messages").as_array();
    for (std::size_t i : {2u, 3u}) {
        auto text = std::string(msgs[i].at("content").as_string());
        EXPECT_EQ(text.find("AKIA"), std::string::npos) << i << ": " << text;
        EXPECT_NE(text.find("withheld"), std::string::npos) << i;
    }
}

TEST(guardrail_filter, streamed_tool_call_arguments_get_the_originals_back_json_escaped) {
    auto s = settings_with("pii-redact", R"({"entities":["email"],"action":"redact","restore":true})",
                           policy::plugin_stage::before_request, true);
    fake_router router;
    router.pieces = {"Looking up."};
    router.arg_pieces = {R"({"email":"<EMA)", R"(IL_1>"})"};
    auto r = run(s, router, "orders of dave@example.com", true);
    EXPECT_FALSE(r.result.error);
    EXPECT_EQ(r.arguments, R"({"email":"dave@example.com"})");
}

namespace toolgate::gateway {

// The routes that are not chat hand their plain texts to screen_texts: the request's before,
// the answer's after; a redaction is written back, a block is the 400 naming the plugin.
TEST(screen_texts, reads_the_texts_of_its_stage_redacts_in_place_and_blocks) {
    auto in = settings_with("pii-redact", R"({"entities":["email"],"action":"redact"})", policy::plugin_stage::before_request);
    std::string prompt = "write to ann@example.com", doc = "no address here";
    std::vector<std::string*> texts{&prompt, &doc};
    std::vector<std::string> log;
    EXPECT_FALSE(policy::screen_texts(*in, policy::plugin_stage::before_request, texts, "prompt", &log));
    EXPECT_EQ(prompt.find("ann@example.com"), std::string::npos);
    EXPECT_EQ(doc, "no address here");
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0].substr(0, 18), "pii-redact:redact:");
    // The answer's stage reads nothing of a before_request plugin.
    std::string answer = "mail bob@example.com";
    std::vector<std::string*> out{&answer};
    EXPECT_FALSE(policy::screen_texts(*in, policy::plugin_stage::after_request, out, "choices", nullptr));
    EXPECT_EQ(answer, "mail bob@example.com");
    auto block = settings_with("secret-scan", R"({"action":"block"})", policy::plugin_stage::before_request);
    std::string secret = std::string("key AKIA") + "Z7QK3VXRM2PLN4TB";
    std::vector<std::string*> s{&secret};
    auto err = policy::screen_texts(*block, policy::plugin_stage::before_request, s, "input", nullptr);
    ASSERT_TRUE(err);
    EXPECT_EQ(err->status, 400);
    EXPECT_EQ(err->type, "guardrail_violation");
    EXPECT_EQ(err->code, "secret-scan");
    EXPECT_EQ(err->param, "input");
    std::vector<std::string*> none;
    EXPECT_FALSE(policy::screen_texts(*block, policy::plugin_stage::before_request, none, "input", nullptr));
}

}  // namespace toolgate::gateway
