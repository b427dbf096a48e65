#include "gateway/routing/strategy.hpp"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <array>
#include <cmath>
#include <initializer_list>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace toolgate::gateway::routing;
using namespace std::chrono_literals;
using order_t = std::vector<std::size_t>;

namespace {

clock::time_point const t0 = clock::time_point{} + 1h;

std::vector<target_view> all_eligible(std::size_t n) { return std::vector<target_view>(n); }

std::vector<target_view> eligibility(std::vector<bool> const& flags) {
    std::vector<target_view> out(flags.size());
    for (std::size_t i = 0; i < flags.size(); ++i) out[i].eligible = flags[i];
    return out;
}

strategy_settings settings(mode how) {
    strategy_settings s;
    s.how = how;
    return s;
}

order_t order_of(strategy_settings const& s, pool_state& state, std::vector<target_view> const& targets,
                 route_input const& in = {}, double unit = 0.5, clock::time_point now = t0) {
    return choose(s, state, in, targets, now, unit).order;
}

}  // namespace

// ---- names -----------------------------------------------------------------------------------------

TEST(mode, every_name_parses_back_to_its_mode) {
    std::pair<mode, std::string_view> const names[] = {
        {mode::single, "single"},
        {mode::fallback, "fallback"},
        {mode::loadbalance, "loadbalance"},
        {mode::conditional, "conditional"},
        {mode::least_latency, "least-latency"},
        {mode::cost_optimized, "cost-optimized"},
        {mode::content_based, "content-based"},
        {mode::ab_test, "ab-test"},
    };
    for (auto const& [m, name] : names) {
        EXPECT_EQ(to_string(m), name);
        EXPECT_EQ(parse_mode(name), m) << name;
    }
    for (std::string_view bad : {"", "least_latency", "Fallback", "round-robin", "single "})
        EXPECT_EQ(parse_mode(bad), std::nullopt) << bad;
}

// ---- single and fallback ---------------------------------------------------------------------------

TEST(single, yields_only_target_zero_and_nothing_when_it_cannot_serve) {
    pool_state state(3);
    auto s = settings(mode::single);
    EXPECT_EQ(order_of(s, state, all_eligible(3)), order_t{0});
    EXPECT_EQ(order_of(s, state, eligibility({false, true, true})), order_t{});
    EXPECT_EQ(order_of(s, state, {}), order_t{});
}

TEST(fallback, tries_eligible_targets_in_listed_order) {
    pool_state state(4);
    auto s = settings(mode::fallback);
    EXPECT_EQ(order_of(s, state, all_eligible(4)), (order_t{0, 1, 2, 3}));
    EXPECT_EQ(order_of(s, state, eligibility({false, true, false, true})), (order_t{1, 3}));
    EXPECT_EQ(order_of(s, state, eligibility({false, false})), order_t{});
}

// ---- loadbalance -----------------------------------------------------------------------------------

TEST(loadbalance, weights_five_one_one_give_the_classic_nginx_sequence) {
    pool_state state(3);
    auto s = settings(mode::loadbalance);
    s.weights = {5, 1, 1};
    std::string picks;
    for (int i = 0; i < 14; ++i) picks += static_cast<char>('a' + order_of(s, state, all_eligible(3)).front());
    EXPECT_EQ(picks, "aabacaaaabacaa");
}

TEST(loadbalance, the_pick_comes_first_and_the_others_follow_in_listed_order) {
    pool_state state(3);
    auto s = settings(mode::loadbalance);
    s.weights = {1, 1, 1};
    EXPECT_EQ(order_of(s, state, all_eligible(3)), (order_t{0, 1, 2}));
    EXPECT_EQ(order_of(s, state, all_eligible(3)), (order_t{1, 0, 2}));
    EXPECT_EQ(order_of(s, state, all_eligible(3)), (order_t{2, 0, 1}));
}

TEST(loadbalance, missing_weights_count_as_one_and_a_small_state_grows_to_the_pool) {
    pool_state state(1);
    auto s = settings(mode::loadbalance);
    std::string picks;
    for (int i = 0; i < 6; ++i) picks += static_cast<char>('a' + order_of(s, state, all_eligible(3)).front());
    EXPECT_EQ(picks, "abcabc");
}

TEST(loadbalance, three_one_one_over_a_thousand_picks_is_within_one_percent_of_the_weights) {
    pool_state state(3);
    auto s = settings(mode::loadbalance);
    s.weights = {3, 1, 1};
    std::array<int, 3> count{};
    for (int i = 0; i < 1000; ++i) ++count[order_of(s, state, all_eligible(3)).front()];
    EXPECT_NEAR(count[0], 600, 10);
    EXPECT_NEAR(count[1], 200, 10);
    EXPECT_NEAR(count[2], 200, 10);
}

