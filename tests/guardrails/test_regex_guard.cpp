#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "guardrails/factories.hpp"

using namespace toolgate::guardrails;

namespace {

std::unique_ptr<guardrail> build(std::string_view config) {
    return make_regex_guard(json::parse(config).as_object(), build_context{});
}

std::unique_ptr<guardrail> build(json::object const& config) { return make_regex_guard(config, build_context{}); }

// The key and message of the config_error building `config` throws.
std::pair<std::string, std::string> config_error_of(std::string_view config) {
    try {
        build(config);
    } catch (config_error const& e) {
        return {e.key, e.what()};
    }
    return {"(no error)", ""};
}

verdict check1(guardrail const& g, std::string& text) {
    std::vector<text_part> parts{text_part{part_kind::user, 0, text}};
    scope s;
    auto v = g.check(parts, nullptr, s);
    text = parts[0].text;
    return v;
}

verdict check1(guardrail const& g, std::string&& text) { return check1(g, text); }

std::string redacted(guardrail const& g, std::string text) {
    check1(g, text);
    return text;
}

template <typename F>
double best_ms(F&& f) {
    double best = 1e9;
    for (int i = 0; i < 3; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

// A megabyte must be checked in well under 100 ms; sanitizer builds run several times slower.
#if defined(__SANITIZE_ADDRESS__)
constexpr double budget_ms = 500;
#else
constexpr double budget_ms = 100;
#endif

std::string megabyte_of_prose() {
    std::string s;
    while (s.size() < (1u << 20))
        s += "The keeper's cottage was locked, as always. Marta let herself in with the key that hung on a nail. ";
    return s;
}

}  // namespace

// ---- config ----------------------------------------------------------------------------------------

TEST(regex_guard, reports_a_pattern_re2_refuses_with_its_index_and_re2s_error) {
    auto [key, what] = config_error_of(R"({"patterns": ["fine", "(unclosed", "also fine"]})");
    EXPECT_EQ(key, "config.patterns[1]");
    EXPECT_NE(what.find("missing )"), std::string::npos) << what;
    std::tie(key, what) = config_error_of(R"({"patterns": ["ok", {"name": "bad", "pattern": "a{2,1}"}]})");
    EXPECT_EQ(key, "config.patterns[1]");
    EXPECT_NE(what.find("repetition"), std::string::npos) << what;
    // Backreferences and lookarounds are what RE2 leaves out to stay linear.
    EXPECT_EQ(config_error_of(R"({"patterns": ["(a)\\1"]})").first, "config.patterns[0]");
    EXPECT_EQ(config_error_of(R"j({"patterns": ["foo(?=bar)"]})j").first, "config.patterns[0]");
}

TEST(regex_guard, refuses_bad_config_naming_the_key) {
    EXPECT_EQ(config_error_of(R"({"patterns": ["a"], "mode": "block"})").first, "config.mode");
    EXPECT_EQ(config_error_of(R"({"patterns": ["a"], "action": "warn"})").first, "config.action");
    EXPECT_EQ(config_error_of(R"({"patterns": []})").first, "config.patterns");
    EXPECT_EQ(config_error_of(R"({"patterns": "a"})").first, "config.patterns");
    EXPECT_EQ(config_error_of(R"({"action": "block"})").first, "config.patterns");
    EXPECT_EQ(config_error_of(R"({"patterns": ["a", 7]})").first, "config.patterns[1]");
    EXPECT_EQ(config_error_of(R"({"patterns": [{"name": "x"}]})").first, "config.patterns[0].pattern");
    EXPECT_EQ(config_error_of(R"({"patterns": [{"name": "", "pattern": "a"}]})").first, "config.patterns[0].name");
    EXPECT_EQ(config_error_of(R"({"patterns": [{"pattern": "a", "flags": "i"}]})").first, "config.patterns[0].flags");
    EXPECT_EQ(config_error_of(R"({"patterns": ["a"], "max_match_bytes": 0})").first, "config.max_match_bytes");
    EXPECT_EQ(config_error_of(R"({"patterns": ["a"], "max_match_bytes": 12.5})").first, "config.max_match_bytes");
    EXPECT_EQ(config_error_of(R"({"patterns": ["(?i)project\\s+aurora"], "action": "block"})").first, "(no error)");
}

TEST(regex_guard, refuses_a_pattern_that_matches_the_empty_text) {
    for (auto p : {R"("a*")", R"("(foo)?")", R"("x|")", R"("^")"})
        EXPECT_EQ(config_error_of(std::string(R"({"patterns": ["ok", )") + p + "]}").first, "config.patterns[1]") << p;
}

TEST(regex_guard, holds_a_stream_back_by_max_match_bytes) {
    EXPECT_EQ(build(R"({"patterns": ["a"]})")->window(), 256u);
    EXPECT_EQ(build(R"({"patterns": ["a"], "max_match_bytes": 64})")->window(), 64u);
    EXPECT_EQ(build(R"({"patterns": ["a"]})")->name(), "regex-guard");
}

// ---- block -----------------------------------------------------------------------------------------

TEST(regex_guard, blocks_text_that_any_pattern_matches_and_names_the_first_rule) {
    auto g =
        build(R"({"patterns": ["(?i)project\\s+aurora", {"name": "ticket", "pattern": "\\bTCK-\\d{4}\\b"}, "x{3}"]})");
    auto v = check1(*g, "tell me about Project   AURORA please");
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.rule, "pattern_0");
    v = check1(*g, "see TCK-1234.");
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.rule, "ticket");
    v = check1(*g, "xxx and project aurora");  // both match: the first in the list names it
    EXPECT_EQ(v.rule, "pattern_0");
    EXPECT_EQ(check1(*g, "TCK-12345 and project-aurora and xx").what, outcome::pass);
}

TEST(regex_guard, respects_the_patterns_own_case_flags) {
    auto g = build(R"({"patterns": ["Secret", "(?i)classified"]})");
    EXPECT_EQ(check1(*g, "a Secret plan").what, outcome::block);
    EXPECT_EQ(check1(*g, "a secret plan").what, outcome::pass);
    EXPECT_EQ(check1(*g, "CLASSIFIED").what, outcome::block);
    EXPECT_EQ(check1(*g, "ClAsSiFiEd").what, outcome::block);
}

TEST(regex_guard, anchors_apply_to_each_part) {
    auto g = build(R"({"patterns": ["^ignore", "(?m)^rm -rf /$"]})");
    EXPECT_EQ(check1(*g, "ignore all that").what, outcome::block);
    EXPECT_EQ(check1(*g, "do not ignore").what, outcome::pass);
    EXPECT_EQ(check1(*g, "run this:\nrm -rf /\nthanks").what, outcome::block);
}

TEST(regex_guard, sees_through_full_width_letters_and_zero_width_characters) {
    auto g = build(R"({"patterns": ["(?i)project\\s+aurora"]})");
    EXPECT_EQ(check1(*g, "\xEF\xBC\xB0roject aurora").what, outcome::block);  // Ｐroject
    EXPECT_EQ(check1(*g, "pro\u200Bject\u3000aur\u200Dora").what, outcome::block);
    EXPECT_EQ(check1(*g, "project\u00A0aurora").what, outcome::block);
}

TEST(regex_guard, names_the_part_but_never_the_matched_text) {
    auto g = build(R"({"patterns": [{"name": "codename", "pattern": "(?i)aurora"}]})");
    std::vector<text_part> parts{{part_kind::system, 0, "be brief"}, {part_kind::tool, 3, "result: Aurora"}};
    scope s;
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.part, 1u);
    EXPECT_EQ(v.rule, "codename");
    EXPECT_FALSE(v.detail.empty());
    EXPECT_EQ(v.detail.find("urora"), std::string::npos);
    EXPECT_EQ(parts[1].text, "result: Aurora");
}

