#include "mcp/server_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include "mcp/client_session.hpp"

// Braced JSON is built in the plain functions below (CONTRIBUTING.md).

namespace toolgate::mcp {

namespace {

std::string_view str_of(json::object const& o, std::string_view key) {
    auto const* v = o.if_contains(key);
    return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

// (A separate overload: converting an object to a value would copy it into a temporary, and the
// view would point into that temporary.)
std::string_view str_of(json::value const& params, std::string_view key) {
    auto const* o = params.if_object();
    return o ? str_of(*o, key) : std::string_view();
}

json::object params_object(json::value const& params) {
    auto const* o = params.if_object();
    return o ? *o : json::object();
}

std::string initialize_result(json::value const& id, std::string const& version, std::string const& server_version,
                              std::string const& instructions) {
    json::object caps{{"tools", json::object{{"listChanged", true}}},
                      {"resources", json::object{{"subscribe", true}, {"listChanged", true}}},
                      {"prompts", json::object{{"listChanged", true}}},
                      {"logging", json::object()},
                      {"completions", json::object()}};
    json::object r{{"protocolVersion", version},
                   {"capabilities", std::move(caps)},
                   {"serverInfo", json::object{{"name", "toolgate"}, {"title", "toolgate MCP gateway"}, {"version", server_version}}}};
    if (!instructions.empty()) r["instructions"] = instructions;
    return make_result(id, r);
}

std::string progress_notification(json::value const& upstream_params, json::value const& token) {
    json::object p = params_object(upstream_params);
    p["progressToken"] = token;
    return make_notification("notifications/progress", p);
}

std::string tool_failure_result(json::value const& id, std::string const& text) {
    json::object r{{"content", json::array{json::object{{"type", "text"}, {"text", text}}}}, {"isError", true}};
    return make_result(id, r);
}

// "12" -> 12; anything else is not one of our cursors.
std::optional<std::size_t> parse_cursor(json::value const& params) {
    auto const* o = params.if_object();
    auto const* c = o ? o->if_contains("cursor") : nullptr;
    if (!c || c->is_null()) return 0;
    if (!c->is_string()) return std::nullopt;
    std::string_view s = c->get_string();
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    return std::stoul(std::string(s));
}

}  // namespace

struct server_session::outgoing {
    explicit outgoing(asio::any_io_executor ex) : signal(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer signal;
    std::optional<call_result> result;
};

namespace {

int level_rank(std::string_view level) {
    static constexpr std::string_view levels[] = {"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"};
    for (int i = 0; i < 8; ++i)
        if (levels[i] == level) return i;
    return 1;
}

char const* capability_for(std::string_view method) {
    if (method == "sampling/createMessage") return "sampling";
    if (method == "elicitation/create") return "elicitation";
    if (method == "roots/list") return "roots";
    return nullptr;
}

call_result refused(std::string message) {
    call_result r;
    r.state = call_result::status::error;
    r.code = errc::method_not_found;
    r.message = std::move(message);
    return r;
}

}  // namespace

asio::awaitable<void> server_session::close() {
    closed_ = true;
    for (auto& [id, o] : outgoing_) o->signal.cancel();
    auto inflight = inflight_;
    for (auto& [id, token] : inflight) token->cancel();
    if (auto v = std::exchange(view_, nullptr)) co_await agg_.close_view(std::move(v));
}

bool server_session::log_wanted(json::value const& params) const {
    return level_rank(str_of(params, "level")) >= level_rank(log_level_);
}

void server_session::catalog_changed() {
    if (closed_ || !channel_ || !initialized()) return;
    for (char const* m : {"notifications/tools/list_changed", "notifications/resources/list_changed",
                          "notifications/prompts/list_changed"})
        channel_(make_notification(m, json::object()));
}

asio::awaitable<call_result> server_session::ask_outside_calls(std::weak_ptr<server_session> weak, std::string method,
                                                               json::value params) {
    auto self = weak.lock();
    if (!self || self->closed_ || !self->channel_) co_return refused("the client behind toolgate has gone");
    co_return co_await self->ask_client(method, std::move(params), self->channel_);
}

// What the client's upstream sessions know of it: its capabilities, and where their messages go
// when none of its calls runs.
client_link server_session::make_link() {
    client_link link;
    link.capabilities = client_capabilities_;
    std::weak_ptr<server_session> weak = weak_from_this();
    link.outside_calls.on_log = [weak](json::value const& params) {
        auto self = weak.lock();
        if (self && !self->closed_ && self->channel_ && self->log_wanted(params))
            self->channel_(make_notification("notifications/message", params));
    };
    link.outside_calls.on_request = [weak](std::string const& method, json::value params) {
        return ask_outside_calls(weak, method, std::move(params));
    };
    link.on_change = [weak] {
        if (auto self = weak.lock()) self->catalog_changed();
    };
    return link;
}

asio::awaitable<std::optional<std::string>> server_session::handle(message msg, emit_fn emit) {
    switch (msg.type) {
        case message::kind::invalid:
            co_return make_error(msg.id, errc::invalid_request, "invalid JSON-RPC message: " + msg.problem);
        case message::kind::response:
        case message::kind::error: {
            // The client's answer to a request we forwarded (sampling, elicitation, roots).
            if (auto it = outgoing_.find(id_key(msg.id)); it != outgoing_.end()) {
                call_result r;
                if (msg.type == message::kind::response) {
                    r.state = call_result::status::ok;
                    r.result = std::move(msg.result);
                } else {
                    r.state = call_result::status::error;
                    r.code = msg.error_code;
                    r.message = msg.error_message;
                }
                it->second->result = std::move(r);
                it->second->signal.cancel();
            }
            co_return std::nullopt;
        }
        case message::kind::notification:
            if (msg.method == "notifications/cancelled") {
                auto const* o = msg.params.if_object();
                auto const* rid = o ? o->if_contains("requestId") : nullptr;
                if (rid)
                    if (auto it = inflight_.find(id_key(*rid)); it != inflight_.end()) it->second->cancel();
            } else if (msg.method == "notifications/roots/list_changed") {
                co_await agg_.notify_view(view_, msg.method, "roots");
            }
            co_return std::nullopt;
        case message::kind::request: break;
    }
    if (!initialized() && msg.method != "initialize" && msg.method != "ping")
        co_return make_error(msg.id, errc::invalid_request, "the session is not initialized: send initialize first");
    if (closed_) co_return make_error(msg.id, errc::invalid_request, "the session has ended");
    if (!settled_ && msg.method != "initialize" && msg.method != "ping" && msg.method != "logging/setLevel") {
        // The first list or call right after start-up: give the servers a moment to come up.
        co_await agg_.settled(view_, opts_.settle_timeout);
        settled_ = true;
    }
    auto key = id_key(msg.id);
    auto token = std::make_shared<cancel_token>();
    inflight_[key] = token;
    auto out = co_await dispatch(msg, emit, *token);
    if (auto it = inflight_.find(key); it != inflight_.end() && it->second == token) inflight_.erase(it);
    co_return out;
}

std::string server_session::initialize(message const& msg) {
    auto asked = std::string(str_of(msg.params, "protocolVersion"));
    std::string version = supported_protocol_versions().front();
    for (auto const& v : supported_protocol_versions())
        if (v == asked) version = v;
    protocol_ = version;
    if (auto const* o = msg.params.if_object())
        if (auto const* caps = o->if_contains("capabilities"); caps && caps->is_object()) client_capabilities_ = caps->get_object();
    // Sampling, elicitation and roots are declared upstream only for a client that declared them:
    // such a client gets its own sessions with the servers that may use them.
    if (opts_.serve_alone) {
        std::exchange(opts_.serve_alone, nullptr)(make_link());
    } else if (!view_) {
        view_ = agg_.open_view(make_link());
    }
    return initialize_result(msg.id, version, opts_.version, opts_.instructions);
}

bool server_session::tool_allowed(std::string const& exposed) const {
    if (!opts_.allowed_tools) return true;
    for (auto const& pattern : *opts_.allowed_tools) {
        if (pattern == exposed) return true;
        if (!pattern.empty() && pattern.back() == '*' && exposed.starts_with(std::string_view(pattern).substr(0, pattern.size() - 1)))
            return true;
    }
    return false;
}

std::string server_session::exposed_prompt_name(std::string const& server, std::string_view name) const {
    switch (agg_.names()) {
        case prefix_mode::never: return std::string(name);
        case prefix_mode::always: return server + "__" + std::string(name);
        case prefix_mode::conditional: {
            auto cat = agg_.snapshot(view_.get());
            for (auto const& [srv, p] : cat->prompts)
                if (srv != server && str_of(p, "name") == name) return server + "__" + std::string(name);
            return std::string(name);
        }
    }
    return std::string(name);
}

std::optional<std::string> server_session::list(message const& msg, std::string_view what) const {
    auto offset = parse_cursor(msg.params);
    if (!offset) return make_error(msg.id, errc::invalid_params, "invalid cursor");
    auto cat = agg_.snapshot(view_.get());
    // Only the entries of the page are copied; `seen` counts every visible entry.
    json::array page;
    std::size_t seen = 0;
    auto take = [&](auto&& make) {
        if (seen >= *offset && seen < *offset + opts_.page_size) page.push_back(make());
        ++seen;
    };
    std::string_view key;
    if (what == "tools/list") {
        key = "tools";
        for (auto const& t : cat->tools)
            if (tool_allowed(t.exposed))
                take([&] {
                    json::object d = t.definition;
                    d["name"] = t.exposed;
                    return d;
                });
    } else if (what == "resources/list") {
        key = "resources";
        for (auto const& entry : cat->resources) take([&] { return entry.second; });
    } else if (what == "resources/templates/list") {
        key = "resourceTemplates";
        for (auto const& entry : cat->resource_templates) take([&] { return entry.second; });
    } else {
        key = "prompts";
        for (auto const& entry : cat->prompts)
            take([&] {
                json::object d = entry.second;
                d["name"] = exposed_prompt_name(entry.first, str_of(entry.second, "name"));
                return d;
            });
    }
    if (*offset > seen) return make_error(msg.id, errc::invalid_params, "invalid cursor");
    json::object r;
    auto end = *offset + page.size();
    r[key] = std::move(page);
    if (end < seen) r["nextCursor"] = std::to_string(end);
    return make_result(msg.id, r);
}

asio::awaitable<std::optional<std::string>> server_session::dispatch(message& msg, emit_fn& emit, cancel_token& cancel) {
    auto const& m = msg.method;
    if (m == "initialize") co_return initialize(msg);
    if (m == "ping") co_return make_result(msg.id, json::object());
    if (m == "tools/list" || m == "resources/list" || m == "resources/templates/list" || m == "prompts/list")
        co_return list(msg, m);
    if (m == "tools/call") co_return co_await call_tool(msg, emit, cancel);
    if (m == "logging/setLevel") {
        auto level = str_of(msg.params, "level");
        if (level.empty()) co_return make_error(msg.id, errc::invalid_params, "logging/setLevel needs a level");
        log_level_ = std::string(level);
        co_return make_result(msg.id, json::object());
    }
    auto cat = agg_.snapshot(view_.get());
    auto params = params_object(msg.params);
    if (m == "resources/read" || m == "resources/subscribe" || m == "resources/unsubscribe") {
        auto uri = str_of(msg.params, "uri");
        std::string server;
        for (auto const& [srv, r] : cat->resources)
            if (server.empty() && str_of(r, "uri") == uri) server = srv;
        for (auto const& [srv, t] : cat->resource_templates) {
            auto tmpl = str_of(t, "uriTemplate");
            auto literal = tmpl.substr(0, tmpl.find('{'));
            if (server.empty() && !literal.empty() && uri.starts_with(literal)) server = srv;
        }
        if (server.empty()) co_return make_error(msg.id, errc::invalid_params, "unknown resource: " + std::string(uri));
        co_return co_await forward(msg, server, std::move(params), cancel);
    }
    if (m == "prompts/get") {
        auto name = str_of(msg.params, "name");
        for (auto const& [srv, p] : cat->prompts) {
            if (exposed_prompt_name(srv, str_of(p, "name")) != name) continue;
            params["name"] = str_of(p, "name");
            co_return co_await forward(msg, srv, std::move(params), cancel);
        }
        co_return make_error(msg.id, errc::invalid_params, "unknown prompt: " + std::string(name));
    }
    if (m == "completion/complete") {
        auto const* ref = params.if_contains("ref");
        auto type = ref ? str_of(*ref, "type") : std::string_view();
        if (type == "ref/prompt") {
            auto name = str_of(*ref, "name");
            for (auto const& [srv, p] : cat->prompts) {
                if (exposed_prompt_name(srv, str_of(p, "name")) != name) continue;
                if (auto* r2 = params.if_contains("ref"); r2 && r2->is_object()) r2->get_object()["name"] = str_of(p, "name");
                co_return co_await forward(msg, srv, std::move(params), cancel);
            }
        } else if (type == "ref/resource") {
            auto uri = str_of(*ref, "uri");
            for (auto const& [srv, t] : cat->resource_templates)
                if (str_of(t, "uriTemplate") == uri) co_return co_await forward(msg, srv, std::move(params), cancel);
            for (auto const& [srv, r] : cat->resources)
                if (str_of(r, "uri") == uri) co_return co_await forward(msg, srv, std::move(params), cancel);
        }
        co_return make_error(msg.id, errc::invalid_params, "completion/complete: unknown reference");
    }
    co_return make_error(msg.id, errc::method_not_found, "method not found: " + m);
}

asio::awaitable<std::string> server_session::call_tool(message const& msg, emit_fn& emit, cancel_token& cancel) {
    auto name = std::string(str_of(msg.params, "name"));
    auto cat = agg_.snapshot(view_.get());
    if (name.empty() || !tool_allowed(name) || !cat->find(name))
        co_return make_error(msg.id, errc::invalid_params, "Unknown tool: " + name);
    json::object args;
    auto const* po = msg.params.if_object();
    if (auto const* a = po ? po->if_contains("arguments") : nullptr; a && !a->is_null()) {
        if (!a->is_object()) co_return make_error(msg.id, errc::invalid_params, "arguments must be an object");
        args = a->get_object();
    }
    if (opts_.screen_arguments)
        if (auto refused = opts_.screen_arguments(name, args)) co_return tool_failure_result(msg.id, *refused);
    std::function<void(json::value const&)> on_progress;
    json::value const* meta = po ? po->if_contains("_meta") : nullptr;
    json::value const* token = meta && meta->is_object() ? meta->get_object().if_contains("progressToken") : nullptr;
    if (token && emit) {
        on_progress = [emit, token = *token](json::value const& p) { emit(progress_notification(p, token)); };
    }
    // The upstream server's log messages and requests to the client reach this session's client.
    upstream_observer observer;
    if (emit) {
        observer.on_log = [this, emit](json::value const& params) {
            if (log_wanted(params)) emit(make_notification("notifications/message", params));
        };
        observer.on_request = [this, emit](std::string const& method, json::value params) {
            return ask_client(method, std::move(params), emit);
        };
    }
    auto* watching = emit ? &observer : nullptr;
    auto r = co_await agg_.call_tool(name, std::move(args), &cancel, std::move(on_progress), watching, view_);
    if (r.ok && opts_.screen_result)
        if (auto withheld = opts_.screen_result(name, r.result)) co_return tool_failure_result(msg.id, *withheld);
    if (r.ok) co_return make_result(msg.id, r.result);
    if (r.code == tool_errc::unknown_tool || r.code == tool_errc::invalid_arguments)
        co_return make_error(msg.id, errc::invalid_params, r.error);
    co_return tool_failure_result(msg.id, "the tool could not be run (" + std::string(r.error_code()) + "): " + r.error);
}

asio::awaitable<call_result> server_session::ask_client(std::string const& method, json::value params, emit_fn emit) {
    auto const* cap = capability_for(method);
    if (!cap) co_return refused("toolgate does not forward " + method + " to its clients");
    if (!client_capabilities_.contains(cap))
        co_return refused("the client behind toolgate did not declare the '" + std::string(cap) + "' capability");
    auto id = json::value("toolgate-" + std::to_string(next_outgoing_++));
    auto key = id_key(id);
    auto o = std::make_shared<outgoing>(co_await asio::this_coro::executor);
    outgoing_[key] = o;
    emit(make_request(id, method, params));
    o->signal.expires_after(std::chrono::minutes(5));
    co_await o->signal.async_wait(asio::as_tuple(asio::use_awaitable));
    outgoing_.erase(key);
    if (o->result) co_return std::move(*o->result);
    call_result r;
    r.state = call_result::status::timeout;
    r.message = "the client did not answer " + method;
    co_return r;
}

asio::awaitable<std::string> server_session::forward(message const& msg, std::string server, json::object params,
                                                     cancel_token& cancel) {
    auto r = co_await agg_.forward(std::move(server), msg.method, std::move(params), &cancel, view_);
    switch (r.state) {
        case call_result::status::ok: co_return make_result(msg.id, r.result);
        case call_result::status::error: co_return make_error(msg.id, r.code, r.message);
        default: co_return make_error(msg.id, errc::internal_error, r.message.empty() ? "the upstream server did not answer" : r.message);
    }
}

}  // namespace toolgate::mcp
