#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "guardrails/factories.hpp"

#ifndef TOOLGATE_GUARDRAIL_DATA
#define TOOLGATE_GUARDRAIL_DATA "tests/guardrails/data"
#endif

using namespace toolgate::guardrails;

namespace {

std::unique_ptr<guardrail> build(std::string_view config, build_context const& ctx = {}) {
    return make_word_filter(json::parse(config).as_object(), ctx);
}

std::unique_ptr<guardrail> build(json::object const& config) { return make_word_filter(config, build_context{}); }

std::string config_error_key(std::string_view config, build_context const& ctx = {}) {
    try {
        build(config, ctx);
    } catch (config_error const& e) {
        return e.key;
    }
    return "(no error)";
}

verdict check1(guardrail const& g, std::string& text) {
    std::vector<text_part> parts{text_part{part_kind::user, 0, text}};
    scope s;
    auto v = g.check(parts, nullptr, s);
    text = parts[0].text;
    return v;
}

bool blocks(guardrail const& g, std::string text) { return check1(g, text).what == outcome::block; }

std::string redacted(guardrail const& g, std::string text) {
    check1(g, text);
    return text;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The best of three runs of f, in ms (the machine is shared: one slow run is noise).
template <typename F>
double best_ms(F&& f) {
    double best = 1e9;
    for (int i = 0; i < 3; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(best, ms_since(t0));
    }
    return best;
}

// A megabyte must be checked in well under 100 ms; sanitizer builds run several times slower.
#if defined(__SANITIZE_ADDRESS__)
constexpr double budget_ms = 500;
#else
constexpr double budget_ms = 100;
#endif

// A made-up word per number: letters only, none of them English ("zq" never starts one).
std::string made_up_word(unsigned i) {
    std::string w = "zq";
    do {
        w.push_back(static_cast<char>('a' + i % 26));
        i /= 26;
    } while (i);
    w += "x";
    return w;
}

std::string megabyte_of_prose() {
    std::ifstream f(std::string(TOOLGATE_GUARDRAIL_DATA) + "/tokens/prose_en.txt", std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    std::string one = ss.str(), big;
    if (one.empty()) one = "The lighthouse on the northern cape had been automated for almost thirty years.\n";
    while (big.size() < (1u << 20)) big += one;
    return big;
}

struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/word_filter_test_XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~temp_dir() {
        std::remove((path + "/banned.txt").c_str());
        rmdir(path.c_str());
    }
    void write(std::string const& name, std::string const& text) const { std::ofstream(path + "/" + name) << text; }
};

}  // namespace

// ---- config ----------------------------------------------------------------------------------------

TEST(word_filter, refuses_bad_config_naming_the_key) {
    EXPECT_EQ(config_error_key(R"({"words": ["a"], "case": true})"), "config.case");
    EXPECT_EQ(config_error_key(R"({"words": ["a"], "action": "warn"})"), "config.action");
    EXPECT_EQ(config_error_key(R"({"words": ["a"], "case_sensitive": "yes"})"), "config.case_sensitive");
    EXPECT_EQ(config_error_key(R"({"words": "a"})"), "config.words");
    EXPECT_EQ(config_error_key(R"({"words": ["ok", 3]})"), "config.words[1]");
    EXPECT_EQ(config_error_key(R"({"words": ["ok", "  "]})"), "config.words[1]");
    EXPECT_EQ(config_error_key(R"({"case_sensitive": true})"), "config.words");
    EXPECT_EQ(config_error_key(R"({"words": ["foo", "bar"], "case_sensitive": false, "action": "redact"})"),
              "(no error)");
}

TEST(word_filter, reports_a_missing_file_as_a_config_error_on_the_file_key) {
    build_context ctx;
    ctx.base_dir = "/nonexistent/dir";
    EXPECT_EQ(config_error_key(R"({"file": "banned.txt"})", ctx), "config.file");
    EXPECT_EQ(config_error_key(R"({"words": ["x"], "file": "/nonexistent/banned.txt"})"), "config.file");
}

TEST(word_filter, reads_a_word_file_relative_to_the_config_with_comments_and_blank_lines) {
    temp_dir dir;
    dir.write(
        "banned.txt",
        "\xEF\xBB\xBF# banned terms\r\nfoo\r\n\n   \n  # indented comment\n  Bar Baz  \nlast-line-without-newline");
    build_context ctx;
    ctx.base_dir = dir.path;
    auto g = build(R"({"file": "banned.txt", "words": ["extra"]})", ctx);
    EXPECT_TRUE(blocks(*g, "so foo it"));
    EXPECT_TRUE(blocks(*g, "a bar baz here"));
    EXPECT_TRUE(blocks(*g, "the last-line-without-newline."));
    EXPECT_TRUE(blocks(*g, "extra"));
    EXPECT_FALSE(blocks(*g, "bar alone and baz alone"));
    EXPECT_FALSE(blocks(*g, "banned terms"));  // the comment is not a phrase
    EXPECT_FALSE(blocks(*g, "indented comment"));
}

TEST(word_filter, holds_a_stream_back_by_more_than_its_longest_word) {
    auto g = build(R"({"words": ["short", "a much longer phrase"]})");
    EXPECT_GE(g->window(), std::string("a much longer phrase").size());
    EXPECT_GE(g->window(), 3 * std::string("a much longer phrase").size());  // in full-width letters
    EXPECT_LE(g->window(), 4 * std::string("a much longer phrase").size() + 16);
}

// ---- whole words -----------------------------------------------------------------------------------

TEST(word_filter, blocks_a_listed_word_in_any_ascii_case_by_default) {
    auto g = build(R"({"words": ["foo", "Bar"]})");
    EXPECT_TRUE(blocks(*g, "this is FOO"));
    EXPECT_TRUE(blocks(*g, "bar"));
    EXPECT_TRUE(blocks(*g, "BaR none"));
    EXPECT_FALSE(blocks(*g, "nothing to see"));
}

TEST(word_filter, does_not_match_a_word_inside_a_longer_word) {
    auto g = build(R"({"words": ["cunt", "ass", "hell", "bad"]})");
    EXPECT_FALSE(blocks(*g, "Welcome to Scunthorpe"));
    EXPECT_FALSE(blocks(*g, "a classic assessment of the shellfish"));
    EXPECT_FALSE(blocks(*g, "badly, abad, bad1, bad_x, _bad"));
    EXPECT_FALSE(blocks(*g, "Hello there"));
    EXPECT_TRUE(blocks(*g, "go to hell"));
}

TEST(word_filter, matches_words_at_the_start_and_end_of_the_text_and_next_to_punctuation) {
    auto g = build(R"({"words": ["bad"]})");
    for (std::string t : {"bad", "bad start", "the end is bad", "(bad)", "\"bad\"", "bad.", "bad,", "really-bad-idea",
                          "so...bad!", "x/bad/y", "<b>bad</b>", "tab\tbad\n", "«bad»", "bad—worse", "bad。", "bad😀"})
        EXPECT_TRUE(blocks(*g, t)) << t;
}

TEST(word_filter, treats_letters_of_other_scripts_as_part_of_the_word) {
    auto g = build(R"({"words": ["bad", "München"]})");
    EXPECT_FALSE(blocks(*g, "badé"));   // an accented letter continues the word
    EXPECT_FALSE(blocks(*g, "東bad"));  // so does a CJK ideograph
    EXPECT_FALSE(blocks(*g, "Münchener Freiheit"));
    EXPECT_TRUE(blocks(*g, "nach München."));
    EXPECT_TRUE(blocks(*g, "München"));
    EXPECT_FALSE(blocks(*g, "MÜNCHEN"));  // non-ASCII letters match as written, even case-insensitively
    EXPECT_TRUE(blocks(*g, "MüNCHEN"));   // the ASCII letters fold
}

TEST(word_filter, matches_a_word_in_full_width_letters_or_with_zero_width_characters_inside) {
    auto g = build(R"({"words": ["bad", "evil plan"]})");
    EXPECT_TRUE(blocks(*g, "so \xEF\xBD\x82\xEF\xBD\x81\xEF\xBD\x84 really"));  // ｂａｄ
    EXPECT_TRUE(blocks(*g, "\xEF\xBC\xA2\xEF\xBC\xA1\xEF\xBC\xA4"));            // ＢＡＤ
    EXPECT_TRUE(blocks(*g, "b\u200Da\u200Dd"));                                 // zero-width joiners
    EXPECT_TRUE(blocks(*g, "b\u200Bad\uFEFF"));                                 // zero-width space, BOM
    EXPECT_TRUE(blocks(*g, "b\u00ADad"));                                       // soft hyphen
    EXPECT_TRUE(blocks(*g, "evil\u3000plan"));                                  // ideographic space
    EXPECT_TRUE(blocks(*g, "evil\u00A0\u2003plan"));                            // no-break and em spaces
    EXPECT_FALSE(blocks(*g, "b\u200Dadly"));
}

TEST(word_filter, matches_phrases_across_line_breaks_and_runs_of_spaces) {
    auto g = build(R"({"words": ["project   aurora", "evil plan"]})");
    EXPECT_TRUE(blocks(*g, "about Project Aurora."));
    EXPECT_TRUE(blocks(*g, "about project\n\n  aurora"));
    EXPECT_TRUE(blocks(*g, "EVIL\tPLAN"));
    EXPECT_FALSE(blocks(*g, "project auroras"));
    EXPECT_FALSE(blocks(*g, "evil planet"));
    EXPECT_FALSE(blocks(*g, "project, aurora"));
}

TEST(word_filter, honours_case_sensitive_true) {
    auto g = build(R"({"words": ["Foo", "NASA"], "case_sensitive": true})");
    EXPECT_TRUE(blocks(*g, "a Foo here"));
    EXPECT_FALSE(blocks(*g, "a foo here"));
    EXPECT_FALSE(blocks(*g, "a FOO here"));
    EXPECT_TRUE(blocks(*g, "NASA said"));
    EXPECT_FALSE(blocks(*g, "nasa said"));
    EXPECT_TRUE(blocks(*g, "\xEF\xBC\xAE\xEF\xBC\xA1\xEF\xBC\xB3\xEF\xBC\xA1"));  // ＮＡＳＡ
}

TEST(word_filter, lets_punctuation_at_the_edge_of_a_word_match_without_a_boundary) {
    auto g = build(R"({"words": ["c++", "#secret"]})");
    EXPECT_TRUE(blocks(*g, "I write c++"));
    EXPECT_TRUE(blocks(*g, "c++11 is old"));
    EXPECT_FALSE(blocks(*g, "abc++"));  // the 'c' still needs a boundary before it
    EXPECT_TRUE(blocks(*g, "tag:#secret"));
    EXPECT_FALSE(blocks(*g, "#secretly"));
}

TEST(word_filter, names_the_part_and_the_rule_but_never_the_word) {
    auto g = build(R"({"words": ["aurora"]})");
    std::vector<text_part> parts{{part_kind::system, 0, "be nice"},
                                 {part_kind::user, 1, "hello"},
                                 {part_kind::tool, 2, "result: Aurora launch"}};
    scope s;
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.rule, "word");
    EXPECT_EQ(v.part, 2u);
    EXPECT_FALSE(v.detail.empty());
    EXPECT_EQ(v.detail.find("urora"), std::string::npos);
    EXPECT_EQ(v.rule.find("urora"), std::string::npos);
    EXPECT_EQ(parts[2].text, "result: Aurora launch");  // block does not rewrite
}

TEST(word_filter, passes_text_without_listed_words_untouched) {
    auto g = build(R"({"words": ["foo"], "action": "redact"})");
    std::vector<text_part> parts{{part_kind::user, 0, "ｆｉｎｅ text\u200D here"}};
    scope s;
    EXPECT_EQ(g->check(parts, nullptr, s).what, outcome::pass);
    EXPECT_EQ(parts[0].text, "ｆｉｎｅ text\u200D here");
}

// ---- redact ----------------------------------------------------------------------------------------

TEST(word_filter, redacts_each_match_with_a_star_per_character_keeping_what_is_around) {
    auto g = build(R"({"words": ["foo", "evil plan"], "action": "redact"})");
    std::string t = "Foo, the evil\n plan (foo) and food.";
    auto v = check1(*g, t);
    EXPECT_EQ(v.what, outcome::redact);
    EXPECT_EQ(v.rule, "word");
    EXPECT_EQ(t, "***, the ********* (***) and food.");
}

TEST(word_filter, redacts_the_original_bytes_of_a_disguised_word) {
    auto g = build(R"({"words": ["bad"], "action": "redact"})");
    EXPECT_EQ(redacted(*g, "so \xEF\xBD\x82\xEF\xBD\x81\xEF\xBD\x84 really"), "so *** really");
    EXPECT_EQ(redacted(*g, "[b\u200Da\u200Dd]"), "[***]");
    EXPECT_EQ(redacted(*g, "München bad 東京"), "München *** 東京");
}

TEST(word_filter, redacts_overlapping_and_adjacent_matches_once) {
    auto g = build(R"({"words": ["new york", "york city", "city"], "action": "redact"})");
    EXPECT_EQ(redacted(*g, "in new york city today"), "in ************* today");
    EXPECT_EQ(redacted(*g, "city,city"), "****,****");
}

TEST(word_filter, redacts_in_every_part_and_reports_one_redaction) {
    auto g = build(R"({"words": ["foo"], "action": "redact"})");
    std::vector<text_part> parts{
        {part_kind::user, 0, "foo"}, {part_kind::user, 1, "clean"}, {part_kind::tool, 2, "a foo b"}};
    scope s;
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.what, outcome::redact);
    EXPECT_EQ(parts[0].text, "***");
    EXPECT_EQ(parts[1].text, "clean");
    EXPECT_EQ(parts[2].text, "a *** b");
}

