#include "providers/sigv4.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <map>

#include "common/text.hpp"

namespace toolgate::providers::sigv4 {

namespace {

std::string hex(unsigned char const* data, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(n * 2, '0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    return out;
}

std::string hmac(std::string_view key, std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<unsigned char const*>(data.data()),
         data.size(), out.data(), &len);
    return std::string(reinterpret_cast<char const*>(out.data()), len);
}

bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

// %XX sequences decoded (a '%' that starts none is kept as it is).
std::string uri_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size()) {
            int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        out.push_back(text[i]);
    }
    return out;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    return out;
}

// Leading and trailing spaces removed, runs of spaces inside made one (the suite's header rules).
std::string trimmed(std::string_view v) {
    std::string out;
    bool space = false;
    for (char c : v) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = !out.empty();
            continue;
        }
        if (space) out.push_back(' ');
        space = false;
        out.push_back(c);
    }
    return out;
}

std::string date_of(scope const& s) { return s.amz_date.substr(0, 8); }

std::string credential_scope(scope const& s) {
    return date_of(s) + "/" + s.region + "/" + s.service + "/aws4_request";
}

// The canonical headers (name:value lines) and the signed header names, from the request's
// headers plus x-amz-date and the session token's header.
std::pair<std::string, std::string> canonical_headers(request const& r, scope const& s, std::string_view token) {
    std::map<std::string, std::string> by_name;
    auto add = [&](std::string name, std::string_view value) {
        auto [it, fresh] = by_name.try_emplace(std::move(name), trimmed(value));
        if (!fresh) it->second += "," + trimmed(value);
    };
    for (auto const& [k, v] : r.headers) add(lower(k), v);
    add("x-amz-date", s.amz_date);
    if (!token.empty()) add("x-amz-security-token", token);
    std::string lines, names;
    for (auto const& [k, v] : by_name) {
        lines += k + ":" + v + "\n";
        names += (names.empty() ? "" : ";") + k;
    }
    return {lines, names};
}

}  // namespace

std::string uri_encode(std::string_view text, bool keep_slash) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        if (unreserved(c) || (keep_slash && c == '/')) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(digits[c >> 4]);
            out.push_back(digits[c & 15]);
        }
    }
    return out;
}

std::string canonical_uri(std::string_view wire_path) {
    std::vector<std::string_view> segments;
    std::size_t at = 0;
    while (at <= wire_path.size()) {
        auto slash = wire_path.find('/', at);
        if (slash == std::string_view::npos) slash = wire_path.size();
        auto seg = wire_path.substr(at, slash - at);
        if (seg == "..") {
            if (!segments.empty()) segments.pop_back();
        } else if (!seg.empty() && seg != ".") {
            segments.push_back(seg);
        }
        at = slash + 1;
    }
    std::string path = "/";
    for (std::size_t i = 0; i < segments.size(); ++i) {
        if (i > 0) path += "/";
        path += segments[i];
    }
    bool trailing = !segments.empty() && !wire_path.empty() && wire_path.back() == '/';
    if (trailing) path += "/";
    return uri_encode(path, true);  // the wire path was encoded once: this is the second time
}

std::string canonical_query(std::string_view query) {
    if (query.empty()) return {};
    std::vector<std::pair<std::string, std::string>> params;
    std::size_t at = 0;
    while (at <= query.size()) {
        auto amp = query.find('&', at);
        if (amp == std::string_view::npos) amp = query.size();
        auto item = query.substr(at, amp - at);
        if (!item.empty()) {
            auto eq = item.find('=');
            auto key = item.substr(0, eq);
            auto value = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
            params.emplace_back(uri_encode(uri_decode(key), false), uri_encode(uri_decode(value), false));
        }
        at = amp + 1;
    }
    std::sort(params.begin(), params.end());
    std::string out;
    for (auto const& [k, v] : params) out += (out.empty() ? "" : "&") + k + "=" + v;
    return out;
}

std::string sha256_hex(std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned len = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
    return hex(out.data(), len);
}

std::string amz_date_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return buf;
}

std::string canonical_request(request const& r, scope const& s, std::string_view session_token) {
    auto [lines, names] = canonical_headers(r, s, session_token);
    return r.method + "\n" + canonical_uri(r.path) + "\n" + canonical_query(r.query) + "\n" + lines + "\n" + names + "\n" +
           sha256_hex(r.body);
}

std::string string_to_sign(std::string_view canonical, scope const& s) {
    return "AWS4-HMAC-SHA256\n" + s.amz_date + "\n" + credential_scope(s) + "\n" + sha256_hex(canonical);
}

namespace {
std::string signing_key(std::string_view secret, scope const& s) {
    auto k = hmac("AWS4" + std::string(secret), date_of(s));
    k = hmac(k, s.region);
    k = hmac(k, s.service);
    return hmac(k, "aws4_request");
}
}  // namespace

std::string signing_key_hex(std::string_view secret, scope const& s) {
    auto k = signing_key(secret, s);
    return hex(reinterpret_cast<unsigned char const*>(k.data()), k.size());
}

std::string signature(std::string_view secret, std::string_view to_sign, scope const& s) {
    auto sig = hmac(signing_key(secret, s), to_sign);
    return hex(reinterpret_cast<unsigned char const*>(sig.data()), sig.size());
}

std::vector<std::pair<std::string, std::string>> sign(request const& r, scope const& s, credentials const& c) {
    auto canonical = canonical_request(r, s, c.session_token);
    auto names = canonical_headers(r, s, c.session_token).second;
    auto sig = signature(c.secret_access_key, string_to_sign(canonical, s), s);
    std::vector<std::pair<std::string, std::string>> out;
    out.emplace_back("X-Amz-Date", s.amz_date);
    if (!c.session_token.empty()) out.emplace_back("X-Amz-Security-Token", c.session_token);
    out.emplace_back("Authorization", "AWS4-HMAC-SHA256 Credential=" + c.access_key_id + "/" + credential_scope(s) +
                                          ", SignedHeaders=" + names + ", Signature=" + sig);
    return out;
}

}  // namespace toolgate::providers::sigv4
