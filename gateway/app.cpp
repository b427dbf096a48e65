// The gateway's HTTP application: the route table, the request record, and the access log. The
// handlers live in gateway/api/, one file per route family.
#include "gateway/app.hpp"

#include <boost/json/value.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>

#include "common/ids.hpp"
#include "gateway/api/chat_plan.hpp"
#include "gateway/api/endpoint_directory.hpp"
#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/mcp_front.hpp"
#include "gateway/mcp_front_auth.hpp"
#include "common/text.hpp"
#include "mcp/jsonrpc.hpp"
#include "gateway/mcp_runtime.hpp"
#include "gateway/policy/access.hpp"
#include "gateway/policy/cache.hpp"
#include "gateway/policy/registry.hpp"
#include "gateway/routing/router.hpp"
#include "guardrails/token_estimate.hpp"
#include "sessions/hybrid.hpp"
#include "sessions/responses.hpp"
#include "sessions/service.hpp"
#include "state/doc_store.hpp"
#include "state/secret_store.hpp"
#include "state/session_store.hpp"

namespace toolgate::gateway {

namespace json = boost::json;

namespace {

// The session service on the store the config chose (config_parse.cpp made sure it exists).
std::unique_ptr<sessions::service> make_sessions(sessions::settings const& s, policy::access_runtime* access) {
    std::shared_ptr<state::session_store> store;
    auto tomb = s.tombstone.count();
    if (s.store == "redis" && access && access->redis()) store = state::make_redis_sessions(access->redis(), tomb);
    else if (s.store == "sqlite" && access && access->sqlite()) store = state::make_sqlite_sessions(access->sqlite(), tomb);
    else store = state::make_memory_sessions(tomb);
    return std::make_unique<sessions::service>(s, std::move(store),
                                               [](std::string_view text) { return guardrails::estimate_tokens(text); });
}

}  // namespace

app_state::app_state(gateway_config const& c) : cfg(c) {
    if (cfg.access_settings) access = std::make_unique<policy::access_runtime>(*cfg.access_settings);
    // Upstream OAuth tokens live in the state's SQLite file when it has one.
    std::shared_ptr<state::secret_store> secrets;
    if (access && access->sqlite()) secrets = state::make_sqlite_secrets(access->sqlite());
    mcp = std::make_unique<mcp_runtime>(cfg, true, std::move(secrets));
    if (cfg.mcp_front.enabled) front = std::make_unique<mcp_front>(cfg, mcp->aggregator());
    if (cfg.mcp_front.enabled && cfg.mcp_front.oauth) mcp_oauth = std::make_unique<token_verifier>(*cfg.mcp_front.oauth);
    providers = cfg.built_providers;
    std::vector<providers::provider*> raw;
    for (auto& p : providers) raw.push_back(p.get());
    router = std::make_unique<routing::router>(cfg.routing(), raw);
    if (cfg.cache_settings) {
        cache = std::make_unique<policy::cache_runtime>(
            *cfg.cache_settings, access ? access->redis() : nullptr,
            [r = router.get()](turn_context const& ctx) { return r->route_identity(ctx); },
            [this](turn_context& parent, std::string const& model, std::string const& text, cancel_token& cancel) {
                return api::embed_text(*this, parent, model, text, cancel);
            });
    }
    filter_inputs in{cfg, routing::make_router_filter(*router), access.get(),
                     [r = router.get()](turn_context const& ctx) { return r->quote(ctx); }, cache.get()};
    chat_pipeline = std::make_unique<turn_pipeline>(build_filters(in, turn_kind::chat));
    embeddings_pipeline = std::make_unique<turn_pipeline>(build_filters(in, turn_kind::embeddings));
    if (cfg.session_settings) sessions = make_sessions(*cfg.session_settings, access.get());
    {
        // Endpoints made through the admin API live where its keys do (Redis, SQLite, memory).
        std::shared_ptr<state::doc_store> docs;
        if (access && access->key_store()) {
            if (access->redis()) docs = state::make_redis_docs(access->redis(), "endpoints");
            else if (access->sqlite()) docs = state::make_sqlite_docs(access->sqlite(), "endpoints");
            else docs = state::make_memory_docs();
        }
        endpoint_context ctx;
        ctx.session_defaults = cfg.session_settings.get();
        for (auto const& s : cfg.mcp_servers) ctx.mcp_servers.push_back(s.name);
        endpoints = std::make_unique<endpoint_directory>(cfg.endpoints, std::move(docs), std::move(ctx));
    }
    {
        // Stored responses (previous_response_id) live where sessions do; without a sessions
        // section in Redis when the state has one (replicas continue each other's responses), else
        // in the state's SQLite file, else in memory. They last as long as an idle session (24 h).
        std::shared_ptr<state::session_store> store;
        auto tomb = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::minutes(1)).count();
        auto const* ss = cfg.session_settings.get();
        std::string kind = "memory";
        if (ss) kind = ss->store;
        else if (access && access->redis()) kind = "redis";
        else if (access && access->sqlite()) kind = "sqlite";
        if (kind == "redis" && access && access->redis()) store = state::make_redis_sessions(access->redis(), tomb);
        else if (kind == "sqlite" && access && access->sqlite()) store = state::make_sqlite_sessions(access->sqlite(), tomb);
        else store = state::make_memory_sessions(tomb);
        responses = std::make_unique<sessions::response_store>(std::move(store), ss ? ss->lim.ttl : std::chrono::hours(24));
    }
    hybrid = std::make_unique<sessions::hybrid_turns>(access && access->redis() ? state::make_redis_cache(access->redis(), "hybrid:")
                                                                                : nullptr);
    access_log = spdlog::get("access");
    log = spdlog::default_logger();
    api::build_models_cache(*this);
}

