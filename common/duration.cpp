#include "common/duration.hpp"

#include <charconv>
#include <cmath>

namespace toolgate {

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    if (text.empty()) return std::nullopt;
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end == text.data()) return std::nullopt;
    std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
    double factor_ms = 0;
    if (unit.empty() || unit == "s") factor_ms = 1000;
    else if (unit == "ms") factor_ms = 1;
    else if (unit == "m") factor_ms = 60'000;
    else if (unit == "h") factor_ms = 3'600'000;
    else if (unit == "d") factor_ms = 86'400'000;
    else return std::nullopt;
    double ms = value * factor_ms;
    if (!std::isfinite(ms) || ms < 0 || ms > 400.0 * 24 * 3'600'000) return std::nullopt;
    return std::chrono::milliseconds(static_cast<long long>(std::llround(ms)));
}

}  // namespace toolgate
