#pragma once
#include <algorithm>
#include <string>
#include <string_view>

namespace toolgate {

// ASCII lower case (HTTP header names, config words); not locale-aware on purpose.
inline std::string ascii_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
    return out;
}

// Cuts `s` to at most `max` bytes without splitting a UTF-8 character.
inline void utf8_truncate(std::string& s, std::size_t max) {
    if (s.size() <= max) return;
    while (max > 0 && (static_cast<unsigned char>(s[max]) & 0xC0) == 0x80) --max;
    s.resize(max);
}

}  // namespace toolgate