TEST(loadbalance, ineligible_targets_are_skipped_and_the_rest_share_by_weight) {
    pool_state state(3);
    auto s = settings(mode::loadbalance);
    s.weights = {5, 1, 1};
    auto const targets = eligibility({false, true, true});
    std::string picks;
    for (int i = 0; i < 4; ++i) {
        auto order = order_of(s, state, targets);
        ASSERT_EQ(order.size(), 2u);
        picks += static_cast<char>('a' + order.front());
    }
    EXPECT_EQ(picks, "bcbc");
}

TEST(loadbalance, a_zero_weight_target_is_never_picked_but_remains_a_fallback) {
    pool_state state(3);
    auto s = settings(mode::loadbalance);
    s.weights = {0, 2, 1};
    for (int i = 0; i < 30; ++i) {
        auto order = order_of(s, state, all_eligible(3));
        ASSERT_EQ(order.size(), 3u);
        EXPECT_NE(order.front(), 0u);
        EXPECT_EQ(order[1], 0u) << "the others follow in listed order";
    }
    // Nothing with a weight is eligible: listed order.
    EXPECT_EQ(order_of(s, state, eligibility({true, false, false})), order_t{0});
}

TEST(loadbalance, concurrent_picks_share_exactly_by_weight) {
    pool_state state(2);
    auto s = settings(mode::loadbalance);
    s.weights = {1, 1};
    std::array<std::array<int, 2>, 2> count{};
    auto const targets = all_eligible(2);
    auto work = [&](std::size_t t) {
        for (int i = 0; i < 5000; ++i) ++count[t][order_of(s, state, targets).front()];
    };
    std::thread a(work, 0), b(work, 1);
    a.join();
    b.join();
    EXPECT_EQ(count[0][0] + count[1][0], 5000);
    EXPECT_EQ(count[0][1] + count[1][1], 5000);
}

// ---- conditional -----------------------------------------------------------------------------------

TEST(condition, matches_each_kind_of_condition) {
    std::vector<std::pair<std::string, std::string>> const headers{{"x-tier", "gold"}, {"x-team", "search"}};
    route_input in;
    in.model = "gpt-4o-mini";
    in.has_tools = true;
    in.input_tokens = 1000;
    in.headers = &headers;
    in.minute_of_day = 23 * 60;  // 23:00

    using k = condition::kind;
    auto model = [](std::string v) { return condition{.what = k::model, .value = std::move(v)}; };
    auto prefix = [](std::string v) { return condition{.what = k::model_prefix, .value = std::move(v)}; };
    auto tools = [](bool f) { return condition{.what = k::has_tools, .flag = f}; };
    auto tokens = [](std::int64_t n) { return condition{.what = k::input_tokens_gt, .tokens = n}; };
    auto header = [](std::string name, std::string v) {
        return condition{.what = k::header, .value = std::move(v), .header = std::move(name)};
    };
    auto hours = [](int from, int to) {
        return condition{.what = k::time_of_day, .from_minute = from, .to_minute = to};
    };
    struct row {
        char const* what;
        condition c;
        bool expected;
    };
    row const rows[] = {
        {"model equal", model("gpt-4o-mini"), true},
        {"model differs", model("gpt-4o"), false},
        {"prefix", prefix("gpt-4o"), true},
        {"empty prefix", prefix(""), true},
        {"prefix differs", prefix("claude"), false},
        {"prefix longer than model", prefix("gpt-4o-mini-2024"), false},
        {"has tools", tools(true), true},
        {"wants no tools", tools(false), false},
        {"tokens above bound", tokens(999), true},
        {"tokens at bound", tokens(1000), false},
        {"header equal", header("x-tier", "gold"), true},
        {"second header", header("x-team", "search"), true},
        {"header value differs", header("x-tier", "silver"), false},
        {"header value is case-sensitive", header("x-tier", "Gold"), false},
        {"header absent", header("x-region", "eu"), false},
        {"inside 22:00-06:00", hours(22 * 60, 6 * 60), true},
        {"inside 09:00-23:30", hours(9 * 60, 23 * 60 + 30), true},
        {"end excluded", hours(9 * 60, 23 * 60), false},
        {"start included", hours(23 * 60, 23 * 60 + 1), true},
        {"outside 06:00-22:00", hours(6 * 60, 22 * 60), false},
        {"from == to never", hours(23 * 60, 23 * 60), false},
    };
    for (auto const& r : rows) EXPECT_EQ(matches(r.c, in), r.expected) << r.what;

    // Wrap-around on both sides of midnight.
    auto night = hours(22 * 60, 6 * 60);
    for (auto [minute, expected] : {std::pair{0, true}, {359, true}, {360, false}, {1319, false}, {1320, true}}) {
        in.minute_of_day = minute;
        EXPECT_EQ(matches(night, in), expected) << minute;
    }
    in.headers = nullptr;
    EXPECT_FALSE(matches(header("x-tier", "gold"), in)) << "no headers at all";
}