app_state::~app_state() = default;

mcp::aggregator& app_state::aggregator() { return mcp->aggregator(); }

std::shared_ptr<injected_catalog const> app_state::injected() {
    auto snap = aggregator().snapshot();
    std::lock_guard lock(injected_mu_);
    if (!injected_ || injected_->source != snap) {
        auto fresh = std::make_shared<injected_catalog>();
        fresh->source = snap;
        for (auto const& t : snap->tools) fresh->definitions.push_back(openai_tool(t));
        injected_ = std::move(fresh);
    }
    return injected_;
}

json::array app_state::routing_health() const { return router->health(); }
std::string app_state::routing_metrics() const { return router->metrics(); }

namespace {

using clock_type = std::chrono::steady_clock;
using handler_fn = asio::awaitable<void> (*)(api_request&);

// The route table. A pattern's `{name}` matches one path segment, `{name*}` the rest of the path.
// `v1`: the route is also served without its /v1 prefix (OpenAI clients configured either way).
struct route {
    std::string_view pattern;
    std::string_view method;
    handler_fn handler;
    bool v1 = true;
    bool counted = true;  // in the request metrics
    bool keyed = true;    // needs a virtual key when auth is required (admin routes check admin.token)
};

constexpr std::array<route, 52> routes{{
    {"/v1/chat/completions", "POST", &api::chat_completions},
    {"/v1/embeddings", "POST", &api::embeddings},
    {"/v1/messages", "POST", &api::messages},
    {"/v1/images/generations", "POST", &api::image_generations},
    {"/v1/images/edits", "POST", &api::image_edits},
    {"/v1/images/variations", "POST", &api::image_variations},
    {"/v1/audio/transcriptions", "POST", &api::audio_transcriptions},
    {"/v1/audio/translations", "POST", &api::audio_translations},
    {"/v1/audio/speech", "POST", &api::audio_speech},
    {"/v1/completions", "POST", &api::completions},
    {"/v1/moderations", "POST", &api::moderations},
    {"/v1/rerank", "POST", &api::rerank},
    {"/v1/responses", "POST", &api::create_response},
    {"/v1/responses/{id}", "GET", &api::get_response},
    {"/v1/responses/{id}", "DELETE", &api::delete_response},
    {"/v1/responses/{id}/input_items", "GET", &api::response_input_items},
    {"/v1/messages/count_tokens", "POST", &api::count_message_tokens},
    {"/v1/models", "GET", &api::list_models},
    {"/v1/models/{id*}", "GET", &api::get_model},
    {"/v1/sessions", "POST", &api::create_session},
    {"/v1/sessions", "GET", &api::list_sessions},
    {"/v1/sessions/{id}", "GET", &api::get_session},
    {"/v1/sessions/{id}", "DELETE", &api::delete_session},
    {"/v1/endpoints/{slug}", "POST", &api::call_endpoint},
    {"/v1/mcp/servers", "GET", &api::mcp_servers},
    {"/v1/mcp/tools", "GET", &api::mcp_tools},
    {"/v1/mcp/tools/call", "POST", &api::mcp_call},
    {"/admin/keys", "GET", &api::admin_list_keys, false, true, false},
    {"/admin/keys", "POST", &api::admin_create_key, false, true, false},
    {"/admin/keys/{id}", "GET", &api::admin_get_key, false, true, false},
    {"/admin/keys/{id}", "PATCH", &api::admin_update_key, false, true, false},
    {"/admin/keys/{id}", "DELETE", &api::admin_delete_key, false, true, false},
    {"/admin/keys/{id}/rotate", "POST", &api::admin_rotate_key, false, true, false},
    {"/admin/keys/{id}/disable", "POST", &api::admin_disable_key, false, true, false},
    {"/admin/keys/{id}/enable", "POST", &api::admin_enable_key, false, true, false},
    {"/admin/mcp/servers/{name}/authorize", "GET", &api::mcp_authorize, false, true, false},
    {"/oauth/callback", "GET", &api::oauth_callback, false, true, false},
    {"/.well-known/oauth-protected-resource", "GET", &api::protected_resource, false, false, false},
    {"/.well-known/oauth-protected-resource/{path*}", "GET", &api::protected_resource, false, false, false},
    {"/admin/spend", "GET", &api::admin_spend, false, true, false},
    {"/admin/logs", "GET", &api::admin_logs, false, true, false},
    {"/admin/audit", "GET", &api::admin_audit, false, true, false},
    {"/admin/cache", "DELETE", &api::admin_clear_cache, false, true, false},
    {"/admin/endpoints", "GET", &api::list_endpoints, false, true, false},
    {"/admin/endpoints", "POST", &api::admin_create_endpoint, false, true, false},
    {"/admin/endpoints/{slug}", "GET", &api::admin_get_endpoint, false, true, false},
    {"/admin/endpoints/{slug}", "PUT", &api::admin_replace_endpoint, false, true, false},
    {"/admin/endpoints/{slug}", "PATCH", &api::admin_update_endpoint, false, true, false},
    {"/admin/endpoints/{slug}", "DELETE", &api::admin_delete_endpoint, false, true, false},
    {"/health", "GET", &api::health, false, false, false},
    {"/healthz", "GET", &api::health, false, false, false},
    {"/metrics", "GET", &api::metrics, false, false, false},
}};


// The route for this path and method; `allowed` lists the methods of the path when only the method
// is wrong (405), and stays empty when no route has the path (404).
route const* find_route(std::string_view path, std::string_view method, route_params& params, std::string& allowed) {
    route_params probe;
    for (auto const& r : routes) {
        bool hit = match_route(r.pattern, path, probe);
        if (!hit && r.v1 && !path.starts_with("/v1/")) {
            // The same route without its /v1 prefix.
            hit = match_route(r.pattern.substr(3), path, probe);
        }
        if (!hit) continue;
        if (r.method == method) {
            params = std::move(probe);
            return &r;
        }
        if (allowed.find(r.method) == std::string::npos) allowed += (allowed.empty() ? "" : ", ") + std::string(r.method);
    }
    return nullptr;
}

}  // namespace

