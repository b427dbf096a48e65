#include "gateway/metrics.hpp"

#include <cstdio>

namespace toolgate::gateway {

std::string prometheus_label(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

namespace {

std::string fmt_double(double d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", d);
    return buf;
}

}  // namespace

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
    std::string out;
    out.reserve(4096);
    std::lock_guard lock(mu_);
    out += "# HELP toolgate_requests_total HTTP requests handled, by route, status, provider and model.\n";
    out += "# TYPE toolgate_requests_total counter\n";
    for (auto const& [k, v] : requests_) {
        auto const& [route, status, provider, model] = k;
        out += "toolgate_requests_total{route=\"" + prometheus_label(route) + "\",status=\"" + std::to_string(status) +
               "\",provider=\"" + prometheus_label(provider) + "\",model=\"" + prometheus_label(model) + "\"} " +
               std::to_string(v) + "\n";
    }
    out += "# HELP toolgate_request_duration_seconds Time from request read to response end.\n";
    out += "# TYPE toolgate_request_duration_seconds histogram\n";
    for (auto const& [k, h] : latency_) {
        std::string labels = "route=\"" + prometheus_label(k.first) + "\",provider=\"" + prometheus_label(k.second) + "\"";
        for (std::size_t i = 0; i < buckets.size(); ++i)
            out += "toolgate_request_duration_seconds_bucket{" + labels + ",le=\"" + fmt_double(buckets[i]) + "\"} " +
                   std::to_string(h.counts[i]) + "\n";
        out += "toolgate_request_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} " + std::to_string(h.count) + "\n";
        out += "toolgate_request_duration_seconds_sum{" + labels + "} " + fmt_double(h.sum) + "\n";
        out += "toolgate_request_duration_seconds_count{" + labels + "} " + std::to_string(h.count) + "\n";
    }
    out += "# HELP toolgate_tokens_total Tokens reported by providers, by kind (prompt, completion).\n";
    out += "# TYPE toolgate_tokens_total counter\n";
    for (auto const& [k, v] : tokens_) {
        auto const& [provider, model, kind] = k;
        out += "toolgate_tokens_total{provider=\"" + prometheus_label(provider) + "\",model=\"" + prometheus_label(model) +
               "\",kind=\"" + kind + "\"} " + std::to_string(v) + "\n";
    }
    out += "# HELP toolgate_inflight_requests Requests being handled right now.\n";
    out += "# TYPE toolgate_inflight_requests gauge\n";
    out += "toolgate_inflight_requests " + std::to_string(inflight_.load(std::memory_order_relaxed)) + "\n";
    return out;
}

}  // namespace toolgate::gateway
