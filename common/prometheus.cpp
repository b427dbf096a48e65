#include "common/prometheus.hpp"

#include <cmath>
#include <cstdio>

namespace toolgate::prometheus {

namespace {

std::string number(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", d);
    return buf;
}

}  // namespace

std::string escape(std::string_view v) {
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

void writer::family(std::string_view name, std::string_view type, std::string_view help) {
    out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void writer::start(std::string_view name, std::initializer_list<label> labels, std::string_view extra_name,
                   std::string_view extra_value) {
    out_.append(name);
    if (labels.size() == 0 && extra_name.empty()) {
        out_.push_back(' ');
        return;
    }
    out_.push_back('{');
    bool first = true;
    for (auto const& l : labels) {
        if (!first) out_.push_back(',');
        first = false;
        out_.append(l.name).append("=\"").append(escape(l.value)).append("\"");
    }
    if (!extra_name.empty()) {
        if (!first) out_.push_back(',');
        out_.append(extra_name).append("=\"").append(extra_value).append("\"");
    }
    out_.append("} ");
}

void writer::sample(std::string_view name, std::initializer_list<label> labels, std::uint64_t value) {
    start(name, labels);
    out_.append(std::to_string(value)).push_back('\n');
}

void writer::sample(std::string_view name, std::initializer_list<label> labels, std::int64_t value) {
    start(name, labels);
    out_.append(std::to_string(value)).push_back('\n');
}

void writer::sample(std::string_view name, std::initializer_list<label> labels, double value) {
    start(name, labels);
    out_.append(number(value)).push_back('\n');
}

void writer::histogram(std::string_view name, std::initializer_list<label> labels,
                       std::span<std::uint64_t const, latency_buckets.size()> cumulative, std::uint64_t count,
                       double sum) {
    std::string bucket = std::string(name) + "_bucket";
    for (std::size_t i = 0; i < latency_buckets.size(); ++i) {
        start(bucket, labels, "le", number(latency_buckets[i]));
        out_.append(std::to_string(cumulative[i])).push_back('\n');
    }
    start(bucket, labels, "le", "+Inf");
    out_.append(std::to_string(count)).push_back('\n');
    start(std::string(name) + "_sum", labels);
    out_.append(number(sum)).push_back('\n');
    start(std::string(name) + "_count", labels);
    out_.append(std::to_string(count)).push_back('\n');
}

}  // namespace toolgate::prometheus
