#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "guardrails/factories.hpp"
#include "guardrails/token_estimate.hpp"

#ifndef TOOLGATE_GUARDRAIL_DATA
#define TOOLGATE_GUARDRAIL_DATA "tests/guardrails/data"
#endif

using namespace toolgate::guardrails;

namespace {

// A megabyte must be checked in well under 100 ms; sanitizer builds run several times slower.
#if defined(__SANITIZE_ADDRESS__)
constexpr double budget_ms = 500;
#else
constexpr double budget_ms = 100;
#endif

json::object obj(std::string_view text) { return json::parse(text).as_object(); }

std::unique_ptr<guardrail> build(std::string_view config) { return make_max_token(obj(config), build_context{}); }

std::string config_error_key(std::string_view config) {
    try {
        build(config);
    } catch (config_error const& e) {
        return e.key;
    }
    return "(no error)";
}

std::string slurp(std::string const& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// A chat body with `n` user messages saying `text`.
json::object body_with(std::size_t n, std::string const& text) {
    json::object b;
    b["model"] = "m";
    json::array msgs;
    for (std::size_t i = 0; i < n; ++i) {
        json::object m;
        m["role"] = "user";
        m["content"] = text;
        msgs.push_back(std::move(m));
    }
    b["messages"] = std::move(msgs);
    return b;
}

// The parts the gateway would pass: one per message content string.
std::vector<text_part> parts_of(json::object const& body) {
    std::vector<text_part> out;
    auto const& msgs = body.at("messages").as_array();
    for (std::size_t i = 0; i < msgs.size(); ++i) {
        auto const& c = msgs[i].as_object().at("content");
        if (c.is_string()) out.push_back(text_part{part_kind::user, i, std::string(c.as_string())});
    }
    return out;
}

verdict run(guardrail const& g, json::object& body) {
    auto parts = parts_of(body);
    scope s;
    return g.check(parts, &body, s);
}

}  // namespace

// ---- the estimator ---------------------------------------------------------------------------------

TEST(token_estimate, stays_within_its_documented_bound_on_the_measured_samples) {
    std::string dir = std::string(TOOLGATE_GUARDRAIL_DATA) + "/tokens/";
    auto counts = json::parse(slurp(dir + "counts.json")).as_object();
    auto const& samples = counts.at("samples").as_object();
    ASSERT_GE(samples.size(), 8u);
    for (auto const& kv : samples) {
        std::string name(kv.key());
        auto text = slurp(dir + name);
        ASSERT_EQ(text.size(), kv.value().at("bytes").to_number<std::size_t>())
            << name << " changed: rerun count_tokens.mjs";
        // The header's bound: ±10% on English prose and code, ±35% on other scripts.
        double bound = name == "prose_mixed.txt" ? 0.35 : 0.10;
        auto est = static_cast<double>(estimate_tokens(text));
        for (auto enc : {"cl100k_base", "o200k_base"}) {
            double truth = kv.value().at(enc).to_number<double>();
            double err = (est - truth) / truth;
            std::printf("  %-20s %-12s true %4.0f estimated %4.0f (%+5.1f%%)\n", name.c_str(), enc, truth, est,
                        err * 100);
            EXPECT_LE(std::fabs(err), bound) << name << " against " << enc;
        }
    }
}

TEST(token_estimate, counts_nothing_in_an_empty_text_and_something_in_any_other) {
    EXPECT_EQ(estimate_tokens(""), 0u);
    for (std::string_view s : {"a", " ", "\n", "7", "}", "東", "😀", "\xff"}) EXPECT_GE(estimate_tokens(s), 1u) << s;
}

TEST(token_estimate, follows_how_the_tokenizers_cut_short_texts) {
    // cl100k_base's counts (gpt-tokenizer); the estimate rounds a fraction up, so one over is fine.
    std::pair<std::string_view, std::size_t> const cases[] = {
        {"Hello, world!", 4},                 // Hello , world !
        {"The keeper's cottage", 4},          // The keeper 's cottage
        {"2024", 2},                          // 202 4
        {"    return x;\n", 4},               // "   " " return" " x" ";\n"
        {"fetchWithRetry(url, options)", 7},  // fetch With Retry (url , options )
        {"{\"role\": \"user\"}", 6},          // {" role ": " user "}
    };
    for (auto const& [text, truth] : cases) {
        auto est = estimate_tokens(text);
        EXPECT_GE(est, truth) << text;
        EXPECT_LE(est, truth + 1) << text;
    }
}

TEST(token_estimate, reads_a_megabyte_in_a_few_milliseconds) {
    std::string big;
    auto prose = slurp(std::string(TOOLGATE_GUARDRAIL_DATA) + "/tokens/prose_en.txt");
    while (big.size() < (1u << 20)) big += prose;
    auto t0 = std::chrono::steady_clock::now();
    auto n = estimate_tokens(big);
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  1 MB of prose: %zu tokens estimated in %.2f ms\n", n, ms);
    EXPECT_GT(n, 200000u);
    EXPECT_LT(ms, budget_ms);
}

TEST(token_estimate, does_not_read_past_a_truncated_utf8_sequence) {
    std::string s = "abc\xe6\x9d";  // the first two bytes of a three-byte character
    EXPECT_GE(estimate_tokens(s), 2u);
    EXPECT_GE(estimate_tokens(std::string_view("\xf0", 1)), 1u);
}

// ---- config ----------------------------------------------------------------------------------------

TEST(max_token, refuses_unknown_keys_and_bad_limits_naming_the_key) {
    EXPECT_EQ(config_error_key(R"({"max_input_tokens": 10, "max_ouput_tokens": 5})"), "config.max_ouput_tokens");
    EXPECT_EQ(config_error_key(R"({"max_input_tokens": 0})"), "config.max_input_tokens");
    EXPECT_EQ(config_error_key(R"({"max_input_tokens": -5})"), "config.max_input_tokens");
    EXPECT_EQ(config_error_key(R"({"max_messages": 2.5})"), "config.max_messages");
    EXPECT_EQ(config_error_key(R"({"max_output_tokens": "4096"})"), "config.max_output_tokens");
    EXPECT_EQ(config_error_key(R"({"max_output_tokens": 10, "on_output": "truncate"})"), "config.on_output");
    EXPECT_EQ(config_error_key(R"({"on_output": "cap"})"), "config");
    EXPECT_EQ(config_error_key(R"({"max_input_tokens": 32000, "max_output_tokens": 4096, "max_messages": 200})"),
              "(no error)");
}

TEST(max_token, sees_every_role_and_holds_no_stream_back) {
    auto g = build(R"({"max_messages": 5})");
    EXPECT_EQ(g->name(), "max-token");
    EXPECT_EQ(g->window(), 0u);
    auto kinds = g->default_apply_to();
    for (auto k : {part_kind::user, part_kind::system, part_kind::tool, part_kind::assistant})
        EXPECT_NE(std::find(kinds.begin(), kinds.end(), k), kinds.end()) << static_cast<int>(k);
}

// ---- max_messages ----------------------------------------------------------------------------------

TEST(max_token, passes_a_request_at_the_message_limit_and_blocks_one_over_it) {
    auto g = build(R"({"max_messages": 3})");
    auto at = body_with(3, "hi");
    EXPECT_EQ(run(*g, at).what, outcome::pass);
    auto over = body_with(5, "hi");
    auto v = run(*g, over);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.rule, "max_messages");
    EXPECT_EQ(v.part, 3u);  // the first message over the limit
    EXPECT_NE(v.detail.find('5'), std::string::npos);
    EXPECT_NE(v.detail.find('3'), std::string::npos);
}

