// parse_config: reads the YAML once and hands each section to the parser beside its feature.
#include "gateway/config_parse.hpp"
#include "sessions/config.hpp"
#include "gateway/api/endpoint_config.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "agentloop/config.hpp"
#include "common/config_reader.hpp"
#include "gateway/mcp_front_config.hpp"
#include "gateway/policy/access.hpp"
#include "gateway/policy/cache.hpp"
#include "gateway/policy/guardrails.hpp"
#include "gateway/routing/parse.hpp"
#include "mcp/config.hpp"
#include "providers/config.hpp"

namespace toolgate::gateway {

namespace {

void parse_server(reader const& r, YAML::Node const& s, server_config& out) {
    r.check_keys(s, "server", {"listen", "max_body_bytes", "max_upload_bytes", "request_timeout", "shutdown_grace", "threads", "header_timeout",
                               "keepalive_timeout", "body_timeout", "write_timeout", "max_connections", "max_inflight"});
    if (auto n = s["listen"]) {
        auto a = parse_listen(r.str(n, "server.listen"));
        if (!a) r.fail(n, "server.listen", "must be HOST:PORT, e.g. 127.0.0.1:8080");
        out.listen = *a;
    }
    if (auto n = s["max_body_bytes"])
        out.max_body_bytes = r.integer(n, "server.max_body_bytes", 1024, 1ull << 30);
    if (auto n = s["max_upload_bytes"])
        out.max_upload_bytes = r.integer(n, "server.max_upload_bytes", 1024, 1ull << 30);
    if (auto n = s["request_timeout"]) out.request_timeout = r.duration(n, "server.request_timeout");
    if (auto n = s["shutdown_grace"]) out.shutdown_grace = r.duration(n, "server.shutdown_grace");
    if (auto n = s["threads"]) out.threads = static_cast<unsigned>(r.integer(n, "server.threads", 0, 256));
    if (auto n = s["max_connections"]) out.max_connections = r.integer(n, "server.max_connections", 1, 1'000'000);
    if (auto n = s["max_inflight"]) out.max_inflight = r.integer(n, "server.max_inflight", 1, 1'000'000);
    for (auto [key, field] : {std::pair{"header_timeout", &server_limits::header_timeout},
                              std::pair{"keepalive_timeout", &server_limits::keepalive_timeout},
                              std::pair{"body_timeout", &server_limits::body_timeout},
                              std::pair{"write_timeout", &server_limits::write_timeout}}) {
        if (auto n = s[key]) {
            auto d = r.duration(n, std::string("server.") + key);
            if (d.count() < 100) r.fail(n, std::string("server.") + key, "must be at least 100ms");
            out.*field = d;
        }
    }
}

void parse_log(reader const& r, YAML::Node const& l, log_config& out) {
    r.check_keys(l, "log", {"level", "requests"});
    if (auto n = l["level"]) {
        out.level = r.str(n, "log.level");
        static std::set<std::string> const levels{"trace", "debug", "info", "warn", "error", "off"};
        if (!levels.count(out.level)) r.fail(n, "log.level", "must be one of trace, debug, info, warn, error, off");
    }
    if (auto n = l["requests"]) out.requests = r.boolean(n, "log.requests");
}

}  // namespace

namespace {

// The sessions section, and the store it lives in: the state's SQLite file (made when there is no
// state section), its Redis, or memory.
std::shared_ptr<sessions::settings const> parse_session_section(reader const& r, YAML::Node const& n,
                                                               server_config const& server, policy::access_settings& access) {
    auto out = std::make_shared<sessions::settings>();
    sessions::parse_sessions(r, n, *out);
    if (out->store.empty()) out->store = access.redis ? "redis" : (access.persist ? "sqlite" : "memory");
    if (out->store == "redis" && !access.redis)
        r.fail(n["store"] ? n["store"] : n, "sessions.store", "redis needs a state.redis section (url, prefix) that names the server");
    if (out->store == "sqlite") {
        if (!access.persist) r.fail(n["store"], "sessions.store", "sqlite cannot go with state.persist: false");
        if (!access.sqlite) access.sqlite = state::sqlite_options{};
    }
    // A request holds its session at most as long as it may run, and a little longer.
    out->lease = server.request_timeout + std::chrono::seconds(30);
    return out;
}

gateway_config parse_sections(std::string const& yaml_text, std::string const& source, env_lookup const& env) {
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
                            "mcp_front", "aliases", "strategy", "pools", "plugins", "state", "auth", "admin", "keys",
                            "teams", "rate_limits", "budgets", "request_log", "sessions", "endpoints"});

