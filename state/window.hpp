#pragma once
// A sliding-window counter: the pure arithmetic behind every rate limit (requests and tokens per
// minute, hour or day), shared by the memory store and mirrored by the Redis script.
//
// A window of `span` is cut into `window_buckets` buckets of span/window_buckets each. A check at
// time t counts the bucket t falls in and the window_buckets buckets before it: a little more than
// one span, never less, so a limit of N never admits more than N in any span-long interval (a
// fixed window admits 2N across its edge), at the price of refusing up to one bucket (1/60 of the
// span) early. All times are milliseconds since the Unix epoch; the caller passes the clock.
#include <array>
#include <cstdint>

namespace toolgate::state {

inline constexpr int window_buckets = 60;
inline constexpr int window_slots = window_buckets + 1;

struct window_spec {
    std::int64_t span_ms = 60'000;
    std::int64_t limit = 0;
    std::int64_t bucket_ms() const { return span_ms / window_buckets > 0 ? span_ms / window_buckets : 1; }
};

// One counter's buckets: slot i holds the count of bucket index `bucket[i]` (time / bucket_ms).
struct window_counts {
    std::array<std::int64_t, window_slots> bucket{};
    std::array<std::int64_t, window_slots> count{};
};

struct window_verdict {
    bool allowed = false;
    std::int64_t used = 0;            // counted in the window before this check
    std::int64_t remaining = 0;       // after this check (when allowed) or now (when refused)
    std::int64_t reset_ms = 0;        // until everything counted now has left the window
    std::int64_t retry_after_ms = 0;  // refused: until enough has left for `amount` to fit
};

// Would `amount` fit at `now_ms`? Does not change the counts.
window_verdict window_check(window_counts const& w, window_spec const& spec, std::int64_t now_ms, std::int64_t amount);
// Counts `amount` (negative: a correction, never below zero in a bucket) in the bucket of `at_ms`,
// as seen at `now_ms`; a bucket already out of the window is left alone.
void window_add(window_counts& w, window_spec const& spec, std::int64_t at_ms, std::int64_t now_ms, std::int64_t amount);
// True when nothing is counted in the window at `now_ms` (the entry may be dropped).
bool window_idle(window_counts const& w, window_spec const& spec, std::int64_t now_ms);

}  // namespace toolgate::state
