#pragma once
// Prometheus metrics of the gateway. record_*() may be called from any worker thread; a short
// mutex-protected section per request keeps it simple and is far below the request cost.
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <atomic>

#include "common/prometheus.hpp"

namespace toolgate::gateway {

class metrics {
public:
    static constexpr auto const& buckets = prometheus::latency_buckets;

    void record_request(std::string_view route, int status, std::string_view provider, std::string_view model,
                        double seconds, std::int64_t prompt_tokens, std::int64_t completion_tokens);
    void inflight_add(int delta) { inflight_.fetch_add(delta, std::memory_order_relaxed); }

    // Prometheus text exposition format 0.0.4.
    std::string render() const;

private:
    struct histogram {
        std::array<std::uint64_t, buckets.size()> counts{};
        std::uint64_t count = 0;
        double sum = 0;
    };
    static constexpr std::size_t max_series = 5000;

    mutable std::mutex mu_;
    std::map<std::tuple<std::string, int, std::string, std::string>, std::uint64_t> requests_;
    std::map<std::pair<std::string, std::string>, histogram> latency_;
    std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> tokens_;
    std::atomic<std::int64_t> inflight_{0};
};

}  // namespace toolgate::gateway
