// The structured-concurrency pieces: the task group (members on other threads, graceful then
// terminal, bounded waits), alarms on a manual clock, scoped deadlines and cross-thread cancel
// bridges. Time-dependent cases run on the manual clock; nothing here sleeps. Assertions run
// outside coroutine bodies (GCC 12, CONTRIBUTING.md).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <atomic>
#include <future>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/asio_util.hpp"
#include "common/cancel_scope.hpp"
#include "common/task_group.hpp"
#include "fakes/manual_clock.hpp"

using namespace toolgate;
using namespace std::chrono_literals;
using toolgate::fakes::manual_clock;
using toolgate::fakes::run_simulated;

namespace {

// A member that waits on a timer "forever" (until cancelled) and records how it ended.
asio::awaitable<void> wait_forever(std::atomic<int>& aborted) {
    asio::steady_timer t(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
    auto [ec] = co_await t.async_wait(nothrow_awaitable);
    if (ec == asio::error::operation_aborted) ++aborted;
}

asio::awaitable<void> ends_after(alarm_timer& a, int& ended) {
    co_await a.wait();
    ++ended;
}

asio::awaitable<void> throws_now() {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    throw std::runtime_error("boom");
}

// A second thread with its own io_context, stopped and joined on destruction.
struct other_thread {
    asio::io_context ioc{1};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard{ioc.get_executor()};
    std::thread thread{[this] { ioc.run(); }};
    ~other_thread() {
        guard.reset();
        ioc.stop();
        thread.join();
    }
};

}  // namespace

TEST(alarm_timer, on_a_manual_clock_fires_only_when_time_reaches_it) {
    asio::io_context ioc;
    manual_clock clk;
    alarm_timer a(clk, ioc.get_executor());
    a.expires_after(100ms);
    std::optional<boost::system::error_code> got;
    a.async_wait([&](boost::system::error_code ec) { got = ec; });
    ioc.poll();
    EXPECT_FALSE(got) << "no time has passed";
    clk.advance(99ms);
    ioc.poll();
    EXPECT_FALSE(got);
    clk.advance(1ms);
    ioc.poll();
    ASSERT_TRUE(got);
    EXPECT_FALSE(*got) << "fired, not cancelled";

    got.reset();
    a.expires_after(50ms);
    a.async_wait([&](boost::system::error_code ec) { got = ec; });
    a.cancel();
    ioc.restart();  // it ran out of work after the first wait
    ioc.poll();
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, asio::error::operation_aborted);
    EXPECT_FALSE(clk.next()) << "a cancelled alarm_timer is not waited for";
}

TEST(alarm_timer, a_wait_on_an_expiry_already_passed_completes_at_once) {
    asio::io_context ioc;
    manual_clock clk;
    alarm_timer a(clk, ioc.get_executor());
    a.expires_at(clk.now());
    int ended = 0;
    asio::co_spawn(ioc, ends_after(a, ended), asio::detached);
    ioc.poll();
    EXPECT_EQ(ended, 1);
}

TEST(task_group, waits_for_its_members_and_returns_true_when_they_are_done) {
    asio::io_context ioc;
    manual_clock clk;
    task_group g;
    alarm_timer a1(clk, ioc.get_executor()), a2(clk, ioc.get_executor());
    a1.expires_after(10ms);
    a2.expires_after(30ms);
    int ended = 0;
    g.spawn(ioc.get_executor(), ends_after(a1, ended));
    g.spawn(ioc.get_executor(), ends_after(a2, ended));
    EXPECT_EQ(g.size(), 2u);
    std::optional<bool> drained;
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> { drained = co_await g.wait_for(1s, clk); }, asio::detached);
    EXPECT_TRUE(run_simulated(ioc, clk, [&] { return drained.has_value(); }));
    EXPECT_TRUE(drained.value_or(false));
    EXPECT_EQ(ended, 2);
    EXPECT_EQ(clk.elapsed(), 30ms) << "woken when the last member ended, not at the bound";
    EXPECT_EQ(g.size(), 0u);
}

TEST(task_group, a_bounded_wait_gives_up_then_terminal_cancellation_ends_the_members) {
    asio::io_context ioc;
    manual_clock clk;
    task_group g;
    std::atomic<int> aborted = 0;
    g.spawn(ioc.get_executor(), wait_forever(aborted));
    g.spawn(ioc.get_executor(), wait_forever(aborted));
    std::optional<bool> graceful, forced;
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
        graceful = co_await g.wait_for(5s, clk);
        g.emit(asio::cancellation_type::terminal);
        forced = co_await g.wait_for(5s, clk);
    }, asio::detached);
    EXPECT_TRUE(run_simulated(ioc, clk, [&] { return forced.has_value(); }));
    EXPECT_FALSE(graceful.value_or(true)) << "the members ignore the graceful wait";
    EXPECT_TRUE(forced.value_or(false));
    EXPECT_EQ(aborted.load(), 2);
    EXPECT_EQ(clk.elapsed(), 5s) << "the first wait took its whole bound, the second none";
}