route_match match_route_table(std::string_view path, std::string_view method) {
    route_match m;
    route_params params;
    m.found = find_route(path, method, params, m.allow) != nullptr;
    if (m.found) m.allow.clear();
    return m;
}

namespace {

std::string make_request_id() { return "req_" + fast_hex(24); }

// A client-supplied id is echoed only if it is short and harmless in logs and headers.
bool acceptable_request_id(std::string_view id) {
    if (id.empty() || id.size() > 128) return false;
    for (char c : id)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':')) return false;
    return true;
}

std::string iso_now() {
    auto now = std::chrono::system_clock::now();
    auto t = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return buf;
}

// JSON string escaping for the hand-formatted access log line.
std::string json_escape(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (unsigned char c : in) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out;
}

class app final : public request_handler {
public:
    explicit app(gateway_config const& cfg) : state_(cfg) {}

    asio::awaitable<void> handle(worker_services& services, inbound_request& req, response_channel& out,
                                 cancel_token& cancel) override {
        request_record rec;
        auto rid = req.header("x-request-id");
        rec.request_id = acceptable_request_id(rid) ? std::string(rid) : make_request_id();
        rec.method = req.method;
        header_list headers;  // (no braced list in a coroutine: CONTRIBUTING.md)
        headers.emplace_back("x-request-id", rec.request_id);
        state_.stats.inflight_add(1);
        // The Messages API answers in its own shapes, from the first refusal on.
        std::unique_ptr<response_channel> messages_out;
        if (req.path == "/v1/messages" || req.path == "/v1/messages/count_tokens" || req.path == "/messages" ||
            req.path == "/messages/count_tokens")
            messages_out = api::messages_channel_for(out, rec.request_id);
        auto& channel = messages_out ? *messages_out : out;
        api_request r{state_, services, req, channel, cancel, rec, headers, {}, nullptr, {}};

        // A handler that throws still ends its request here: leases released, the gauge and the
        // request log kept (the server answers 500 if nothing was sent).
        std::exception_ptr failed;
        try {
            co_await dispatch(r);
        } catch (...) {
            failed = std::current_exception();
        }
        if (failed && rec.status == 0) rec.status = 500;
        if (rec.status == 0) rec.status = cancelled_status(cancel);
        if (state_.access) {
            co_await state_.access->finish(r.access_scope);
            rec.cost_usd = r.access_scope.cost_usd;
        }
        state_.stats.inflight_add(-1);
        log_request(rec);
        if (failed) std::rethrow_exception(failed);
    }

