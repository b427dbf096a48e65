#include "gateway/config.hpp"

#include <boost/json/value.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/duration.hpp"
#include "gateway/config_reader.hpp"
#include "gateway/routing/parse.hpp"

namespace toolgate::gateway {

namespace json = boost::json;

std::string listen_address::to_string() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

std::optional<listen_address> parse_listen(std::string const& text) {
    listen_address a;
    std::string port_text;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
        a.host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos) return std::nullopt;
        a.host = text.substr(0, colon);
        if (a.host.find(':') != std::string::npos) return std::nullopt;
        port_text = text.substr(colon + 1);
    }
    if (a.host.empty()) a.host = "127.0.0.1";
    if (port_text.empty() || port_text.size() > 5) return std::nullopt;
    unsigned port = 0;
    for (char c : port_text) {
        if (c < '0' || c > '9') return std::nullopt;
        port = port * 10 + unsigned(c - '0');
    }
    if (port > 65535) return std::nullopt;
    a.port = static_cast<std::uint16_t>(port);
    return a;
}

env_lookup process_env() {
    return [](std::string const& name) -> std::optional<std::string> {
        if (char const* v = std::getenv(name.c_str())) return std::string(v);
        return std::nullopt;
    };
}

std::string expand_env(std::string const& text, env_lookup const& env) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '$' && i + 1 < text.size() && text[i + 1] == '$') {
            out.push_back('$');
            ++i;
            continue;
        }
        if (c == '$' && i + 1 < text.size() && text[i + 1] == '{') {
            auto close = text.find('}', i + 2);
            if (close == std::string::npos) throw config_error("unterminated ${...} in '" + text + "'");
            std::string inner = text.substr(i + 2, close - i - 2);
            std::string name = inner, fallback;
            bool has_fallback = false;
            if (auto p = inner.find(":-"); p != std::string::npos) {
                name = inner.substr(0, p);
                fallback = inner.substr(p + 2);
                has_fallback = true;
            }
            if (name.empty()) throw config_error("empty variable name in '" + text + "'");
            for (char n : name)
                if (!(std::isalnum(static_cast<unsigned char>(n)) || n == '_'))
                    throw config_error("invalid variable name '" + name + "'");
            auto v = env(name);
            if (v && !v->empty()) out += *v;
            else if (has_fallback) out += fallback;
            i = close;
            continue;
        }
        out.push_back(c);
    }
    return out;
}


