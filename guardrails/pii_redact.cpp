// pii-redact: personal data found by hand-written scanners (linear, bounded look-around) and
// custom RE2 patterns, on the folded text; replaced by typed placeholders or refused.
//
// What is found (each scanner starts only at a word start, so a match is never a piece of a
// longer word or number):
// - email: local@domain.tld, ASCII; local part of [A-Za-z0-9._%+-] (at most 64), domain of
//   labels of [A-Za-z0-9-] (1-63, no '-' at either end), at least two labels, an alphabetic TLD.
// - phone: "+" and 8-15 digits (E.164, separators allowed, "(0)" trunk tolerated); North American
//   3-3-4 with separators or "(415) 555-2671", optional leading "1", area code and exchange not
//   starting with 0 or 1; national numbers with a trunk "0" and at least one separator (9-12
//   digits, "00" international prefix 11-15), groups of 2-8; "(11) 91234-5678" style area codes.
//   Not found on purpose: digit runs without '+' and without separators (ids), dates, versions,
//   7-digit local numbers, 3-3-3 groupings (Spain) without the country code.
// - credit_card: 13-19 digits, one kind of separator (' ' or '-') between groups of 3-6, Luhn
//   valid, a known IIN prefix with a length that network issues (Visa, Mastercard incl. 2-series,
//   Amex, Discover, Diners, JCB, UnionPay, Maestro, Mir, RuPay). A trailing extra group ("... 2024")
//   is cut off when the number before it is valid.
// - iban: upper-case country code of the length table below, 2 check digits, the country's exact
//   length (single spaces between groups allowed), mod-97 == 1.
// - us_ssn: AAA-GG-SSSS; "AAA GG SSSS" and "AAAGGSSSS" only when "ssn" or "social security"
//   occurs within the 48 bytes before. Area 000, 666 and 900-999, group 00, serial 0000 are invalid.
// - ip_address: IPv4, exactly four octets 0-255 without leading zeros, not followed by ".<digit>";
//   IPv6 full, compressed ("::" once) and with an IPv4 tail; a compressed form must contain a
//   decimal digit, so C++ scopes like "add::bed" are not addresses. Zone ids are not part of it.
// Known limits (kept as misses in tests/guardrails/data/pii.tsv): lower-case IBANs, 7-digit local
// numbers; an SSH remote "git@github.com:org/repo" reads as an email. Unicode (IDN) emails are not
// found; full-width and zero-width tricks are undone by fold() before any scan.
#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "guardrails/config_util.hpp"
#include "guardrails/factories.hpp"
#include "guardrails/pii_redact_text.hpp"

