// secret-scan: credentials found in one pass. An Aho-Corasick automaton over the ASCII-lower-cased
// folded text finds every provider prefix ("ghp_", "AKIA", "sk-ant-", "-----BEGIN ", "://", ...)
// and every key word ("secret", "token", "password", ...) at once; each hit is then validated by
// a small hand-written check of bounded length (exact case, charset, length, boundaries,
// checksum or structure where there is one). No regex runs on the text.
//
// Rules (verdict.rule):
//   aws_access_key_id          AKIA/ASIA/ABIA/ACCA + 16 of [A-Z2-7]
//   aws_secret_access_key      40 of [A-Za-z0-9/+], mixed case, assigned to a key whose name has
//                              "aws" or "secret_access_key" in it
//   github_token               ghp_ + 36 (the CRC32 checksum of its last 6 is checked, see below),
//                              gho_/ghu_/ghs_/ghr_ + 36 or more of [A-Za-z0-9]
//   github_fine_grained_token  github_pat_ + 70 or more of [A-Za-z0-9_] (22 + '_' + 59 today)
//   gitlab_token               glpat-/gldt-/glrt-/glptt- + 20 or more of [A-Za-z0-9_.-]
//   openai_api_key             sk- (sk-proj-, sk-svcacct-, legacy) + 32 or more of [A-Za-z0-9_-]
//   anthropic_api_key          sk-ant- + 32 or more of [A-Za-z0-9_-]
//   slack_token                xoxb-/xoxp-/xoxa-/xoxr- + 20 or more, with two '-' and digits
//   slack_webhook              hooks.slack.com/services/T.../B.../<24 chars>
//   stripe_secret_key          sk_live_/rk_live_/sk_test_/rk_test_ + 20 or more alphanumerics
//   google_api_key             AIza + 35 of [A-Za-z0-9_-]
//   sendgrid_api_key           SG. + 22 + '.' + 43 of [A-Za-z0-9_-]
//   twilio_account_sid         AC + 32 lower-case hex; twilio_api_key: SK + 32 lower-case hex
//   npm_token                  npm_ + 36 alphanumerics; huggingface_token: hf_ + 34 alphanumerics
//   jwt                        eyJ header '.' payload '.' signature (base64url), the header decodes
//                              to a JSON object with a string "alg"; the signature may be empty
//                              only for "alg": "none"
//   private_key                -----BEGIN [RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP ]PRIVATE KEY[ BLOCK]-----
//                              with at least 64 base64 characters of body (entropy >= 4 bits);
//                              the span runs to the END line, or to the end of the body when the
//                              END line is missing (a truncated key still leaks)
//   url_credentials            scheme://user:password@host (the password is the span)
//   curl_credentials           curl ... -u/--user user:password (the password is the span)
//   generic_secret             (config entropy) a value of 20-1024 characters assigned to a key
//                              word (secret, token, api_key, apikey, api-key, access_key, auth,
//                              authorization, credential(s), private_key, bearer) with Shannon
//                              entropy > 3.5 bits per character, letters and digits, not code
//   password_assignment        (config entropy) a value of 8-64 characters assigned to password /
//                              passwd / pwd with three of lower, upper, digit, symbol
//
// Placeholders are not secrets: "EXAMPLE" (AWS's documentation keys), "xxxx", "your", "here",
// "placeholder", "redacted", "dummy", "sample", "changeme", "...", "***", "<...>", "${...}",
// "{{...}}", a run of 6 equal characters or of 6 consecutive ones ("123456", "abcdef"), and token
// bodies with less than 3 bits of entropy per character. A ghp_ token whose checksum does not
// match is not a GitHub token (a typo or an invention); the checksum is the last 6 characters,
// the CRC32 of the 30 before them written in base 62 (0-9A-Za-z), as GitHub's token-format post
// describes and public scanners implement. npm_ and the other gh*_ types are not checked that way.
//
// A secret split across two messages: for each two adjacent parts of the same kind (role), the
// last 512 bytes of the first and the first 512 of the second are joined and scanned as well; a
// finding that crosses the join is reported on the first part (block) or removed from both (redact:
// the marker goes where it starts). Longer secrets split that way (a PEM block) are still caught
// when the first part holds the BEGIN line and 64 base64 characters of it, the second part's rest.
// Not checked: a value in prose without '=' or ':' ("the secret is ..."), Basic auth headers
// (short base64), passwords with fewer than three character classes.
#include <algorithm>
#include <array>
#include <boost/json/parse.hpp>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "guardrails/config_util.hpp"
#include "guardrails/factories.hpp"
#include "guardrails/pii_redact_text.hpp"

