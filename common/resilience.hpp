#pragma once
// Resilience policies shared by MCP servers and provider targets, pure and unit-tested: a circuit
// breaker, exponential backoff (plain and with full jitter), a retry budget, and Retry-After
// parsing. None of these is thread-safe; the owner serialises access (the MCP thread, or a
// target's short mutex-protected section). Time is always an argument, never read here.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace toolgate::resilience {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

enum class breaker_state { closed, open, half_open };
std::string_view to_string(breaker_state s);

// closed: every call is allowed; `failure_threshold` consecutive failures open it. open: calls are
// rejected until `open_for` has passed, then it is half-open: one probe at a time is let through;
// `success_threshold` successful probes in a row close it, a failed probe opens it again.
class circuit_breaker {
public:
    using clock = resilience::clock;
    enum class decision { allow, trial, reject };

    circuit_breaker(unsigned failure_threshold, milliseconds open_for, unsigned success_threshold = 1)
        : threshold_(std::max(1u, failure_threshold)), successes_needed_(std::max(1u, success_threshold)),
          open_for_(open_for) {}

    decision admit(clock::time_point now);
    // The outcome of an admitted call. Returns true when the breaker changed state.
    bool record(decision d, bool failure, clock::time_point now);
    // An admitted call that never ran or says nothing about the target (the client went away).
    void abandon(decision d);

    // What admit() would answer now, without taking the probe slot.
    bool would_admit(clock::time_point now) const;
    breaker_state state(clock::time_point now) const;
    bool is_open() const { return open_until_ != clock::time_point{}; }
    unsigned failures() const { return failures_; }
    // Until when an open breaker rejects calls (time_point{} when closed).
    clock::time_point open_until() const { return open_until_; }

private:
    unsigned threshold_;
    unsigned successes_needed_;
    milliseconds open_for_;
    unsigned failures_ = 0;
    unsigned probe_successes_ = 0;
    clock::time_point open_until_{};
    bool trial_in_flight_ = false;
};

// Doubling delays from min up to max (restarts of an MCP server).
class backoff {
public:
    backoff(milliseconds min, milliseconds max) : min_(min), max_(max), next_(min) {}
    milliseconds next() {
        auto d = next_;
        next_ = std::min(next_ * 2, max_);
        return d;
    }
    void reset() { next_ = min_; }

private:
    milliseconds min_, max_, next_;
};

// Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"):
// the wait before retry number `retry` (0 for the first retry) is uniform in [0, min(cap, base*2^retry)].
// `unit` is a random number in [0, 1).
milliseconds full_jitter(milliseconds base, milliseconds cap, unsigned retry, double unit);

// Limits retries to a share of recent requests, so a failing target is not hammered: over a sliding
// window of `buckets` one-second buckets, retries may be at most `ratio` of first attempts, plus a
// small floor (`min_retries`) so that a quiet target can still be retried.
class retry_budget {
public:
    static constexpr std::size_t buckets = 10;
    explicit retry_budget(double ratio = 0.2, unsigned min_retries = 3) : ratio_(ratio), min_retries_(min_retries) {}

    void record_request(clock::time_point now);
    // True, and counts the retry, when the budget allows one more retry now.
    bool try_retry(clock::time_point now);

    std::uint64_t requests_in_window(clock::time_point now);
    std::uint64_t retries_in_window(clock::time_point now);

private:
    struct bucket {
        std::int64_t second = -1;
        std::uint64_t requests = 0;
        std::uint64_t retries = 0;
    };
    bucket& at(clock::time_point now);
    double ratio_;
    unsigned min_retries_;
    std::array<bucket, buckets> ring_{};
};

// The wait an upstream asks for: `retry_after_ms` (milliseconds, a non-standard header some providers
// send) wins over `retry_after` (delta-seconds, or an IMF-fixdate HTTP date measured against
// `now_unix_seconds`). nullopt when absent or malformed; a date in the past is 0.
std::optional<milliseconds> parse_retry_after(std::string_view retry_after, std::string_view retry_after_ms,
                                              std::int64_t now_unix_seconds);

}  // namespace toolgate::resilience
