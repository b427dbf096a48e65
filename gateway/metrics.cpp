#include "gateway/metrics.hpp"

#include <cstdio>

namespace toolgate::gateway {

void metrics::record_request(std::string_view route, int status, std::string_view provider, std::string_view model,
                             double seconds, std::int64_t prompt_tokens, std::int64_t completion_tokens) {
    std::lock_guard lock(mu_);
    // Model names come from clients: cap the number of series so a flood of made-up names cannot
    // grow memory without bound.
    std::string model_label(model);
    if (requests_.size() >= max_series) model_label = "other";
    ++requests_[{std::string(route), status, std::string(provider), model_label}];
    auto& h = latency_[{std::string(route), std::string(provider)}];
    for (std::size_t i = 0; i < buckets.size(); ++i)
        if (seconds <= buckets[i]) ++h.counts[i];
    ++h.count;
    h.sum += seconds;
    if (prompt_tokens > 0) tokens_[{std::string(provider), model_label, "prompt"}] += static_cast<std::uint64_t>(prompt_tokens);
    if (completion_tokens > 0)
        tokens_[{std::string(provider), model_label, "completion"}] += static_cast<std::uint64_t>(completion_tokens);
}

std::string metrics::render() const {
    prometheus::writer w;
    std::lock_guard lock(mu_);
    w.family("toolgate_requests_total", "counter", "HTTP requests handled, by route, status, provider and model.");
    for (auto const& [k, v] : requests_) {
        auto const& [route, status, provider, model] = k;
        auto status_text = std::to_string(status);
        w.sample("toolgate_requests_total", {{"route", route}, {"status", status_text}, {"provider", provider}, {"model", model}},
                 v);
    }
    w.family("toolgate_request_duration_seconds", "histogram", "Time from request read to response end.");
    for (auto const& [k, h] : latency_)
        w.histogram("toolgate_request_duration_seconds", {{"route", k.first}, {"provider", k.second}}, h.counts, h.count,
                    h.sum);
    w.family("toolgate_tokens_total", "counter", "Tokens reported by providers, by kind (prompt, completion).");
    for (auto const& [k, v] : tokens_) {
        auto const& [provider, model, kind] = k;
        w.sample("toolgate_tokens_total", {{"provider", provider}, {"model", model}, {"kind", kind}}, v);
    }
    w.family("toolgate_inflight_requests", "gauge", "Requests being handled right now.");
    w.sample("toolgate_inflight_requests", {}, std::int64_t(inflight_.load(std::memory_order_relaxed)));
    return w.take();
}

}  // namespace toolgate::gateway