    void on_shutdown() override {
        if (state_.front) state_.front->shutdown();
    }
    std::size_t background_work() const override { return state_.access ? state_.access->closing() : 0; }

private:
    // The route (or /mcp) of one request, authenticated where it must be.
    asio::awaitable<void> dispatch(api_request& r) {
        if (state_.front && r.req.path == state_.cfg.mcp_front.path) {
            r.rec.route = "/mcp";
            // With virtual keys, /mcp takes them (their mcp_tools); else its own mcp_front.keys.
            std::optional<mcp_front_key> identity;
            bool refused = false;
            if (state_.mcp_oauth && r.req.method != "OPTIONS") {
                // A JWT from the configured issuer; else the gateway's own keys, if it has any.
                auto token = bearer_token(r.req.header("authorization"));
                bool keys = (state_.access && state_.access->keys_configured()) || !state_.cfg.mcp_front.keys.empty();
                if (token_verifier::looks_like_jwt(token)) {
                    auto check = co_await state_.mcp_oauth->verify(std::string(token));
                    if (check.status == 200) identity = std::move(check.identity);
                    else refused = true;
                    if (refused) co_await refuse_mcp(r, check);
                } else if (!keys) {
                    refused = true;
                    auto check = no_token(token.empty());
                    co_await refuse_mcp(r, check);
                }
            }
            if (!refused && !identity && state_.access && state_.access->keys_configured() && r.req.method != "OPTIONS") {
                refused = !co_await authenticate(r);
                if (!refused && r.access_scope.key) identity = mcp_identity(*r.access_scope.key);
            }
            auto const* who = identity ? &*identity : nullptr;
            if (!refused) r.rec.status = co_await state_.front->handle(r.req, r.out, r.cancel, who);
        } else {
            std::string allowed;
            if (auto const* route = find_route(r.req.path, r.req.method, r.params, allowed)) {
                r.rec.route = std::string(route->pattern);
                r.rec.counted = route->counted;
                bool admitted = true;
                if (route->keyed && state_.access) admitted = co_await authenticate(r);
                if (admitted) co_await route->handler(r);
            } else if (!allowed.empty()) {
                r.rec.route = "unmatched";
                r.headers.emplace_back("allow", allowed);
                co_await reply_error(r, api_error::method_not_allowed("use " + allowed + " for " + r.req.path));
            } else {
                r.rec.route = "unmatched";
                co_await reply_error(r, api_error::not_found("no route for " + r.req.method + " " + r.req.path, "unknown_route"));
            }
        }
    }

