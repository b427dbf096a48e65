#include "guardrails/token_estimate.hpp"

#include "guardrails/word_filter_chars.hpp"

namespace toolgate::guardrails {

namespace {

// The estimate mimics how cl100k/o200k cut text before BPE: a word with the space or the single
// punctuation character before it, numbers in groups of three digits, runs of punctuation with the
// newlines after them, a run of newlines, indentation. Each piece then costs by its length, since
// common short words are one token and longer or rarer ones split. Costs are in 1/100 of a token
// (integers: exact and cheap), tuned on tests/guardrails/data/tokens (see the header for the bound).
constexpr std::size_t unit = 100;
constexpr std::size_t short_piece = 6;       // a letter piece of up to this many bytes: one token
constexpr std::size_t long_byte = 25;        // each byte beyond that: this much more
constexpr std::size_t punct_per_token = 4;   // bytes of an ASCII punctuation run per token
constexpr std::size_t two_byte_letter = 60;  // a Greek, Cyrillic, Hebrew, Arabic, ... letter
constexpr std::size_t wide_letter = 110;     // a CJK, kana, Hangul, Indic letter (per 3 bytes)
constexpr std::size_t symbol_byte = 50;      // non-ASCII punctuation and emoji, per byte

std::size_t piece_cost(std::size_t bytes) {
    if (bytes == 0) return 0;
    return unit + (bytes > short_piece ? (bytes - short_piece) * long_byte : 0);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\f' || c == '\v'; }
bool is_newline(char c) { return c == '\n' || c == '\r'; }
bool is_digit(char c) { return detail::is_ascii_digit(static_cast<unsigned char>(c)); }

enum class cls { letter, digit, space, newline, punct };

// What the code point at s[i] is; `len` its length in bytes.
cls classify(std::string_view s, std::size_t i, std::size_t& len, char32_t& cp) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
        len = 1;
        cp = b;
        if (detail::is_ascii_letter(b)) return cls::letter;
        if (detail::is_ascii_digit(b)) return cls::digit;
        if (is_space(s[i])) return cls::space;
        if (is_newline(s[i])) return cls::newline;
        return cls::punct;
    }
    len = detail::utf8_decode(s, i, cp);
    return detail::is_non_ascii_separator(cp) ? cls::punct : cls::letter;
}

}  // namespace

std::size_t estimate_tokens(std::string_view s) {
    std::size_t const n = s.size();
    std::size_t cost = 0;
    std::size_t i = 0;
    std::size_t len = 0;
    char32_t cp = 0;
    while (i < n) {
        switch (classify(s, i, len, cp)) {
            case cls::letter: {
                // Pieces end at camelCase humps and where ASCII meets another script; accented
                // Latin stays in its word.
                std::size_t piece = 0;
                bool prev_lower = false;
                while (i < n) {
                    // ASCII letters (nearly all of them) without the general classification.
                    auto b = static_cast<unsigned char>(s[i]);
                    if (b < 0x80) {
                        if (!detail::is_ascii_letter(b)) break;
                        bool upper = b >= 'A' && b <= 'Z';
                        if (upper && prev_lower) {
                            cost += piece_cost(piece);
                            piece = 0;
                        }
                        prev_lower = !upper;
                        ++piece;
                        ++i;
                        continue;
                    }
                    if (classify(s, i, len, cp) != cls::letter) break;
                    if (cp < 0x80) {
                        bool upper = cp >= 'A' && cp <= 'Z';
                        if (upper && prev_lower) {
                            cost += piece_cost(piece);
                            piece = 0;
                        }
                        prev_lower = !upper;
                        ++piece;
                    } else if (cp < 0x250) {
                        piece += 2;
                        prev_lower = true;
                    } else {
                        cost += piece_cost(piece);
                        piece = 0;
                        cost += len == 2 ? two_byte_letter : wide_letter * (len - 2);
                    }
                    i += len;
                }
                cost += piece_cost(piece);
                break;
            }
            case cls::digit: {
                std::size_t d = 0;
                for (; i < n && is_digit(s[i]); ++i) ++d;
                cost += (d + 2) / 3 * unit;
                break;
            }
            case cls::space: {
                std::size_t m = 0;
                for (; i < n && is_space(s[i]); ++i) ++m;
                if (i < n && is_newline(s[i])) break;  // trailing spaces go with the newline
                // The last space joins what follows (but not a number); the others are one token.
                if (m > 1 || i == n) cost += unit;
                if (i < n && is_digit(s[i])) cost += unit;
                break;
            }
            case cls::newline: {
                // Newlines and the blank lines between them are one token; the spaces after the
                // last newline are the next line's indentation.
                while (i < n) {
                    if (is_newline(s[i])) {
                        ++i;
                        continue;
                    }
                    std::size_t j = i;
                    while (j < n && is_space(s[j])) ++j;
                    if (j == i || j == n || !is_newline(s[j])) break;
                    i = j;
                }
                cost += unit;
                break;
            }
            case cls::punct: {
                // A single punctuation character before a letter joins the word ("(key", "_map",
                // "'s"), unless a space before it has taken it (' "user' is ' "' and 'user'); a
                // longer run is its own piece, with the newlines after it.
                bool after_space = i > 0 && is_space(s[i - 1]);
                std::size_t ascii = 0, count = 0, other = 0;
                while (i < n && classify(s, i, len, cp) == cls::punct) {
                    (len == 1 ? ascii : other) += len;
                    ++count;
                    i += len;
                }
                bool joins_word =
                    count == 1 && other == 0 && !after_space && i < n && classify(s, i, len, cp) == cls::letter;
                if (!joins_word) cost += (ascii + punct_per_token - 1) / punct_per_token * unit;
                cost += other * symbol_byte;
                while (i < n && is_newline(s[i])) ++i;
                break;
            }
        }
    }
    return (cost + unit - 1) / unit;
}

}  // namespace toolgate::guardrails
