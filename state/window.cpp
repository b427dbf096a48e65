#include "state/window.hpp"

#include <algorithm>

namespace toolgate::state {

namespace {

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

struct span_view {
    std::int64_t width;  // ms per bucket
    std::int64_t current;  // bucket index of now
    std::int64_t oldest;   // first bucket still counted
};

span_view view(window_spec const& spec, std::int64_t now_ms) {
    auto w = spec.bucket_ms();
    auto cur = floor_div(now_ms, w);
    return {w, cur, cur - window_buckets};
}

bool live(window_counts const& w, int slot, span_view const& v) {
    return w.count[slot] > 0 && w.bucket[slot] >= v.oldest && w.bucket[slot] <= v.current;
}

}  // namespace

window_verdict window_check(window_counts const& w, window_spec const& spec, std::int64_t now_ms, std::int64_t amount) {
    auto v = view(spec, now_ms);
    window_verdict out;
    std::int64_t newest = v.oldest - 1;
    for (int i = 0; i < window_slots; ++i) {
        if (!live(w, i, v)) continue;
        out.used += w.count[i];
        newest = std::max(newest, w.bucket[i]);
    }
    // A bucket b stops being counted once b < current - window_buckets, at (b + window_slots) * width.
    auto leaves_at = [&](std::int64_t b) { return (b + window_slots) * v.width; };
    out.reset_ms = newest >= v.oldest ? std::max<std::int64_t>(0, leaves_at(newest) - now_ms) : 0;
    out.allowed = amount <= spec.limit - out.used;
    if (out.allowed) {
        out.remaining = spec.limit - out.used - amount;
        return out;
    }
    out.remaining = std::max<std::int64_t>(0, spec.limit - out.used);
    if (amount > spec.limit) {
        out.retry_after_ms = -1;  // never fits
        return out;
    }
    // Oldest buckets first: when have enough of them left for `amount` to fit?
    std::int64_t need = out.used + amount - spec.limit;
    std::int64_t freed = 0;
    for (auto b = v.oldest; b <= v.current && freed < need; ++b) {
        int slot = static_cast<int>(((b % window_slots) + window_slots) % window_slots);
        if (!live(w, slot, v) || w.bucket[slot] != b) continue;
        freed += w.count[slot];
        if (freed >= need) out.retry_after_ms = std::max<std::int64_t>(1, leaves_at(b) - now_ms);
    }
    return out;
}

void window_add(window_counts& w, window_spec const& spec, std::int64_t at_ms, std::int64_t now_ms, std::int64_t amount) {
    auto v = view(spec, now_ms);
    auto b = floor_div(at_ms, v.width);
    if (b < v.oldest || b > v.current) return;
    int slot = static_cast<int>(((b % window_slots) + window_slots) % window_slots);
    if (w.bucket[slot] != b) {
        w.bucket[slot] = b;
        w.count[slot] = 0;
    }
    w.count[slot] = std::max<std::int64_t>(0, w.count[slot] + amount);
}

bool window_idle(window_counts const& w, window_spec const& spec, std::int64_t now_ms) {
    auto v = view(spec, now_ms);
    for (int i = 0; i < window_slots; ++i)
        if (live(w, i, v)) return false;
    return true;
}

}  // namespace toolgate::state