    // The virtual key of the request (401 answered here when it is missing or unknown).
    asio::awaitable<bool> authenticate(api_request& r) {
        auto err = co_await state_.access->authenticate(r.req.header("authorization"), r.req.header("x-api-key"),
                                                        r.access_scope);
        if (err) {
            // On /mcp behind OAuth, a 401 points an MCP client to the authorization server.
            if (err->status == 401) r.headers.emplace_back("www-authenticate", challenge_for(r));
            co_await reply_error(r, *err);
            co_return false;
        }
        if (auto const& k = r.access_scope.key) {
            r.rec.key = k->name;
            r.rec.team = k->team;
        }
        co_return true;
    }

    std::string challenge_for(api_request const& r) const {
        if (r.rec.route == "/mcp") return unauthorized_challenge(state_.cfg.mcp_front);
        return "Bearer";
    }

    static std::string_view bearer_token(std::string_view auth) {
        if (auth.size() < 7 || ascii_lower(auth.substr(0, 7)) != "bearer ") return {};
        return auth.substr(7);
    }

    static token_check no_token(bool missing) {
        token_check c;
        c.status = 401;
        if (!missing) {
            c.error = "invalid_token";
            c.description = "not an access token of this gateway's issuer";
        }
        return c;
    }

    // 401 or 403 on /mcp with its Bearer challenge (RFC 6750, RFC 9728).
    asio::awaitable<void> refuse_mcp(api_request& r, token_check const& c) {
        r.headers.emplace_back("www-authenticate", state_.mcp_oauth->challenge(c));
        r.rec.status = c.status;
        auto body = refusal_body(c);
        co_await r.out.send(c.status, "application/json", body, r.headers);
    }

    static std::string refusal_body(token_check const& c) {
        auto message = c.description.empty() ? std::string("an access token is required") : c.description;
        return mcp::make_error(nullptr, mcp::errc::invalid_request, message);
    }

    static mcp_front_key mcp_identity(policy::virtual_key const& k) {
        mcp_front_key id;
        id.name = k.name;
        id.tools = k.mcp_tools;
        return id;
    }

    void write_log_record(request_record const& rec, double seconds) {
        auto* log = state_.access ? state_.access->log() : nullptr;
        if (!log || !rec.counted || rec.route.starts_with("/admin/")) return;
        state::log_record out;
        out.kind = state::log_kind::request;
        out.ts_ms = policy::unix_now_ms() - static_cast<std::int64_t>(seconds * 1000);
        out.request_id = rec.request_id;
        out.key = rec.key;
        out.team = rec.team;
        out.model = rec.model;
        out.status = rec.status;
        auto& o = out.record;
        o["kind"] = "request";
        o["route"] = rec.route;
        o["method"] = rec.method;
        if (!rec.provider.empty()) o["provider"] = rec.provider;
        if (!rec.upstream_model.empty()) o["upstream_model"] = rec.upstream_model;
        if (!rec.tool.empty()) o["tool"] = rec.tool;
        o["attempts"] = rec.attempts;
        o["stream"] = rec.stream;
        if (!rec.cache.empty()) o["cache"] = rec.cache;
        if (!rec.endpoint.empty()) o["endpoint"] = rec.endpoint;
        o["prompt_tokens"] = rec.tokens.prompt_tokens;
        o["completion_tokens"] = rec.tokens.completion_tokens;
        o["cost_usd"] = rec.cost_usd;
        o["latency_ms"] = seconds * 1000.0;
        if (rec.loop) {
            o["iterations"] = rec.iterations;
            o["tool_calls"] = rec.tool_calls;
            o["tool_errors"] = rec.tool_errors;
        }
        if (!rec.error_code.empty()) o["error"] = rec.error_code;
        if (!rec.guardrails.empty()) {
            json::array g;
            for (auto const& v : rec.guardrails) g.emplace_back(v);
            o["guardrails"] = std::move(g);
        }
        log->append(std::move(out));
    }

