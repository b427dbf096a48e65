#include "mcp/config.hpp"

#include <fstream>
#include <set>
#include <sstream>

#include "common/jwt.hpp"
#include "common/text.hpp"
#include "mcp/oauth.hpp"

namespace toolgate::mcp {

namespace {

// `auth:` of an HTTP server: a static bearer token (into `headers`), or OAuth.
std::optional<oauth_options> parse_auth(reader const& r, YAML::Node const& a, std::string const& path,
                                        std::map<std::string, std::string>& headers) {
    if (!a.IsMap()) r.fail(a, path, "must be a mapping with 'type: oauth' or 'type: bearer'");
    if (!a["type"]) r.fail(a, path, "'type' is required: oauth or bearer");
    auto type = r.str(a["type"], path + ".type");
    if (type == "bearer") {
        r.check_keys(a, path, {"type", "token"});
        if (!a["token"]) r.fail(a, path, "'token' is required for type: bearer");
        auto token = r.str(a["token"], path + ".token");
        if (token.empty()) r.fail(a["token"], path + ".token", "must not be empty");
        headers["Authorization"] = "Bearer " + token;
        return std::nullopt;
    }
    if (type != "oauth") r.fail(a["type"], path + ".type", "must be oauth or bearer");
    r.check_keys(a, path,
                 {"type", "flow", "client_id", "client_secret", "client_metadata_url", "private_key", "private_key_file",
                  "token_endpoint_auth", "scopes", "redirect_uri", "max_step_ups", "timeout", "allow_insecure_http",
                  "idp_token_endpoint", "idp_client_id", "id_token", "id_token_file"});
    oauth_options o;
    if (auto n = a["flow"]) {
        auto f = r.str(n, path + ".flow");
        if (f == "authorization_code") o.flow = oauth_options::grant::authorization_code;
        else if (f == "client_credentials") o.flow = oauth_options::grant::client_credentials;
        else if (f == "enterprise") o.flow = oauth_options::grant::enterprise;
        else r.fail(n, path + ".flow", "must be authorization_code, client_credentials or enterprise");
    }
    if (auto n = a["client_id"]) o.client_id = r.str(n, path + ".client_id");
    if (auto n = a["client_secret"]) o.client_secret = r.str(n, path + ".client_secret");
    if (auto n = a["client_metadata_url"]) {
        o.client_metadata_url = r.str(n, path + ".client_metadata_url");
        if (o.client_metadata_url.rfind("https://", 0) != 0)
            r.fail(n, path + ".client_metadata_url", "must be an https:// URL (the client ID metadata document)");
    }
    std::string pem;
    if (auto n = a["private_key"]) pem = r.str(n, path + ".private_key");
    if (auto n = a["private_key_file"]) {
        if (!pem.empty()) r.fail(n, path + ".private_key_file", "and private_key cannot both be set");
        auto file = r.str(n, path + ".private_key_file");
        std::ifstream in(file);
        if (!in) r.fail(n, path + ".private_key_file", "cannot read '" + file + "'");
        std::stringstream ss;
        ss << in.rdbuf();
        pem = ss.str();
    }
    if (!pem.empty()) {
        auto where = a["private_key"] ? a["private_key"] : a["private_key_file"];
        try {
            o.private_key = jwt::read_private_key(pem);
        } catch (std::exception const&) {
            r.fail(where, path + ".private_key", "is not a PEM private key");
        }
        if (jwt::algorithm_for(o.private_key.get()).empty())
            r.fail(where, path + ".private_key", "must be an RSA or a P-256 EC key (RS256, ES256)");
    }
    if (auto n = a["token_endpoint_auth"]) {
        o.token_auth = oauth::parse_client_auth(r.str(n, path + ".token_endpoint_auth"));
        if (!o.token_auth)
            r.fail(n, path + ".token_endpoint_auth", "must be client_secret_basic, client_secret_post, none or private_key_jwt");
        if (*o.token_auth == oauth::client_auth::private_key_jwt && !o.private_key)
            r.fail(n, path + ".token_endpoint_auth", "private_key_jwt needs private_key or private_key_file");
        if ((*o.token_auth == oauth::client_auth::secret_basic || *o.token_auth == oauth::client_auth::secret_post) &&
            o.client_secret.empty())
            r.fail(n, path + ".token_endpoint_auth", "needs client_secret");
    }
    if (auto n = a["scopes"]) {
        if (!n.IsSequence()) r.fail(n, path + ".scopes", "must be a list of strings");
        for (auto const& x : n) o.scopes.push_back(r.str(x, path + ".scopes"));
    }
    if (auto n = a["max_step_ups"]) o.max_step_ups = static_cast<unsigned>(r.integer(n, path + ".max_step_ups", 0, 10));
    if (auto n = a["timeout"]) o.timeout = r.duration(n, path + ".timeout");
    if (auto n = a["allow_insecure_http"]) o.allow_insecure_http = r.boolean(n, path + ".allow_insecure_http");
    if (auto n = a["redirect_uri"]) {
        o.redirect_uri = r.str(n, path + ".redirect_uri");
        if (!oauth::split_url(o.redirect_uri)) r.fail(n, path + ".redirect_uri", "must be an http(s) URL");
        // The code travels in it: https, or a loopback address (OAuth 2.1 §8.4.2).
        if (o.redirect_uri.rfind("https://", 0) != 0 && !oauth::is_loopback_url(o.redirect_uri) && !o.allow_insecure_http)
            r.fail(n, path + ".redirect_uri", "must be https, or http on a loopback address (allow_insecure_http: true permits it)");
    }
    if (o.flow == oauth_options::grant::client_credentials) {
        if (o.client_id.empty()) r.fail(a, path, "flow: client_credentials needs client_id");
        if (o.client_secret.empty() && !o.private_key)
            r.fail(a, path, "flow: client_credentials needs client_secret or a private key (private_key_jwt)");
    }
    if (!o.client_secret.empty() && o.client_id.empty()) r.fail(a, path, "client_secret without client_id");
    if (auto n = a["idp_token_endpoint"]) {
        o.idp_token_endpoint = r.str(n, path + ".idp_token_endpoint");
        if (!oauth::split_url(o.idp_token_endpoint)) r.fail(n, path + ".idp_token_endpoint", "must be an http(s) URL");
        if (o.idp_token_endpoint.rfind("https://", 0) != 0 && !oauth::is_loopback_url(o.idp_token_endpoint) && !o.allow_insecure_http)
            r.fail(n, path + ".idp_token_endpoint", "must be https (plain http only on loopback, or with allow_insecure_http: true)");
    }
    if (auto n = a["idp_client_id"]) o.idp_client_id = r.str(n, path + ".idp_client_id");
    if (auto n = a["id_token"]) o.id_token = r.str(n, path + ".id_token");
    if (auto n = a["id_token_file"]) o.id_token_file = r.str(n, path + ".id_token_file");
    if (o.flow == oauth_options::grant::enterprise) {
        if (o.client_id.empty() || (o.client_secret.empty() && !o.private_key))
            r.fail(a, path, "flow: enterprise needs client_id and client_secret (or a private key) at the server's authorization server");
        if (o.idp_token_endpoint.empty()) r.fail(a, path, "flow: enterprise needs idp_token_endpoint (where the ID token is exchanged)");
        if (o.id_token.empty() == o.id_token_file.empty()) r.fail(a, path, "flow: enterprise needs exactly one of id_token or id_token_file");
    } else {
        for (char const* k : {"idp_token_endpoint", "idp_client_id", "id_token", "id_token_file"})
            if (a[k]) r.fail(a[k], path + "." + k, "only applies to flow: enterprise");
    }
    return o;
}

}  // namespace

std::vector<server_config> parse_servers(reader const& r, YAML::Node const& ms) {
    std::vector<server_config> out;
    if (!ms.IsSequence()) r.fail(ms, "mcp_servers", "must be a list");
    std::set<std::string> server_names;
    std::size_t i = 0;
    for (auto const& m : ms) {
        std::string path = "mcp_servers[" + std::to_string(i++) + "]";
        r.check_keys(m, path,
                     {"name", "command", "args", "env", "cwd", "url", "headers", "transport", "allowed_tools",
                      "denied_tools", "timeout", "max_concurrency", "max_queue", "required", "max_result_bytes",
                      "circuit_breaker", "ping_interval", "client_features", "max_client_sessions", "auth"});
        server_config sc;
        if (!m["name"]) r.fail(m, path, "'name' is required");
        sc.name = r.str(m["name"], path + ".name");
        if (!valid_name(sc.name)) r.fail(m["name"], path + ".name", "must match [a-z0-9_-]{1,64}");
        if (!server_names.insert(sc.name).second)
            r.fail(m["name"], path + ".name", "duplicate MCP server name '" + sc.name + "'");
        auto list = [&](char const* key) {
            std::vector<std::string> out;
            if (auto n = m[key]) {
                if (!n.IsSequence()) r.fail(n, path + "." + key, "must be a list of strings");
                for (auto const& x : n) out.push_back(r.str(x, path + "." + key));
            }
            return out;
        };
        auto map = [&](char const* key) {
            std::map<std::string, std::string> out;
            if (auto n = m[key]) {
                if (!n.IsMap()) r.fail(n, path + "." + key, "must be a mapping");
                for (auto const& kv : n) out[r.key(kv.first, path + "." + key)] = r.str(kv.second, path + "." + key);
            }
            return out;
        };
        bool has_cmd = static_cast<bool>(m["command"]), has_url = static_cast<bool>(m["url"]);
        if (has_cmd == has_url) r.fail(m, path, "needs exactly one of 'command' (stdio) or 'url' (HTTP)");
        if (has_cmd) {
            stdio_options so;
            so.command = r.str(m["command"], path + ".command");
            if (so.command.empty()) r.fail(m["command"], path + ".command", "must not be empty");
            so.args = list("args");
            so.env = map("env");
            if (auto n = m["cwd"]) so.cwd = r.str(n, path + ".cwd");
            for (char const* k : {"headers", "transport", "auth"})
                if (m[k]) r.fail(m[k], path + "." + k, "only applies to HTTP servers (url)");
            sc.stdio = std::move(so);
        } else {
            http_options ho;
            ho.url = r.str(m["url"], path + ".url");
            if (ho.url.rfind("http://", 0) != 0 && ho.url.rfind("https://", 0) != 0)
                r.fail(m["url"], path + ".url", "must be an http:// or https:// URL");
            ho.headers = map("headers");
            if (auto n = m["transport"]) {
                auto t = r.str(n, path + ".transport");
                if (t == "streamable-http")
                    ho.kind = http_options::mode::streamable_http;
                else if (t == "sse")
                    ho.kind = http_options::mode::sse;
                else if (t == "auto")
                    ho.kind = http_options::mode::automatic;
                else
                    r.fail(n, path + ".transport", "must be streamable-http, sse or auto");
            }
            for (char const* k : {"args", "env", "cwd"})
                if (m[k]) r.fail(m[k], path + "." + k, "only applies to stdio servers (command)");
            if (auto a = m["auth"]) {
                if (ho.kind == http_options::mode::sse && a["type"] && a["type"].IsScalar() && a["type"].Scalar() == "oauth")
                    r.fail(m["transport"], path + ".transport",
                           "sse (the legacy transport) cannot go with auth type oauth: use streamable-http or auto");
                for (auto const& [k, v] : ho.headers)
                    if (ascii_lower(k) == "authorization")
                        r.fail(a, path + ".auth", "and an Authorization header in 'headers' cannot both be set");
                sc.oauth = parse_auth(r, a, path + ".auth", ho.headers);
            }
            sc.http = std::move(ho);
        }
        if (m["client_features"]) sc.client_features = list("client_features");
        if (auto n = m["max_client_sessions"])
            sc.max_client_sessions = static_cast<unsigned>(r.integer(n, path + ".max_client_sessions", 0, 10000));
        for (auto const& f : sc.client_features)
            if (f != "sampling" && f != "elicitation" && f != "roots")
                r.fail(m["client_features"], path + ".client_features",
                       "'" + f + "' is not one of sampling, elicitation, roots");
        sc.allowed_tools = list("allowed_tools");
        sc.denied_tools = list("denied_tools");
        if (auto n = m["timeout"]) sc.timeout = r.duration(n, path + ".timeout");
        // The session's own deadline decides; the HTTP read deadline is only a backstop.
        if (sc.http) sc.http->read_timeout = sc.timeout + std::chrono::seconds(5);
        if (auto n = m["max_concurrency"])
            sc.max_concurrency = static_cast<unsigned>(r.integer(n, path + ".max_concurrency", 1, 1024));
        if (auto n = m["max_queue"]) sc.max_queue = static_cast<unsigned>(r.integer(n, path + ".max_queue", 0, 100000));
        if (auto n = m["required"]) sc.required = r.boolean(n, path + ".required");
        if (auto n = m["max_result_bytes"])
            sc.max_result_bytes = r.integer(n, path + ".max_result_bytes", 1024, 256u << 20);
        if (auto n = m["ping_interval"]) sc.ping_interval = r.duration(n, path + ".ping_interval");
        if (auto cb = m["circuit_breaker"]) {
            r.check_keys(cb, path + ".circuit_breaker", {"failures", "open_for"});
            if (auto n = cb["failures"])
                sc.breaker_failures = static_cast<unsigned>(r.integer(n, path + ".circuit_breaker.failures", 1, 1000));
            if (auto n = cb["open_for"]) sc.breaker_open = r.duration(n, path + ".circuit_breaker.open_for");
        }
        out.push_back(std::move(sc));
    }
    return out;
}

prefix_mode parse_tool_names(reader const& r, YAML::Node const& tn) {
    r.check_keys(tn, "tool_names", {"prefix_mode"});
    if (auto n = tn["prefix_mode"]) {
        auto m = r.str(n, "tool_names.prefix_mode");
        if (m == "always")
            return prefix_mode::always;
        else if (m == "conditional")
            return prefix_mode::conditional;
        else if (m == "never")
            return prefix_mode::never;
        else
            r.fail(n, "tool_names.prefix_mode", "must be always, conditional or never");
    }
    return prefix_mode::always;
}

}  // namespace toolgate::mcp