TEST(max_token, counts_messages_of_the_body_that_apply_to_leaves_out) {
    auto g = build(R"({"max_messages": 2})");
    auto body = body_with(4, "hi");
    std::vector<text_part> only_first{text_part{part_kind::user, 0, "hi"}};
    scope s;
    auto v = g->check(only_first, &body, s);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.part, 0u);
}

TEST(max_token, counts_the_messages_of_the_parts_when_there_is_no_body) {
    auto g = build(R"({"max_messages": 2})");
    std::vector<text_part> parts{{part_kind::user, 0, "a"}, {part_kind::user, 0, "b"}, {part_kind::tool, 1, "c"}};
    scope s;
    EXPECT_EQ(g->check(parts, nullptr, s).what, outcome::pass);  // two messages, one with two text elements
    parts.push_back({part_kind::user, 2, "d"});
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.part, 3u);
}

// ---- max_input_tokens ------------------------------------------------------------------------------

TEST(max_token, blocks_input_over_the_token_limit_with_numbers_but_no_text) {
    auto g = build(R"({"max_input_tokens": 100})");
    auto small = body_with(2, "What is the capital of France?");
    EXPECT_EQ(run(*g, small).what, outcome::pass);
    std::string secretive;
    for (int i = 0; i < 50; ++i) secretive += "aurora-confidential ";
    auto big = body_with(2, secretive);
    auto v = run(*g, big);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.rule, "max_input_tokens");
    EXPECT_NE(v.detail.find("100"), std::string::npos);
    EXPECT_EQ(v.detail.find("aurora"), std::string::npos);
    EXPECT_EQ(v.detail.find("confidential"), std::string::npos);
}