    void log_request(request_record& rec) {
        double seconds = std::chrono::duration<double>(clock_type::now() - rec.start).count();
        write_log_record(rec, seconds);
        if (rec.counted)
            state_.stats.record_request(rec.route, rec.status, rec.provider, rec.status == 200 ? rec.model : "", seconds,
                                        rec.tokens.prompt_tokens, rec.tokens.completion_tokens);
        if (rec.status >= 500 && !rec.error_detail.empty())
            state_.log->warn("request {} failed: {} ({})", rec.request_id, rec.error_code, rec.error_detail);
        if (!state_.cfg.log.requests || !state_.access_log) return;
        // Formatted directly: this runs for every request. Only client-chosen text (model, tool,
        // method) needs escaping; ids, routes and provider names are from a safe character set.
        fmt::memory_buffer line;
        auto out = std::back_inserter(line);
        fmt::format_to(out, R"({{"ts":"{}","level":"info","msg":"request","request_id":"{}","method":"{}","route":"{}","status":{})",
                       iso_now(), rec.request_id, json_escape(rec.method), rec.route, rec.status);
        if (!rec.model.empty()) fmt::format_to(out, R"(,"model":"{}")", json_escape(rec.model));
        if (!rec.tool.empty()) fmt::format_to(out, R"(,"tool":"{}")", json_escape(rec.tool));
        if (!rec.key.empty()) fmt::format_to(out, R"(,"key":"{}")", rec.key);
        if (rec.cost_usd > 0) fmt::format_to(out, R"(,"cost_usd":{:.6f})", rec.cost_usd);
        if (!rec.provider.empty()) fmt::format_to(out, R"(,"provider":"{}")", rec.provider);
        if (!rec.upstream_model.empty() && rec.upstream_model != rec.model)
            fmt::format_to(out, R"(,"upstream_model":"{}")", json_escape(rec.upstream_model));
        if (rec.attempts > 0) fmt::format_to(out, R"(,"attempts":{})", rec.attempts);
        if (!rec.variant.empty()) fmt::format_to(out, R"(,"variant":"{}")", json_escape(rec.variant));
        if (rec.route == "/v1/chat/completions" || rec.route == "/v1/messages") fmt::format_to(out, R"(,"stream":{})", rec.stream);
        if (!rec.cache.empty()) fmt::format_to(out, R"(,"cache":"{}")", rec.cache);
        if (!rec.endpoint.empty()) fmt::format_to(out, R"(,"endpoint":"{}")", rec.endpoint);
        if (rec.tokens.present)
            fmt::format_to(out, R"(,"prompt_tokens":{},"completion_tokens":{})", rec.tokens.prompt_tokens,
                           rec.tokens.completion_tokens);
        if (rec.loop)
            fmt::format_to(out, R"(,"iterations":{},"tool_calls":{},"tool_errors":{})", rec.iterations, rec.tool_calls,
                           rec.tool_errors);
        if (!rec.stopped.empty()) fmt::format_to(out, R"(,"loop_stopped":"{}")", rec.stopped);
        if (!rec.error_code.empty()) fmt::format_to(out, R"(,"error":"{}")", rec.error_code);
        if (!rec.guardrails.empty()) {
            fmt::format_to(out, R"(,"guardrails":[)");
            for (std::size_t i = 0; i < rec.guardrails.size(); ++i)
                fmt::format_to(out, R"({}"{}")", i ? "," : "", json_escape(rec.guardrails[i]));
            fmt::format_to(out, "]");
        }
        fmt::format_to(out, R"(,"latency_ms":{:.3f}}})", seconds * 1000.0);
        state_.access_log->info(std::string_view(line.data(), line.size()));
    }

    app_state state_;
};

}  // namespace

std::unique_ptr<request_handler> make_app(gateway_config const& cfg) { return std::make_unique<app>(cfg); }

}  // namespace toolgate::gateway