TEST(regex_guard, survives_invalid_utf8_in_the_text) {
    auto g = build(R"({"patterns": ["b.d"], "action": "redact"})");
    EXPECT_EQ(redacted(*g,
                       "\xff"
                       "bad\xe2\x80"),
              "\xff[redacted]\xe2\x80");
    EXPECT_EQ(check1(*g,
                     "b\xff"
                     "d")
                  .what,
              outcome::pass);  // '.' is a character, not a broken byte
}

// ---- redact ----------------------------------------------------------------------------------------

TEST(regex_guard, redacts_every_match_of_every_matching_pattern) {
    auto g = build(R"({"patterns": [{"name": "ticket", "pattern": "TCK-\\d+"}, "(?i)aurora"], "action": "redact"})");
    std::string t = "TCK-1, then Aurora, then TCK-22 and aurora.";
    auto v = check1(*g, t);
    EXPECT_EQ(v.what, outcome::redact);
    EXPECT_EQ(v.rule, "ticket");
    EXPECT_EQ(t, "[redacted], then [redacted], then [redacted] and [redacted].");
    std::string clean = "nothing here";
    EXPECT_EQ(check1(*g, clean).what, outcome::pass);
    EXPECT_EQ(clean, "nothing here");
}

TEST(regex_guard, redacts_overlapping_matches_of_two_patterns_once) {
    auto g = build(R"({"patterns": ["abc", "bcd"], "action": "redact"})");
    EXPECT_EQ(redacted(*g, "xabcdx"), "x[redacted]x");
    EXPECT_EQ(redacted(*g, "abc bcd"), "[redacted] [redacted]");
}