namespace toolgate::guardrails {

namespace {

using detail::is_alnum;
using detail::is_digit;
using detail::is_hex;
using detail::is_upper;
using detail::is_word;

enum entity : int { e_email, e_phone, e_credit_card, e_iban, e_us_ssn, e_ip_address, n_builtin };

struct entity_info {
    std::string_view name;  // in config and in verdict.rule
    std::string_view type;  // in placeholders
};

constexpr std::array<entity_info, n_builtin> entities{{
    {"email", "EMAIL"},
    {"phone", "PHONE"},
    {"credit_card", "CREDIT_CARD"},
    {"iban", "IBAN"},
    {"us_ssn", "US_SSN"},
    {"ip_address", "IP_ADDRESS"},
}};

// A match in folded text: [b, e), of `kind` (an entity, or n_builtin + the custom pattern's index).
struct span {
    std::size_t b = 0;
    std::size_t e = 0;
    int kind = -1;
};

// ---- email --------------------------------------------------------------------------------------

bool is_local_char(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'; }

bool valid_domain(std::string_view d) {
    std::size_t labels = 0, start = 0;
    std::string_view last;
    for (std::size_t k = 0; k <= d.size(); ++k) {
        if (k < d.size() && d[k] != '.') continue;
        auto label = d.substr(start, k - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
        ++labels;
        last = label;
        start = k + 1;
    }
    if (labels < 2 || last.size() < 2) return false;
    return std::all_of(last.begin(), last.end(), detail::is_alpha);
}

// Every email in `t`, in order. Each '@' looks at most 64 bytes left and 253 right, and those
// stretches never cross another '@', so the whole is linear.
void find_emails(std::string_view t, std::vector<span>& out) {
    for (std::size_t at = t.find('@'); at != std::string_view::npos; at = t.find('@', at + 1)) {
        std::size_t s = at;
        while (s > 0 && at - s <= 64 && is_local_char(t[s - 1])) --s;
        if (s > 0 && is_local_char(t[s - 1])) continue;  // a local part longer than 64
        while (s < at && (t[s] == '.' || t[s] == '-' || t[s] == '+' || t[s] == '%')) ++s;
        if (s == at || t[at - 1] == '.') continue;
        std::size_t d = at + 1, e = d;
        while (e < t.size() && e - d < 253 && (is_alnum(t[e]) || t[e] == '-' || t[e] == '.')) ++e;
        while (e > d && (t[e - 1] == '.' || t[e - 1] == '-')) --e;
        if (e == d || !valid_domain(t.substr(d, e - d))) continue;
        out.push_back({s, e, e_email});
    }
}

// ---- digit groups (cards, phones) ---------------------------------------------------------------

// No default member initializers: the scanners keep arrays of these on the stack for every
// candidate and fill what they use.
struct group {
    std::size_t end;  // offset after the group (after ')' for a bracketed one)
    int len;          // digits in the group
    int total;        // digits up to and including this group
    bool paren;       // written "(ddd)"
    char sep;         // the separator before it (0: none)
};

constexpr int max_groups = 12;

// ---- credit card --------------------------------------------------------------------------------

bool luhn(char const* d, int n) {
    int sum = 0;
    bool twice = false;
    for (int k = n - 1; k >= 0; --k) {
        int v = d[k] - '0';
        if (twice) v = v * 2 > 9 ? v * 2 - 9 : v * 2;
        sum += v;
        twice = !twice;
    }
    return sum % 10 == 0;
}

// Whether a network issues numbers of this prefix and length.
bool known_iin(char const* d, int n) {
    auto prefix = [&](int k) {
        int v = 0;
        for (int j = 0; j < k; ++j) v = v * 10 + (d[j] - '0');
        return v;
    };
    int p1 = prefix(1), p2 = prefix(2), p3 = prefix(3), p4 = prefix(4), p6 = prefix(6);
    if (p1 == 4) return n == 13 || n == 16 || n == 19;                         // Visa
    if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return n == 16;  // Mastercard
    if (p2 == 34 || p2 == 37) return n == 15;                                  // Amex
    if (p4 == 6011 || (p3 >= 644 && p3 <= 649) || p2 == 65 || (p6 >= 622126 && p6 <= 622925))
        return n >= 16 && n <= 19;            // Discover
    if (p2 == 62) return n >= 16 && n <= 19;  // UnionPay
    if ((p3 >= 300 && p3 <= 305) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39)
        return n >= 14 && n <= 19;                                                     // Diners
    if (p4 >= 3528 && p4 <= 3589) return n >= 16 && n <= 19;                           // JCB
    if (p4 >= 2200 && p4 <= 2204) return n >= 16 && n <= 19;                           // Mir
    if (p2 == 50 || (p2 >= 56 && p2 <= 58) || p2 == 67 || p4 == 6304) return n >= 13;  // Maestro
    if (p2 == 60) return n == 16;                                                      // RuPay
    return false;
}

std::size_t scan_card(std::string_view t, std::size_t i) {
    char d[20];
    int nd = 0, ng = 0;
    group g[max_groups];
    char sep = 0;
    std::size_t k = i;
    while (ng < max_groups) {
        std::size_t gs = k;
        while (k < t.size() && is_digit(t[k]) && nd < 20) d[nd++] = t[k++];
        if (nd >= 20 || (k < t.size() && is_digit(t[k]))) break;  // too long: not a candidate end
        g[ng] = {k, static_cast<int>(k - gs), nd, false, sep};
        ++ng;
        if (k + 1 < t.size() && (t[k] == ' ' || t[k] == '-') && (sep == 0 || sep == t[k]) && is_digit(t[k + 1])) {
            sep = t[k];
            ++k;
            continue;
        }
        break;
    }
    for (int c = ng - 1; c >= 0; --c) {
        int n = g[c].total;
        if (n < 13 || n > 19) continue;
        bool grouping = c == 0 || std::all_of(g, g + c + 1, [](group const& x) { return x.len >= 3 && x.len <= 6; });
        if (!grouping) continue;
        std::size_t end = g[c].end;
        if (end < t.size() && is_word(t[end])) continue;
        if (luhn(d, n) && known_iin(d, n)) return end;
    }
    return 0;
}

// ---- US SSN -------------------------------------------------------------------------------------

bool ssn_context(std::string_view t, std::size_t i) {
    std::size_t from = i > 48 ? i - 48 : 0;
    auto before = t.substr(from, i - from);
    return detail::icontains(before, "ssn") || detail::icontains(before, "social security");
}

std::size_t scan_ssn(std::string_view t, std::size_t i) {
    auto digits_at = [&](std::size_t at, int n) {
        if (at + n > t.size()) return false;
        for (int k = 0; k < n; ++k)
            if (!is_digit(t[at + k])) return false;
        return true;
    };
    if (!digits_at(i, 3)) return 0;
    std::size_t end = 0;
    char sep = i + 3 < t.size() ? t[i + 3] : 0;
    bool needs_context = true;
    if ((sep == '-' || sep == ' ') && digits_at(i + 4, 2) && i + 6 < t.size() && t[i + 6] == sep &&
        digits_at(i + 7, 4)) {
        end = i + 11;
        needs_context = sep == ' ';
    } else if (digits_at(i, 9)) {
        end = i + 9;
    } else {
        return 0;
    }
    if (end < t.size() && is_word(t[end])) return 0;
    if (end + 1 < t.size() && (t[end] == '-' || t[end] == '.') && is_digit(t[end + 1])) return 0;
    char d[9];
    int nd = 0;
    for (std::size_t k = i; k < end; ++k)
        if (is_digit(t[k])) d[nd++] = t[k];
    int area = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
    int grp = (d[3] - '0') * 10 + (d[4] - '0');
    int serial = (d[5] - '0') * 1000 + (d[6] - '0') * 100 + (d[7] - '0') * 10 + (d[8] - '0');
    if (area == 0 || area == 666 || area >= 900 || grp == 0 || serial == 0) return 0;
    if (needs_context && !ssn_context(t, i)) return 0;
    return end;
}

// ---- phone --------------------------------------------------------------------------------------

bool phone_shape(bool plus, char const* d, group const* g, int c) {
    int groups = c + 1, n = g[c].total;
    if (plus) {
        int trunk = 0;  // "+44 (0)20 ...": the bracketed trunk zero is not dialled
        for (int k = 1; k < groups; ++k)
            if (g[k].paren && g[k].len == 1 && d[g[k].total - 1] == '0') trunk = 1;
        n -= trunk;
        if (n < 8 || n > 15 || d[0] == '0') return false;
        if (groups > 1)
            for (int k = 0; k < groups; ++k)
                if (g[k].len > 8) return false;
        return true;
    }
    // North American: [1] (ddd|ddd) ddd dddd
    int at = 0;
    if (groups == 4 && g[0].len == 1 && d[0] == '1' && !g[0].paren) at = 1;
    if (groups - at == 3 && g[at].len == 3 && g[at + 1].len == 3 && g[at + 2].len == 4 && !g[at + 1].paren &&
        !g[at + 2].paren) {
        int off = at;  // digits before the area code
        bool seps = g[at].paren ? true : g[at + 1].sep != 0 && g[at + 1].sep == g[at + 2].sep;
        if (seps && d[off] >= '2' && d[off + 3] >= '2') return true;
    }
    // National with a trunk 0 (or the 00 international prefix).
    if (d[0] == '0' && groups >= 2) {
        bool intl = n >= 2 && d[1] == '0';
        if (intl ? (n < 11 || n > 15) : (n < 9 || n > 12)) return false;
        if (g[0].len < 2 || g[0].len > (intl ? 6 : 5)) return false;
        for (int k = 0; k < groups; ++k)
            if (g[k].len < 2 || g[k].len > 8 || (k > 0 && g[k].paren)) return false;
        return true;
    }
    // A bracketed area code: "(11) 91234-5678".
    if (g[0].paren && g[0].len >= 2 && g[0].len <= 4 && groups >= 2 && n >= 9 && n <= 11) {
        for (int k = 1; k < groups; ++k)
            if (g[k].len < 3 || g[k].paren) return false;
        return true;
    }
    return false;
}

std::size_t scan_phone(std::string_view t, std::size_t i) {
    std::size_t k = i;
    bool plus = t[k] == '+';
    if (plus) ++k;
    char d[16];
    int nd = 0, ng = 0;
    group g[max_groups];
    char sep = 0;
    while (ng < max_groups && k < t.size()) {
        std::size_t save = k;
        bool paren = t[k] == '(';
        if (paren) ++k;
        std::size_t gs = k;
        while (k < t.size() && is_digit(t[k]) && nd < 16) d[nd++] = t[k++];
        int len = static_cast<int>(k - gs);
        if (len == 0 || nd > 15 || (k < t.size() && is_digit(t[k]))) {
            k = save;
            break;
        }
        if (paren) {
            if (k >= t.size() || t[k] != ')') {
                k = save;
                break;
            }
            ++k;
        }
        g[ng] = {k, len, nd, paren, sep};
        ++ng;
        sep = 0;
        if (k + 1 < t.size() && (t[k] == ' ' || t[k] == '-' || t[k] == '.') &&
            (is_digit(t[k + 1]) || t[k + 1] == '(')) {
            sep = t[k];
            ++k;
            continue;
        }
        if (paren && k < t.size() && is_digit(t[k])) continue;  // "(415)555-2671"
        break;
    }
    for (int c = ng - 1; c >= 0; --c) {
        std::size_t end = g[c].end;
        if (end < t.size() && is_word(t[end])) continue;
        if (end + 1 < t.size() && (t[end] == '-' || t[end] == '.') && is_digit(t[end + 1])) continue;
        if (phone_shape(plus, d, g, c)) return end;
    }
    return 0;
}

// ---- IBAN ---------------------------------------------------------------------------------------

// IBAN length per country (SWIFT IBAN registry; see tests/guardrails/data/SOURCES.md).
int iban_length(char a, char b) {
    struct row {
        char c[3];
        int len;
    };
    // clang-format off
    static constexpr row rows[] = {
        {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
        {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
        {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
        {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27},
        {"GT", 28}, {"HN", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26},
        {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20},
        {"LU", 20}, {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20},
        {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"PK", 24}, {"PL", 28},
        {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SC", 31}, {"SE", 24},
        {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24}, {"TR", 26},
        {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
    };
    // clang-format on
    for (auto const& r : rows)
        if (r.c[0] == a && r.c[1] == b) return r.len;
    return 0;
}

std::size_t scan_iban(std::string_view t, std::size_t i) {
    if (i + 4 > t.size() || !is_upper(t[i + 1]) || !is_digit(t[i + 2]) || !is_digit(t[i + 3])) return 0;
    int len = iban_length(t[i], t[i + 1]);
    if (len == 0) return 0;
    char c[34];
    int m = 0;
    std::size_t k = i;
    while (m < len && k < t.size()) {
        char x = t[k];
        if (is_digit(x) || is_upper(x)) {
            c[m++] = x;
            ++k;
        } else if (x == ' ' && m >= 4 && t[k - 1] != ' ' && k + 1 < t.size() &&
                   (is_digit(t[k + 1]) || is_upper(t[k + 1]))) {
            ++k;
        } else {
            break;
        }
    }
    if (m < len || (k < t.size() && is_word(t[k]))) return 0;
    int r = 0;
    for (int j = 0; j < len; ++j) {
        char x = c[(j + 4) % len];
        r = is_digit(x) ? (r * 10 + (x - '0')) % 97 : (r * 100 + (x - 'A' + 10)) % 97;
    }
    return r == 1 ? k : 0;
}

// ---- IP addresses -------------------------------------------------------------------------------

// The end of a dotted quad at t[i] (four octets 0-255, no leading zeros), or 0.
std::size_t read_ipv4(std::string_view t, std::size_t i) {
    std::size_t k = i;
    for (int o = 0; o < 4; ++o) {
        if (o > 0) {
            if (k >= t.size() || t[k] != '.') return 0;
            ++k;
        }
        std::size_t s = k;
        int v = 0;
        while (k < t.size() && is_digit(t[k]) && k - s < 3) v = v * 10 + (t[k++] - '0');
        if (k == s || v > 255 || (k - s > 1 && t[s] == '0') || (k < t.size() && is_digit(t[k]))) return 0;
    }
    return k;
}

std::size_t scan_ipv4(std::string_view t, std::size_t i) {
    std::size_t k = read_ipv4(t, i);
    if (k == 0) return 0;
    if (k < t.size() && is_word(t[k])) return 0;
    if (k + 1 < t.size() && t[k] == '.' && is_digit(t[k + 1])) return 0;  // 1.2.3.4.5
    return k;
}

bool valid_ipv6(std::string_view s) {
    int groups = 0;
    bool compressed = false, digit = false;
    std::size_t p = 0;
    if (s.substr(0, 2) == "::") {
        compressed = true;
        p = 2;
    } else if (s.empty() || s[0] == ':') {
        return false;
    }
    while (p < s.size()) {
        std::size_t q = p;
        while (q < s.size() && s[q] != ':') ++q;
        auto piece = s.substr(p, q - p);
        if (piece.empty()) return false;
        if (piece.find('.') != std::string_view::npos) {
            if (q != s.size() || read_ipv4(piece, 0) != piece.size()) return false;
            groups += 2;
            digit = true;
        } else {
            if (piece.size() > 4) return false;
            for (char c : piece) {
                if (!is_hex(c)) return false;
                digit = digit || is_digit(c);
            }
            ++groups;
        }
        if (q == s.size()) break;
        if (q + 1 < s.size() && s[q + 1] == ':') {
            if (compressed) return false;
            compressed = true;
            p = q + 2;
        } else {
            p = q + 1;
            if (p == s.size()) return false;
        }
    }
    if (compressed ? groups > 7 || groups == 0 || !digit : groups != 8) return false;
    return true;
}

std::size_t scan_ipv6(std::string_view t, std::size_t i) {
    std::size_t k = i;
    while (k < t.size() && is_hex(t[k]) && k - i <= 4) ++k;
    if (k >= t.size() || t[k] != ':' || k - i > 4) return 0;  // most words end here
    std::size_t e = i;
    while (e < t.size() && e - i <= 45 && (is_hex(t[e]) || t[e] == ':' || t[e] == '.')) ++e;
    if (e - i > 45 || (e < t.size() && is_word(t[e]))) return 0;
    while (e > i && t[e - 1] == '.') --e;
    if (e > i + 1 && t[e - 1] == ':' && t[e - 2] != ':') --e;
    return valid_ipv6(t.substr(i, e - i)) ? e : 0;
}

// ---- the guardrail ------------------------------------------------------------------------------

using byte_table = std::array<bool, 256>;

constexpr byte_table word_char = [] {
    byte_table a{};
    for (int c = 0; c < 256; ++c) a[static_cast<std::size_t>(c)] = is_word(static_cast<char>(c));
    return a;
}();

// What a built-in scan can start at: digits, '+', '(' (phones), upper case (IBAN), hex and ':' (IPv6).
constexpr byte_table start_char = [] {
    byte_table a{};
    for (int c = 0; c < 256; ++c) {
        char x = static_cast<char>(c);
        a[static_cast<std::size_t>(c)] = is_hex(x) || is_upper(x) || x == '+' || x == '(' || x == ':';
    }
    return a;
}();

struct custom_rule {
    std::string name;  // as configured, upper case: verdict.rule
    std::string type;  // "CUSTOM-" + name: in placeholders
    std::unique_ptr<RE2> re;
};

class pii_redact final : public guardrail {
public:
    pii_redact(std::array<bool, n_builtin> on, bool block, std::vector<custom_rule> custom,
               std::unique_ptr<RE2::Set> set)
        : on_(on), block_(block), custom_(std::move(custom)), set_(std::move(set)) {}

    std::string_view name() const override { return "pii-redact"; }
    // Covers every built-in entity (the longest, an IPv6 address with an IPv4 tail or a spaced
    // IBAN, is under 50 bytes) and emails up to 128 bytes. Custom patterns longer than that are
    // caught in a stream only when they arrive within one window.
    std::size_t window() const override { return 128; }

    verdict check(std::vector<text_part>& parts, json::object*, scope& s) const override {
        verdict v;
        std::unordered_map<std::string, std::string> known;  // type '\n' original -> placeholder
        bool indexed = false;
        std::vector<span> found;
        for (std::size_t p = 0; p < parts.size(); ++p) {
            auto& part = parts[p];
            detail::folded_view fv(part.text);
            found.clear();
            find(fv.text(), found);
            if (found.empty()) continue;
            if (block_) {
                v.what = outcome::block;
                v.rule = rule_of(found.front().kind);
                v.part = p;
                v.detail = "the message contains personal data (" + v.rule + ")";
                return v;
            }
            if (!indexed) {
                for (auto const& [ph, original] : s.placeholders) {
                    auto us = ph.rfind('_');
                    if (ph.size() < 3 || us == std::string::npos || us < 1) continue;
                    known.emplace(ph.substr(1, us - 1) + '\n' + original, ph);
                }
                indexed = true;
            }
            std::vector<detail::edit> edits;
            edits.reserve(found.size());
            for (auto const& m : found) {
                auto [ob, oe] = fv.original(m.b, m.e);
                std::string original = part.text.substr(ob, oe - ob);
                std::string type(type_of(m.kind));
                std::string key = type + '\n' + original;
                auto it = known.find(key);
                if (it == known.end()) {
                    unsigned& next = s.counters[type];
                    if (next == 0) next = 1;
                    std::string ph = "<" + type + "_" + std::to_string(next++) + ">";
                    s.placeholders.emplace_back(ph, std::move(original));
                    it = known.emplace(std::move(key), std::move(ph)).first;
                }
                edits.push_back({ob, oe, it->second});
            }
            part.text = detail::apply_edits(part.text, edits);
            if (v.what == outcome::pass) {
                v.what = outcome::redact;
                v.rule = rule_of(found.front().kind);
                v.part = p;
            }
        }
        return v;
    }

private:
    std::string rule_of(int kind) const {
        return kind < n_builtin ? std::string(entities[kind].name) : custom_[kind - n_builtin].name;
    }
    std::string_view type_of(int kind) const {
        return kind < n_builtin ? entities[kind].type : std::string_view(custom_[kind - n_builtin].type);
    }

    // The matches in `t`, left to right, not overlapping: at each position the longest match that
    // starts there wins; the scan goes on after it.
    void find(std::string_view t, std::vector<span>& out) const {
        std::vector<span> pre;  // matches found by other means than a scan from their start
        if (on_[e_email]) find_emails(t, pre);
        if (set_) find_custom(t, pre);
        if (!custom_.empty())
            std::sort(pre.begin(), pre.end(),
                      [](span const& a, span const& b) { return a.b != b.b ? a.b < b.b : a.e > b.e; });
        std::size_t pi = 0, last_end = std::string_view::npos;
        bool digits = on_[e_credit_card] || on_[e_us_ssn] || on_[e_phone] || on_[e_ip_address];
        for (std::size_t i = 0; i < t.size();) {
            while (pi < pre.size() && pre[pi].b < i) ++pi;
            std::size_t next_pre = pi < pre.size() ? pre[pi].b : t.size();
            // Inside a word nothing but a precomputed match starts: skip to the word's end.
            if (i > 0 && i != next_pre && word_char[static_cast<unsigned char>(t[i - 1])]) {
                while (i < next_pre && word_char[static_cast<unsigned char>(t[i - 1])]) ++i;
                continue;
            }
            char c = t[i];
            if (i != next_pre && !start_char[static_cast<unsigned char>(c)]) {
                ++i;
                continue;
            }
            span best;
            auto consider = [&](std::size_t e, int kind) {
                if (e > i && (best.kind < 0 || e > best.e)) best = {i, e, kind};
            };
            for (std::size_t q = pi; q < pre.size() && pre[q].b == i; ++q) consider(pre[q].e, pre[q].kind);
            char prev = i > 0 ? t[i - 1] : ' ';
            bool word_start = !is_word(prev);
            if (digits && is_digit(c) && word_start && prev != '.') {
                // Inside a run of 4-character groups that nothing matched ("DE89 3704 0044 ..." with a
                // bad checksum), a group is not the start of a card or a phone number.
                bool inner = false;
                if (prev == ' ' && last_end != i - 1) {
                    std::size_t n = 0;
                    bool digit = false;
                    while (n < 5 && i >= n + 2 && (is_digit(t[i - 2 - n]) || is_upper(t[i - 2 - n])))
                        digit = is_digit(t[i - 2 - n++]) || digit;
                    inner = n == 4 && digit && !(i >= 6 && is_alnum(t[i - 6]));
                }
                if (on_[e_credit_card] && !inner) consider(scan_card(t, i), e_credit_card);
                if (on_[e_us_ssn]) consider(scan_ssn(t, i), e_us_ssn);
                if (on_[e_phone] && !inner && prev != '-' && prev != '+' && prev != '/')
                    consider(scan_phone(t, i), e_phone);
                if (on_[e_ip_address]) {
                    consider(scan_ipv4(t, i), e_ip_address);
                    if (prev != ':') consider(scan_ipv6(t, i), e_ip_address);
                }
            } else if (on_[e_phone] && (c == '+' || c == '(') && !is_alnum(prev) && prev != '+') {
                consider(scan_phone(t, i), e_phone);
            }
            if (on_[e_iban] && is_upper(c) && word_start) consider(scan_iban(t, i), e_iban);
            if (on_[e_ip_address] && !is_digit(c) && (is_hex(c) || c == ':') && word_start && prev != ':' &&
                prev != '.')
                consider(scan_ipv6(t, i), e_ip_address);
            if (best.kind >= 0) {
                out.push_back(best);
                i = last_end = best.e;
            } else {
                ++i;
            }
        }
    }

    void find_custom(std::string_view t, std::vector<span>& out) const {
        std::vector<int> hit;
        if (!set_->Match(re2::StringPiece(t.data(), t.size()), &hit)) return;
        re2::StringPiece in(t.data(), t.size());
        for (int idx : hit) {
            auto const& re = *custom_[static_cast<std::size_t>(idx)].re;
            std::size_t pos = 0;
            re2::StringPiece m;
            while (pos <= t.size() && re.Match(in, pos, t.size(), RE2::UNANCHORED, &m, 1)) {
                auto b = static_cast<std::size_t>(m.data() - t.data());
                auto e = b + m.size();
                if (e == b) {
                    pos = b + 1;
                    continue;
                }
                out.push_back({b, e, n_builtin + idx});
                pos = e;
            }
        }
    }

    std::array<bool, n_builtin> on_;
    bool block_;
    std::vector<custom_rule> custom_;
    std::unique_ptr<RE2::Set> set_;  // all custom patterns, to run only those that match
};

bool valid_custom_name(std::string_view n) {
    if (n.empty() || n.size() > 32 || !is_upper(n[0])) return false;
    return std::all_of(n.begin(), n.end(), [](char c) { return is_upper(c) || is_digit(c) || c == '_'; });
}

}  // namespace

std::unique_ptr<guardrail> make_pii_redact(json::object const& config, build_context const&) {
    cfg::only_keys(config, {"entities", "action", "restore", "custom"});
    std::array<bool, n_builtin> on{};
    if (config.contains("entities")) {
        auto names = cfg::strings(config, "entities");
        for (std::size_t i = 0; i < names.size(); ++i) {
            auto it = std::find_if(entities.begin(), entities.end(), [&](auto const& e) { return e.name == names[i]; });
            if (it == entities.end())
                throw config_error(
                    "config.entities[" + std::to_string(i) + "]",
                    "unknown entity '" + names[i] + "' (known: email, phone, credit_card, iban, us_ssn, ip_address)");
            on[static_cast<std::size_t>(it - entities.begin())] = true;
        }
    } else {
        on.fill(true);
    }
    bool block = cfg::choice(config, "action", {"redact", "block"}, "redact") == "block";
    (void)cfg::boolean(config, "restore", false);  // read by the gateway; checked here

    std::vector<custom_rule> custom;
    std::unique_ptr<RE2::Set> set;
    if (auto const* v = config.if_contains("custom"); v && !v->is_null()) {
        if (!v->is_array()) throw config_error("config.custom", "'custom' must be a list of {name, pattern}");
        RE2::Options opts;
        opts.set_log_errors(false);
        set = std::make_unique<RE2::Set>(opts, RE2::UNANCHORED);
        auto const& a = v->get_array();
        for (std::size_t i = 0; i < a.size(); ++i) {
            std::string key = "config.custom[" + std::to_string(i) + "]";
            if (!a[i].is_object()) throw config_error(key, "every entry of 'custom' must be {name, pattern}");
            auto const& o = a[i].get_object();
            for (auto const& kv : o)
                if (kv.key() != "name" && kv.key() != "pattern")
                    throw config_error(key + "." + std::string(kv.key()),
                                       "unknown key '" + std::string(kv.key()) + "' (known: name, pattern)");
            auto const* name = o.if_contains("name");
            auto const* pattern = o.if_contains("pattern");
            if (!name || !name->is_string() || !valid_custom_name(name->get_string()))
                throw config_error(key + ".name",
                                   "'name' must be 1-32 upper-case letters, digits or '_', starting with a letter");
            if (!pattern || !pattern->is_string() || pattern->get_string().empty())
                throw config_error(key + ".pattern", "'pattern' must be a non-empty string");
            std::string n(name->get_string());
            for (auto const& c : custom)
                if (c.name == n) throw config_error(key + ".name", "custom name '" + n + "' is used twice");
            std::string pat(pattern->get_string());
            auto re = std::make_unique<RE2>(pat, opts);
            if (!re->ok()) throw config_error(key + ".pattern", "RE2 refuses the pattern: " + re->error());
            std::string err;
            if (set->Add(pat, &err) < 0) throw config_error(key + ".pattern", "RE2 refuses the pattern: " + err);
            custom.push_back({n, "CUSTOM-" + n, std::move(re)});
        }
        if (custom.empty())
            set.reset();
        else if (!set->Compile())
            throw config_error("config.custom", "the custom patterns need more memory than RE2 allows");
    }
    if (std::none_of(on.begin(), on.end(), [](bool b) { return b; }) && custom.empty())
        throw config_error("config.entities", "'entities' names nothing to look for and there are no custom patterns");
    return std::make_unique<pii_redact>(on, block, std::move(custom), std::move(set));
}

}  // namespace toolgate::guardrails
