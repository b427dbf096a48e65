#include "gateway/mcp_front_config.hpp"

#include "mcp/oauth.hpp"

namespace toolgate::gateway {

namespace {

bool secure_or_loopback(std::string const& url, bool allow_http) {
    return url.rfind("https://", 0) == 0 || allow_http || mcp::oauth::is_loopback_url(url);
}

mcp_front_oauth parse_front_oauth(reader const& r, YAML::Node const& a) {
    if (!a.IsMap()) r.fail(a, "mcp_front.auth", "must be a mapping with type: oauth");
    r.check_keys(a, "mcp_front.auth", {"type", "issuer", "audience", "jwks_uri", "scopes_to_tools", "clock_skew", "allow_insecure_http"});
    if (!a["type"] || r.str(a["type"], "mcp_front.auth.type") != "oauth")
        r.fail(a, "mcp_front.auth.type", "must be oauth (static bearer keys go in mcp_front.keys)");
    mcp_front_oauth o;
    if (auto n = a["allow_insecure_http"]) o.allow_insecure_http = r.boolean(n, "mcp_front.auth.allow_insecure_http");
    auto url = [&](char const* key, bool required) {
        std::string path = std::string("mcp_front.auth.") + key;
        if (!a[key]) {
            if (required) r.fail(a, path, "is required");
            return std::string();
        }
        auto v = r.str(a[key], path);
        if (!mcp::oauth::split_url(v)) r.fail(a[key], path, "must be an http(s) URL");
        if (!secure_or_loopback(v, o.allow_insecure_http))
            r.fail(a[key], path, "must be https (plain http only on loopback, or with allow_insecure_http: true)");
        return v;
    };
    o.issuer = url("issuer", true);
    o.audience = url("audience", true);
    o.jwks_uri = url("jwks_uri", false);
    if (auto n = a["clock_skew"]) {
        auto d = r.duration(n, "mcp_front.auth.clock_skew");
        if (d > std::chrono::minutes(5)) r.fail(n, "mcp_front.auth.clock_skew", "must be at most 5m");
        o.clock_skew = std::chrono::duration_cast<std::chrono::seconds>(d);
    }
    if (auto m = a["scopes_to_tools"]) {
        if (!m.IsMap()) r.fail(m, "mcp_front.auth.scopes_to_tools", "must map scopes to lists of tool names or prefixes");
        for (auto const& kv : m) {
            auto scope = r.key(kv.first, "mcp_front.auth.scopes_to_tools");
            auto path = "mcp_front.auth.scopes_to_tools." + scope;
            if (!kv.second.IsSequence()) r.fail(kv.second, path, "must be a list of tool names or prefixes (\"docs__*\", \"*\")");
            std::vector<std::string> tools;
            for (auto const& t : kv.second) tools.push_back(r.str(t, path));
            o.scopes_to_tools.emplace_back(scope, std::move(tools));
        }
    }
    if (o.scopes_to_tools.empty())
        r.fail(a, "mcp_front.auth.scopes_to_tools", "is required: which scopes grant which tools (\"*\" for all)");
    return o;
}

}  // namespace

void parse_mcp_front(reader const& r, YAML::Node const& mf, mcp_front_config& f) {
    r.check_keys(mf, "mcp_front",
                 {"enabled", "path", "allowed_origins", "allowed_hosts", "session_idle_timeout", "max_sessions",
                  "page_size", "bearer_token", "keys", "auth"});
    auto strings = [&](YAML::Node const& n, std::string const& path) {
        std::vector<std::string> out;
        if (!n.IsSequence()) r.fail(n, path, "must be a list of strings");
        for (auto const& x : n) out.push_back(r.str(x, path));
        return out;
    };
    if (auto n = mf["enabled"]) f.enabled = r.boolean(n, "mcp_front.enabled");
    if (auto n = mf["path"]) {
        f.path = r.str(n, "mcp_front.path");
        if (f.path.empty() || f.path[0] != '/' || f.path.starts_with("/v1/") || f.path == "/health" ||
            f.path == "/metrics")
            r.fail(n, "mcp_front.path", "must start with / and not clash with the gateway's own routes");
    }
    if (auto n = mf["allowed_origins"]) f.allowed_origins = strings(n, "mcp_front.allowed_origins");
    if (auto n = mf["allowed_hosts"]) f.allowed_hosts = strings(n, "mcp_front.allowed_hosts");
    if (auto n = mf["session_idle_timeout"]) f.session_idle_timeout = r.duration(n, "mcp_front.session_idle_timeout");
    if (auto n = mf["max_sessions"]) f.max_sessions = r.integer(n, "mcp_front.max_sessions", 1, 1'000'000);
    if (auto n = mf["page_size"]) f.page_size = r.integer(n, "mcp_front.page_size", 1, 10'000);
    if (auto n = mf["bearer_token"]) {
        auto token = r.str(n, "mcp_front.bearer_token");
        if (token.size() < 16) r.fail(n, "mcp_front.bearer_token", "must be at least 16 characters");
        f.keys.push_back({"default", token, std::nullopt});
    }
    if (auto a = mf["auth"]) f.oauth = parse_front_oauth(r, a);
    if (auto ks = mf["keys"]) {
        if (!ks.IsSequence()) r.fail(ks, "mcp_front.keys", "must be a list");
        std::size_t i = 0;
        for (auto const& k : ks) {
            std::string path = "mcp_front.keys[" + std::to_string(i++) + "]";
            r.check_keys(k, path, {"name", "key", "tools"});
            mcp_front_key key;
            if (!k["name"] || !k["key"]) r.fail(k, path, "needs a name and a key");
            key.name = r.str(k["name"], path + ".name");
            key.key = r.str(k["key"], path + ".key");
            if (key.key.size() < 16) r.fail(k["key"], path + ".key", "must be at least 16 characters");
            if (auto t = k["tools"]) key.tools = strings(t, path + ".tools");
            f.keys.push_back(std::move(key));
        }
    }
}

}  // namespace toolgate::gateway