gateway_config parse_config(std::string const& yaml_text, std::string const& source, env_lookup const& env) {
    YAML::Node root;
    try {
        root = YAML::Load(yaml_text);
    } catch (YAML::Exception const& e) {
        throw config_error(source + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
    }
    gateway_config cfg;
    reader r(source, env);
    if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
    r.check_keys(root, "", {"server", "log", "providers", "providers_from_env", "mcp_servers", "tool_names", "agent_loop",
                            "mcp_front", "aliases", "strategy", "pools"});

    if (auto s = root["server"]) {
        r.check_keys(s, "server", {"listen", "max_body_bytes", "request_timeout", "shutdown_grace", "threads", "header_timeout",
                                   "keepalive_timeout", "body_timeout", "write_timeout"});
        if (auto n = s["listen"]) {
            auto a = parse_listen(r.str(n, "server.listen"));
            if (!a) r.fail(n, "server.listen", "must be HOST:PORT, e.g. 127.0.0.1:8080");
            cfg.server.listen = *a;
        }
        if (auto n = s["max_body_bytes"])
            cfg.server.max_body_bytes = r.integer(n, "server.max_body_bytes", 1024, 1ull << 30);
        if (auto n = s["request_timeout"]) cfg.server.request_timeout = r.duration(n, "server.request_timeout");
        if (auto n = s["shutdown_grace"]) cfg.server.shutdown_grace = r.duration(n, "server.shutdown_grace");
        if (auto n = s["threads"]) cfg.server.threads = static_cast<unsigned>(r.integer(n, "server.threads", 0, 256));
        for (auto [key, field] : {std::pair{"header_timeout", &server_limits::header_timeout},
                                  std::pair{"keepalive_timeout", &server_limits::keepalive_timeout},
                                  std::pair{"body_timeout", &server_limits::body_timeout},
                                  std::pair{"write_timeout", &server_limits::write_timeout}}) {
            if (auto n = s[key]) {
                auto d = r.duration(n, std::string("server.") + key);
                if (d.count() < 100) r.fail(n, std::string("server.") + key, "must be at least 100ms");
                cfg.server.*field = d;
            }
        }
    }
    if (auto l = root["log"]) {
        r.check_keys(l, "log", {"level", "requests"});
        if (auto n = l["level"]) {
            cfg.log.level = r.str(n, "log.level");
            static std::set<std::string> const levels{"trace", "debug", "info", "warn", "error", "off"};
            if (!levels.count(cfg.log.level)) r.fail(n, "log.level", "must be one of trace, debug, info, warn, error, off");
        }
        if (auto n = l["requests"]) cfg.log.requests = r.boolean(n, "log.requests");
    }
    if (auto n = root["providers_from_env"]) cfg.providers_from_env = r.boolean(n, "providers_from_env");

    std::set<std::string> names;
    if (auto ps = root["providers"]) {
        if (!ps.IsSequence()) r.fail(ps, "providers", "must be a list");
        std::size_t i = 0;
        for (auto const& p : ps) {
            std::string path = "providers[" + std::to_string(i++) + "]";
            if (!p.IsMap()) r.fail(p, path, "must be a mapping");
            providers::provider_config pc;
            static std::set<std::string> const common{"name",    "type",       "base_url",      "api_key",
                                                      "models",  "headers",    "timeout",       "connect_timeout",
                                                      "prices",  "max_tokens", "default_model", "api_keys"};
            json::object options;
            std::set<std::string> seen;
            for (auto const& kv : p) {
                auto key = kv.first.as<std::string>();
                if (!seen.insert(key).second) r.fail(kv.first, path + "." + key, "duplicate key");
                if (!common.count(key)) {
                    // Type-specific keys are checked by the provider itself, below.
                    options[key] = r.to_json(kv.second, path + "." + key);
                }
            }
            if (!p["name"]) r.fail(p, path, "'name' is required");
            pc.name = r.str(p["name"], path + ".name");
            if (!valid_name(pc.name)) r.fail(p["name"], path + ".name", "must match [a-z0-9_-]{1,64}");
            if (!names.insert(pc.name).second) r.fail(p["name"], path + ".name", "duplicate provider name '" + pc.name + "'");
            if (!p["type"]) r.fail(p, path, "'type' is required (openai, azure-openai, anthropic, google or scripted)");
            pc.type = r.str(p["type"], path + ".type");
            if (auto n = p["base_url"]) pc.base_url = r.str(n, path + ".base_url");
            if (auto n = p["api_key"]) pc.api_key = r.str(n, path + ".api_key");
            if (auto n = p["api_keys"]) {
                // Secondary credentials: a 401/403 or 429 moves the same target to the next key.
                if (!n.IsSequence() || n.size() == 0) r.fail(n, path + ".api_keys", "must be a non-empty list of keys");
                if (p["api_key"]) r.fail(n, path + ".api_keys", "give either api_key or api_keys, not both");
                for (auto const& k : n) {
                    auto key = r.str(k, path + ".api_keys");
                    if (key.empty()) r.fail(k, path + ".api_keys", "a key must not be empty (is its variable set?)");
                    pc.api_keys.push_back(std::move(key));
                }
                pc.api_key = pc.api_keys.front();
            }
            if (auto n = p["models"]) {
                if (!n.IsSequence()) r.fail(n, path + ".models", "must be a list of model names");
                for (auto const& m : n) {
                    auto name = r.str(m, path + ".models");
                    if (name.empty()) r.fail(m, path + ".models", "model names must not be empty");
                    pc.models.push_back(name);
                }
            }
            if (auto n = p["headers"]) {
                if (!n.IsMap()) r.fail(n, path + ".headers", "must be a mapping of header names to values");
                for (auto const& kv : n) {
                    auto k = kv.first.as<std::string>();
                    auto v = r.str(kv.second, path + ".headers." + k);
                    if (k.find_first_of(":\r\n ") != std::string::npos || v.find_first_of("\r\n") != std::string::npos)
                        r.fail(kv.first, path + ".headers." + k, "invalid header");
                    pc.headers[k] = v;
                }
            }
            if (auto n = p["timeout"]) pc.timeout = r.duration(n, path + ".timeout");
            if (auto n = p["connect_timeout"]) pc.connect_timeout = r.duration(n, path + ".connect_timeout");
            if (auto n = p["max_tokens"]) pc.max_tokens = static_cast<std::int64_t>(r.integer(n, path + ".max_tokens", 1, 10'000'000));
            if (auto n = p["default_model"]) pc.default_model = r.str(n, path + ".default_model");
            if (auto n = p["prices"]) {
                if (!n.IsMap()) r.fail(n, path + ".prices", "must map model names to {input, output} USD per million tokens");
                for (auto const& kv : n) {
                    auto model = kv.first.as<std::string>();
                    auto mp = path + ".prices." + model;
                    r.check_keys(kv.second, mp, {"input", "output"});
                    providers::model_price price;
                    if (auto x = kv.second["input"]) price.input = r.number(x, mp + ".input", 0, 1e6);
                    if (auto x = kv.second["output"]) price.output = r.number(x, mp + ".output", 0, 1e6);
                    pc.prices[model] = price;
                }
            }
            pc.options = std::move(options);
            if (pc.type == "scripted" && pc.models.empty()) pc.models.push_back("toolgate-demo");
            try {
                // Validates the type-specific settings now, not at first use; the gateway uses this
                // instance (providers are built once).
                cfg.built_providers.push_back(providers::make_provider(pc));
            } catch (std::invalid_argument const& e) {
                r.fail(p, path, e.what());
            }
            cfg.providers.push_back(std::move(pc));
        }
    }

    if (auto tn = root["tool_names"]) {
        r.check_keys(tn, "tool_names", {"prefix_mode"});
        if (auto n = tn["prefix_mode"]) {
            auto m = r.str(n, "tool_names.prefix_mode");
            if (m == "always") cfg.tool_prefix_mode = mcp::prefix_mode::always;
            else if (m == "conditional") cfg.tool_prefix_mode = mcp::prefix_mode::conditional;
            else if (m == "never") cfg.tool_prefix_mode = mcp::prefix_mode::never;
            else r.fail(n, "tool_names.prefix_mode", "must be always, conditional or never");
        }
    }

    if (auto al = root["agent_loop"]) {
        r.check_keys(al, "agent_loop", {"inject_tools", "max_iterations", "tool_timeout", "loop_timeout",
                                        "max_tool_calls_per_turn", "max_parallel_tools", "max_tool_result_bytes",
                                        "max_total_tokens", "max_cost_usd", "keepalive_interval", "tool_turn_model"});
        auto& l = cfg.agent_loop.limits;
        if (auto n = al["inject_tools"]) cfg.agent_loop.inject_tools = r.boolean(n, "agent_loop.inject_tools");
        if (auto n = al["max_iterations"]) l.max_iterations = static_cast<unsigned>(r.integer(n, "agent_loop.max_iterations", 1, 1000));
        if (auto n = al["tool_timeout"]) l.tool_timeout = r.duration(n, "agent_loop.tool_timeout");
        if (auto n = al["loop_timeout"]) {
            l.loop_timeout = r.duration(n, "agent_loop.loop_timeout");
            cfg.agent_loop.loop_timeout_set = true;
        }
        if (auto n = al["max_tool_calls_per_turn"])
            l.max_tool_calls_per_turn = static_cast<unsigned>(r.integer(n, "agent_loop.max_tool_calls_per_turn", 1, 1000));
        if (auto n = al["max_parallel_tools"])
            l.max_parallel_tools = static_cast<unsigned>(r.integer(n, "agent_loop.max_parallel_tools", 1, 256));
        if (auto n = al["max_tool_result_bytes"])
            l.max_tool_result_bytes = r.integer(n, "agent_loop.max_tool_result_bytes", 256, 64u << 20);
        if (auto n = al["max_total_tokens"])
            l.max_total_tokens = static_cast<std::int64_t>(r.integer(n, "agent_loop.max_total_tokens", 0, 1ull << 40));
        if (auto n = al["max_cost_usd"]) l.max_cost_usd = r.number(n, "agent_loop.max_cost_usd", 0, 1e6);
        if (auto n = al["tool_turn_model"]) cfg.routing.tool_turn_model = r.str(n, "agent_loop.tool_turn_model");
        if (auto n = al["keepalive_interval"]) l.keepalive_interval = r.duration(n, "agent_loop.keepalive_interval");
        if (l.keepalive_interval.count() < 100) r.fail(al, "agent_loop.keepalive_interval", "must be at least 100ms");
        if (cfg.agent_loop.loop_timeout_set && l.loop_timeout >= cfg.server.request_timeout)
            r.fail(al["loop_timeout"], "agent_loop.loop_timeout",
                   "must be shorter than server.request_timeout, so that a stopped loop can still answer");
    }
    // By default the loop gets four fifths of the request's time, so it ends with an answer of its own.
    if (!cfg.agent_loop.loop_timeout_set) cfg.agent_loop.limits.loop_timeout = cfg.server.request_timeout * 4 / 5;

    if (auto mf = root["mcp_front"]) {
        r.check_keys(mf, "mcp_front", {"enabled", "path", "allowed_origins", "allowed_hosts", "session_idle_timeout",
                                       "max_sessions", "page_size", "bearer_token", "keys"});
        auto& f = cfg.mcp_front;
        auto strings = [&](YAML::Node const& n, std::string const& path) {
            std::vector<std::string> out;
            if (!n.IsSequence()) r.fail(n, path, "must be a list of strings");
            for (auto const& x : n) out.push_back(r.str(x, path));
            return out;
        };
        if (auto n = mf["enabled"]) f.enabled = r.boolean(n, "mcp_front.enabled");
        if (auto n = mf["path"]) {
            f.path = r.str(n, "mcp_front.path");
            if (f.path.empty() || f.path[0] != '/' || f.path.starts_with("/v1/") || f.path == "/health" || f.path == "/metrics")
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

    if (auto ms = root["mcp_servers"]) {
        if (!ms.IsSequence()) r.fail(ms, "mcp_servers", "must be a list");
        std::set<std::string> server_names;
        std::size_t i = 0;
        for (auto const& m : ms) {
            std::string path = "mcp_servers[" + std::to_string(i++) + "]";
            r.check_keys(m, path, {"name", "command", "args", "env", "cwd", "url", "headers", "transport", "allowed_tools",
                                   "denied_tools", "timeout", "max_concurrency", "max_queue", "required",
                                   "max_result_bytes", "circuit_breaker", "ping_interval", "client_features",
                                   "max_client_sessions"});
            mcp::server_config sc;
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
                    for (auto const& kv : n) out[kv.first.as<std::string>()] = r.str(kv.second, path + "." + key);
                }
                return out;
            };
            bool has_cmd = static_cast<bool>(m["command"]), has_url = static_cast<bool>(m["url"]);
            if (has_cmd == has_url) r.fail(m, path, "needs exactly one of 'command' (stdio) or 'url' (HTTP)");
            if (has_cmd) {
                mcp::stdio_options so;
                so.command = r.str(m["command"], path + ".command");
                if (so.command.empty()) r.fail(m["command"], path + ".command", "must not be empty");
                so.args = list("args");
                so.env = map("env");
                if (auto n = m["cwd"]) so.cwd = r.str(n, path + ".cwd");
                for (char const* k : {"headers", "transport"})
                    if (m[k]) r.fail(m[k], path + "." + k, "only applies to HTTP servers (url)");
                sc.stdio = std::move(so);
            } else {
                mcp::http_options ho;
                ho.url = r.str(m["url"], path + ".url");
                if (ho.url.rfind("http://", 0) != 0 && ho.url.rfind("https://", 0) != 0)
                    r.fail(m["url"], path + ".url", "must be an http:// or https:// URL");
                ho.headers = map("headers");
                if (auto n = m["transport"]) {
                    auto t = r.str(n, path + ".transport");
                    if (t == "streamable-http") ho.kind = mcp::http_options::mode::streamable_http;
                    else if (t == "sse") ho.kind = mcp::http_options::mode::sse;
                    else if (t == "auto") ho.kind = mcp::http_options::mode::automatic;
                    else r.fail(n, path + ".transport", "must be streamable-http, sse or auto");
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
                    r.fail(m["client_features"], path + ".client_features", "'" + f + "' is not one of sampling, elicitation, roots");
            sc.allowed_tools = list("allowed_tools");
            sc.denied_tools = list("denied_tools");
            if (auto n = m["timeout"]) sc.timeout = r.duration(n, path + ".timeout");
            // The session's own deadline decides; the HTTP read deadline is only a backstop.
            if (sc.http) sc.http->read_timeout = sc.timeout + std::chrono::seconds(5);
            if (auto n = m["max_concurrency"]) sc.max_concurrency = static_cast<unsigned>(r.integer(n, path + ".max_concurrency", 1, 1024));
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
            cfg.mcp_servers.push_back(std::move(sc));
        }
    }

    if (cfg.providers_from_env) {
        for (auto const& ep : providers::env_providers()) {
            if (names.count(std::string(ep.name))) continue;
            std::optional<std::string> key;
            if (!ep.key_env.empty()) {
                key = env(std::string(ep.key_env));
                if (!key || key->empty()) continue;
            }
            std::string base_url(ep.base_url);
            if (!ep.base_url_env.empty()) {
                auto url = env(std::string(ep.base_url_env));
                if (url && !url->empty()) base_url = *url;
                else if (ep.key_env.empty() || ep.base_url.empty()) continue;  // that variable is what enables it
            }
            if (ep.key_env.empty() && ep.base_url_env.empty()) continue;
            providers::provider_config pc;
            pc.name = std::string(ep.name);
            pc.type = std::string(ep.type);
            pc.base_url = base_url;
            if (key) pc.api_key = *key;
            if (ep.name == "vllm") {
                if (auto k = env("VLLM_API_KEY")) pc.api_key = *k;
            }
            try {
                cfg.built_providers.push_back(providers::make_provider(pc));
            } catch (std::invalid_argument const& e) {
                throw config_error("provider '" + pc.name + "' from the environment: " + e.what());
            }
            names.insert(pc.name);
            cfg.env_provider_names.push_back(pc.name);
            cfg.providers.push_back(std::move(pc));
        }
    }
    routing::parse_routing(r, root, cfg);
    if (!cfg.routing.tool_turn_model.empty() && cfg.routing.aliases.count(cfg.routing.tool_turn_model) == 0) {
        bool known = false;
        for (auto const& p : cfg.routing.pools) known = known || p.name == cfg.routing.tool_turn_model;
        auto const& m = cfg.routing.tool_turn_model;
        if (!known && m.find('/') != std::string::npos) {
            auto prefix = m.substr(0, m.find('/'));
            for (auto const& p : cfg.providers) known = known || p.name == prefix;
            if (!known) r.fail(root["agent_loop"]["tool_turn_model"], "agent_loop.tool_turn_model",
                               "'" + m + "' names provider '" + prefix + "', which is not configured");
        }
    }
    if (cfg.server.threads == 0) cfg.server.threads = std::max(1u, std::thread::hardware_concurrency());
    return cfg;
}

gateway_config load_config(std::string const& path, env_lookup const& env) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw config_error(path + ": cannot open the config file");
    std::ostringstream ss;
    ss << in.rdbuf();
    auto text = ss.str();
    if (text.size() > (4u << 20)) throw config_error(path + ": config file larger than 4 MiB");
    return parse_config(text, path, env);
}

}  // namespace toolgate::gateway
