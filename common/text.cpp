#include "common/text.hpp"

#include <cstdint>

namespace toolgate {

std::string base64(std::string_view data, bool url) {
    static constexpr char standard[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static constexpr char url_safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char const* tbl = url ? url_safe : standard;
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    auto byte = [&](std::size_t i) { return std::uint32_t(static_cast<unsigned char>(data[i])); };
    std::size_t i = 0;
    for (; i + 3 <= data.size(); i += 3) {
        std::uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        out += tbl[(n >> 18) & 63];
        out += tbl[(n >> 12) & 63];
        out += tbl[(n >> 6) & 63];
        out += tbl[n & 63];
    }
    if (std::size_t rest = data.size() - i; rest > 0) {
        std::uint32_t n = byte(i) << 16;
        if (rest == 2) n |= byte(i + 1) << 8;
        out += tbl[(n >> 18) & 63];
        out += tbl[(n >> 12) & 63];
        if (rest == 2) out += tbl[(n >> 6) & 63];
        if (!url) out.append(rest == 2 ? 1 : 2, '=');
    }
    return out;
}

std::string utf8_valid(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        bool ok = n > 0 && i + n <= s.size();
        for (std::size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
        if (ok && n >= 3) {
            auto c1 = static_cast<unsigned char>(s[i + 1]);
            if (c == 0xE0) ok = c1 >= 0xA0;       // overlong
            else if (c == 0xED) ok = c1 < 0xA0;   // surrogates
            else if (c == 0xF0) ok = c1 >= 0x90;  // overlong
            else if (c == 0xF4) ok = c1 < 0x90;   // past U+10FFFF
        }
        if (ok) {
            out.append(s.substr(i, n));
            i += n;
        } else {
            out += "\xEF\xBF\xBD";
            ++i;
        }
    }
    return out;
}

}  // namespace toolgate
