#pragma once
// A clock that moves only when the test moves it, and the driver that runs an io_context on it:
// every ready handler runs first; when nothing is ready, time jumps to the next alarm_timer. A deadline
// test then takes microseconds and gives the same answer on a loaded machine (Envoy's simulated
// time, in small).
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "common/time_source.hpp"

namespace toolgate::fakes {

class manual_clock final : public toolgate::time_source {
public:
    time_point now() const override { return now_; }
    bool manual() const noexcept override { return true; }
    void armed(std::shared_ptr<alarm_state> const& a) override {
        for (auto const& w : alarms_)
            if (w.lock() == a) return;
        alarms_.push_back(a);
    }

    // Moves time to `t` (never backwards), firing every alarm_timer due by then.
    void advance_to(time_point t) {
        now_ = std::max(now_, t);
        std::erase_if(alarms_, [this](std::weak_ptr<alarm_state> const& w) {
            auto a = w.lock();
            if (!a) return true;
            if (a->expiry > now_) return false;
            a->fired = true;
            a->timer.cancel();
            return true;
        });
    }
    void advance(duration d) { advance_to(now_ + d); }

    // The earliest expiry still ahead that somebody waits on (alarms set to "never", and alarms
    // armed but not waited on, do not count).
    std::optional<time_point> next() const {
        std::optional<time_point> best;
        for (auto const& w : alarms_) {
            auto a = w.lock();
            if (!a || a->waiting == 0 || a->expiry == time_point::max() || a->expiry <= now_) continue;
            if (!best || a->expiry < *best) best = a->expiry;
        }
        return best;
    }

    // Time elapsed since the clock was made.
    duration elapsed() const { return now_ - start_; }

private:
    time_point start_ = time_point{} + std::chrono::hours(24);
    time_point now_ = start_;
    std::vector<std::weak_ptr<alarm_state>> alarms_;
};

// Runs `ioc` until `done()`, moving `clk` to the next alarm_timer whenever no handler is ready. Returns
// false when nothing is ready and no alarm_timer is set (the scenario waits for something that will
// never happen), or after `max_steps` jumps.
inline bool run_simulated(boost::asio::io_context& ioc, manual_clock& clk, std::function<bool()> const& done,
                          int max_steps = 100'000) {
    for (int step = 0; step < max_steps; ++step) {
        if (ioc.stopped()) ioc.restart();
        while (ioc.poll() > 0) {
            if (ioc.stopped()) ioc.restart();
        }
        if (done()) return true;
        // Alarms that fired at the current instant may have queued nothing yet (a wait that starts
        // later returns at once); only a time jump can make progress now.
        auto t = clk.next();
        if (!t) return false;
        clk.advance_to(*t);
    }
    return done();
}

}  // namespace toolgate::fakes
