#include "common/resilience.hpp"
#include "common/http_client.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

using namespace toolgate::resilience;
using namespace std::chrono_literals;
using decision = circuit_breaker::decision;

namespace {

// A fixed, arbitrary origin: the breaker and the budget only ever compare times they were given.
clock::time_point const t0 = clock::time_point{} + 1h;

// Drives a closed breaker open with `n` failed calls at `now`.
void fail_times(circuit_breaker& b, unsigned n, clock::time_point now) {
    for (unsigned i = 0; i < n; ++i) b.record(b.admit(now), true, now);
}

}  // namespace

// ---- circuit breaker -------------------------------------------------------------------------------

TEST(breaker_state, names_are_the_documented_words) {
    EXPECT_EQ(to_string(breaker_state::closed), "closed");
    EXPECT_EQ(to_string(breaker_state::open), "open");
    EXPECT_EQ(to_string(breaker_state::half_open), "half_open");
}

TEST(circuit_breaker, opens_after_the_threshold_of_consecutive_failures_and_reports_the_change_once) {
    circuit_breaker b(3, 1000ms);
    for (int i = 0; i < 2; ++i) {
        auto d = b.admit(t0);
        ASSERT_EQ(d, decision::allow);
        EXPECT_FALSE(b.record(d, true, t0));
    }
    EXPECT_EQ(b.state(t0), breaker_state::closed);
    EXPECT_TRUE(b.record(b.admit(t0), true, t0));
    EXPECT_TRUE(b.is_open());
    EXPECT_EQ(b.failures(), 3u);
    EXPECT_EQ(b.open_until(), t0 + 1000ms);
    EXPECT_EQ(b.state(t0), breaker_state::open);
}

TEST(circuit_breaker, a_success_resets_the_consecutive_failure_count) {
    circuit_breaker b(2, 1000ms);
    fail_times(b, 1, t0);
    EXPECT_FALSE(b.record(b.admit(t0), false, t0));
    EXPECT_EQ(b.failures(), 0u);
    fail_times(b, 1, t0);
    EXPECT_FALSE(b.is_open());
    fail_times(b, 1, t0);
    EXPECT_TRUE(b.is_open());
}

TEST(circuit_breaker, rejects_every_call_until_open_for_has_passed) {
    circuit_breaker b(1, 1000ms);
    fail_times(b, 1, t0);
    for (auto at : {t0, t0 + 1ms, t0 + 999ms}) {
        EXPECT_EQ(b.admit(at), decision::reject);
        EXPECT_FALSE(b.would_admit(at));
        EXPECT_EQ(b.state(at), breaker_state::open);
    }
    EXPECT_EQ(b.state(t0 + 1000ms), breaker_state::half_open);
}

TEST(circuit_breaker, half_open_lets_exactly_one_probe_through_at_a_time) {
    circuit_breaker b(1, 1000ms);
    fail_times(b, 1, t0);
    auto probe = b.admit(t0 + 1000ms);
    EXPECT_EQ(probe, decision::trial);
    EXPECT_EQ(b.admit(t0 + 1001ms), decision::reject);
    EXPECT_EQ(b.admit(t0 + 1h), decision::reject) << "however long the probe takes";
    EXPECT_FALSE(b.would_admit(t0 + 1001ms));
    EXPECT_EQ(b.state(t0 + 1001ms), breaker_state::half_open);
    EXPECT_TRUE(b.record(probe, false, t0 + 1002ms));
    EXPECT_EQ(b.state(t0 + 1002ms), breaker_state::closed);
    EXPECT_EQ(b.open_until(), clock::time_point{});
    EXPECT_EQ(b.failures(), 0u);
    EXPECT_EQ(b.admit(t0 + 1002ms), decision::allow);
}