// ---- size and time ---------------------------------------------------------------------------------

TEST(word_filter, checks_a_megabyte_against_ten_thousand_words_in_one_pass) {
    json::array words;
    for (unsigned i = 0; i < 10000; ++i) words.push_back(json::value(made_up_word(i)));
    words.push_back(json::value("northern cape lighthouse keeper"));  // a phrase, never in the text
    json::object config;
    config["words"] = words;
    auto t0 = std::chrono::steady_clock::now();
    auto g = build(config);
    std::printf("  10,001 words: automaton built in %.1f ms\n", ms_since(t0));

    auto text = megabyte_of_prose();
    auto clean_ms = best_ms([&] { EXPECT_FALSE(blocks(*g, text)); });
    std::printf("  1 MB without a listed word: %.1f ms\n", clean_ms);
    EXPECT_LT(clean_ms, budget_ms);

    auto planted = text + " and then " + made_up_word(9999) + ".";
    auto found_ms = best_ms([&] { EXPECT_TRUE(blocks(*g, planted)); });
    std::printf("  1 MB with a listed word at the end: %.1f ms\n", found_ms);
    EXPECT_LT(found_ms, budget_ms);
}

TEST(word_filter, redacts_a_megabyte_full_of_matches_in_bounded_time) {
    json::array words;
    for (unsigned i = 0; i < 10000; ++i) words.push_back(json::value(made_up_word(i)));
    json::object config;
    config["words"] = words;
    config["action"] = "redact";
    auto g = build(config);
    std::string text;
    for (unsigned i = 0; text.size() < (1u << 20); ++i) text += made_up_word(i * 7 % 10000) + (i % 3 ? " " : ",\n");
    std::string out;
    auto ms = best_ms([&] { out = redacted(*g, text); });
    std::printf("  1 MB, every word listed, redacted: %.1f ms\n", ms);
    EXPECT_LT(ms, 2 * budget_ms);  // some 150,000 redactions
    EXPECT_EQ(out.find("zq"), std::string::npos);
    EXPECT_EQ(out.size(), text.size());
}

