#include "gateway/routing/strategy.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

namespace toolgate::gateway::routing {

namespace {

constexpr std::array<std::pair<mode, std::string_view>, 8> mode_names{{
    {mode::single, "single"},
    {mode::fallback, "fallback"},
    {mode::loadbalance, "loadbalance"},
    {mode::conditional, "conditional"},
    {mode::least_latency, "least-latency"},
    {mode::cost_optimized, "cost-optimized"},
    {mode::content_based, "content-based"},
    {mode::ab_test, "ab-test"},
}};

bool eligible(std::span<target_view const> targets, std::size_t i) { return i < targets.size() && targets[i].eligible; }

// `first` (when eligible), then every other eligible target in listed order: the tail most modes share.
std::vector<std::size_t> first_then_listed(std::optional<std::size_t> first, std::span<target_view const> targets) {
    std::vector<std::size_t> order;
    order.reserve(targets.size());
    if (first && eligible(targets, *first)) order.push_back(*first);
    for (std::size_t i = 0; i < targets.size(); ++i)
        if (targets[i].eligible && (order.empty() || order.front() != i)) order.push_back(i);
    return order;
}

std::optional<std::size_t> first_eligible(std::span<target_view const> targets) {
    for (std::size_t i = 0; i < targets.size(); ++i)
        if (targets[i].eligible) return i;
    return std::nullopt;
}


// Every p50 comes from one snapshot of the state taken under its lock, so that the pick and the
// fallback order agree.
std::vector<std::size_t> by_latency(std::span<std::optional<milliseconds> const> p50,
                                    std::span<target_view const> targets, double explore, double unit) {
    std::vector<std::size_t> unsampled, sampled;
    for (std::size_t i = 0; i < targets.size(); ++i)
        if (targets[i].eligible) (p50[i] ? sampled : unsampled).push_back(i);
    std::stable_sort(sampled.begin(), sampled.end(), [&](std::size_t a, std::size_t b) { return *p50[a] < *p50[b]; });

    std::vector<std::size_t> order = unsampled;  // a new or recovered target earns samples before anything else
    if (unsampled.empty() && sampled.size() > 1 && unit < explore) {
        // Without exploration a target that was once slow is never measured again. unit / explore is
        // itself uniform in [0, 1) here, so it can pick among the others (in listed order, so that the
        // pick does not depend on how their latencies compare) with no second random number.
        std::vector<std::size_t> others;
        for (std::size_t i = 0; i < targets.size(); ++i)
            if (targets[i].eligible && i != sampled.front()) others.push_back(i);
        auto k = static_cast<std::size_t>(std::clamp(unit / explore, 0.0, 1.0) * static_cast<double>(others.size()));
        order.push_back(others[std::min(k, others.size() - 1)]);
    }
    for (auto i : sampled)
        if (order.empty() || order.front() != i) order.push_back(i);
    return order;
}

std::vector<std::size_t> by_price(route_input const& in, std::span<target_view const> targets) {
    auto fits = [&](target_view const& t) { return t.context_window == 0 || t.context_window >= in.input_tokens; };
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < targets.size(); ++i)
        if (targets[i].eligible && fits(targets[i])) order.push_back(i);
    if (order.empty()) {
        // The token count is an estimate: a target that seems too small beats answering with no target.
        for (std::size_t i = 0; i < targets.size(); ++i)
            if (targets[i].eligible) order.push_back(i);
    }
    // A NaN price counts as unpriced: it would break the sort's ordering.
    auto priced = [&](std::size_t i) { return targets[i].input_price && !std::isnan(*targets[i].input_price); };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        if (priced(a) != priced(b)) return priced(a);
        return priced(a) && *targets[a].input_price < *targets[b].input_price;
    });
    return order;
}