TEST(circuit_breaker, with_success_threshold_two_one_good_probe_is_not_enough) {
    circuit_breaker b(1, 1000ms, 2);
    fail_times(b, 1, t0);
    auto first = b.admit(t0 + 1s);
    ASSERT_EQ(first, decision::trial);
    EXPECT_FALSE(b.record(first, false, t0 + 1s));
    EXPECT_TRUE(b.is_open());
    EXPECT_EQ(b.state(t0 + 1s), breaker_state::half_open);
    auto second = b.admit(t0 + 1s);
    ASSERT_EQ(second, decision::trial) << "the next probe is admitted at once";
    EXPECT_TRUE(b.record(second, false, t0 + 1s));
    EXPECT_EQ(b.state(t0 + 1s), breaker_state::closed);
}

TEST(circuit_breaker, a_failed_probe_reopens_it_for_open_for_and_forgets_earlier_good_probes) {
    circuit_breaker b(1, 1000ms, 2);
    fail_times(b, 1, t0);
    auto good = b.admit(t0 + 1s);
    b.record(good, false, t0 + 1s);
    auto bad = b.admit(t0 + 1500ms);
    EXPECT_FALSE(b.record(bad, true, t0 + 1500ms)) << "open to open is no change";
    EXPECT_EQ(b.open_until(), t0 + 2500ms);
    EXPECT_EQ(b.admit(t0 + 2499ms), decision::reject);
    // Two fresh successes are needed again: the one before the failure no longer counts.
    auto p1 = b.admit(t0 + 2500ms);
    ASSERT_EQ(p1, decision::trial);
    EXPECT_FALSE(b.record(p1, false, t0 + 2500ms));
    auto p2 = b.admit(t0 + 2500ms);
    ASSERT_EQ(p2, decision::trial);
    EXPECT_TRUE(b.record(p2, false, t0 + 2500ms));
}

TEST(circuit_breaker, abandoning_a_probe_frees_the_slot_without_counting_it) {
    circuit_breaker b(1, 10ms, 2);
    fail_times(b, 1, t0);
    auto probe = b.admit(t0 + 10ms);
    ASSERT_EQ(probe, decision::trial);
    b.abandon(probe);
    EXPECT_EQ(b.state(t0 + 10ms), breaker_state::half_open);
    auto again = b.admit(t0 + 10ms);
    EXPECT_EQ(again, decision::trial);
    EXPECT_FALSE(b.record(again, false, t0 + 10ms)) << "the abandoned probe was not a success";
    b.abandon(decision::allow);  // a no-op for calls that did not hold the slot
    EXPECT_EQ(b.admit(t0 + 10ms), decision::trial);
}

TEST(circuit_breaker, would_admit_answers_like_admit_without_taking_the_probe_slot) {
    circuit_breaker b(1, 10ms);
    EXPECT_TRUE(b.would_admit(t0));
    fail_times(b, 1, t0);
    EXPECT_FALSE(b.would_admit(t0 + 9ms));
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.would_admit(t0 + 10ms));
    EXPECT_EQ(b.admit(t0 + 10ms), decision::trial);
    EXPECT_FALSE(b.would_admit(t0 + 10ms));
}

TEST(circuit_breaker, late_outcomes_of_calls_admitted_before_it_opened_change_nothing) {
    circuit_breaker b(2, 1000ms);
    auto early1 = b.admit(t0), early2 = b.admit(t0), early3 = b.admit(t0);
    b.record(early1, true, t0);
    EXPECT_TRUE(b.record(early2, true, t0));
    EXPECT_FALSE(b.record(early3, false, t0 + 10ms)) << "a stale success must not close it";
    EXPECT_TRUE(b.is_open());
    auto straggler = decision::allow;
    EXPECT_FALSE(b.record(straggler, true, t0 + 500ms));
    EXPECT_EQ(b.open_until(), t0 + 1000ms) << "a stale failure must not extend it";
}

TEST(circuit_breaker, recording_a_rejected_call_is_a_no_op) {
    circuit_breaker b(1, 1000ms);
    EXPECT_FALSE(b.record(decision::reject, true, t0));
    EXPECT_FALSE(b.is_open());
    EXPECT_EQ(b.failures(), 0u);
}