TEST(max_token, counts_each_body_message_once_even_when_it_is_also_a_part) {
    // 10 messages of 9 estimated tokens each, plus 3 per message: 120.
    auto text = std::string("one two three four five six seven eight nine");
    ASSERT_EQ(estimate_tokens(text), 9u);
    auto body = body_with(10, text);
    EXPECT_EQ(run(*build(R"({"max_input_tokens": 120})"), body).what, outcome::pass);
    EXPECT_EQ(run(*build(R"({"max_input_tokens": 119})"), body).what, outcome::block);
}

TEST(max_token, counts_array_content_tool_call_arguments_and_messages_not_in_the_parts) {
    auto body = obj(R"({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "one two three four five"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "lookup", "arguments": "{\"query\": \"six seven eight nine ten\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "eleven twelve thirteen"}]})");
    std::size_t expected = 3 * 3 + estimate_tokens("one two three four five") + estimate_tokens("lookup") +
                           estimate_tokens("{\"query\": \"six seven eight nine ten\"}") +
                           estimate_tokens("eleven twelve thirteen");
    std::vector<text_part> parts{{part_kind::tool, 2, "eleven twelve thirteen"}};  // apply_to: tool only
    scope s;
    EXPECT_EQ(build("{\"max_input_tokens\": " + std::to_string(expected) + "}")->check(parts, &body, s).what,
              outcome::pass);
    auto v = build("{\"max_input_tokens\": " + std::to_string(expected - 1) + "}")->check(parts, &body, s);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_NE(v.detail.find(std::to_string(expected)), std::string::npos);
}

TEST(max_token, counts_mcp_traffic_from_its_parts) {
    auto g = build(R"({"max_input_tokens": 50})");
    std::string args(4000, 'x');
    std::vector<text_part> parts{{part_kind::mcp_call, 0, "{\"path\": \"" + args + "\"}"}};
    scope s;
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.rule, "max_input_tokens");
    parts[0].text = "{\"path\": \"/tmp/a\"}";
    EXPECT_EQ(g->check(parts, nullptr, s).what, outcome::pass);
}

TEST(max_token, names_the_largest_part_when_the_input_is_too_long) {
    auto g = build(R"({"max_input_tokens": 200})");
    std::vector<text_part> parts{{part_kind::user, 0, "short question"},
                                 {part_kind::tool, 1, std::string(3000, 'z') + " end"},
                                 {part_kind::user, 2, "and another"}};
    scope s;
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.part, 1u);
}

TEST(max_token, checks_a_megabyte_body_in_bounded_time) {
    auto prose = slurp(std::string(TOOLGATE_GUARDRAIL_DATA) + "/tokens/prose_en.txt");
    std::string chunk;
    while (chunk.size() < (1u << 20) / 16) chunk += prose;
    auto body = body_with(16, chunk);
    auto g = build(R"({"max_input_tokens": 1000000, "max_messages": 100})");
    auto parts = parts_of(body);
    scope s;
    auto t0 = std::chrono::steady_clock::now();
    auto v = g->check(parts, &body, s);
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  1 MB body: %.2f ms\n", ms);
    EXPECT_EQ(v.what, outcome::pass);
    EXPECT_LT(ms, budget_ms);
}

// ---- max_output_tokens -----------------------------------------------------------------------------

TEST(max_token, caps_max_tokens_above_the_limit_and_reports_a_redaction) {
    auto g = build(R"({"max_output_tokens": 4096})");
    auto body = body_with(1, "hi");
    body["max_tokens"] = 100000;
    auto v = run(*g, body);
    EXPECT_EQ(v.what, outcome::redact);
    EXPECT_EQ(v.rule, "max_output_tokens");
    EXPECT_EQ(body.at("max_tokens").as_int64(), 4096);
    EXPECT_EQ(run(*g, body).what, outcome::pass);  // once capped, it stays capped
}

TEST(max_token, caps_max_completion_tokens_too_and_both_when_both_are_there) {
    auto g = build(R"({"max_output_tokens": 1000})");
    auto body = body_with(1, "hi");
    body["max_completion_tokens"] = 5000.0;
    body["max_tokens"] = 1001;
    EXPECT_EQ(run(*g, body).what, outcome::redact);
    EXPECT_EQ(body.at("max_completion_tokens").as_int64(), 1000);
    EXPECT_EQ(body.at("max_tokens").as_int64(), 1000);
}

