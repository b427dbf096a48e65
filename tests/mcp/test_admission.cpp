// Tool-call admission per server (breaker, concurrency, queue), stepped without I/O: the time is an
// argument and the log of verdicts is the assertion.
#include <gtest/gtest.h>

#include "mcp/admission.hpp"

using namespace toolgate::mcp;
using verdict = call_admission::verdict;
using ending = call_admission::ending;
using namespace std::chrono_literals;

namespace {
auto const t0 = call_admission::clock::time_point{} + std::chrono::hours(1);
}

TEST(call_admission, runs_up_to_the_limit_queues_up_to_the_bound_and_refuses_beyond) {
    circuit_breaker b(5, 1000ms);
    call_admission a(2, 1, b);
    std::vector<verdict> seen;
    for (int i = 0; i < 5; ++i) seen.push_back(a.admit(t0).what);
    std::vector<verdict> want{verdict::run, verdict::run, verdict::queue, verdict::busy, verdict::busy};
    EXPECT_EQ(seen, want);
    EXPECT_EQ(a.in_flight(), 2u);
    EXPECT_EQ(a.queued(), 1u);
}

TEST(call_admission, a_freed_slot_passes_to_the_queued_call_before_a_newcomer) {
    circuit_breaker b(5, 1000ms);
    call_admission a(1, 2, b);
    auto first = a.admit(t0);
    auto waiting = a.admit(t0);
    ASSERT_EQ(waiting.what, verdict::queue);
    EXPECT_TRUE(a.finish(first, ending::success, t0)) << "the slot passes to the queued call";
    EXPECT_EQ(a.in_flight(), 1u);
    EXPECT_EQ(a.queued(), 0u);
    EXPECT_EQ(a.admit(t0).what, verdict::queue) << "a newcomer cannot take the handed-over slot";
    EXPECT_TRUE(a.finish(waiting, ending::success, t0));
    EXPECT_FALSE(a.finish(waiting, ending::success, t0)) << "nobody waits: the slot is free";
    EXPECT_EQ(a.in_flight(), 0u);
    EXPECT_EQ(a.admit(t0).what, verdict::run);
}

TEST(call_admission, a_queued_call_that_gives_up_frees_its_place) {
    circuit_breaker b(5, 1000ms);
    call_admission a(1, 1, b);
    auto first = a.admit(t0);
    auto waiting = a.admit(t0);
    EXPECT_EQ(a.admit(t0).what, verdict::busy);
    a.left_queue(waiting);
    EXPECT_EQ(a.queued(), 0u);
    EXPECT_EQ(a.admit(t0).what, verdict::queue);
    (void)first;
}

TEST(call_admission, failures_open_the_breaker_then_one_trial_closes_it) {
    circuit_breaker b(2, 1000ms);
    call_admission a(4, 4, b);
    bool changed = false;
    auto c1 = a.admit(t0);
    a.finish(c1, ending::failure, t0, &changed);
    EXPECT_FALSE(changed);
    auto c2 = a.admit(t0);
    a.finish(c2, ending::failure, t0, &changed);
    EXPECT_TRUE(changed) << "two failures open it";
    EXPECT_EQ(a.admit(t0 + 999ms).what, verdict::circuit_open);
    EXPECT_EQ(a.in_flight(), 0u) << "a refused call holds no slot";
    auto trial = a.admit(t0 + 1000ms);
    ASSERT_EQ(trial.what, verdict::run);
    EXPECT_EQ(a.admit(t0 + 1000ms).what, verdict::circuit_open) << "one trial at a time";
    a.finish(trial, ending::success, t0 + 1001ms, &changed);
    EXPECT_TRUE(changed) << "the trial closed it";
    EXPECT_EQ(a.admit(t0 + 1002ms).what, verdict::run);
}

TEST(call_admission, an_abandoned_call_says_nothing_about_the_server) {
    circuit_breaker b(1, 1000ms);
    call_admission a(1, 0, b);
    auto c = a.admit(t0);
    bool changed = true;
    a.finish(c, ending::abandoned, t0, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(a.admit(t0).what, verdict::run) << "still closed";
}

TEST(call_admission, a_busy_answer_gives_back_the_breakers_trial) {
    circuit_breaker b(1, 100ms);
    call_admission a(1, 0, b);
    auto c = a.admit(t0);
    a.finish(c, ending::failure, t0);  // open
    auto holder = a.admit(t0 + 100ms);  // the trial
    ASSERT_EQ(holder.what, verdict::run);
    a.finish(holder, ending::success, t0 + 100ms);  // closed again
    auto runner = a.admit(t0 + 200ms);
    EXPECT_EQ(a.admit(t0 + 200ms).what, verdict::busy);
    EXPECT_FALSE(b.is_open());
    (void)runner;
}