choice ab_test(strategy_settings const& s, route_input const& in, std::span<target_view const> targets, double unit) {
    std::uint64_t total = 0;
    for (auto const& v : s.variants) total += v.weight;
    if (total == 0) return {first_then_listed(std::nullopt, targets), {}};
    std::uint64_t bucket = 0;
    if (!in.sticky_key.empty()) {
        bucket = stable_hash(in.sticky_key) % total;
    } else {
        auto scaled = (unit > 0 ? std::min(unit, 1.0) : 0.0) * static_cast<double>(total);  // NaN: 0
        bucket = std::min(static_cast<std::uint64_t>(scaled), total - 1);
    }
    std::uint64_t upto = 0;
    for (auto const& v : s.variants) {
        upto += v.weight;
        // The label sticks even when its target cannot serve right now: the client stays in its arm of
        // the experiment and is only served by a fallback for this request.
        if (bucket < upto) return {first_then_listed(v.target, targets), v.label};
    }
    return {first_then_listed(std::nullopt, targets), {}};  // unreachable: bucket < total
}

}  // namespace

std::optional<mode> parse_mode(std::string_view text) {
    for (auto const& [m, name] : mode_names)
        if (name == text) return m;
    return std::nullopt;
}

std::string_view to_string(mode m) {
    for (auto const& [each, name] : mode_names)
        if (each == m) return name;
    return "fallback";
}

pool_state::pool_state(std::size_t targets, std::size_t max_samples)
    : current_(targets, 0), latency_(targets), next_(targets, 0), cache_(targets),
      max_samples_(std::max<std::size_t>(1, max_samples)) {}

void pool_state::recompute_locked(std::size_t target) {
    auto const& ring = latency_[target];
    auto& c = cache_[target];
    if (ring.empty()) {
        c = cached{};
        return;
    }
    std::array<milliseconds, 256> small{};
    std::vector<milliseconds> big;
    milliseconds* first = small.data();
    if (ring.size() > small.size()) {
        big.resize(ring.size());
        first = big.data();
    }
    c.oldest = ring.front().at;
    for (std::size_t i = 0; i < ring.size(); ++i) {
        first[i] = ring[i].latency;
        c.oldest = std::min(c.oldest, ring[i].at);
    }
    auto mid = first + (ring.size() - 1) / 2;
    std::nth_element(first, mid, first + ring.size());
    c.median = *mid;
}

std::optional<milliseconds> pool_state::median_locked(std::size_t target, milliseconds window, clock::time_point now) {
    if (target >= latency_.size() || latency_[target].empty()) return std::nullopt;
    if (target >= cache_.size()) cache_.resize(latency_.size());
    if (now - cache_[target].oldest > window) {
        // Some samples aged out: drop them, oldest first in the ring from now on.
        auto& ring = latency_[target];
        std::erase_if(ring, [&](sample const& x) { return now - x.at > window; });
        std::sort(ring.begin(), ring.end(), [](sample const& a, sample const& b) { return a.at < b.at; });
        next_[target] = 0;
        recompute_locked(target);
        if (ring.empty()) return std::nullopt;
    }
    return cache_[target].median;
}

void pool_state::record_latency(std::size_t target, milliseconds latency, clock::time_point now) {
    std::lock_guard lock(mu_);
    if (target >= latency_.size()) return;
    auto& ring = latency_[target];
    if (target >= cache_.size()) cache_.resize(latency_.size());
    if (ring.size() < max_samples_) {
        ring.push_back({now, latency});
    } else {
        ring[next_[target]] = {now, latency};
        next_[target] = (next_[target] + 1) % max_samples_;
    }
    recompute_locked(target);
}

std::optional<milliseconds> pool_state::p50(std::size_t target, milliseconds window, clock::time_point now) {
    std::lock_guard lock(mu_);
    return median_locked(target, window, now);
}