TEST(word_filter, stays_linear_on_nested_words_over_a_run_of_one_letter) {
    // "a", "aa", ... 200 letters: naive matching would be quadratic on a megabyte of 'a's.
    json::array words;
    for (std::size_t n = 1; n <= 200; ++n) words.push_back(json::value(std::string(n, 'a')));
    json::object config;
    config["words"] = words;
    auto g = build(config);
    std::string run(1u << 20, 'a');
    auto ms = best_ms([&] { EXPECT_FALSE(blocks(*g, run)); });  // one megabyte-long word: nothing whole
    std::printf("  1 MB of 'a' against a..a(200): %.1f ms\n", ms);
    EXPECT_LT(ms, budget_ms);
    std::string spaced;
    while (spaced.size() < (1u << 20)) spaced += std::string(250, 'a') + " ";
    ms = best_ms([&] { EXPECT_FALSE(blocks(*g, spaced)); });  // 250-letter words: longer than any listed
    std::printf("  1 MB of 250-letter words: %.1f ms\n", ms);
    EXPECT_LT(ms, budget_ms);
}

TEST(word_filter, survives_empty_parts_and_invalid_utf8) {
    auto g = build(R"({"words": ["bad"], "action": "redact"})");
    std::vector<text_part> none;
    scope s;
    EXPECT_EQ(g->check(none, nullptr, s).what, outcome::pass);
    EXPECT_EQ(redacted(*g, ""), "");
    EXPECT_EQ(redacted(*g,
                       "\xff"
                       "bad\xe2\x80"),
              "\xff"
              "***\xe2\x80");  // broken bytes separate words
    EXPECT_EQ(redacted(*g,
                       "\xe6\x9d"
                       "bad"),
              "\xe6\x9d"
              "***");
}