TEST(max_token, leaves_a_request_at_or_under_the_limit_or_without_max_tokens_alone) {
    auto g = build(R"({"max_output_tokens": 1000})");
    auto at = body_with(1, "hi");
    at["max_tokens"] = 1000;
    EXPECT_EQ(run(*g, at).what, outcome::pass);
    EXPECT_EQ(at.at("max_tokens").as_int64(), 1000);
    auto none = body_with(1, "hi");
    EXPECT_EQ(run(*g, none).what, outcome::pass);
    EXPECT_FALSE(none.contains("max_tokens"));
    EXPECT_FALSE(none.contains("max_completion_tokens"));
    auto null = body_with(1, "hi");
    null["max_tokens"] = nullptr;
    EXPECT_EQ(run(*g, null).what, outcome::pass);
    EXPECT_TRUE(null.at("max_tokens").is_null());
}

TEST(max_token, refuses_max_tokens_above_the_limit_when_on_output_is_reject) {
    auto g = build(R"({"max_output_tokens": 4096, "on_output": "reject"})");
    auto body = body_with(1, "hi");
    body["max_tokens"] = 8000;
    auto v = run(*g, body);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.rule, "max_output_tokens");
    EXPECT_NE(v.detail.find("8000"), std::string::npos);
    EXPECT_NE(v.detail.find("4096"), std::string::npos);
    EXPECT_EQ(body.at("max_tokens").as_int64(), 8000);  // refused, not rewritten
}

TEST(max_token, fails_closed_on_a_max_tokens_that_is_not_a_number) {
    auto g = build(R"({"max_output_tokens": 4096})");
    auto body = body_with(1, "hi");
    body["max_tokens"] = "999999";
    EXPECT_EQ(run(*g, body).what, outcome::block);
}

TEST(max_token, checks_size_limits_before_capping_the_output) {
    auto g = build(R"({"max_output_tokens": 10, "max_messages": 1})");
    auto body = body_with(2, "hi");
    body["max_tokens"] = 100;
    auto v = run(*g, body);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.rule, "max_messages");
}

TEST(max_token, leaves_the_output_limit_alone_for_mcp_traffic) {
    auto g = build(R"({"max_output_tokens": 10})");
    std::vector<text_part> parts{{part_kind::mcp_result, 0, "result text"}};
    scope s;
    EXPECT_EQ(g->check(parts, nullptr, s).what, outcome::pass);
}

// max-token skips estimating when twice the bytes (plus 4 per text) is under the limit: the
// estimator must never charge more than that, whatever the text.
TEST(token_estimate, never_exceeds_twice_the_bytes_the_quick_bound_relies_on) {
    std::vector<std::string> hostile = {
        "a", "aBaBaBaBaBaB", "!!!!!!!!", "!.!.!.!.", "1", "1a1a1a1a", " \n \n \n", "\t\t\t", "\xF0\x9F\x98\x80\xF0\x9F\x98\x80",
        "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97", "\xCE\xB1\xCE\xB2\xCE\xB3", "\xFF\xFE\xFD", "a\xE2\x80\x94" "b",
        "x = {\"k\": [1, 2, 3]};", std::string(1000, '\n'), std::string(1000, '.'),
    };
    std::string mix;
    for (int i = 0; i < 2000; ++i) mix += static_cast<char>(1 + (i * 37) % 255);
    hostile.push_back(mix);
    for (auto const& s : hostile)
        EXPECT_LE(toolgate::guardrails::estimate_tokens(s), 2 * s.size() + 4) << testing::PrintToString(s);
}

TEST(max_token, a_prompt_far_under_the_limit_passes_without_estimating_and_one_over_it_still_blocks) {
    auto g = toolgate::guardrails::make_max_token(boost::json::parse(R"({"max_input_tokens":100})").as_object(), {});
    auto body = boost::json::parse(R"({"messages":[{"role":"user","content":"short"}]})").as_object();
    std::vector<toolgate::guardrails::text_part> parts{{toolgate::guardrails::part_kind::user, 0, "short"}};
    toolgate::guardrails::scope sc;
    EXPECT_EQ(g->check(parts, &body, sc).what, toolgate::guardrails::outcome::pass);
    std::string big;
    for (int i = 0; i < 300; ++i) big += "word ";
    auto big_body = boost::json::parse(R"({"messages":[{"role":"user","content":")" + big + R"("}]})").as_object();
    std::vector<toolgate::guardrails::text_part> big_parts{{toolgate::guardrails::part_kind::user, 0, big}};
    EXPECT_EQ(g->check(big_parts, &big_body, sc).what, toolgate::guardrails::outcome::block);
}