namespace toolgate::guardrails {

namespace {

using detail::is_alnum;
using detail::is_alpha;
using detail::is_digit;
using detail::is_hex;
using detail::is_lower;
using detail::is_upper;
using detail::is_word;

enum rule_id : int {
    r_aws_key_id,
    r_aws_secret,
    r_github,
    r_github_pat,
    r_gitlab,
    r_openai,
    r_anthropic,
    r_slack_token,
    r_slack_webhook,
    r_stripe,
    r_google,
    r_sendgrid,
    r_twilio_sid,
    r_twilio_key,
    r_npm,
    r_huggingface,
    r_jwt,
    r_private_key,
    r_url_credentials,
    r_curl_credentials,
    r_generic,
    r_password,
    n_rules
};

// clang-format off
constexpr std::array<std::string_view, n_rules> rule_names{
    "aws_access_key_id", "aws_secret_access_key", "github_token",     "github_fine_grained_token",
    "gitlab_token",      "openai_api_key",        "anthropic_api_key", "slack_token",
    "slack_webhook",     "stripe_secret_key",     "google_api_key",    "sendgrid_api_key",
    "twilio_account_sid", "twilio_api_key",       "npm_token",         "huggingface_token",
    "jwt",               "private_key",           "url_credentials",   "curl_credentials",
    "generic_secret",    "password_assignment",
};
// clang-format on

// On overlapping text the more specific rule wins: a provider's token, then a credential found by
// its context (AWS secret after its key, a URL's or curl's password), then a generic secret.
int tier(int rule) {
    if (rule == r_generic || rule == r_password) return 2;
    if (rule == r_aws_secret || rule == r_url_credentials || rule == r_curl_credentials) return 1;
    return 0;
}

// ---- the one-pass automaton ---------------------------------------------------------------------

enum trigger : int {
    t_aws_id,
    t_github,
    t_github_pat,
    t_gitlab,
    t_sk_dash,
    t_slack,
    t_slack_hook,
    t_stripe,
    t_google,
    t_sendgrid,
    t_twilio,
    t_npm,
    t_hf,
    t_jwt,
    t_pem,
    t_url,
    t_curl,
    t_curl_user,
    t_newline,
    t_keyword,
    t_password_keyword,
    t_bearer,
};

struct pattern {
    std::string_view text;  // lower case
    trigger what;
};

// clang-format off
constexpr pattern patterns[] = {
    {"akia", t_aws_id},        {"asia", t_aws_id},       {"abia", t_aws_id},         {"acca", t_aws_id},
    {"ghp_", t_github},        {"gho_", t_github},       {"ghu_", t_github},         {"ghs_", t_github},
    {"ghr_", t_github},        {"github_pat_", t_github_pat},
    {"glpat-", t_gitlab},      {"gldt-", t_gitlab},      {"glrt-", t_gitlab},        {"glptt-", t_gitlab},
    {"sk-", t_sk_dash},
    {"xoxb-", t_slack},        {"xoxp-", t_slack},       {"xoxa-", t_slack},         {"xoxr-", t_slack},
    {"hooks.slack.com/services/", t_slack_hook},
    {"sk_live_", t_stripe},    {"rk_live_", t_stripe},   {"sk_test_", t_stripe},     {"rk_test_", t_stripe},
    {"aiza", t_google},        {"sg.", t_sendgrid},      {"ac", t_twilio},           {"sk", t_twilio},
    {"npm_", t_npm},           {"hf_", t_hf},            {"eyj", t_jwt},             {"-----begin ", t_pem},
    {"://", t_url},            {"curl", t_curl},         {" -u", t_curl_user},       {" --user", t_curl_user},
    {"\n", t_newline},
    {"secret", t_keyword},     {"token", t_keyword},     {"api_key", t_keyword},     {"apikey", t_keyword},
    {"api-key", t_keyword},    {"access_key", t_keyword}, {"accesskey", t_keyword},  {"auth", t_keyword},
    {"authorization", t_keyword}, {"credential", t_keyword}, {"private_key", t_keyword},
    {"password", t_password_keyword}, {"passwd", t_password_keyword}, {"pwd", t_password_keyword},
    {"bearer", t_bearer},
};
// clang-format on
constexpr std::size_t n_patterns = sizeof(patterns) / sizeof(patterns[0]);

// A dense Aho-Corasick automaton over byte classes (each byte that occurs in a pattern has its
// own class, upper case shares its lower case's, every other byte is class 0). Built once.
class automaton {
public:
    automaton() {
        for (auto& c : cls_) c = 0;
        int nc = 1;
        for (auto const& p : patterns)
            for (char ch : p.text) {
                auto b = static_cast<unsigned char>(ch);
                if (cls_[b] == 0) cls_[b] = static_cast<std::uint8_t>(nc++);
            }
        for (char ch = 'A'; ch <= 'Z'; ++ch)
            cls_[static_cast<unsigned char>(ch)] = cls_[static_cast<unsigned char>(detail::lower(ch))];
        nc_ = nc;
        // The trie.
        std::vector<std::vector<int>> out(1);
        next_.assign(static_cast<std::size_t>(nc_), -1);
        for (std::size_t pi = 0; pi < n_patterns; ++pi) {
            int s = 0;
            for (char ch : patterns[pi].text) {
                auto& n = next_[static_cast<std::size_t>(s * nc_ + cls_[static_cast<unsigned char>(ch)])];
                if (n < 0) {
                    n = static_cast<int>(out.size());
                    out.emplace_back();
                    next_.resize(next_.size() + static_cast<std::size_t>(nc_), -1);
                }
                s = next_[static_cast<std::size_t>(s * nc_ + cls_[static_cast<unsigned char>(ch)])];
            }
            out[static_cast<std::size_t>(s)].push_back(static_cast<int>(pi));
        }
        // Failure links, breadth first, turning the trie into a complete transition table.
        std::vector<int> fail(out.size(), 0), queue;
        for (int c = 0; c < nc_; ++c) {
            int& n = next_[static_cast<std::size_t>(c)];
            if (n < 0)
                n = 0;
            else
                queue.push_back(n);
        }
        for (std::size_t qi = 0; qi < queue.size(); ++qi) {
            int s = queue[qi];
            auto& o = out[static_cast<std::size_t>(s)];
            auto const& fo = out[static_cast<std::size_t>(fail[static_cast<std::size_t>(s)])];
            o.insert(o.end(), fo.begin(), fo.end());
            for (int c = 0; c < nc_; ++c) {
                int& n = next_[static_cast<std::size_t>(s * nc_ + c)];
                int f = next_[static_cast<std::size_t>(fail[static_cast<std::size_t>(s)] * nc_ + c)];
                if (n < 0) {
                    n = f;
                } else {
                    fail[static_cast<std::size_t>(n)] = f;
                    queue.push_back(n);
                }
            }
        }
        out_begin_.assign(out.size() + 1, 0);
        for (std::size_t st = 0; st < out.size(); ++st) {
            out_begin_[st + 1] = out_begin_[st] + static_cast<int>(out[st].size());
            out_ids_.insert(out_ids_.end(), out[st].begin(), out[st].end());
        }
        // The scan's table: each entry is the target's row offset times two, plus one when the target
        // state has outputs, so one load gives both.
        table_.resize(next_.size());
        for (std::size_t k = 0; k < next_.size(); ++k) {
            auto target = static_cast<std::uint32_t>(next_[k]);
            table_[k] = (target * static_cast<std::uint32_t>(nc_)) << 1 | (out[target].empty() ? 0u : 1u);
        }
    }

