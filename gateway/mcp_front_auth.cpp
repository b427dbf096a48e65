#include "gateway/mcp_front_auth.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <spdlog/spdlog.h>

#include <mutex>
#include <set>
#include <sstream>

#include "common/http_client.hpp"
#include "common/jwt.hpp"
#include "mcp/oauth.hpp"

namespace toolgate::gateway {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

using clock_type = std::chrono::steady_clock;
constexpr auto keys_lifetime = std::chrono::minutes(10);
constexpr auto refetch_pause = std::chrono::seconds(30);
constexpr std::size_t max_token_bytes = 16 * 1024;

std::string no_slash(std::string s) {
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
}

std::string text(json::object const& o, std::string_view k) {
    auto const* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::optional<std::int64_t> number(json::object const& o, std::string_view k) {
    auto const* v = o.if_contains(k);
    if (!v) return std::nullopt;
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
    if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
    return std::nullopt;
}

token_check refuse(int status, std::string error, std::string description) {
    token_check c;
    c.status = status;
    c.error = std::move(error);
    c.description = std::move(description);
    return c;
}

// The token's scopes: "scope" (space-separated, RFC 9068) or "scp" (a list, as some issuers send).
std::set<std::string> scopes_of(json::object const& claims) {
    std::set<std::string> out;
    std::istringstream in(text(claims, "scope"));
    for (std::string w; in >> w;) out.insert(w);
    if (auto const* v = claims.if_contains("scp"); v && v->is_array())
        for (auto const& s : v->get_array())
            if (s.is_string()) out.emplace(s.get_string());
    return out;
}

std::string all_scopes(mcp_front_oauth const& cfg) {
    std::string s;
    for (auto const& [scope, tools] : cfg.scopes_to_tools) s += (s.empty() ? "" : " ") + scope;
    return s;
}

}  // namespace

token_check check_claims(json::object const& claims, mcp_front_oauth const& cfg, std::int64_t now) {
    if (no_slash(text(claims, "iss")) != no_slash(cfg.issuer)) return refuse(401, "invalid_token", "the token is from another issuer");
    bool ours = false;
    if (auto const* aud = claims.if_contains("aud")) {
        if (aud->is_string()) ours = no_slash(std::string(aud->get_string())) == no_slash(cfg.audience);
        else if (aud->is_array())
            for (auto const& a : aud->get_array())
                ours = ours || (a.is_string() && no_slash(std::string(a.get_string())) == no_slash(cfg.audience));
    }
    if (!ours) return refuse(401, "invalid_token", "the token is for another audience");
    auto skew = cfg.clock_skew.count();
    auto exp = number(claims, "exp");
    if (!exp) return refuse(401, "invalid_token", "the token has no expiry");
    if (*exp + skew <= now) return refuse(401, "invalid_token", "the token has expired");
    if (auto nbf = number(claims, "nbf"); nbf && *nbf - skew > now) return refuse(401, "invalid_token", "the token is not valid yet");
    auto scopes = scopes_of(claims);
    mcp_front_key id;
    id.name = "oauth:" + text(claims, "sub");
    std::vector<std::string> tools;
    bool granted = false, all = false;
    for (auto const& [scope, patterns] : cfg.scopes_to_tools) {
        if (!scopes.count(scope)) continue;
        granted = true;
        for (auto const& p : patterns) {
            if (p == "*") all = true;
            tools.push_back(p);
        }
    }
    if (!granted) return refuse(403, "insufficient_scope", "the token has none of the scopes that grant tools here");
    if (!all) id.tools = std::move(tools);
    token_check ok;
    ok.identity = std::move(id);
    return ok;
}

struct token_verifier::impl {
    mcp_front_oauth cfg;
    std::mutex mu;
    std::vector<jwt::public_key> keys;
    clock_type::time_point fetched{};
    clock_type::time_point tried{};
    std::shared_ptr<asio::ssl::context> tls = http::make_verifying_tls_context();

    std::optional<jwt::public_key> find(std::string const& kid, std::string const& alg) {
        std::lock_guard lock(mu);
        for (auto const& k : keys)
            if (k.alg == alg && (kid.empty() || k.kid == kid)) return k;
        return std::nullopt;
    }

