#include "mcp/oauth.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse.hpp>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <stdexcept>

#include "common/text.hpp"

namespace toolgate::mcp::oauth {

namespace json = boost::json;

namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

std::string text(json::object const& o, std::string_view key) {
    auto const* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::vector<std::string> strings(json::object const& o, std::string_view key) {
    std::vector<std::string> out;
    if (auto const* v = o.if_contains(key); v && v->is_array())
        for (auto const& x : v->get_array())
            if (x.is_string()) out.emplace_back(x.get_string());
    return out;
}

std::optional<json::object> object_of(std::string_view body) {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    if (ec || !v.is_object()) return std::nullopt;
    return std::move(v.get_object());
}

std::vector<std::string> words(std::string_view s) {
    std::vector<std::string> out;
    std::istringstream in{std::string(s)};
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

std::string percent_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (unreserved(c)) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

}  // namespace

challenge parse_challenge(std::string_view h) {
    challenge c;
    h = trim(h);
    if (h.size() < 6 || ascii_lower(h.substr(0, 6)) != "bearer") return c;
    c.bearer = true;
    std::size_t i = 6;
    while (i < h.size()) {
        while (i < h.size() && (is_space(h[i]) || h[i] == ',')) ++i;
        auto eq = h.find('=', i);
        if (eq == std::string_view::npos) break;
        auto name = ascii_lower(trim(h.substr(i, eq - i)));
        i = eq + 1;
        while (i < h.size() && is_space(h[i])) ++i;
        std::string value;
        if (i < h.size() && h[i] == '"') {
            for (++i; i < h.size() && h[i] != '"'; ++i) {
                if (h[i] == '\\' && i + 1 < h.size()) ++i;
                value += h[i];
            }
            ++i;  // the closing quote
        } else {
            while (i < h.size() && h[i] != ',' && !is_space(h[i])) value += h[i++];
        }
        if (name == "error") c.error = value;
        else if (name == "scope") c.scope = value;
        else if (name == "resource_metadata") c.resource_metadata = value;
    }
    return c;
}

std::optional<url_parts> split_url(std::string_view url) {
    auto u = boost::urls::parse_absolute_uri(url);
    if (!u) return std::nullopt;
    auto scheme = ascii_lower(u->scheme());
    if ((scheme != "http" && scheme != "https") || !u->has_authority() || u->encoded_host().empty()) return std::nullopt;
    // Credentials in a server's URL have no place in OAuth discovery, and an origin rebuilt without
    // them could read as another host ("http://a@b@c" is host "b@c" only next to its userinfo).
    if (u->has_userinfo()) return std::nullopt;
    url_parts p;
    p.origin = scheme + "://" + ascii_lower(u->encoded_host_and_port());
    auto port = u->port();
    if ((scheme == "http" && port == "80") || (scheme == "https" && port == "443"))
        p.origin = scheme + "://" + ascii_lower(u->encoded_host_address());
    p.path = std::string(u->encoded_path());
    while (p.path.size() > 1 && p.path.back() == '/') p.path.pop_back();
    if (p.path == "/") p.path.clear();
    p.query = std::string(u->encoded_query());
    return p;
}

bool is_loopback_url(std::string_view url) {
    auto u = boost::urls::parse_absolute_uri(url);
    if (!u) return false;
    if (ascii_lower(u->encoded_host()) == "localhost") return true;
    // Only an address literal is loopback ("127.evil.example" is a name like any other).
    if (u->host_type() == boost::urls::host_type::ipv4) return u->host_ipv4_address().is_loopback();
    if (u->host_type() == boost::urls::host_type::ipv6) return u->host_ipv6_address().is_loopback();
    return false;
}

std::vector<std::string> resource_metadata_urls(std::string_view server_url, std::string_view hint) {
    std::vector<std::string> out;
    if (!hint.empty() && split_url(hint)) out.emplace_back(hint);
    auto p = split_url(server_url);
    if (!p) return out;
    auto add = [&](std::string u) {
        if (std::find(out.begin(), out.end(), u) == out.end()) out.push_back(std::move(u));
    };
    if (!p->path.empty()) add(p->origin + "/.well-known/oauth-protected-resource" + p->path);
    add(p->origin + "/.well-known/oauth-protected-resource");
    return out;
}

std::vector<std::string> server_metadata_urls(std::string_view issuer) {
    auto p = split_url(issuer);
    if (!p) return {};
    if (p->path.empty())
        return {p->origin + "/.well-known/oauth-authorization-server", p->origin + "/.well-known/openid-configuration"};
    return {p->origin + "/.well-known/oauth-authorization-server" + p->path,
            p->origin + "/.well-known/openid-configuration" + p->path,
            p->origin + p->path + "/.well-known/openid-configuration"};
}

bool resource_matches(std::string_view server_url, std::string_view resource) {
    auto s = split_url(server_url);
    auto r = split_url(resource);
    if (!s || !r || s->origin != r->origin) return false;
    if (r->path.empty() || r->path == s->path) return true;
    return s->path.size() > r->path.size() && s->path.compare(0, r->path.size(), r->path) == 0 &&
           s->path[r->path.size()] == '/';
}

std::optional<resource_metadata> parse_resource_metadata(std::string_view body) {
    auto o = object_of(body);
    if (!o) return std::nullopt;
    resource_metadata m;
    m.resource = text(*o, "resource");
    m.authorization_servers = strings(*o, "authorization_servers");
    m.scopes_supported = strings(*o, "scopes_supported");
    if (m.resource.empty()) return std::nullopt;
    return m;
}

std::optional<server_metadata> parse_server_metadata(std::string_view body) {
    auto o = object_of(body);
    if (!o) return std::nullopt;
    server_metadata m;
    m.issuer = text(*o, "issuer");
    m.authorization_endpoint = text(*o, "authorization_endpoint");
    m.token_endpoint = text(*o, "token_endpoint");
    m.registration_endpoint = text(*o, "registration_endpoint");
    m.jwks_uri = text(*o, "jwks_uri");
    m.token_auth_methods = strings(*o, "token_endpoint_auth_methods_supported");
    m.grant_types = strings(*o, "grant_types_supported");
    m.code_challenge_methods = strings(*o, "code_challenge_methods_supported");
    m.scopes_supported = strings(*o, "scopes_supported");
    if (auto const* v = o->if_contains("client_id_metadata_document_supported"); v && v->is_bool())
        m.client_id_metadata_documents = v->get_bool();
    if (auto const* v = o->if_contains("authorization_response_iss_parameter_supported"); v && v->is_bool())
        m.iss_in_response = v->get_bool();
    if (m.token_endpoint.empty() || !split_url(m.token_endpoint)) return std::nullopt;
    if (!m.authorization_endpoint.empty() && !split_url(m.authorization_endpoint)) return std::nullopt;
    if (!m.registration_endpoint.empty() && !split_url(m.registration_endpoint)) m.registration_endpoint.clear();
    return m;
}

server_metadata fallback_metadata(std::string_view origin) {
    server_metadata m;
    m.issuer = std::string(origin);
    m.authorization_endpoint = m.issuer + "/authorize";
    m.token_endpoint = m.issuer + "/token";
    m.registration_endpoint = m.issuer + "/register";
    return m;
}

std::string pkce_challenge(std::string_view verifier) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<unsigned char const*>(verifier.data()), verifier.size(), digest);
    return base64(std::string_view(reinterpret_cast<char const*>(digest), sizeof digest), true);
}

