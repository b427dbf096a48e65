#include "mcp/config.hpp"

#include <set>

namespace toolgate::mcp {

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
                      "circuit_breaker", "ping_interval", "client_features", "max_client_sessions"});
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
            for (char const* k : {"headers", "transport"})
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