TEST(conditional, the_first_matching_condition_with_an_eligible_target_picks) {
    pool_state state(3);
    auto s = settings(mode::conditional);
    s.conditions = {
        condition{.what = condition::kind::has_tools, .target = 2},
        condition{.what = condition::kind::model_prefix, .value = "gpt-4o", .target = 1},
    };

    route_input in;
    in.model = "gpt-4o-mini";
    in.has_tools = true;
    EXPECT_EQ(order_of(s, state, all_eligible(3), in), (order_t{2, 0, 1})) << "first match wins";
    EXPECT_EQ(order_of(s, state, eligibility({true, true, false}), in), (order_t{1, 0})) << "its target is down";
    in.has_tools = false;
    EXPECT_EQ(order_of(s, state, all_eligible(3), in), (order_t{1, 0, 2}));
    in.model = "claude";
    EXPECT_EQ(order_of(s, state, all_eligible(3), in), (order_t{0, 1, 2})) << "no match: the first target";
    EXPECT_EQ(order_of(s, state, eligibility({false, true, true}), in), (order_t{1, 2})) << "first eligible";
    s.conditions[1].target = 7;  // out of range: ignored
    in.model = "gpt-4o";
    EXPECT_EQ(order_of(s, state, all_eligible(3), in), (order_t{0, 1, 2}));
}

// ---- content-based ---------------------------------------------------------------------------------

TEST(content_based, routes_on_a_case_insensitive_regex_and_on_absent_text) {
    pool_state state(3);
    auto s = settings(mode::content_based);
    using k = content_condition::kind;
    s.content_conditions = {
        {.what = k::prompt_regex, .regex = std::make_shared<re2::RE2 const>("(?i)invoice"), .target = 1},
        {.what = k::prompt_not_contains, .value = "```", .target = 2},
    };

    route_input in;
    in.prompt = "Please read this INVOICE for me";
    EXPECT_EQ(order_of(s, state, all_eligible(3), in), (order_t{1, 0, 2}));
    EXPECT_EQ(order_of(s, state, eligibility({true, false, true}), in), (order_t{2, 0}));
    in.prompt = "plain question";
    EXPECT_EQ(order_of(s, state, all_eligible(3), in), (order_t{2, 0, 1}));
    in.prompt = "fix this: ``` int x; ```";
    EXPECT_EQ(order_of(s, state, all_eligible(3), in), (order_t{0, 1, 2})) << "no match: the first target";
}

TEST(content_condition, matches_substrings_case_sensitively_and_regexes_partially) {
    content_condition c;
    c.what = content_condition::kind::prompt_contains;
    c.value = "refund";
    EXPECT_TRUE(matches(c, "I want a refund now"));
    EXPECT_FALSE(matches(c, "I want a Refund now"));
    c.what = content_condition::kind::prompt_not_contains;
    EXPECT_FALSE(matches(c, "refund"));
    EXPECT_TRUE(matches(c, ""));
    c.what = content_condition::kind::prompt_regex;
    EXPECT_FALSE(matches(c, "anything")) << "no compiled regex never matches";
    c.regex = std::make_shared<re2::RE2 const>(R"(order #\d+)");
    EXPECT_TRUE(matches(c, "about order #1234, please"));
    EXPECT_FALSE(matches(c, "about order #x"));
}

// ---- least-latency ---------------------------------------------------------------------------------

namespace {

void record(pool_state& state, std::size_t target, std::initializer_list<int> ms, clock::time_point at = t0) {
    for (int v : ms) state.record_latency(target, milliseconds{v}, at);
}

}  // namespace

