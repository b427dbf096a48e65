#pragma once
// Small policies of the aggregator, pure and unit-tested: a circuit breaker per server and the
// exponential backoff between restarts. Single-threaded (the MCP thread).
#include <algorithm>
#include <chrono>

namespace toolgate::mcp {

class circuit_breaker {
public:
    using clock = std::chrono::steady_clock;
    enum class decision { allow, trial, reject };

    circuit_breaker(unsigned threshold, std::chrono::milliseconds open_for) : threshold_(threshold), open_for_(open_for) {}

    // closed: allow. open: reject until open_for has passed, then let exactly one trial call through.
    decision admit(clock::time_point now) {
        if (open_until_ == clock::time_point{}) return decision::allow;
        if (now < open_until_ || trial_in_flight_) return decision::reject;
        trial_in_flight_ = true;
        return decision::trial;
    }
    // The outcome of an admitted call. Returns true when the breaker changed state.
    bool record(decision d, bool failure, clock::time_point now) {
        bool was_open = is_open();
        if (d == decision::trial) trial_in_flight_ = false;
        if (failure) {
            ++failures_;
            if (failures_ >= threshold_ || d == decision::trial) open_until_ = now + open_for_;
        } else {
            failures_ = 0;
            open_until_ = {};
        }
        return was_open != is_open();
    }
    // An admitted trial that never ran (it waited in the queue too long, say).
    void abandon(decision d) {
        if (d == decision::trial) trial_in_flight_ = false;
    }
    bool is_open() const { return open_until_ != clock::time_point{}; }
    unsigned failures() const { return failures_; }

private:
    unsigned threshold_;
    std::chrono::milliseconds open_for_;
    unsigned failures_ = 0;
    clock::time_point open_until_{};
    bool trial_in_flight_ = false;
};

class backoff {
public:
    backoff(std::chrono::milliseconds min, std::chrono::milliseconds max) : min_(min), max_(max), next_(min) {}
    // The wait before the next attempt; doubles each time up to max.
    std::chrono::milliseconds next() {
        auto d = next_;
        next_ = std::min(next_ * 2, max_);
        return d;
    }
    void reset() { next_ = min_; }

private:
    std::chrono::milliseconds min_, max_, next_;
};

}  // namespace toolgate::mcp