    // Calls hit(end, pattern index) for every occurrence, in order of end.
    template <class F>
    void scan(std::string_view t, F&& hit) const {
        std::uint32_t row = 0;
        auto const* tb = table_.data();
        for (std::size_t i = 0; i < t.size(); ++i) {
            std::uint32_t v = tb[row + cls_[static_cast<unsigned char>(t[i])]];
            row = v >> 1;
            if (v & 1) {
                auto st = row / static_cast<std::uint32_t>(nc_);
                for (int k = out_begin_[st]; k < out_begin_[st + 1]; ++k)
                    hit(i + 1, static_cast<std::size_t>(out_ids_[static_cast<std::size_t>(k)]));
            }
        }
    }

private:
    std::array<std::uint8_t, 256> cls_;
    int nc_ = 1;
    std::vector<int> next_;             // state * classes + class -> state (while building)
    std::vector<std::uint32_t> table_;  // the same, as scanned (see the constructor)
    std::vector<int> out_begin_, out_ids_;
};

// ---- checks shared by the rules -----------------------------------------------------------------

bool b64url_char(char c) { return is_alnum(c) || c == '_' || c == '-'; }

// The end of the run of `ok` characters from `i`, at most `max` long; npos when longer.
template <class P>
std::size_t run_end(std::string_view t, std::size_t i, std::size_t max, P ok) {
    std::size_t k = i;
    while (k < t.size() && ok(t[k])) {
        if (k - i >= max) return std::string_view::npos;
        ++k;
    }
    return k;
}

bool starts_with(std::string_view t, std::size_t at, std::string_view s) {
    return at + s.size() <= t.size() && t.substr(at, s.size()) == s;
}

bool longest_runs_look_made_up(std::string_view s) {
    std::size_t same = 1, up = 1, down = 1;
    for (std::size_t i = 1; i < s.size(); ++i) {
        same = s[i] == s[i - 1] ? same + 1 : 1;
        up = s[i] == s[i - 1] + 1 ? up + 1 : 1;
        down = s[i] == s[i - 1] - 1 ? down + 1 : 1;
        if (same >= 6 || up >= 6 || down >= 6) return true;
    }
    return s.size() >= 3 && same * 2 > s.size();
}

// Whether `s` is a stand-in for a secret rather than one.
bool placeholder(std::string_view s) {
    static constexpr std::string_view words[] = {"example", "xxxx",   "your",     "here",   "placeholder", "redacted",
                                                 "dummy",   "sample", "changeme", "insert", "replace",     "fake",
                                                 "...",     "***",    "<",        ">",      "{{",          "${"};
    char buf[256];
    auto n = std::min(s.size(), sizeof buf);
    for (std::size_t i = 0; i < n; ++i) buf[i] = detail::lower(s[i]);
    std::string_view low(buf, n);
    for (auto w : words)
        if (low.find(w) != std::string_view::npos) return true;
    if (!s.empty() && (s[0] == '$' || s[0] == '%')) return true;  // a variable, a format
    return longest_runs_look_made_up(s);
}

// A token body: not a placeholder and not too regular.
bool real_body(std::string_view body) { return !placeholder(body) && detail::shannon_entropy(body) >= 3.0; }

// ---- rule checks (each returns the span it found, or nothing) -----------------------------------

struct finding {
    std::size_t b = 0;
    std::size_t e = 0;
    int rule = -1;
};

std::uint32_t crc32(std::string_view s) {
    static auto const table = [] {
        std::array<std::uint32_t, 256> tb{};
        for (std::uint32_t n = 0; n < 256; ++n) {
            std::uint32_t c = n;
            for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            tb[n] = c;
        }
        return tb;
    }();
    std::uint32_t c = 0xFFFFFFFFu;
    for (char ch : s) c = table[(c ^ static_cast<unsigned char>(ch)) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

bool github_checksum_ok(std::string_view body) {  // 30 random + 6 checksum characters
    static constexpr std::string_view digits62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::uint32_t v = crc32(body.substr(0, 30));
    char enc[6];
    for (int k = 5; k >= 0; --k) {
        enc[k] = digits62[v % 62];
        v /= 62;
    }
    return v == 0 && std::string_view(enc, 6) == body.substr(30, 6);
}

bool prev_ok(std::string_view t, std::size_t b) { return b == 0 || !is_alnum(t[b - 1]); }

// A fixed-length body of `ok` characters after `prefix_end`, ending at a non-`ok` character.
template <class P>
std::size_t exact_body(std::string_view t, std::size_t from, std::size_t len, P ok) {
    std::size_t e = run_end(t, from, len, ok);
    return e != std::string_view::npos && e - from == len ? e : std::string_view::npos;
}

// base64url to bytes (no padding); false on a character outside the alphabet.
bool b64url_decode(std::string_view in, std::string& out) {
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        int v = is_upper(c)   ? c - 'A'
                : is_lower(c) ? c - 'a' + 26
                : is_digit(c) ? c - '0' + 52
                : c == '-'    ? 62
                : c == '_'    ? 63
                              : -1;
        if (v < 0) return false;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    return true;
}

finding check_jwt(std::string_view t, std::size_t b) {
    if (!starts_with(t, b, "eyJ") || (b > 0 && (b64url_char(t[b - 1]) || t[b - 1] == '.'))) return {};
    std::size_t h = run_end(t, b, 1024, b64url_char);
    if (h == std::string_view::npos || h - b < 10 || h >= t.size() || t[h] != '.') return {};
    std::size_t p = run_end(t, h + 1, 4096, b64url_char);
    if (p == std::string_view::npos || p - h - 1 < 2 || p >= t.size() || t[p] != '.') return {};
    std::size_t g = run_end(t, p + 1, 1024, b64url_char);
    if (g == std::string_view::npos) return {};
    std::string header;
    if (!b64url_decode(t.substr(b, h - b), header)) return {};
    boost::system::error_code ec;
    auto v = json::parse(header, ec);
    if (ec || !v.is_object()) return {};
    auto const* alg = v.get_object().if_contains("alg");
    if (!alg || !alg->is_string()) return {};
    bool none = detail::iequals(alg->get_string(), "none");
    if (g - p - 1 < (none ? 0u : 8u)) return {};
    return {b, g, r_jwt};
}

bool b64_char(char c) { return is_alnum(c) || c == '+' || c == '/' || c == '='; }

finding check_pem(std::string_view t, std::size_t b) {
    if (!starts_with(t, b, "-----BEGIN ")) return {};
    std::size_t l = b + 11, le = t.substr(l, 48).find("-----");
    if (le == std::string_view::npos) return {};
    le += l;
    auto label = t.substr(l, le - l);
    for (char c : label)
        if (!is_upper(c) && c != ' ') return {};
    bool key =
        label.size() >= 11 && (label.substr(label.size() - 11) == "PRIVATE KEY" || label == "PGP PRIVATE KEY BLOCK");
    if (!key) return {};
    std::size_t limit = std::min(t.size(), b + 4096), k = le + 5, last = k;
    unsigned counts[256] = {};
    std::size_t n64 = 0;
    while (k < limit) {
        char c = t[k];
        if (starts_with(t, k, "-----END ")) {
            std::size_t close = t.substr(0, limit).find("-----", k + 9);
            if (close != std::string_view::npos) last = close + 5;
            break;
        }
        if (b64_char(c)) {
            ++counts[static_cast<unsigned char>(c)];
            ++n64;
            last = k + 1;
        } else if (c == '\n' || c == '\r') {
        } else if (c == ' ' || c == '\t' || c == '\\') {  // '\\': a key pasted as an escaped string ("\n")
        } else if (c == ':' || c == ',' || c == '-') {    // "Proc-Type: 4,ENCRYPTED", "DEK-Info: ..."
        } else {
            break;
        }
        ++k;
    }
    if (n64 < 64) return {};
    double h = 0;
    for (unsigned c : counts)
        if (c) {
            double pr = static_cast<double>(c) / static_cast<double>(n64);
            h -= pr * std::log2(pr);
        }
    if (h < 4.0) return {};
    return {b, last, r_private_key};
}

bool url_scheme_char(char c) { return is_alnum(c) || c == '+' || c == '.' || c == '-'; }

// A password that stands for one (in documentation, templates).
bool placeholder_password(std::string_view user, std::string_view pass) {
    static constexpr std::string_view words[] = {
        "password",   "pass",         "passwd",        "pwd",           "secret", "pw",       "changeme",
        "mypassword", "yourpassword", "your_password", "your-password", "user",   "username", "pass123"};
    if (pass.size() < 3) return true;
    for (auto w : words)
        if (detail::iequals(pass, w)) return true;
    if (pass == user) return true;
    return placeholder(pass);
}

bool userinfo_end(char c) {
    return c == '/' || c == '?' || c == '#' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' ||
           c == '\'' || c == '<' || c == '>' || c == '`' || c == ')' || c == ']' || c == '}' || c == ',';
}

finding check_url(std::string_view t, std::size_t colon) {
    std::size_t s = colon;
    while (s > 0 && colon - s < 32 && url_scheme_char(t[s - 1])) --s;
    if (colon - s < 2 || !is_alpha(t[s]) || (s > 0 && is_alnum(t[s - 1]))) return {};
    std::size_t a = colon + 3, k = a, at = std::string_view::npos;
    while (k < t.size() && k - a < 512 && !userinfo_end(t[k])) {
        if (t[k] == '@') at = k;
        ++k;
    }
    if (at == std::string_view::npos || at + 1 >= t.size() || !(is_alnum(t[at + 1]) || t[at + 1] == '[')) return {};
    auto info = t.substr(a, at - a);
    auto c = info.find(':');
    if (c == std::string_view::npos) return {};
    auto user = info.substr(0, c), pass = info.substr(c + 1);
    if (placeholder_password(user, pass)) return {};
    return {a + c + 1, at, r_url_credentials};
}

// Whether "curl" at b starts a command word.
bool curl_command(std::string_view t, std::size_t b) {
    std::size_t e = b + 4;
    return starts_with(t, b, "curl") && (b == 0 || !(is_word(t[b - 1]) || t[b - 1] == '-')) && e < t.size() &&
           (t[e] == ' ' || t[e] == '\t');
}

// The user:password after a curl option "-u", "-U" or "--user" whose preceding space is at k.
finding check_curl_user(std::string_view t, std::size_t k) {
    std::size_t limit = std::min(t.size(), k + 512), v;
    if (starts_with(t, k + 1, "--user"))
        v = k + 7;
    else if (k + 2 < t.size() && t[k + 1] == '-' && (t[k + 2] == 'u' || t[k + 2] == 'U'))
        v = k + 3;
    else
        return {};
    if (v < limit && (t[v] == ' ' || t[v] == '='))
        ++v;
    else if (v < limit && t[k + 2] == '-')
        return {};  // --user-agent, --username
    while (v < limit && t[v] == ' ') ++v;
    char q = v < limit && (t[v] == '\'' || t[v] == '"') ? t[v] : 0;
    if (q) ++v;
    std::size_t w = v;
    while (w < limit && (q ? t[w] != q && t[w] != '\n' : t[w] != ' ' && t[w] != '\t' && t[w] != '\n' && t[w] != '\r'))
        ++w;
    auto value = t.substr(v, w - v);
    auto c = value.find(':');
    if (c == std::string_view::npos) return {};
    if (placeholder_password(value.substr(0, c), value.substr(c + 1))) return {};
    return {v + c + 1, w, r_curl_credentials};
}

// ---- key words followed by a value --------------------------------------------------------------

bool value_char(char c) {
    if (is_alnum(c)) return true;
    switch (c) {
        case '+':
        case '/':
        case '=':
        case '_':
        case '-':
        case '.':
        case '~':
        case '!':
        case '@':
        case '#':
        case '$':
        case '%':
        case '^':
        case '&':
        case '*':
        case '?':
        case '|':
            return true;
        default:
            return false;
    }
}

// What may follow a key word inside the key's name ("secret_key", "api_keys", "tokens").
bool allowed_suffix(std::string_view rest) {
    static constexpr std::string_view ok[] = {"",      "s",      "key", "_key", "-key", "keys",    "_keys",
                                              "value", "_value", "str", "_str", "_b64", "_base64", "_hex"};
    for (auto s : ok)
        if (detail::iequals(rest, s)) return true;
    return false;
}

// A value that is code or a name rather than a secret.
bool looks_like_code(std::string_view v) {
    if (v.empty()) return true;
    if (v[0] == '/' || v[0] == '.' || v[0] == '~' || v[0] == '$' || v[0] == '%' || v[0] == '&' || v[0] == '*')
        return true;
    // dotted identifiers: process.env.API_TOKEN, settings.secret2
    if (v.find('.') != std::string_view::npos) {
        bool ident = true;
        std::size_t start = 0;
        for (std::size_t k = 0; k <= v.size() && ident; ++k) {
            if (k < v.size() && v[k] != '.') continue;
            auto seg = v.substr(start, k - start);
            ident = !seg.empty() && (is_alpha(seg[0]) || seg[0] == '_') &&
                    std::all_of(seg.begin(), seg.end(), [](char c) { return is_word(c); });
            start = k + 1;
        }
        if (ident) return true;
    }
    // snake or kebab names of words: MY_APP_SECRET_2, db-password-prod
    std::size_t seps = 0, start = 0;
    bool words = true;
    for (std::size_t k = 0; k <= v.size() && words; ++k) {
        if (k < v.size() && v[k] != '_' && v[k] != '-') continue;
        if (k < v.size()) ++seps;
        auto seg = v.substr(start, k - start);
        std::size_t letters = 0, digits = 0, up = 0;
        for (char c : seg) {
            letters += is_alpha(c);
            digits += is_digit(c);
            up += is_upper(c);
        }
        bool word = letters + digits == seg.size() &&
                    (digits == seg.size() ||  // a number
                     (digits <= 2 && (up == 0 || up == letters || (up == 1 && is_upper(seg[0])))));
        words = seg.empty() || word;
        start = k + 1;
    }
    return words && seps >= 2;
}

bool known_prefix(std::string_view v) {
    static constexpr std::string_view prefixes[] = {"AKIA",        "ASIA",   "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
                                                    "github_pat_", "glpat-", "sk-",  "xox",  "sk_",  "rk_",  "AIza",
                                                    "SG.",         "npm_",   "hf_",  "eyJ",  "-----"};
    for (auto p : prefixes)
        if (v.substr(0, p.size()) == p) return true;
    return false;
}

struct classes {
    int lower = 0, upper = 0, digit = 0, other = 0;
    explicit classes(std::string_view v) {
        for (char c : v) {
            if (is_lower(c))
                ++lower;
            else if (is_upper(c))
                ++upper;
            else if (is_digit(c))
                ++digit;
            else
                ++other;
        }
    }
    int kinds() const { return (lower > 0) + (upper > 0) + (digit > 0) + (other > 0); }
};

// Bits per character for a generic secret. Hex has 16 symbols (at most 4 bits), so a random hex
// string of 32 scores about 3.7 and needs its own, lower bar.
constexpr double entropy_threshold = 3.5;
constexpr double entropy_threshold_hex = 3.0;
constexpr std::size_t entropy_min_length = 20;
constexpr std::size_t max_value = 1024;  // an AWS session token is several hundred characters

struct keyword_context {
    bool password = false;  // password, passwd, pwd
    bool bearer = false;    // "Bearer <token>"
};

// Returns the end of the value it read (0: none), so that key words inside it are not read again.
std::size_t check_keyword(std::string_view t, std::size_t ks, std::size_t ke, keyword_context kw, bool entropy,
                          std::vector<finding>& out) {
    std::size_t n = t.size();
    auto name_char = [](char c) { return is_word(c) || c == '-' || c == '.'; };
    std::size_t ib = ks;
    while (ib > 0 && ks - ib < 64 && name_char(t[ib - 1])) --ib;
    std::size_t ie = ke;
    while (ie < n && ie - ke < 32 && (is_word(t[ie]) || t[ie] == '-')) ++ie;
    if (!allowed_suffix(t.substr(ke, ie - ke))) return 0;
    auto name = t.substr(ib, ie - ib);
    std::size_t k = ie;
    auto skip_spaces = [&] {
        for (int m = 0; m < 8 && k < n && (t[k] == ' ' || t[k] == '\t'); ++m) ++k;
    };
    if (kw.bearer) {
        if (ie != ke || k >= n || t[k] != ' ') return 0;
        ++k;
    } else {
        if (k < n && (t[k] == '"' || t[k] == '\'' || t[k] == '`')) ++k;  // the end of a quoted key
        if (k < n && t[k] == ']') ++k;                                   // config["SECRET_KEY"] = ...
        skip_spaces();
        if (k + 1 < n && ((t[k] == ':' && t[k + 1] == '=') || (t[k] == '=' && (t[k + 1] == '>' || t[k + 1] == '='))))
            k += 2;
        else if (k < n && (t[k] == ':' || t[k] == '='))
            ++k;
        else if (!(name.substr(0, 2) == "--" && k > ie))  // a command-line flag: --api-key VALUE
            return 0;
        skip_spaces();
    }
    char q = k < n && (t[k] == '"' || t[k] == '\'' || t[k] == '`') ? t[k] : 0;
    if (q) ++k;
    if (!kw.bearer)
        for (std::string_view scheme : {"bearer ", "token ", "basic "})
            if (k + scheme.size() <= n && detail::iequals(t.substr(k, scheme.size()), scheme)) {
                k += scheme.size();
                break;
            }
    std::size_t vb = k;
    while (k < n && k - vb <= max_value && value_char(t[k]) && t[k] != q) ++k;
    std::size_t ve = k;
    if (ve - vb > max_value || ve == vb) return ve;
    if (q && (k >= n || t[k] != q)) return ve;  // a quoted phrase, not one value
    auto v = t.substr(vb, ve - vb);
    // The AWS secret access key.
    bool aws = detail::icontains(name, "aws") || detail::icontains(name, "secret_access_key") ||
               detail::icontains(name, "secretaccesskey");
    if (aws && v.size() == 40 &&
        std::all_of(v.begin(), v.end(), [](char c) { return is_alnum(c) || c == '/' || c == '+'; })) {
        classes cl(v);
        if (cl.upper && cl.lower && !placeholder(v) && detail::shannon_entropy(v) >= 4.0)
            out.push_back({vb, ve, r_aws_secret});
        return ve;
    }
    if (!entropy || known_prefix(v)) return ve;               // the provider rules decide on a known prefix
    if (ve < n && (t[ve] == '(' || t[ve] == '[')) return ve;  // a call or an index: code
    if (looks_like_code(v) || placeholder(v)) return ve;
    classes cl(v);
    bool hex = std::all_of(v.begin(), v.end(), is_hex);
    bool high = v.size() >= entropy_min_length && cl.digit > 0 && cl.lower + cl.upper > 0 &&
                detail::shannon_entropy(v) > (hex ? entropy_threshold_hex : entropy_threshold);
    if (kw.password) {
        if (high || (v.size() >= 8 && v.size() <= 64 && cl.kinds() >= 3)) out.push_back({vb, ve, r_password});
    } else if (high) {
        out.push_back({vb, ve, r_generic});
    }
    return ve;
}

// ---- the guardrail ------------------------------------------------------------------------------

class secret_scan final : public guardrail {
public:
    secret_scan(bool redact, bool entropy, std::vector<std::string> allow)
        : redact_(redact), entropy_(entropy), allow_(std::move(allow)) {
        machine();  // built now, not on the first request
    }

    std::string_view name() const override { return "secret-scan"; }
    // PEM blocks are the longest (an RSA-4096 key is ~3.2 KB); 4096 covers them and every token.
    std::size_t window() const override { return 4096; }

    verdict check(std::vector<text_part>& parts, json::object*, scope&) const override {
        verdict v;
        std::vector<std::vector<detail::edit>> edits(parts.size());
        std::vector<finding> found;
        for (std::size_t p = 0; p < parts.size(); ++p) {
            {
                detail::folded_view fv(parts[p].text);
                found.clear();
                scan(fv.text(), found);
                for (auto const& f : found) {
                    if (!redact_) return block(p, f.rule);
                    auto [ob, oe] = fv.original(f.b, f.e);
                    edits[p].push_back({ob, oe, replacement(f.rule)});
                    note(v, p, f.rule);
                }
            }
            if (p + 1 < parts.size() && parts[p + 1].kind == parts[p].kind) {
                // A secret split across two messages of the same role: scan the join of this part's
                // tail and the next part's head; keep what crosses the boundary.
                auto const& a = parts[p].text;
                auto const& b = parts[p + 1].text;
                std::size_t ta = std::min(a.size(), join_window), hb = std::min(b.size(), join_window);
                std::string joined = a.substr(a.size() - ta);
                joined.append(b, 0, hb);
                detail::folded_view fv(joined);
                found.clear();
                scan(fv.text(), found);
                for (auto const& f : found) {
                    auto [ob, oe] = fv.original(f.b, f.e);
                    if (ob >= ta || oe <= ta) continue;  // within one part: found there
                    if (!redact_) return block(p, f.rule);
                    edits[p].push_back({a.size() - ta + ob, a.size(), replacement(f.rule)});
                    edits[p + 1].push_back({0, oe - ta, ""});
                    note(v, p, f.rule);
                }
            }
        }
        for (std::size_t p = 0; p < parts.size(); ++p) {
            auto& e = edits[p];
            if (e.empty()) continue;
            std::stable_sort(e.begin(), e.end(), [](auto const& x, auto const& y) { return x.begin < y.begin; });
            std::vector<detail::edit> kept;
            for (auto& x : e)
                if (kept.empty() || x.begin >= kept.back().end)
                    kept.push_back(std::move(x));
                else
                    kept.back().end = std::max(kept.back().end, x.end);  // overlapping: one replacement
            parts[p].text = detail::apply_edits(parts[p].text, kept);
        }
        return v;
    }

private:
    static constexpr std::size_t join_window = 512;

    static verdict block(std::size_t part, int rule) {
        verdict v;
        v.what = outcome::block;
        v.rule = std::string(rule_names[static_cast<std::size_t>(rule)]);
        v.part = part;
        v.detail = "the message contains a credential (" + v.rule + ")";
        return v;
    }
    static std::string replacement(int rule) {
        return "[secret:" + std::string(rule_names[static_cast<std::size_t>(rule)]) + "]";
    }
    static void note(verdict& v, std::size_t part, int rule) {
        if (v.what != outcome::pass) return;
        v.what = outcome::redact;
        v.rule = std::string(rule_names[static_cast<std::size_t>(rule)]);
        v.part = part;
    }

    // The findings in `t`, left to right, not overlapping, allowed literals removed.
    void scan(std::string_view t, std::vector<finding>& out) const {
        std::vector<finding> raw;
        std::size_t value_end = 0;                     // the end of the last key word's value
        std::size_t curl_at = std::string_view::npos;  // the last "curl" command word
        std::size_t line_at = 0;                       // after the last newline that ends a command
        machine().scan(t, [&](std::size_t end, std::size_t pi) {
            auto const& p = patterns[pi];
            std::size_t b = end - p.text.size();
            finding f;
            switch (p.what) {
                case t_aws_id:
                    f = check_aws_id(t, b);
                    break;
                case t_github:
                    f = check_github(t, b);
                    break;
                case t_github_pat:
                    f = check_token(t, b, "github_pat_", 70, 255, is_word, r_github_pat);
                    break;
                case t_gitlab:
                    f = check_gitlab(t, b, p.text);
                    break;
                case t_sk_dash:
                    f = check_sk(t, b);
                    break;
                case t_slack:
                    f = check_slack(t, b, p.text);
                    break;
                case t_slack_hook:
                    f = check_slack_hook(t, b);
                    break;
                case t_stripe:
                    f = check_token(t, b, p.text, 20, 255, is_alnum, r_stripe);
                    break;
                case t_google:
                    f = check_fixed(t, b, "AIza", 35, b64url_char, r_google);
                    break;
                case t_sendgrid:
                    f = check_sendgrid(t, b);
                    break;
                case t_twilio:
                    f = check_twilio(t, b);
                    break;
                case t_npm:
                    f = check_fixed(t, b, "npm_", 36, is_alnum, r_npm);
                    break;
                case t_hf:
                    f = check_fixed(t, b, "hf_", 34, is_alnum, r_huggingface);
                    break;
                case t_jwt:
                    f = check_jwt(t, b);
                    break;
                case t_pem:
                    f = check_pem(t, b);
                    break;
                case t_url:
                    f = check_url(t, b);
                    break;
                case t_curl:
                    if (curl_command(t, b)) curl_at = b;
                    return;
                case t_newline:  // a command goes on after a line that ends with a backslash
                    if (!(b > 0 && t[b - 1] == '\\') && !(b > 1 && t[b - 1] == '\r' && t[b - 2] == '\\')) line_at = end;
                    return;
                case t_curl_user:
                    if (curl_at == std::string_view::npos || curl_at < line_at || b - curl_at > 2048) return;
                    f = check_curl_user(t, b);
                    break;
                case t_keyword:
                case t_password_keyword:
                case t_bearer:
                    if (b < value_end) return;  // inside the value of the key word before
                    value_end = std::max(
                        value_end,
                        check_keyword(t, b, end, {p.what == t_password_keyword, p.what == t_bearer}, entropy_, raw));
                    return;
            }
            if (f.rule >= 0) raw.push_back(f);
        });
        if (raw.empty()) return;
        // Left to right; where findings overlap the more specific rule wins, then the longer one.
        std::sort(raw.begin(), raw.end(), [](finding const& x, finding const& y) {
            if (x.b != y.b) return x.b < y.b;
            if (tier(x.rule) != tier(y.rule)) return tier(x.rule) < tier(y.rule);
            return x.e > y.e;
        });
        for (auto const& f : raw) {
            if (allowed(t, f)) continue;
            if (!out.empty() && f.b < out.back().e) {
                auto& k = out.back();
                if (tier(f.rule) < tier(k.rule) || (tier(f.rule) == tier(k.rule) && f.e - f.b > k.e - k.b)) k = f;
                continue;
            }
            out.push_back(f);
        }
    }

    // Whether an allowed literal is the finding or contains it.
    bool allowed(std::string_view t, finding const& f) const {
        for (auto const& a : allow_) {
            if (a.size() < f.e - f.b) continue;
            std::size_t from = f.e >= a.size() ? f.e - a.size() : 0;
            for (std::size_t s = from; s <= f.b && s + a.size() <= t.size(); ++s)
                if (t.substr(s, a.size()) == a) return true;
        }
        return false;
    }

    static finding check_aws_id(std::string_view t, std::size_t b) {
        auto pre = t.substr(b, 4);
        if ((pre != "AKIA" && pre != "ASIA" && pre != "ABIA" && pre != "ACCA") || !prev_ok(t, b)) return {};
        auto base32 = [](char c) { return is_upper(c) || (c >= '2' && c <= '7'); };
        std::size_t e = exact_body(t, b + 4, 16, base32);
        if (e == std::string_view::npos || (e < t.size() && is_alnum(t[e])) || !real_body(t.substr(b + 4, 16)))
            return {};
        return {b, e, r_aws_key_id};
    }

    static finding check_github(std::string_view t, std::size_t b) {
        if (!starts_with(t, b, "gh") || !is_lower(t[b + 2]) || !prev_ok(t, b)) return {};
        std::size_t e = run_end(t, b + 4, 255, is_alnum);
        if (e == std::string_view::npos || e - b - 4 < 36) return {};
        auto body = t.substr(b + 4, e - b - 4);
        if (t[b + 2] == 'p' && (body.size() != 36 || !github_checksum_ok(body))) return {};
        if (!real_body(body)) return {};
        return {b, e, r_github};
    }

    template <class P>
    static finding check_token(std::string_view t, std::size_t b, std::string_view prefix, std::size_t min,
                               std::size_t max, P ok, int rule) {
        if (!starts_with(t, b, prefix) || !prev_ok(t, b)) return {};
        std::size_t e = run_end(t, b + prefix.size(), max, ok);
        if (e == std::string_view::npos || e - b - prefix.size() < min) return {};
        if (!real_body(t.substr(b + prefix.size(), e - b - prefix.size()))) return {};
        return {b, e, rule};
    }

    template <class P>
    static finding check_fixed(std::string_view t, std::size_t b, std::string_view prefix, std::size_t len, P ok,
                               int rule) {
        if (!starts_with(t, b, prefix) || !prev_ok(t, b)) return {};
        std::size_t e = exact_body(t, b + prefix.size(), len, ok);
        if (e == std::string_view::npos || !real_body(t.substr(b + prefix.size(), len))) return {};
        return {b, e, rule};
    }

    static finding check_gitlab(std::string_view t, std::size_t b, std::string_view prefix) {
        auto f = check_token(
            t, b, prefix, 20, 255, [](char c) { return b64url_char(c) || c == '.'; }, r_gitlab);
        while (f.rule >= 0 && (t[f.e - 1] == '.' || t[f.e - 1] == '-')) --f.e;
        return f;
    }

    static finding check_sk(std::string_view t, std::size_t b) {
        bool ant = starts_with(t, b, "sk-ant-");
        auto f = check_token(t, b, ant ? "sk-ant-" : "sk-", 32, 255, b64url_char, ant ? r_anthropic : r_openai);
        if (f.rule < 0) return f;
        classes cl(t.substr(b, f.e - b));
        return cl.digit && cl.lower + cl.upper ? f : finding{};
    }

    static finding check_slack(std::string_view t, std::size_t b, std::string_view prefix) {
        auto f = check_token(
            t, b, prefix, 20, 255, [](char c) { return is_alnum(c) || c == '-'; }, r_slack_token);
        if (f.rule < 0) return f;
        auto body = t.substr(b + prefix.size(), f.e - b - prefix.size());
        if (std::count(body.begin(), body.end(), '-') < 2 || !classes(body).digit) return {};
        return f;
    }

    static finding check_slack_hook(std::string_view t, std::size_t b) {
        std::size_t k = b + 25;  // after "hooks.slack.com/services/"
        std::size_t mins[] = {8, 8, 16};
        for (int seg = 0; seg < 3; ++seg) {
            std::size_t e = run_end(t, k, 64, is_alnum);
            if (e == std::string_view::npos || e - k < mins[seg]) return {};
            if (seg == 2) return real_body(t.substr(k, e - k)) ? finding{b, e, r_slack_webhook} : finding{};
            if (e >= t.size() || t[e] != '/') return {};
            k = e + 1;
        }
        return {};
    }

    static finding check_sendgrid(std::string_view t, std::size_t b) {
        if (!starts_with(t, b, "SG.") || (b > 0 && (is_alnum(t[b - 1]) || t[b - 1] == '.'))) return {};
        std::size_t m = exact_body(t, b + 3, 22, b64url_char);
        if (m == std::string_view::npos || m >= t.size() || t[m] != '.') return {};
        std::size_t e = exact_body(t, m + 1, 43, b64url_char);
        if (e == std::string_view::npos || !real_body(t.substr(b + 3, 22)) || !real_body(t.substr(m + 1, 43)))
            return {};
        return {b, e, r_sendgrid};
    }

    static finding check_twilio(std::string_view t, std::size_t b) {
        auto pre = t.substr(b, 2);
        if ((pre != "AC" && pre != "SK") || !prev_ok(t, b)) return {};
        auto hex = [](char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); };
        std::size_t e = exact_body(t, b + 2, 32, hex);
        if (e == std::string_view::npos || (e < t.size() && is_alnum(t[e])) || !real_body(t.substr(b + 2, 32)))
            return {};
        return {b, e, pre == "AC" ? r_twilio_sid : r_twilio_key};
    }

    static automaton const& machine() {
        static automaton const m;
        return m;
    }

    bool redact_;
    bool entropy_;
    std::vector<std::string> allow_;
};

}  // namespace

std::unique_ptr<guardrail> make_secret_scan(json::object const& config, build_context const&) {
    cfg::only_keys(config, {"action", "entropy", "allow"});
    bool redact = cfg::choice(config, "action", {"block", "redact"}, "block") == "redact";
    bool entropy = cfg::boolean(config, "entropy", true);
    auto allow = cfg::strings(config, "allow");
    for (std::size_t i = 0; i < allow.size(); ++i)
        if (allow[i].empty())
            throw config_error("config.allow[" + std::to_string(i) + "]", "an allowed literal cannot be empty");
    return std::make_unique<secret_scan>(redact, entropy, std::move(allow));
}

}  // namespace toolgate::guardrails