TEST(circuit_breaker, opens_even_when_the_deadline_would_land_on_the_clock_epoch) {
    circuit_breaker b(1, 0ms);
    fail_times(b, 1, clock::time_point{});
    EXPECT_TRUE(b.is_open()) << "time_point{} means closed, so the deadline must avoid it";
    EXPECT_EQ(b.admit(clock::time_point{} + 1ms), decision::trial);
}

TEST(circuit_breaker, zero_thresholds_behave_as_one) {
    circuit_breaker b(0, 10ms, 0);
    fail_times(b, 1, t0);
    EXPECT_TRUE(b.is_open());
    EXPECT_TRUE(b.record(b.admit(t0 + 10ms), false, t0 + 10ms));
}

// ---- backoff ---------------------------------------------------------------------------------------

TEST(backoff, doubles_up_to_the_cap_and_starts_over_after_reset) {
    backoff d(500ms, 3000ms);
    for (auto expected : {500, 1000, 2000, 3000, 3000}) EXPECT_EQ(d.next().count(), expected);
    d.reset();
    EXPECT_EQ(d.next(), 500ms);
}

// ---- full jitter -----------------------------------------------------------------------------------

TEST(full_jitter, maps_the_unit_onto_whole_milliseconds_below_the_doubled_base_or_the_cap) {
    struct row {
        std::int64_t base, cap;
        unsigned retry;
        double unit;
        std::int64_t expected;
    };
    constexpr auto big = std::numeric_limits<std::int64_t>::max();
    row const rows[] = {
        {100, 10'000, 0, 0.0, 0},
        {100, 10'000, 0, 0.5, 50},          // floor(0.5 * 101)
        {100, 10'000, 0, 0.999999, 100},    // the ceiling itself is reachable
        {100, 10'000, 3, 0.5, 400},         // ceiling 800
        {100, 10'000, 3, 0.999999, 800},
        {100, 10'000, 7, 0.999999, 10'000}, // 12,800 capped
        {100, 10'000, 7, 0.5, 5000},
        {100, 10'000, 63, 0.999999, 10'000},
        {100, 10'000, 4'000'000'000u, 0.999999, 10'000},  // no overflow, however many retries
        {1, big, 62, 0.0, 0},
        {big / 2, big, 1, 0.0, 0},
        {100, 10'000, 3, 1.0, 800},         // out of contract: still within bounds
        {100, 10'000, 3, -0.5, 0},
        {0, 10'000, 3, 0.5, 0},
        {100, 0, 3, 0.5, 0},
        {100, -5, 3, 0.5, 0},
    };
    for (auto const& r : rows) {
        EXPECT_EQ(full_jitter(milliseconds{r.base}, milliseconds{r.cap}, r.retry, r.unit).count(), r.expected)
            << "base " << r.base << " cap " << r.cap << " retry " << r.retry << " unit " << r.unit;
    }
}

TEST(full_jitter, copes_with_ceilings_near_the_largest_duration) {
    constexpr auto big = std::numeric_limits<std::int64_t>::max();
    auto const top = std::nextafter(1.0, 0.0);
    auto doubled = full_jitter(milliseconds{big / 2}, milliseconds::max(), 1, top).count();
    EXPECT_LE(doubled, big - 1);
    EXPECT_GT(doubled, big / 2);
    EXPECT_LE(full_jitter(milliseconds{big / 2}, milliseconds::max(), 2, top), milliseconds::max());
    EXPECT_EQ(full_jitter(milliseconds{big / 2}, milliseconds::max(), 2, 1.0), milliseconds::max());
}

TEST(full_jitter, stays_within_zero_and_the_ceiling_and_grows_with_the_unit) {
    for (unsigned retry : {0u, 1u, 5u, 10u, 31u, 62u, 63u, 64u, 1000u}) {
        std::int64_t const ceiling = retry < 20 ? std::min<std::int64_t>(30'000, 50 << retry) : 30'000;
        std::int64_t previous = 0;
        for (int i = 0; i < 1000; ++i) {
            double unit = i / 1000.0;
            auto got = full_jitter(50ms, 30s, retry, unit).count();
            ASSERT_GE(got, previous) << "retry " << retry << " unit " << unit;
            ASSERT_LE(got, ceiling) << "retry " << retry << " unit " << unit;
            previous = got;
        }
        EXPECT_EQ(full_jitter(50ms, 30s, retry, 0.0).count(), 0);
        EXPECT_EQ(full_jitter(50ms, 30s, retry, std::nextafter(1.0, 0.0)).count(), ceiling);
    }
}

// ---- retry budget ----------------------------------------------------------------------------------

TEST(retry_budget, a_quiet_target_may_still_be_retried_up_to_the_floor) {
    retry_budget b(0.2, 3);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.try_retry(t0)) << i;
    EXPECT_FALSE(b.try_retry(t0));
    EXPECT_EQ(b.retries_in_window(t0), 3u) << "a refused retry is not counted";
}

TEST(retry_budget, twenty_percent_of_a_hundred_requests_allows_twenty_retries_not_twenty_one) {
    retry_budget b(0.2, 3);
    for (int i = 0; i < 100; ++i) b.record_request(t0 + std::chrono::milliseconds(i * 90));  // over 9 s
    auto const now = t0 + 9s;
    EXPECT_EQ(b.requests_in_window(now), 100u);
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(b.try_retry(now)) << i;
    EXPECT_FALSE(b.try_retry(now));
    EXPECT_EQ(b.retries_in_window(now), 20u);
}

TEST(retry_budget, the_share_is_rounded_down) {
    retry_budget b(0.2, 0);
    for (int i = 0; i < 24; ++i) b.record_request(t0);  // 4.8 retries
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(b.try_retry(t0));
    EXPECT_FALSE(b.try_retry(t0));
}

TEST(retry_budget, buckets_older_than_ten_seconds_are_forgotten) {
    retry_budget b(0.2, 3);
    for (int i = 0; i < 100; ++i) b.record_request(t0);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(b.try_retry(t0));
    EXPECT_EQ(b.requests_in_window(t0 + 9999ms), 100u) << "still the tenth second";
    EXPECT_EQ(b.requests_in_window(t0 + 10s), 0u);
    EXPECT_EQ(b.retries_in_window(t0 + 10s), 0u);
    // The ring slot of t0 is reused ten seconds later, starting from zero.
    b.record_request(t0 + 10s);
    EXPECT_EQ(b.requests_in_window(t0 + 10s), 1u);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.try_retry(t0 + 10s));
    EXPECT_FALSE(b.try_retry(t0 + 10s));
}

TEST(retry_budget, the_window_slides_one_second_at_a_time) {
    retry_budget b(1.0, 0);
    for (int s = 0; s < 10; ++s) b.record_request(t0 + std::chrono::seconds(s));
    EXPECT_EQ(b.requests_in_window(t0 + 9s), 10u);
    EXPECT_EQ(b.requests_in_window(t0 + 10s), 9u);
    EXPECT_EQ(b.requests_in_window(t0 + 15s), 4u);
    EXPECT_EQ(b.requests_in_window(t0 + 19s), 0u);
}

// ---- Retry-After -----------------------------------------------------------------------------------

TEST(parse_retry_after, reads_seconds_milliseconds_and_http_dates) {
    constexpr std::int64_t nov_6_1994 = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
    constexpr std::int64_t jan_1_2026 = 1767225600;
    struct row {
        std::string_view retry_after, retry_after_ms;
        std::int64_t now;
        std::optional<std::int64_t> expected_ms;
    };
    row const rows[] = {
        {"120", "", nov_6_1994, 120'000},
        {"0", "", nov_6_1994, 0},
        {"1.5", "", nov_6_1994, 1500},
        {"0.0001", "", nov_6_1994, 1},  // rounded up: never retry early
        {" 7\t", "", nov_6_1994, 7000},
        {"9999999999", "", nov_6_1994, 9'999'999'999'000},
        {"120", "250", nov_6_1994, 250},  // the millisecond header wins
        {"", "1.2", nov_6_1994, 2},
        {"3", "soon", nov_6_1994, 3000},  // a malformed ms header is ignored
        {"3", "-5", nov_6_1994, 3000},
        {"Sun, 06 Nov 1994 08:50:37 GMT", "", nov_6_1994, 60'000},
        {"Sun, 06 Nov 1994 08:48:37 GMT", "", nov_6_1994, 0},  // in the past
        {"Sun, 06 Nov 1994 08:49:37 GMT", "", nov_6_1994, 0},
        {"Sunday, 06-Nov-94 08:50:37 GMT", "", nov_6_1994, 60'000},  // RFC 850
        {"Sun Nov  6 08:50:37 1994", "", nov_6_1994, 60'000},        // asctime
        {"Tuesday, 01-Jan-30 00:00:00 GMT", "", jan_1_2026, 126'230'400'000},
        {"Friday, 01-Jan-99 00:00:00 GMT", "", jan_1_2026, 0},  // 1999, not 2099
        {"", "", nov_6_1994, std::nullopt},
        {"   ", "", nov_6_1994, std::nullopt},
        {"-1", "", nov_6_1994, std::nullopt},
        {"", "-1", nov_6_1994, std::nullopt},
        {"soon", "", nov_6_1994, std::nullopt},
        {"1e3", "", nov_6_1994, std::nullopt},
        {"1.", "", nov_6_1994, std::nullopt},
        {".5", "", nov_6_1994, std::nullopt},
        {"12 s", "", nov_6_1994, std::nullopt},
        {"12345678901", "", nov_6_1994, std::nullopt},  // more than ten digits
        {"", "12345678901", nov_6_1994, std::nullopt},
        {"Sun, 31 Feb 1994 08:49:37 GMT", "", nov_6_1994, std::nullopt},
        {"Sun, 06 Nov 1994 24:00:00 GMT", "", nov_6_1994, std::nullopt},
        {"Sun, 06 Nov 1994 08:49:37 UTC", "", nov_6_1994, std::nullopt},
        {"Sun, 06 Nov 1994 08:49:37 GMT trailing", "", nov_6_1994, std::nullopt},
        {"Sun, 6 Nov 1994 08:49:37 GMT", "", nov_6_1994, std::nullopt},
        {"Xyz, 06 Nov 1994 08:49:37 GMT", "", nov_6_1994, std::nullopt},
        {"Sun, 06 Foo 1994 08:49:37 GMT", "", nov_6_1994, std::nullopt},
    };
    for (auto const& r : rows) {
        auto got = parse_retry_after(r.retry_after, r.retry_after_ms, r.now);
        std::optional<std::int64_t> got_ms;
        if (got) got_ms = got->count();
        EXPECT_EQ(got_ms, r.expected_ms) << "'" << r.retry_after << "' / '" << r.retry_after_ms << "'";
    }
}

// An endpoint's request target is the URL's path and query as given, whatever form the URL has.
TEST(http_endpoint, target_keeps_path_and_query_of_any_legal_url) {
    struct row {
        char const* url;
        char const* target;
        char const* base_path;
    };
    for (auto const& r : std::vector<row>{{"http://h:1", "/", ""},
                                          {"http://h:1/", "/", ""},
                                          {"http://h:1?x=1", "/?x=1", ""},
                                          {"http://h:1/mcp/?x=1#frag", "/mcp/?x=1", "/mcp"},
                                          {"https://h/v1/mcp", "/v1/mcp", "/v1/mcp"}}) {
        auto ep = toolgate::http::endpoint::parse(r.url);
        ASSERT_TRUE(ep) << r.url;
        EXPECT_EQ(ep->target, r.target) << r.url;
        EXPECT_EQ(ep->base_path, r.base_path) << r.url;
    }
}
