#pragma once
// Time, injectable. Code that decides by deadlines reads a `time_source` and waits on an
// `alarm_timer` instead of calling steady_clock and steady_timer itself, so a test can pass a
// manual clock (tests/fakes/manual_clock.hpp) and move time forward: deadline, keep-alive and
// backoff tests then run without sleeping, the same way on a loaded machine as on an idle one.
// (Not named clock and alarm: those are POSIX functions.)
//
// Thread safety: time_source::steady() may be read from any thread. An alarm_timer belongs to one
// executor, like the asio::steady_timer it wraps: construct, arm, wait on and cancel it there.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <utility>

namespace toolgate {

namespace asio = boost::asio;

class time_source {
public:
    using time_point = std::chrono::steady_clock::time_point;
    using duration = std::chrono::steady_clock::duration;

    // What an alarm_timer on a manual clock shares with it: the clock fires it by setting `fired` and
    // cancelling the timer (which, on a manual clock, is always set to "never").
    struct alarm_state {
        asio::steady_timer timer;
        time_point expiry = time_point::max();
        bool fired = false;
        unsigned waiting = 0;  // waits pending: a manual clock jumps only to alarms somebody waits on
        explicit alarm_state(asio::any_io_executor ex) : timer(std::move(ex), time_point::max()) {}
    };

    virtual ~time_source() = default;
    virtual time_point now() const = 0;
    // True when alarms do not follow real time (the clock fires them through alarm_state).
    virtual bool manual() const noexcept { return false; }
    // A manual clock's hook: `a` was set to expire at a->expiry.
    virtual void armed(std::shared_ptr<alarm_state> const& a) { (void)a; }

    // The real clock (std::chrono::steady_clock).
    static time_source& steady() noexcept;
};

// A timer on a clock. On the steady clock it is a plain steady_timer (no extra allocation); on a
// manual clock it fires when the clock is moved past its expiry.
class alarm_timer {
public:
    alarm_timer(time_source& c, asio::any_io_executor ex);
    alarm_timer(alarm_timer const&) = delete;
    alarm_timer& operator=(alarm_timer const&) = delete;
    ~alarm_timer();

    // Like steady_timer: (re)arming cancels a pending wait.
    void expires_at(time_source::time_point t);
    void expires_after(time_source::duration d) { expires_at(clock_.now() + d); }
    void expires_never() { expires_at(time_source::time_point::max()); }
    // A pending wait completes with operation_aborted.
    void cancel();

    // Success once the expiry is reached, operation_aborted when cancelled or re-armed.
    asio::awaitable<boost::system::error_code> wait();

    // The callback form. `h` may run after the alarm_timer is gone (with operation_aborted): it must own
    // what it touches or check the error first.
    template <class Handler>
    void async_wait(Handler&& h) {
        if (!state_) {
            timer_->async_wait(std::forward<Handler>(h));
            return;
        }
        if (state_->expiry <= clock_.now()) {
            asio::post(state_->timer.get_executor(), [h = std::forward<Handler>(h)]() mutable { h(boost::system::error_code{}); });
            return;
        }
        ++state_->waiting;
        state_->timer.async_wait([st = state_, h = std::forward<Handler>(h)](boost::system::error_code ec) mutable {
            --st->waiting;
            if (ec == asio::error::operation_aborted && st->fired) ec = {};  // (fired stays set: other waits see it too)
            h(ec);
        });
    }

    time_source& source() const noexcept { return clock_; }

private:
    time_source& clock_;
    std::optional<asio::steady_timer> timer_;   // steady clock
    std::shared_ptr<time_source::alarm_state> state_;  // manual clock
};

}  // namespace toolgate
