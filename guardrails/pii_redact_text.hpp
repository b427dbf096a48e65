#pragma once
// Private to pii_redact.cpp and secret_scan.cpp: a part's text as the detectors see it (folded, see
// normalize.hpp) and the rewriting of spans found in it back into the part's original bytes.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "guardrails/normalize.hpp"

namespace toolgate::guardrails::detail {

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
constexpr bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
constexpr bool is_alpha(char c) { return is_upper(c) || is_lower(c); }
constexpr bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }
constexpr bool is_word(char c) { return is_alnum(c) || c == '_'; }
constexpr bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
constexpr char lower(char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

// Case-insensitive (ASCII) equality of `s` with the lower-case `lower_word`.
inline bool iequals(std::string_view s, std::string_view lower_word) {
    if (s.size() != lower_word.size()) return false;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (lower(s[i]) != lower_word[i]) return false;
    return true;
}

// Whether the lower-case `lower_word` occurs in `s`, ignoring ASCII case.
inline bool icontains(std::string_view s, std::string_view lower_word) {
    if (lower_word.empty()) return true;
    if (s.size() < lower_word.size()) return false;
    for (std::size_t i = 0; i + lower_word.size() <= s.size(); ++i)
        if (iequals(s.substr(i, lower_word.size()), lower_word)) return true;
    return false;
}

// Shannon entropy of `s` in bits per character.
inline double shannon_entropy(std::string_view s) {
    if (s.empty()) return 0;
    unsigned counts[256] = {};
    unsigned char seen[256];  // the distinct bytes, so the sum visits only those
    std::size_t distinct = 0;
    for (char c : s) {
        auto b = static_cast<unsigned char>(c);
        if (counts[b]++ == 0) seen[distinct++] = b;
    }
    double h = 0;
    auto n = static_cast<double>(s.size());
    for (std::size_t k = 0; k < distinct; ++k) {
        double p = counts[seen[k]] / n;
        h -= p * std::log2(p);
    }
    return h;
}

// A part's text as detectors see it. Text without a byte >= 0x80 (most prompts) folds to itself:
// it is used in place, with no copy and no origin table.
class folded_view {
public:
    explicit folded_view(std::string_view in) : in_(in) {
        identity_ = std::none_of(in.begin(), in.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
        if (!identity_) f_ = fold(in);
    }
    folded_view(folded_view const&) = delete;
    folded_view& operator=(folded_view const&) = delete;

    std::string_view text() const { return identity_ ? in_ : std::string_view(f_.text); }

    // The input bytes [first, second) that folded bytes [fb, fe) came from: from the first byte's
    // character to the end of the last byte's character (zero-width characters inside are part of
    // it, those before or after are not).
    std::pair<std::size_t, std::size_t> original(std::size_t fb, std::size_t fe) const {
        if (identity_) return {fb, fe};
        std::size_t b = f_.origin[fb];
        if (fe <= fb) return {b, b};
        std::size_t o = f_.origin[fe - 1];
        auto lead = static_cast<unsigned char>(in_[o]);
        std::size_t n = 1;
        // A folded ASCII byte that came from a multi-byte character spans the whole character.
        if (lead >= 0x80 && static_cast<unsigned char>(f_.text[fe - 1]) < 0x80)
            n = (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 1;
        return {b, std::min(o + n, in_.size())};
    }

private:
    std::string_view in_;
    bool identity_ = true;
    folded f_;
};

// A replacement of input bytes [begin, end) by `text`.
struct edit {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::string text;
};

// `in` with `edits` applied; edits are sorted by begin and do not overlap.
inline std::string apply_edits(std::string_view in, std::vector<edit> const& edits) {
    std::string out;
    out.reserve(in.size());
    std::size_t at = 0;
    for (auto const& e : edits) {
        out.append(in.substr(at, e.begin - at));
        out.append(e.text);
        at = e.end;
    }
    out.append(in.substr(at));
    return out;
}

}  // namespace toolgate::guardrails::detail