    // Whether to ask the issuer for its keys now: never fetched, stale, or a kid we do not know
    // (at most every 30 s, so a flood of forged kids cannot make us hammer the issuer).
    bool due(bool missing) {
        std::lock_guard lock(mu);
        auto now = clock_type::now();
        bool stale = keys.empty() || now - fetched > keys_lifetime;
        if (!(stale || missing) || now - tried < refetch_pause) return false;
        tried = now;
        return true;
    }
};

token_verifier::token_verifier(mcp_front_oauth cfg) : impl_(std::make_shared<impl>()) { impl_->cfg = std::move(cfg); }
token_verifier::~token_verifier() = default;

bool token_verifier::looks_like_jwt(std::string_view t) {
    auto dots = std::count(t.begin(), t.end(), '.');
    return dots == 2 && t.size() > 20 && t.rfind("ey", 0) == 0;
}

namespace {

asio::awaitable<boost::system::result<http::response>> get(http::client& c, std::string const& url) {
    http::timeouts t;
    t.connect = std::chrono::seconds(5);
    t.read = std::chrono::seconds(5);
    co_return co_await http::get_json(c, url, t);
}

std::string failure_text(boost::system::result<http::response> const& r) {
    return r ? "HTTP " + std::to_string(r->status) : r.error().message();
}

// The issuer's JWK set: jwks_uri, else from its metadata. Empty on failure (logged).
asio::awaitable<std::vector<jwt::public_key>> fetch_keys(std::shared_ptr<token_verifier::impl> self) {
    auto ex = co_await asio::this_coro::executor;
    http::client c(ex, self->tls);
    auto uri = self->cfg.jwks_uri;
    if (uri.empty()) {
        for (auto const& url : mcp::oauth::server_metadata_urls(self->cfg.issuer)) {
            auto r = co_await get(c, url);
            if (!r || r->status != 200) continue;
            auto md = mcp::oauth::parse_server_metadata(r->body);
            if (md && !md->jwks_uri.empty()) {
                uri = md->jwks_uri;
                break;
            }
        }
    }
    std::vector<jwt::public_key> keys;
    if (uri.empty()) {
        spdlog::warn("[mcp_front] the issuer {} names no jwks_uri in its metadata", self->cfg.issuer);
        co_return keys;
    }
    if (uri.rfind("https://", 0) != 0 && !mcp::oauth::is_loopback_url(uri) && !self->cfg.allow_insecure_http) {
        spdlog::warn("[mcp_front] the issuer's jwks_uri {} is not https", uri);
        co_return keys;
    }
    auto r = co_await get(c, uri);
    if (!r || r->status != 200) {
        spdlog::warn("[mcp_front] the issuer's JWK set at {} could not be read: {}", uri, failure_text(r));
        co_return keys;
    }
    keys = jwt::parse_jwks(r->body);
    if (keys.empty()) spdlog::warn("[mcp_front] the JWK set at {} has no usable key (RS256, ES256, EdDSA)", uri);
    co_return keys;
}

struct header_fields {
    std::string alg, kid;
    bool ok = false;
};

header_fields read_header(std::string const& header_json) {
    header_fields h;
    boost::system::error_code ec;
    auto v = json::parse(header_json, ec);
    if (ec || !v.is_object()) return h;
    h.alg = text(v.get_object(), "alg");
    h.kid = text(v.get_object(), "kid");
    h.ok = true;
    return h;
}

std::optional<json::object> read_claims(std::string const& claims_json) {
    boost::system::error_code ec;
    auto v = json::parse(claims_json, ec);
    if (ec || !v.is_object()) return std::nullopt;
    return std::move(v.get_object());
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

asio::awaitable<token_check> token_verifier::verify(std::string token) {
    auto self = impl_;
    if (token.size() > max_token_bytes) co_return refuse(401, "invalid_token", "the token is too long");
    auto d = jwt::decode(token);
    if (!d) co_return refuse(401, "invalid_token", "the token is not a JWT");
    auto h = read_header(d->header_json);
    if (!h.ok) co_return refuse(401, "invalid_token", "the token's header is not JSON");
    if (h.alg != "RS256" && h.alg != "ES256" && h.alg != "EdDSA")
        co_return refuse(401, "invalid_token", "the token's algorithm is not accepted (RS256, ES256, EdDSA)");
    auto key = self->find(h.kid, h.alg);
    // An unknown key id, or the periodic refresh (rotation).
    if (self->due(!key)) {
        auto fresh = co_await fetch_keys(self);
        std::lock_guard lock(self->mu);
        if (!fresh.empty()) {
            self->keys = std::move(fresh);
            self->fetched = clock_type::now();
        }
    }
    if (!key) key = self->find(h.kid, h.alg);
    if (!key) co_return refuse(401, "invalid_token", "the token was not signed by a key of the issuer");
    if (!jwt::verify(*key, h.alg, *d)) co_return refuse(401, "invalid_token", "the token's signature is not valid");
    auto claims = read_claims(d->claims_json);
    if (!claims) co_return refuse(401, "invalid_token", "the token's claims are not JSON");
    co_return check_claims(*claims, self->cfg, unix_now());
}

std::string resource_metadata_url(mcp_front_oauth const& cfg) {
    auto u = mcp::oauth::split_url(cfg.audience);
    if (!u) return "/.well-known/oauth-protected-resource";
    return u->origin + "/.well-known/oauth-protected-resource" + u->path;
}

std::string unauthorized_challenge(mcp_front_config const& cfg) {
    if (!cfg.oauth) return "Bearer";
    return "Bearer resource_metadata=\"" + resource_metadata_url(*cfg.oauth) + "\"";
}

std::string token_verifier::metadata_url() const { return resource_metadata_url(impl_->cfg); }

std::string token_verifier::challenge(token_check const& c) const {
    std::string h = "Bearer resource_metadata=\"" + metadata_url() + "\"";
    if (!c.error.empty()) h += ", error=\"" + c.error + "\", error_description=\"" + c.description + "\"";
    if (c.status == 403) h += ", scope=\"" + all_scopes(impl_->cfg) + "\"";
    return h;
}

std::string token_verifier::metadata_json() const {
    auto const& cfg = impl_->cfg;
    json::object o;
    o["resource"] = cfg.audience;
    json::array servers;
    servers.emplace_back(cfg.issuer);
    o["authorization_servers"] = std::move(servers);
    json::array scopes;
    for (auto const& [scope, tools] : cfg.scopes_to_tools) scopes.emplace_back(scope);
    o["scopes_supported"] = std::move(scopes);
    json::array methods;
    methods.emplace_back("header");
    o["bearer_methods_supported"] = std::move(methods);
    o["resource_name"] = "toolgate";
    return json::serialize(o);
}

}  // namespace toolgate::gateway
