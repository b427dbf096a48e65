#pragma once
#include <chrono>
#include <optional>
#include <string_view>

namespace toolgate {

// Parses "300s", "1500ms", "5m", "1h", "2.5s" or a bare number of seconds. Rejects negatives,
// garbage and values beyond 400 days. Units: ms, s (the default), m, h, d.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace toolgate
