#pragma once
// UTF-8 decoding (fold() uses it too) and the character classes word-filter's word boundaries
// use, shared with the token estimator (which needs the same letter / not-a-letter split to find
// word-like runs). Pure functions.
#include <cstddef>
#include <string_view>

namespace toolgate::guardrails::detail {

// Decodes one UTF-8 sequence at s[i] (i < s.size()); returns its length, 1 for an invalid byte
// (then cp = U+FFFD).
inline std::size_t utf8_decode(std::string_view s, std::size_t i, char32_t& cp) {
    auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) {
        cp = 0xFFFD;
        return 1;
    }
    if (n == 1) {
        cp = b;
        return 1;
    }
    char32_t v = b & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
        auto c = static_cast<unsigned char>(s[i + k]);
        if ((c >> 6) != 0x2) {
            cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (c & 0x3F);
    }
    cp = v;
    return n;
}

// A non-ASCII code point that separates words: Latin-1 punctuation and symbols, general
// punctuation and Unicode spaces, currency, arrows, math, box drawing and other symbol blocks, CJK
// and full-width punctuation, emoji, and U+FFFD (what an invalid byte decodes to). Everything else
// at or above U+0080 (letters of every script, combining marks, CJK ideographs) is a word
// character: a rule that errs towards "letter" joins more, so a banned word glued to an unusual
// character is not matched, while a word inside another script's word never is.
inline bool is_non_ascii_separator(char32_t cp) {
    if (cp < 0x80) return false;
    if (cp <= 0xBF) return cp != 0xAA && cp != 0xB5 && cp != 0xBA;  // C1, NBSP, ¡..¿ except ª µ º
    if (cp == 0xD7 || cp == 0xF7) return true;                      // × ÷
    if (cp >= 0x2000 && cp <= 0x206F) return true;                  // general punctuation, spaces
    if (cp >= 0x20A0 && cp <= 0x20CF) return true;                  // currency
    if (cp >= 0x2190 && cp <= 0x2BFF) return true;                  // arrows .. misc symbols
    if (cp >= 0x2E00 && cp <= 0x2E7F) return true;                  // supplemental punctuation
    if (cp >= 0x3000 && cp <= 0x3004) return true;                  // ideographic space, 、 。
    if (cp >= 0x3008 && cp <= 0x3020) return true;                  // CJK brackets and marks
    if (cp >= 0xFE10 && cp <= 0xFE1F) return true;                  // vertical forms
    if (cp >= 0xFE30 && cp <= 0xFE6F) return true;                  // CJK compatibility, small forms
    if (cp >= 0xFF00 && cp <= 0xFF0F) return true;                  // full-width punctuation
    if (cp >= 0xFF1A && cp <= 0xFF20) return true;
    if (cp >= 0xFF3B && cp <= 0xFF40) return true;
    if (cp >= 0xFF5B && cp <= 0xFF65) return true;
    if (cp >= 0xFFF0 && cp <= 0xFFFF) return true;    // specials, U+FFFD
    if (cp >= 0x1F000 && cp <= 0x1FAFF) return true;  // emoji, pictographs, playing cards
    return false;
}

inline bool is_ascii_letter(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
inline bool is_ascii_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// A word character: an ASCII letter, digit or underscore, or a non-ASCII code point that is not a
// separator.
inline bool is_word_cp(char32_t cp) {
    if (cp < 0x80) {
        auto c = static_cast<unsigned char>(cp);
        return is_ascii_letter(c) || is_ascii_digit(c) || c == '_';
    }
    return !is_non_ascii_separator(cp);
}

}  // namespace toolgate::guardrails::detail
