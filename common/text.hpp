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

// `s` as valid UTF-8: every byte that does not start a well-formed sequence (RFC 3629: no
// overlongs, no surrogates, nothing past U+10FFFF) becomes U+FFFD. Text echoed back to a client
// (an unknown path, a model name) goes through it, so that a JSON answer is always valid JSON.
std::string utf8_valid(std::string_view s);

// The value of a hexadecimal digit, -1 for any other character.
inline int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// RFC 4648 base64 with padding; `url`: the URL-safe alphabet without padding (base64url, JWTs).
std::string base64(std::string_view data, bool url = false);

}  // namespace toolgate