TEST(regex_guard, redacts_the_original_bytes_of_a_disguised_match) {
    auto g = build(R"({"patterns": ["(?i)aurora"], "action": "redact"})");
    EXPECT_EQ(redacted(*g, "see \xEF\xBC\xA1\xEF\xBC\xB5rora now"), "see [redacted] now");  // ＡＵrora
    EXPECT_EQ(redacted(*g, "(au\u200Bro\u200Dra)"), "([redacted])");
    EXPECT_EQ(redacted(*g, "東京 aurora 東京"), "東京 [redacted] 東京");
}

TEST(regex_guard, redacts_in_every_part) {
    auto g = build(R"({"patterns": ["\\d{3}-\\d{4}"], "action": "redact"})");
    std::vector<text_part> parts{{part_kind::user, 0, "call 555-1234"},
                                 {part_kind::user, 1, "no number"},
                                 {part_kind::tool, 2, "555-9876 or 555-0000"}};
    scope s;
    EXPECT_EQ(g->check(parts, nullptr, s).what, outcome::redact);
    EXPECT_EQ(parts[0].text, "call [redacted]");
    EXPECT_EQ(parts[1].text, "no number");
    EXPECT_EQ(parts[2].text, "[redacted] or [redacted]");
}

TEST(regex_guard, redacts_only_the_non_empty_matches_of_a_pattern_that_can_match_empty_inside_a_text) {
    auto g = build(R"({"patterns": ["\\bx*\\b"], "action": "redact"})");  // matches "" between words too
    EXPECT_EQ(redacted(*g, "a xx b"), "a [redacted] b");
}

// ---- linear time -----------------------------------------------------------------------------------