pkce make_pkce() {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    unsigned char raw[64];
    if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("no randomness available");
    pkce p;
    for (unsigned char c : raw) p.verifier += alphabet[c % 66];
    p.challenge = pkce_challenge(p.verifier);
    return p;
}

std::string form_encode(std::vector<std::pair<std::string, std::string>> const& fields) {
    std::string out;
    for (auto const& [k, v] : fields) {
        if (!out.empty()) out += '&';
        out += percent_encode(k);
        out += '=';
        out += percent_encode(v);
    }
    return out;
}

std::string with_query(std::string_view base, std::vector<std::pair<std::string, std::string>> const& fields) {
    std::string out(base);
    if (fields.empty()) return out;
    out += out.find('?') == std::string::npos ? '?' : '&';
    return out + form_encode(fields);
}

std::string query_value(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        auto amp = query.find('&');
        auto part = query.substr(0, amp);
        auto eq = part.find('=');
        if (percent_decode(part.substr(0, eq)) == name)
            return eq == std::string_view::npos ? std::string() : percent_decode(part.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return {};
}

token_answer parse_token_answer(int status, std::string_view body, bool any_type) {
    token_answer t;
    auto o = object_of(body);
    if (!o) {
        t.error = "the token endpoint answered HTTP " + std::to_string(status) + " without a JSON object";
        return t;
    }
    if (status / 100 != 2 || o->contains("error")) {
        t.error = text(*o, "error");
        t.error_code = t.error;
        if (t.error.empty()) t.error = "HTTP " + std::to_string(status);
        if (auto d = text(*o, "error_description"); !d.empty()) t.error += ": " + d;
        return t;
    }
    t.access_token = text(*o, "access_token");
    t.refresh_token = text(*o, "refresh_token");
    t.scope = text(*o, "scope");
    auto type = ascii_lower(text(*o, "token_type"));
    if (t.access_token.empty()) t.error = "the token endpoint's answer has no access_token";
    else if (!any_type && !type.empty() && type != "bearer") t.error = "the token endpoint issued a '" + type + "' token, not a Bearer token";
    if (auto const* v = o->if_contains("expires_in")) {
        // Bounded at about 34 years: a larger lifetime (or a double past int64, found by the oauth
        // fuzz target) would overflow the clock arithmetic that uses it.
        constexpr std::int64_t longest = std::int64_t(1) << 30;
        if (v->is_int64() && v->get_int64() > 0) t.lifetime = std::chrono::seconds(std::min(v->get_int64(), longest));
        else if (v->is_uint64()) t.lifetime = std::chrono::seconds(static_cast<std::int64_t>(std::min<std::uint64_t>(v->get_uint64(), longest)));
        else if (v->is_double() && v->get_double() > 0)
            t.lifetime = std::chrono::seconds(v->get_double() >= double(longest) ? longest : static_cast<std::int64_t>(v->get_double()));
        else if (v->is_string()) {
            try {
                auto n = std::stoll(std::string(v->get_string()));
                if (n > 0) t.lifetime = std::chrono::seconds(std::min<std::int64_t>(n, longest));
            } catch (std::exception const&) {
            }
        }
    }
    return t;
}

std::string merge_scopes(std::string_view a, std::string_view b) {
    std::vector<std::string> out = words(a);
    for (auto& w : words(b))
        if (std::find(out.begin(), out.end(), w) == out.end()) out.push_back(std::move(w));
    std::string s;
    for (auto const& w : out) s += (s.empty() ? "" : " ") + w;
    return s;
}

bool covers(std::string_view have, std::string_view want) {
    auto h = words(have);
    std::set<std::string> set(h.begin(), h.end());
    for (auto const& w : words(want))
        if (!set.count(w)) return false;
    return true;
}

std::optional<client_auth> parse_client_auth(std::string_view name) {
    if (name == "none") return client_auth::none;
    if (name == "client_secret_basic") return client_auth::secret_basic;
    if (name == "client_secret_post") return client_auth::secret_post;
    if (name == "private_key_jwt") return client_auth::private_key_jwt;
    return std::nullopt;
}

std::string_view to_string(client_auth a) {
    switch (a) {
        case client_auth::none: return "none";
        case client_auth::secret_basic: return "client_secret_basic";
        case client_auth::secret_post: return "client_secret_post";
        case client_auth::private_key_jwt: return "private_key_jwt";
    }
    return "none";
}

client_auth choose_client_auth(std::vector<std::string> const& supported, bool have_secret, bool have_key) {
    auto offers = [&](std::string_view m) { return std::find(supported.begin(), supported.end(), m) != supported.end(); };
    if (have_key) return client_auth::private_key_jwt;
    if (have_secret) {
        if (!offers("client_secret_basic") && offers("client_secret_post")) return client_auth::secret_post;
        return client_auth::secret_basic;
    }
    return client_auth::none;
}

}  // namespace toolgate::mcp::oauth