TEST(task_group, total_cancellation_does_not_reach_pending_operations) {
    asio::io_context ioc;
    manual_clock clk;
    task_group g;
    std::atomic<int> aborted = 0;
    g.spawn(ioc.get_executor(), wait_forever(aborted));
    g.emit(asio::cancellation_type::total);
    ioc.poll();
    EXPECT_EQ(aborted.load(), 0) << "Asio's default filter passes only terminal cancellation";
    g.emit(asio::cancellation_type::terminal);
    ioc.poll();
    EXPECT_EQ(aborted.load(), 1);
}

TEST(task_group, members_on_another_thread_are_signalled_and_awaited_from_this_one) {
    std::atomic<int> aborted = 0;
    std::optional<bool> ended;
    {
        other_thread worker;
        task_group g;
        for (int i = 0; i < 3; ++i) g.spawn(worker.ioc.get_executor(), wait_forever(aborted));
        asio::io_context ioc;
        asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
            g.emit(asio::cancellation_type::terminal);
            ended = co_await g.wait_for(10s);  // real time: woken by the members, long before the bound
        }, asio::detached);
        ioc.run();
    }
    EXPECT_TRUE(ended.value_or(false));
    EXPECT_EQ(aborted.load(), 3);
}

TEST(task_group, an_exception_ends_only_its_member_and_reaches_its_exit_handler) {
    asio::io_context ioc;
    task_group g;
    std::string what;
    g.spawn(ioc.get_executor(), throws_now(), [&](std::exception_ptr e) {
        try {
            if (e) std::rethrow_exception(e);
        } catch (std::exception const& ex) {
            what = ex.what();
        }
    });
    ioc.run();
    EXPECT_EQ(what, "boom");
    EXPECT_EQ(g.size(), 0u);
}

TEST(scoped_deadline, fires_at_its_deadline_as_a_timeout_and_follows_its_parent) {
    asio::io_context ioc;
    manual_clock clk;
    cancel_token parent;
    {
        scoped_deadline d(parent, clk.now() + 50ms, ioc.get_executor(), clk);
        clk.advance(49ms);
        ioc.poll();
        EXPECT_FALSE(d.token().cancelled());
        clk.advance(1ms);
        ioc.poll();
        EXPECT_TRUE(d.token().cancelled());
        EXPECT_EQ(d.token().reason(), cancel_reason::timeout);
        EXPECT_TRUE(d.expired());
        EXPECT_FALSE(parent.cancelled()) << "a child never cancels its parent";
    }
    {
        scoped_deadline d(parent, clk.now() + 50ms, ioc.get_executor(), clk);
        parent.cancel(cancel_reason::client_gone);
        EXPECT_TRUE(d.token().cancelled());
        EXPECT_EQ(d.token().reason(), cancel_reason::client_gone);
        EXPECT_FALSE(d.expired()) << "cancelled by the parent, not by its deadline";
    }
}

TEST(scoped_deadline, a_deadline_already_due_when_it_is_destroyed_touches_nothing) {
    // The alarm_timer's completion is queued (the deadline passed) but the scope ends before it runs:
    // the callback must not reach the destroyed token (ASan watches).
    asio::io_context ioc;
    manual_clock clk;
    cancel_token parent;
    {
        scoped_deadline d(parent, clk.now() + 10ms, ioc.get_executor(), clk);
        clk.advance(10ms);  // fired: its completion now waits in the queue
    }
    EXPECT_GT(ioc.poll(), 0u);
    EXPECT_FALSE(parent.cancelled());
}

TEST(bridge_cancel, posts_the_cancel_to_the_remote_thread_with_its_reason) {
    other_thread remote;
    cancel_token local;
    auto bridge = bridge_cancel(&local, remote.ioc.get_executor());
    // Subscribed on the remote thread, as the MCP thread does with the token it is given.
    std::promise<void> subscribed;
    std::optional<cancel_token::subscription> held;
    std::promise<std::pair<std::thread::id, cancel_reason>> seen;
    auto fut = seen.get_future();
    asio::post(remote.ioc, [&] {
        held.emplace(bridge.remote->subscribe([&] { seen.set_value({std::this_thread::get_id(), bridge.remote->reason()}); }));
        subscribed.set_value();
    });
    subscribed.get_future().wait();
    local.cancel(cancel_reason::timeout);
    auto [where, why] = fut.get();
    EXPECT_EQ(where, remote.thread.get_id());
    EXPECT_EQ(why, cancel_reason::timeout);
}

TEST(bridge_cancel, a_null_source_never_fires) {
    asio::io_context ioc;
    auto bridge = bridge_cancel(nullptr, ioc.get_executor());
    ioc.poll();
    EXPECT_FALSE(bridge.remote->cancelled());
}