choice choose(strategy_settings const& s, pool_state& state, route_input const& in,
              std::span<target_view const> targets, clock::time_point now, double unit) {
    switch (s.how) {
        case mode::single:
            if (eligible(targets, 0)) return {{0}, {}};
            return {};
        case mode::fallback: return {first_then_listed(std::nullopt, targets), {}};
        case mode::loadbalance: {
            // nginx's smooth weighted round robin: spreads picks evenly within a cycle (5,1,1 gives
            // a a b a c a a, not a a a a a b c) and needs no random numbers.
            std::optional<std::size_t> best;
            {
                std::lock_guard lock(state.mu_);
                if (state.current_.size() < targets.size()) state.current_.resize(targets.size(), 0);
                std::int64_t total = 0;
                for (std::size_t i = 0; i < targets.size(); ++i) {
                    // A missing weight counts as 1, so a pool without weights is plain round robin.
                    auto w = static_cast<std::int64_t>(i < s.weights.size() ? s.weights[i] : 1);
                    if (!targets[i].eligible || w == 0) continue;
                    state.current_[i] += w;
                    total += w;
                    if (!best || state.current_[i] > state.current_[*best]) best = i;
                }
                if (best) state.current_[*best] -= total;
            }
            return {first_then_listed(best, targets), {}};
        }
        case mode::conditional: {
            auto first = first_eligible(targets);
            for (auto const& c : s.conditions) {
                if (eligible(targets, c.target) && matches(c, in)) {
                    first = c.target;
                    break;
                }
            }
            return {first_then_listed(first, targets), {}};
        }
        case mode::content_based: {
            auto first = first_eligible(targets);
            for (auto const& c : s.content_conditions) {
                if (eligible(targets, c.target) && matches(c, in.prompt)) {
                    first = c.target;
                    break;
                }
            }
            return {first_then_listed(first, targets), {}};
        }
        case mode::least_latency: {
            std::vector<std::optional<milliseconds>> p50(targets.size());
            {
                std::lock_guard lock(state.mu_);
                for (std::size_t i = 0; i < targets.size() && i < state.latency_.size(); ++i)
                    if (targets[i].eligible) p50[i] = state.median_locked(i, s.latency_window, now);
            }
            return {by_latency(p50, targets, s.explore, unit), {}};
        }
        case mode::cost_optimized: return {by_price(in, targets), {}};
        case mode::ab_test: return ab_test(s, in, targets, unit);
    }
    return {first_then_listed(std::nullopt, targets), {}};
}

bool matches(condition const& c, route_input const& in) {
    switch (c.what) {
        case condition::kind::model: return in.model == c.value;
        case condition::kind::model_prefix: return in.model.starts_with(c.value);
        case condition::kind::has_tools: return in.has_tools == c.flag;
        case condition::kind::input_tokens_gt: return in.input_tokens > c.tokens;
        case condition::kind::header:
            if (!in.headers) return false;
            return std::any_of(in.headers->begin(), in.headers->end(),
                               [&](auto const& h) { return h.first == c.header && h.second == c.value; });
        case condition::kind::time_of_day: {
            int const m = in.minute_of_day;
            if (c.from_minute < c.to_minute) return m >= c.from_minute && m < c.to_minute;
            if (c.from_minute > c.to_minute) return m >= c.from_minute || m < c.to_minute;  // wraps midnight
            return false;
        }
    }
    return false;
}

bool matches(content_condition const& c, std::string_view prompt) {
    switch (c.what) {
        case content_condition::kind::prompt_contains: return prompt.find(c.value) != std::string_view::npos;
        case content_condition::kind::prompt_not_contains: return prompt.find(c.value) == std::string_view::npos;
        case content_condition::kind::prompt_regex: return c.regex && RE2::PartialMatch(prompt, *c.regex);
    }
    return false;
}

std::uint64_t stable_hash(std::string_view text) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

std::int64_t estimate_tokens(std::size_t text_bytes) {
    // Written so that it cannot overflow for any size.
    return static_cast<std::int64_t>(text_bytes / 4 + (text_bytes % 4 != 0));
}

}  // namespace toolgate::gateway::routing
