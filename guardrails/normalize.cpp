#include "guardrails/normalize.hpp"

#include "guardrails/word_filter_chars.hpp"

#include <cstdint>
#include <numeric>

namespace toolgate::guardrails {

namespace {

// The ASCII a code point stands for (0: none, keep it; -1: drop it).
int fold_cp(char32_t cp) {
    if (cp >= 0xFF01 && cp <= 0xFF5E) return static_cast<int>(cp - 0xFF01 + 0x21);  // full-width ASCII
    switch (cp) {
        case 0x200B: case 0x200C: case 0x200D: case 0x2060: case 0xFEFF: case 0x00AD: case 0x180E:
            return -1;  // zero-width and soft hyphen
        case 0x00A0: case 0x1680: case 0x202F: case 0x205F: case 0x3000:
            return ' ';
        case 0x2010: case 0x2011: case 0x2012: case 0x2013: case 0x2014: case 0x2015: case 0x2212:
        case 0xFE58: case 0xFE63:
            return '-';
        case 0x2024: case 0x3002: case 0xFE52:
            return '.';
        case 0xFE6B:
            return '@';
        default: break;
    }
    if (cp >= 0x2000 && cp <= 0x200A) return ' ';
    return 0;
}

}  // namespace

folded fold(std::string_view in) {
    folded out;
    // Pure ASCII (the common case) has nothing to fold: one copy and an identity map.
    bool ascii = true;
    for (unsigned char c : in) ascii = ascii && c < 0x80;
    if (ascii) {
        out.text.assign(in);
        out.origin.resize(in.size() + 1);
        std::iota(out.origin.begin(), out.origin.end(), std::size_t{0});
        return out;
    }
    out.text.reserve(in.size());
    out.origin.reserve(in.size() + 1);
    for (std::size_t i = 0; i < in.size();) {
        auto b = static_cast<unsigned char>(in[i]);
        if (b < 0x80) {
            out.text.push_back(in[i]);
            out.origin.push_back(i);
            ++i;
            continue;
        }
        char32_t cp;
        auto n = detail::utf8_decode(in, i, cp);
        int f = fold_cp(cp);
        if (f == -1) {
            out.changed = true;
        } else if (f > 0) {
            out.text.push_back(static_cast<char>(f));
            out.origin.push_back(i);
            out.changed = true;
        } else {
            for (std::size_t k = 0; k < n; ++k) {
                out.text.push_back(in[i + k]);
                out.origin.push_back(i + k);
            }
        }
        i += n;
    }
    out.origin.push_back(in.size());
    return out;
}

std::string ascii_lower_copy(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

}  // namespace toolgate::guardrails