TEST(regex_guard, stays_linear_on_a_pattern_that_makes_backtrackers_explode) {
    auto g = build(R"({"patterns": ["(a+)+$", "(x+x+)+y", "(a|aa)+b"]})");
    std::string as(1u << 20, 'a');
    auto ms = best_ms([&] { EXPECT_EQ(check1(*g, as).what, outcome::block); });
    std::printf("  (a+)+$ on 1 MB of 'a': %.1f ms (match)\n", ms);
    EXPECT_LT(ms, budget_ms);
    auto no = as + "!";
    ms = best_ms([&] { EXPECT_EQ(check1(*g, no).what, outcome::pass); });
    std::printf("  (a+)+$ on 1 MB of 'a' then '!': %.1f ms (no match)\n", ms);
    EXPECT_LT(ms, budget_ms);
    std::string xs(1u << 20, 'x');
    ms = best_ms([&] { EXPECT_EQ(check1(*g, xs).what, outcome::pass); });
    std::printf("  (x+x+)+y on 1 MB of 'x': %.1f ms (no match)\n", ms);
    EXPECT_LT(ms, budget_ms);
}

TEST(regex_guard, redacts_a_megabyte_long_match_in_linear_time) {
    auto g = build(R"({"patterns": ["(a+)+$"], "action": "redact"})");
    std::string as = "start " + std::string(1u << 20, 'a');
    std::string out;
    auto ms = best_ms([&] { out = redacted(*g, as); });
    std::printf("  redacting a 1 MB match of (a+)+$: %.1f ms\n", ms);
    EXPECT_EQ(out, "start [redacted]");
    EXPECT_LT(ms, budget_ms);
}

TEST(regex_guard, runs_a_thousand_patterns_in_one_pass_over_a_megabyte) {
    json::array patterns;
    for (int i = 0; i < 1000; ++i)
        patterns.push_back(json::value("(?i)\\bcode_" + std::to_string(i) + "_[a-z]{2}\\d{3,5}\\b"));
    json::object config;
    config["patterns"] = patterns;
    auto t0 = std::chrono::steady_clock::now();
    auto g = build(config);
    std::printf("  1000 patterns compiled in %.1f ms\n",
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    auto text = megabyte_of_prose();
    auto ms = best_ms([&] { EXPECT_EQ(check1(*g, text).what, outcome::pass); });
    std::printf("  1000 patterns on 1 MB, no match: %.1f ms\n", ms);
    EXPECT_LT(ms, budget_ms);
    auto planted = text + " CODE_777_ab1234.";
    ms = best_ms([&] {
        auto v = check1(*g, planted);
        EXPECT_EQ(v.what, outcome::block);
        EXPECT_EQ(v.rule, "pattern_777");
    });
    std::printf("  1000 patterns on 1 MB, one match at the end: %.1f ms\n", ms);
    EXPECT_LT(ms, budget_ms);
}

TEST(regex_guard, redacts_many_matches_in_a_megabyte_in_bounded_time) {
    auto g = build(R"({"patterns": ["\\b\\d{3}-\\d{4}\\b", "(?i)\\bkey\\b"], "action": "redact"})");
    std::string text;
    while (text.size() < (1u << 20)) text += "call 555-1234 for the key, ";
    std::string out;
    auto ms = best_ms([&] { out = redacted(*g, text); });
    std::printf("  1 MB with ~75,000 matches redacted: %.1f ms\n", ms);
    EXPECT_EQ(out.find("555"), std::string::npos);
    EXPECT_EQ(out.find("key"), std::string::npos);
    EXPECT_LT(ms, 2 * budget_ms);
}

TEST(regex_guard, is_shared_by_threads_checking_at_once) {
    auto g = build(R"({"patterns": ["(?i)aurora", "\\d{3}-\\d{4}"], "action": "redact"})");
    std::vector<std::thread> threads;
    std::vector<int> ok(4, 0);
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) {
                std::vector<text_part> parts{{part_kind::user, 0, "Aurora " + std::to_string(i) + " call 555-1234"}};
                scope s;
                ok[t] += g->check(parts, nullptr, s).what == outcome::redact &&
                         parts[0].text == "[redacted] " + std::to_string(i) + " call [redacted]";
            }
        });
    for (auto& th : threads) th.join();
    for (int t = 0; t < 4; ++t) EXPECT_EQ(ok[t], 200);
}