    if (auto s = root["server"]) parse_server(r, s, cfg.server);
    if (auto l = root["log"]) parse_log(r, l, cfg.log);
    if (auto n = root["providers_from_env"]) cfg.providers_from_env = r.boolean(n, "providers_from_env");

    std::set<std::string> names;
    if (auto ps = root["providers"]) providers::parse_providers(r, ps, cfg.providers, cfg.built_providers);
    for (auto const& pc : cfg.providers) names.insert(pc.name);
    if (auto tn = root["tool_names"]) cfg.tool_prefix_mode = mcp::parse_tool_names(r, tn);
    if (auto al = root["agent_loop"]) agentloop::parse_agent_loop(r, al, cfg.agent_loop);
    if (cfg.agent_loop.loop_timeout && *cfg.agent_loop.loop_timeout >= cfg.server.request_timeout)
        r.fail(root["agent_loop"]["loop_timeout"], "agent_loop.loop_timeout",
               "must be shorter than server.request_timeout, so that a stopped loop can still answer");
    // By default the loop gets four fifths of the request's time, so it ends with an answer of its own.
    cfg.agent_loop.limits.loop_timeout = cfg.agent_loop.loop_timeout.value_or(cfg.server.request_timeout * 4 / 5);
    if (auto mf = root["mcp_front"]) parse_mcp_front(r, mf, cfg.mcp_front);
    if (auto ms = root["mcp_servers"]) cfg.mcp_servers = mcp::parse_servers(r, ms);
    if (auto pl = root["plugins"]) {
        // Relative file names in a plugin's config are read from the config file's folder.
        auto slash = source.rfind('/');
        cfg.guardrail_settings =
            policy::parse_plugins(r, pl, slash == std::string::npos ? "." : source.substr(0, slash), cfg.cache_settings);
    }

    {
        auto access = std::make_shared<policy::access_settings>();
        policy::parse_access(r, root, *access);
        if (root["sessions"]) cfg.session_settings = parse_session_section(r, root["sessions"], cfg.server, *access);
        if (auto n = root["endpoints"]) {
            auto slash = source.rfind('/');
            std::vector<std::string> servers;
            for (auto const& s : cfg.mcp_servers) servers.push_back(s.name);
            cfg.endpoints = parse_endpoints(r, n, slash == std::string::npos ? "." : source.substr(0, slash), *access,
                                            cfg.session_settings.get(), servers);
        }
        if (access->active()) cfg.access_settings = std::move(access);
    }
    if (cfg.cache_settings && cfg.cache_settings->redis && !(cfg.access_settings && cfg.access_settings->redis))
        r.fail(root["plugins"], "plugins (response-cache).config.store",
               "redis needs a state.redis section (url, prefix) that names the server");

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
            if (ep.type == "bedrock") {
                // The provider reads AWS_* itself; the access key is no bearer key. It needs the
                // secret and a region as well.
                auto secret = env("AWS_SECRET_ACCESS_KEY");
                auto region = env("AWS_REGION");
                if (!region || region->empty()) region = env("AWS_DEFAULT_REGION");
                if (!secret || secret->empty() || !region || region->empty()) continue;
                key.reset();
                boost::json::object options;
                options["region"] = *region;
                options["access_key_id"] = *env("AWS_ACCESS_KEY_ID");
                options["secret_access_key"] = *secret;
                if (auto token = env("AWS_SESSION_TOKEN"); token && !token->empty()) options["session_token"] = *token;
                pc.options = std::move(options);
            }
            if (ep.type == "vertex") {
                // The variable names the service-account key file; project and location come from
                // GOOGLE_CLOUD_PROJECT / GOOGLE_CLOUD_LOCATION (the provider reads them).
                boost::json::object options;
                options["credentials_file"] = *key;
                pc.options = std::move(options);
                key.reset();
            }
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
    auto routing = std::make_shared<routing::routing_config>(routing::parse_routing(r, root, cfg));
    routing->tool_turn_model = cfg.agent_loop.tool_turn_model;
    cfg.routing_settings = routing;
    if (!routing->tool_turn_model.empty() && routing->aliases.count(routing->tool_turn_model) == 0) {
        bool known = false;
        for (auto const& p : routing->pools) known = known || p.name == routing->tool_turn_model;
        auto const& m = routing->tool_turn_model;
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

}  // namespace

gateway_config parse_config(std::string const& yaml_text, std::string const& source, env_lookup const& env) {
    try {
        return parse_sections(yaml_text, source, env);
    } catch (YAML::Exception const& e) {
        // A node of another shape than its parser reads (the parsers check shapes; this is the net
        // under them): still a config error with its line, never an exception out of start-up.
        throw config_error(e.mark.is_null() ? source + ": " + e.msg : source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
    }
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