TEST(pool_state, p50_is_the_lower_median_of_the_fresh_samples) {
    pool_state state(2, 3);
    EXPECT_EQ(state.p50(0, 1min, t0), std::nullopt);
    record(state, 0, {30, 10, 20});
    EXPECT_EQ(state.p50(0, 1min, t0), 20ms);
    record(state, 1, {40, 10});
    EXPECT_EQ(state.p50(1, 1min, t0), 10ms) << "even count: the lower middle";
    record(state, 0, {1, 1});  // the ring keeps the newest three: 1, 1, 20
    EXPECT_EQ(state.p50(0, 1min, t0), 1ms);
    state.record_latency(0, 500ms, t0 + 2min);
    // (Time only moves forward: a sample that aged out is dropped for good.)
    EXPECT_EQ(state.p50(0, 1min, t0 + 1min), 1ms) << "exactly the window old still counts";
    EXPECT_EQ(state.p50(0, 1min, t0 + 2min), 500ms) << "samples older than the window are ignored";
    state.record_latency(9, 1ms, t0);  // no such target: ignored
    EXPECT_EQ(state.p50(9, 1min, t0), std::nullopt);
}

TEST(least_latency, converges_on_the_fastest_target_and_orders_the_rest_by_p50) {
    pool_state state(3);
    auto s = settings(mode::least_latency);
    s.explore = 0.05;
    record(state, 0, {200, 210, 190});
    record(state, 1, {50, 60, 40});
    record(state, 2, {100, 90, 110});
    EXPECT_EQ(order_of(s, state, all_eligible(3), {}, 0.5), (order_t{1, 2, 0}));
    EXPECT_EQ(order_of(s, state, all_eligible(3), {}, 0.05), (order_t{1, 2, 0})) << "unit == explore: no exploring";
    EXPECT_EQ(order_of(s, state, eligibility({true, false, true}), {}, 0.5), (order_t{2, 0}));
}

TEST(least_latency, an_unsampled_target_is_explored_first) {
    pool_state state(4);
    auto s = settings(mode::least_latency);
    record(state, 0, {200});
    record(state, 2, {50});
    EXPECT_EQ(order_of(s, state, all_eligible(4), {}, 0.5), (order_t{1, 3, 2, 0}));
    EXPECT_EQ(order_of(s, state, eligibility({true, false, true, true}), {}, 0.5), (order_t{3, 2, 0}));
}

TEST(least_latency, a_unit_below_explore_picks_uniformly_among_the_slower_targets) {
    pool_state state(3);
    auto s = settings(mode::least_latency);
    s.explore = 0.05;
    record(state, 0, {200});
    record(state, 1, {50});
    record(state, 2, {100});
    // The others in listed order are 0 and 2; unit / explore chooses between them.
    EXPECT_EQ(order_of(s, state, all_eligible(3), {}, 0.0), (order_t{0, 1, 2}));
    EXPECT_EQ(order_of(s, state, all_eligible(3), {}, 0.02), (order_t{0, 1, 2}));
    EXPECT_EQ(order_of(s, state, all_eligible(3), {}, 0.03), (order_t{2, 1, 0}));
    EXPECT_EQ(order_of(s, state, all_eligible(3), {}, 0.0499), (order_t{2, 1, 0}));
    s.explore = 0;
    EXPECT_EQ(order_of(s, state, all_eligible(3), {}, 0.0), (order_t{1, 2, 0})) << "exploration off";
    s.explore = 0.05;
    EXPECT_EQ(order_of(s, state, eligibility({false, true, false}), {}, 0.0), order_t{1}) << "nothing to explore";
}

TEST(least_latency, a_target_whose_samples_aged_out_is_explored_again) {
    pool_state state(2);
    auto s = settings(mode::least_latency);
    s.latency_window = 5min;
    record(state, 0, {900, 950}, t0);  // slow, then its breaker opened and nothing was measured
    record(state, 1, {100}, t0);
    EXPECT_EQ(order_of(s, state, all_eligible(2), {}, 0.5, t0 + 1min), (order_t{1, 0}));
    record(state, 1, {100}, t0 + 6min);
    EXPECT_EQ(order_of(s, state, all_eligible(2), {}, 0.5, t0 + 6min), (order_t{0, 1})) << "re-explored";
    record(state, 0, {20}, t0 + 6min);
    EXPECT_EQ(order_of(s, state, all_eligible(2), {}, 0.5, t0 + 6min), (order_t{0, 1})) << "and now the fastest";
}

// ---- cost-optimized --------------------------------------------------------------------------------

TEST(cost_optimized, ranks_fitting_targets_by_price_with_unpriced_ones_last) {
    pool_state state(7);
    auto s = settings(mode::cost_optimized);
    auto targets = all_eligible(6);
    targets[0].input_price = 3.0;
    targets[1].input_price = std::nullopt;
    targets[2].input_price = 1.0;
    targets[3].input_price = 0.5;
    targets[3].context_window = 4000;  // too small for this request
    targets[4].input_price = 1.0;      // ties keep listed order
    targets[4].context_window = 8000;
    targets[5].input_price = 0.1;
    targets[5].eligible = false;
    targets.push_back({.input_price = std::nan("")});  // treated as unpriced
    route_input in;
    in.input_tokens = 6000;
    EXPECT_EQ(order_of(s, state, targets, in), (order_t{2, 4, 0, 1, 6}));
    in.input_tokens = 4000;
    EXPECT_EQ(order_of(s, state, targets, in), (order_t{3, 2, 4, 0, 1, 6})) << "a window equal to the estimate fits";
}

