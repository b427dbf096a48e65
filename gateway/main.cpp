// toolgate: the process. Command line, config, logging, signals; the rest lives in app/server.
#include <CLI/CLI.hpp>
#include <boost/system/system_error.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <csignal>
#include <iostream>
#include <mutex>
#include <thread>

#include <climits>
#include <cstdlib>
#include <unistd.h>

#include "gateway/app.hpp"
#include "gateway/config_parse.hpp"
#include "gateway/policy/access.hpp"
#include "gateway/policy/cache.hpp"
#include "gateway/routing/config.hpp"
#include "gateway/demo_mcp_server.hpp"
#include "gateway/mcp_front.hpp"
#include "gateway/mcp_login.hpp"
#include "gateway/mcp_tokens.hpp"
#include "gateway/log_sink.hpp"
#include "gateway/server.hpp"
#include "gateway/api/endpoint_config.hpp"
#include "sessions/session.hpp"

using namespace toolgate::gateway;

namespace {

void setup_logging(std::string const& level) {
    // Two sinks: a pattern is set per sink, and access lines are bare JSON.
    auto main_log = std::make_shared<spdlog::logger>("toolgate", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    main_log->set_pattern("[%Y-%m-%dT%H:%M:%S.%eZ] [%l] %v", spdlog::pattern_time_type::utc);
    auto access = std::make_shared<spdlog::logger>("access", std::make_shared<buffered_fd_sink>(2));
    access->set_pattern("%v");
    auto lvl = spdlog::level::from_str(level);
    main_log->set_level(lvl);
    access->set_level(lvl == spdlog::level::off ? lvl : spdlog::level::info);
    spdlog::drop_all();
    spdlog::register_logger(access);
    spdlog::set_default_logger(main_log);
}

// Flushes the buffered access log every 100 ms until destroyed (then once more).
class periodic_flusher {
public:
    periodic_flusher()
        : thread_([this] {
              std::unique_lock lock(mu_);
              while (!cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stop_; }))
                  if (auto l = spdlog::get("access")) l->flush();
          }) {}
    ~periodic_flusher() {
        {
            std::lock_guard lock(mu_);
            stop_ = true;
        }
        cv_.notify_one();
        thread_.join();
        if (auto l = spdlog::get("access")) l->flush();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

void print_summary(gateway_config const& cfg) {
    for (auto const& p : cfg.providers) {
        std::string models;
        for (auto const& m : p.models) models += (models.empty() ? "" : ", ") + m;
        bool from_env = std::find(cfg.env_provider_names.begin(), cfg.env_provider_names.end(), p.name) !=
                        cfg.env_provider_names.end();
        spdlog::info("provider '{}' type {}{}{}", p.name, p.type, from_env ? " (from environment)" : "",
                     models.empty() ? std::string(", serves any model routed to it") : ", models: " + models);
    }
}

// What check-config found about keys, limits, budgets and where their state goes.
void print_access(gateway_config const& cfg) {
    if (!cfg.access_settings) return;
    auto const& a = *cfg.access_settings;
    std::cout << "  keys: " << a.keys.size() << " from the config";
    if (!a.admin_token.empty()) std::cout << ", more through the admin API (/admin/keys)";
    std::cout << "; auth " << (a.auth_required.value_or(!a.keys.empty() || !a.admin_token.empty()) ? "required" : "optional")
              << "\n";
    for (auto const& k : a.keys) {
        std::cout << "    " << k.name << (k.team.empty() ? "" : " (team " + k.team + ")");
        for (std::size_t i = 0; i < toolgate::gateway::policy::limit_fields.size(); ++i)
            if (k.limits[i] > 0) std::cout << " " << toolgate::gateway::policy::limit_fields[i].name << "=" << k.limits[i];
        if (k.budget.daily_usd > 0) std::cout << " daily_usd=" << k.budget.daily_usd;
        if (k.budget.monthly_usd > 0) std::cout << " monthly_usd=" << k.budget.monthly_usd;
        std::cout << "\n";
    }
    if (!a.rules.empty()) std::cout << "  rate_limits: " << a.rules.size() << " rule(s) besides keys and teams\n";
    std::cout << "  state: counters in " << (a.redis ? "redis" : "memory") << ", spend and admin keys in "
              << (a.redis ? "redis" : a.sqlite ? "sqlite " + a.sqlite->path : "memory (lost at restart)");
    if (a.log_enabled)
        std::cout << ", request log in "
                  << (a.log_postgres ? std::string("postgres")
                      : a.log_in_memory || !a.sqlite ? std::string("memory")
                                                     : "sqlite " + a.sqlite->path);
    std::cout << "\n";
}

// What check-config says of the response cache: what is matched, where it is kept, for how long.
void print_cache(gateway_config const& cfg) {
    if (!cfg.cache_settings) return;
    using cs = toolgate::gateway::policy::cache_settings;
    auto const& c = *cfg.cache_settings;
    auto whose = c.whose == cs::scope::key ? "each key answers only itself"
                 : c.whose == cs::scope::team ? "keys of one team share answers"
                                              : "every caller shares answers";
    std::cout << "  response cache: " << (c.how == cs::mode::semantic ? "semantic" : "exact") << ", "
              << (c.redis ? std::string("in redis (shared by replicas)")
                          : "in memory (" + std::to_string(c.max_bytes >> 20) + " MiB, least recently used out first)")
              << ", ttl " << std::chrono::duration_cast<std::chrono::seconds>(c.ttl).count() << "s; " << whose << "\n";
    if (c.how == cs::mode::semantic)
        std::cout << "    semantic: the last user message compared by " << c.semantic.embedding_model << " at cosine >= "
                  << c.semantic.threshold << ", conversations of at most " << c.semantic.max_messages
                  << " message(s); everything else must match exactly\n";
}

// What check-config says of AI endpoints: the config's, and whether more can be made at run time.
void print_endpoints(gateway_config const& cfg) {
    bool admin = cfg.access_settings && !cfg.access_settings->admin_token.empty();
    if (cfg.endpoints.empty() && !admin) return;
    std::cout << "  endpoints: " << cfg.endpoints.size() << " from the config";
    for (std::size_t i = 0; i < cfg.endpoints.size(); ++i)
        std::cout << (i == 0 ? " (" : ", ") << cfg.endpoints[i]->slug << (i + 1 == cfg.endpoints.size() ? ")" : "");
    if (admin) {
        auto const& a = *cfg.access_settings;
        std::cout << ", more through the admin API (/admin/endpoints), kept in "
                  << (a.redis ? "redis (shared by replicas)" : a.sqlite ? "sqlite " + a.sqlite->path : "memory (lost at restart)");
    }
    std::cout << "\n";
}

// What check-config says of sessions: where they are kept and how long, and what happens when full.
void print_sessions(gateway_config const& cfg) {
    if (!cfg.session_settings) return;
    auto const& s = *cfg.session_settings;
    auto path = cfg.access_settings && cfg.access_settings->sqlite ? cfg.access_settings->sqlite->path : std::string();
    std::cout << "  sessions: in "
              << (s.store == "redis"    ? std::string("redis (shared by replicas)")
                  : s.store == "sqlite" ? "sqlite " + path
                                        : std::string("memory (lost at restart)"))
              << ", idle ttl " << std::chrono::duration_cast<std::chrono::seconds>(s.lim.ttl).count() << "s, "
              << (s.lim.max_messages ? "at most " + std::to_string(s.lim.max_messages) + " messages" : std::string("no message limit"))
              << (s.lim.max_tokens ? ", " + std::to_string(s.lim.max_tokens) + " tokens" : std::string())
              << ", when full: " << toolgate::sessions::to_string(s.lim.when_full)
              << (s.create_on_use ? "; an unknown x-session-id starts one" : "; only POST /v1/sessions starts one") << "\n";
}

// What check-config found in the routing sections, so a user sees how names will resolve.
void print_routing(gateway_config const& cfg) {
    auto const& rc = cfg.routing();
    for (auto const& [alias, to] : rc.aliases) std::cout << "  alias " << alias << " -> " << to << "\n";
    auto pool = [](toolgate::gateway::routing::pool_config const& p, std::string const& what) {
        std::cout << "  " << what << " (" << toolgate::gateway::routing::to_string(p.strategy.how) << "):";
        for (auto const& t : p.targets) {
            std::cout << " " << t.provider << (t.model.empty() ? "" : "/" + t.model);
            if (t.retry.attempts > 1) std::cout << " [" << t.retry.attempts << " attempts]";
            if (!t.breaker) std::cout << " [no breaker]";
        }
        std::cout << "\n";
    };
    if (rc.default_pool) pool(*rc.default_pool, "default pool (every model that names no pool or provider/)");
    for (auto const& p : rc.pools) pool(p, "pool '" + p.name + "'");
    if (!rc.tool_turn_model.empty()) std::cout << "  turns after tool results -> " << rc.tool_turn_model << "\n";
}

// What check-config says of the MCP servers behind OAuth: how their tokens are obtained.
void print_mcp_auth(gateway_config const& cfg) {
    for (auto const& s : cfg.mcp_servers) {
        if (!s.oauth) continue;
        auto const& o = *s.oauth;
        std::cout << "  mcp server '" << s.name << "': oauth, ";
        if (o.flow == toolgate::mcp::oauth_options::grant::client_credentials) {
            std::cout << "client credentials (" << (o.private_key ? "private_key_jwt" : "client secret") << ")\n";
            continue;
        }
        if (o.flow == toolgate::mcp::oauth_options::grant::enterprise) {
            std::cout << "enterprise-managed (ID token exchanged at " << o.idp_token_endpoint << ", then a JWT bearer grant)\n";
            continue;
        }
        auto redirect = o.redirect_uri.empty() ? default_redirect_uri(cfg.server.listen) : o.redirect_uri;
        std::cout << "authorization code; client: "
                  << (!o.client_id.empty()              ? "pre-registered"
                      : !o.client_metadata_url.empty() ? "metadata document, else dynamic registration"
                                                       : "dynamic registration")
                  << "; redirect " << (redirect.empty() ? "(unknown: set auth.redirect_uri)" : redirect)
                  << "; authorize with GET /admin/mcp/servers/" << s.name << "/authorize or toolgate mcp-login\n";
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    CLI::App cli{"toolgate " TOOLGATE_VERSION
                 " - an OpenAI-compatible, MCP-centric agent gateway.\n"
                 "Clients keep their OpenAI SDK and point base_url at http://HOST:PORT/v1."};
    cli.set_version_flag("--version", std::string("toolgate ") + TOOLGATE_VERSION);
    cli.require_subcommand(1);
    cli.footer(
        "Examples:\n"
        "  toolgate serve --config examples/gateway.yaml\n"
        "  toolgate serve --config gateway.yaml --listen 0.0.0.0:8080\n"
        "  toolgate check-config --config gateway.yaml\n"
        "  toolgate mcp-stdio --config gateway.yaml   (all MCP servers as one, on stdin/stdout)\n"
        "  toolgate demo-mcp-server        (an MCP server on stdio, used by the default config)\n"
        "  toolgate mcp-login --config gateway.yaml tickets   (OAuth to an MCP server, from a terminal)\n"
        "Environment: OPENAI_API_KEY, MISTRAL_API_KEY, GROQ_API_KEY, ... enable those providers without config.");

    std::string config_path;
    std::string listen_override;
    auto* serve = cli.add_subcommand("serve", "Run the gateway until SIGTERM/SIGINT");
    serve->add_option("-c,--config", config_path, "YAML config file")->required()->check(CLI::ExistingFile);
    serve->add_option("-l,--listen", listen_override, "HOST:PORT to listen on (overrides server.listen; port 0 picks a free one)");

    auto* check = cli.add_subcommand("check-config", "Validate a config file and exit (1 on error)");
    check->add_option("-c,--config", config_path, "YAML config file")->required();

    auto* demo = cli.add_subcommand("demo-mcp-server",
                                    "Serve the demo tools (get_current_time, add, echo) as an MCP server on stdio");

    auto* stdio = cli.add_subcommand("mcp-stdio",
                                     "Serve every configured MCP server's tools, resources and prompts as one MCP server "
                                     "on stdin/stdout (for IDEs that spawn a command); logs go to stderr");
    stdio->add_option("config,-c,--config", config_path, "YAML config file (also positional: toolgate mcp-stdio FILE)")
        ->required()
        ->check(CLI::ExistingFile);

    std::string login_server;
    auto* login = cli.add_subcommand("mcp-login",
                                     "Authorize toolgate at an OAuth-protected MCP server of the config: prints the URL to "
                                     "open, waits for the browser to come back to the redirect URI, keeps the tokens");
    login->add_option("-c,--config", config_path, "YAML config file")->required()->check(CLI::ExistingFile);
    login->add_option("server", login_server, "The MCP server's name in mcp_servers")->required();

    CLI11_PARSE(cli, argc, argv);
    if (demo->parsed()) return run_demo_mcp_server();

    // Configs can start the demo MCP server (or anything else shipped with toolgate) as
    // "${TOOLGATE_BIN}": this very binary unless the environment says otherwise.
    char self[PATH_MAX];
    if (auto n = ::readlink("/proc/self/exe", self, sizeof self - 1); n > 0) {
        self[n] = '\0';
        ::setenv("TOOLGATE_BIN", self, 0);
    }

    setup_logging("info");
    gateway_config cfg;
    try {
        cfg = load_config(config_path, process_env());
        if (!listen_override.empty()) {
            auto a = parse_listen(listen_override);
            if (!a) throw config_error("--listen: must be HOST:PORT, e.g. 127.0.0.1:8080");
            cfg.server.listen = *a;
        }
    } catch (config_error const& e) {
        std::cerr << "toolgate: config error: " << e.what() << "\n";
        return 1;
    }

    if (stdio->parsed()) {
        setup_logging(cfg.log.level == "info" ? "warn" : cfg.log.level);  // stderr only; stdout is the protocol's
        return run_mcp_stdio(cfg);
    }

    if (login->parsed()) {
        setup_logging("warn");
        return run_mcp_login(cfg, login_server);
    }

    if (check->parsed()) {
        std::cout << config_path << ": OK (" << cfg.providers.size() << " provider(s))\n";
        print_routing(cfg);
        print_access(cfg);
        print_cache(cfg);
        print_sessions(cfg);
        print_endpoints(cfg);
        print_mcp_auth(cfg);
        return 0;
    }

    setup_logging(cfg.log.level);
    if (cfg.log.level == "off") cfg.log.requests = false;
    try {
        auto app = make_app(cfg);
        server_options so;
        static_cast<server_limits&>(so) = cfg.server;
        so.host = cfg.server.listen.host;
        so.port = cfg.server.listen.port;
        so.threads = cfg.server.threads;
        server srv(so, *app);
        periodic_flusher flusher;
        std::uint16_t port = 0;
        try {
            port = srv.bind();
        } catch (boost::system::system_error const& e) {
            spdlog::error("cannot listen on {}: {}", cfg.server.listen.to_string(), e.code().message());
            return 1;
        } catch (std::exception const& e) {
            spdlog::error("cannot listen on {}: {}", cfg.server.listen.to_string(), e.what());
            return 1;
        }
        print_summary(cfg);
        auto host = cfg.server.listen.host.find(':') != std::string::npos ? "[" + cfg.server.listen.host + "]"
                                                                         : cfg.server.listen.host;
        srv.run([&] {
            spdlog::info("toolgate {} listening on http://{}:{} ({} threads); OpenAI base_url: http://{}:{}/v1",
                         TOOLGATE_VERSION, host, port, cfg.server.threads, host, port);
        });
        spdlog::info("stopped");
    } catch (std::exception const& e) {
        spdlog::error("fatal: {}", e.what());
        return 1;
    }
    return 0;
}
