#pragma once
// The one Prometheus text writer (exposition format 0.0.4): metric families with HELP and TYPE
// written once, samples with escaped label values, histograms with their buckets, sum and count;
// and the one set of latency buckets every histogram uses. Not thread-safe: build one per scrape.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace toolgate::prometheus {

// Seconds; a latency histogram of the gateway (requests, tool calls) uses these bounds.
inline constexpr std::array<double, 15> latency_buckets{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                        1,     2.5,   5,    10,    30,    60,  300};

struct label {
    std::string_view name;
    std::string_view value;
};

// A label value as the text format requires (backslash, double quote and newline escaped).
std::string escape(std::string_view value);

class writer {
public:
    // HELP and TYPE ("counter", "gauge", "histogram") of the samples that follow.
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, std::initializer_list<label> labels, std::uint64_t value);
    void sample(std::string_view name, std::initializer_list<label> labels, std::int64_t value);
    void sample(std::string_view name, std::initializer_list<label> labels, double value);  // NaN allowed
    // `cumulative[i]` counts the observations <= latency_buckets[i]; `count` is the +Inf bucket.
    void histogram(std::string_view name, std::initializer_list<label> labels,
                   std::span<std::uint64_t const, latency_buckets.size()> cumulative, std::uint64_t count, double sum);

    std::string const& text() const { return out_; }
    std::string take() { return std::move(out_); }

private:
    void start(std::string_view name, std::initializer_list<label> labels, std::string_view extra_name = {},
               std::string_view extra_value = {});
    std::string out_;
};

}  // namespace toolgate::prometheus