TEST(cost_optimized, falls_back_to_every_eligible_target_when_none_fits) {
    pool_state state(3);
    auto s = settings(mode::cost_optimized);
    auto targets = all_eligible(3);
    targets[0].input_price = 2.0;
    targets[1].input_price = 1.0;
    targets[2].input_price = 0.5;
    targets[2].eligible = false;
    for (auto& t : targets) t.context_window = 1000;
    route_input in;
    in.input_tokens = 50'000;
    EXPECT_EQ(order_of(s, state, targets, in), (order_t{1, 0}));
}

// ---- ab-test ---------------------------------------------------------------------------------------

namespace {

strategy_settings ninety_ten() {
    auto s = settings(mode::ab_test);
    s.variants = {{"control", 0, 90}, {"treatment", 1, 10}};
    return s;
}

}  // namespace

TEST(ab_test, the_same_key_always_gets_the_same_variant) {
    pool_state state(2);
    auto s = ninety_ten();
    for (std::string key : {"alice", "bob", "sk-123", "u"}) {
        route_input in;
        in.sticky_key = key;
        auto const first = choose(s, state, in, all_eligible(2), t0, 0.0);
        for (int i = 0; i < 100; ++i) {
            auto again = choose(s, state, in, all_eligible(2), t0, i / 100.0);
            ASSERT_EQ(again.variant, first.variant) << key;
            ASSERT_EQ(again.order, first.order) << key;
        }
    }
}

TEST(ab_test, ten_thousand_keys_split_ninety_ten_within_two_percent) {
    pool_state state(2);
    auto s = ninety_ten();
    int treatment = 0;
    for (int i = 0; i < 10'000; ++i) {
        std::string key = "user-" + std::to_string(i);
        route_input in;
        in.sticky_key = key;
        auto c = choose(s, state, in, all_eligible(2), t0, 0.0);
        if (c.variant == "treatment") {
            ++treatment;
            EXPECT_EQ(c.order, (order_t{1, 0}));
        } else {
            EXPECT_EQ(c.variant, "control");
            EXPECT_EQ(c.order, (order_t{0, 1}));
        }
    }
    EXPECT_NEAR(treatment, 1000, 200) << "2% of 10,000 keys";
}

TEST(ab_test, without_a_key_the_unit_picks_the_variant) {
    pool_state state(2);
    auto s = ninety_ten();
    EXPECT_EQ(choose(s, state, {}, all_eligible(2), t0, 0.0).variant, "control");
    EXPECT_EQ(choose(s, state, {}, all_eligible(2), t0, 0.8999).variant, "control");
    EXPECT_EQ(choose(s, state, {}, all_eligible(2), t0, 0.9).variant, "treatment");
    EXPECT_EQ(choose(s, state, {}, all_eligible(2), t0, 0.9999).variant, "treatment");
}

TEST(ab_test, a_variant_whose_target_is_down_keeps_its_label_and_falls_back) {
    pool_state state(2);
    auto s = ninety_ten();
    auto c = choose(s, state, {}, eligibility({true, false}), t0, 0.95);
    EXPECT_EQ(c.variant, "treatment");
    EXPECT_EQ(c.order, order_t{0});
    auto none = settings(mode::ab_test);
    EXPECT_EQ(choose(none, state, {}, all_eligible(2), t0, 0.5).order, (order_t{0, 1})) << "no variants";
}

// ---- helpers ---------------------------------------------------------------------------------------

TEST(stable_hash, is_fnv1a_64) {
    EXPECT_EQ(stable_hash(""), 0xcbf29ce484222325ull);
    EXPECT_EQ(stable_hash("a"), 0xaf63dc4c8601ec8cull);
    EXPECT_EQ(stable_hash("foobar"), 0x85944171f73967e8ull);
}

TEST(estimate_tokens, rounds_four_bytes_per_token_up) {
    std::pair<std::size_t, std::int64_t> const rows[] = {{0, 0}, {1, 1}, {4, 1}, {5, 2}, {400, 100}};
    for (auto [bytes, tokens] : rows) EXPECT_EQ(estimate_tokens(bytes), tokens) << bytes;
    EXPECT_GT(estimate_tokens(static_cast<std::size_t>(-1)), 0) << "no overflow";
}
