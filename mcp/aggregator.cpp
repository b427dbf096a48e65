#include "mcp/aggregator.hpp"
#include "common/asio_util.hpp"
#include "common/cancel_scope.hpp"
#include "mcp/jsonrpc.hpp"
#include "mcp/admission.hpp"
#include "mcp/resilience.hpp"
#include "common/text.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <deque>
#include <map>

namespace toolgate::mcp {


using clock_type = std::chrono::steady_clock;

struct aggregator::server_state {
    server_config cfg;
    log_sink log;
    asio::steady_timer backoff_timer;
    json::object declared;        // client capabilities declared to the server
    bool own = false;             // one client's own session (see open_view), not the shared one
    std::weak_ptr<view> owner;    // own: the client's view
    server_state* shared = nullptr;  // own: the shared state of the same server (statistics, counts)
    bool closing = false;         // own: the client has gone; do not restart
    bool attempted = false;       // the first start has been tried (up or failed)

    // MCP thread only.
    std::shared_ptr<client_session> session;
    std::vector<json::object> tools, resources, templates, prompts;
    // Calls waiting for a slot, in order; the first is woken (granted) when a slot passes to it.
    struct queued_call {
        asio::steady_timer wake;
        bool granted = false;
        explicit queued_call(asio::any_io_executor ex) : wake(std::move(ex)) {}
    };
    std::deque<queued_call*> waiters;
    std::vector<upstream_observer*> observers;  // callers whose calls run now and listen
    circuit_breaker breaker;
    call_admission admission;  // over `breaker`
    bool refresh_running = false;
    bool refresh_again = false;

    // Read by other threads: guarded by aggregator::mu_.
    server_status status = server_status::starting;
    std::string last_error;
    std::string protocol_version;
    json::object server_info;
    unsigned restarts = 0;
    bool breaker_open = false;
    unsigned client_sessions = 0;  // shared: clients' own sessions with this server open now
    std::map<std::string, call_stats> per_tool;

    server_state(asio::any_io_executor ex, server_config c, log_sink l)
        : cfg(std::move(c)), log(std::move(l)), backoff_timer(ex), breaker(cfg.breaker_failures, cfg.breaker_open),
          admission(cfg.max_concurrency, cfg.max_queue, breaker) {}
};

struct aggregator::view {
    explicit view(asio::any_io_executor e) : ex(e) {}
    ~view() {
        // A client that went without close_view(): its sessions still end.
        if (!closed)
            for (auto& st : own)
                if (st) asio::co_spawn(ex, retire(st), asio::detached);
    }
    asio::any_io_executor ex;
    client_link link;
    std::vector<std::shared_ptr<server_state>> own;  // by server index; null: the shared session serves
    std::shared_ptr<catalog const> cat;
    bool closed = false;
};

namespace {

bool allowed(server_config const& cfg, std::string const& tool) {
    if (!cfg.allowed_tools.empty() &&
        std::find(cfg.allowed_tools.begin(), cfg.allowed_tools.end(), tool) == cfg.allowed_tools.end())
        return false;
    return std::find(cfg.denied_tools.begin(), cfg.denied_tools.end(), tool) == cfg.denied_tools.end();
}

// Keeps a tool result under `cap` bytes (serialized), cutting text and dropping large binary parts,
// and says so in a text part the model will read.
bool cap_result(json::object& result, std::size_t cap) {
    auto size = json::serialize(result).size();
    if (size <= cap) return false;
    std::size_t budget = cap > 512 ? cap - 512 : 0;
    json::array kept;
    if (auto* content = result.if_contains("content"); content && content->is_array()) {
        for (auto& item : content->get_array()) {
            auto* io = item.if_object();
            if (io && io->contains("text") && io->at("text").is_string()) {
                std::string text(io->at("text").get_string());
                if (text.size() > budget) utf8_truncate(text, budget);
                budget -= text.size();
                (*io)["text"] = text;
                if (!text.empty()) kept.push_back(std::move(item));
            } else {
                auto n = json::serialize(item).size();
                if (n <= budget) {
                    budget -= n;
                    kept.push_back(std::move(item));
                }
            }
        }
    }
    result.erase("structuredContent");  // cannot be cut meaningfully
    kept.push_back(json::object{{"type", "text"},
                                {"text", "[toolgate: the tool result was " + std::to_string(size) +
                                             " bytes and has been truncated to the limit of " + std::to_string(cap) +
                                             " bytes]"}});
    result["content"] = std::move(kept);
    return true;
}

// A plain function (CONTRIBUTING.md).
json::object call_params(std::string const& name, json::object arguments) {
    json::object p;
    p["name"] = name;
    p["arguments"] = std::move(arguments);
    return p;
}

}  // namespace

aggregator::aggregator(asio::any_io_executor ex, std::vector<server_config> servers, aggregator_options opts,
                       log_factory logs)
    : ex_(ex), opts_(std::move(opts)), logs_(std::move(logs)), catalog_(std::make_shared<catalog>()) {
    for (auto& c : servers) {
        auto log = logs_(c.name);
        if (c.oauth && c.http) {
            auto a = std::make_shared<upstream_auth>(ex_, c.name, c.http->url, *c.oauth, log);
            // New tokens end the wait of the server's supervisors (the shared one and clients' own).
            a->on_authorized([this, name = c.name] { wake_auth_waiters(name); });
            if (opts_.restore_auth) opts_.restore_auth(c, *a);
            c.http->auth = a;
            auths_.emplace(c.name, std::move(a));
        }
        servers_.push_back(std::make_shared<server_state>(ex_, std::move(c), std::move(log)));
    }
}

// A server waiting for a person to authorize it says so, whatever its session does meanwhile.
server_status aggregator::shown_status(server_state const& s) const {
    auto const* a = auth_of(s.cfg.name);
    if (a && a->needs_authorization() && s.status != server_status::stopped) return server_status::needs_authorization;
    return s.status;
}

upstream_auth* aggregator::auth_of(std::string const& server) const {
    auto it = auths_.find(server);
    return it == auths_.end() ? nullptr : it->second.get();
}

void aggregator::wake_auth_waiters(std::string const& server) {
    for (auto& s : servers_)
        if (s->cfg.name == server) s->backoff_timer.cancel();
    for (auto& weak : views_)
        if (auto v = weak.lock())
            for (auto& st : v->own)
                if (st && st->cfg.name == server) st->backoff_timer.cancel();
}

asio::awaitable<aggregator::authorization_start> aggregator::begin_authorization(std::string server) {
    co_return co_await asio::co_spawn(ex_, begin_on_mcp_thread(std::move(server)), asio::use_awaitable);
}

asio::awaitable<aggregator::authorization_start> aggregator::begin_on_mcp_thread(std::string server) {
    authorization_start out;
    auto known = std::any_of(servers_.begin(), servers_.end(), [&](auto const& s) { return s->cfg.name == server; });
    auto* a = auth_of(server);
    if (!a) {
        out.status = known ? 409 : 404;
        if (known) out.error = "MCP server '" + server + "' does not use OAuth";
        else out.error = "no MCP server named '" + server + "'";
        co_return out;
    }
    auto keep = auths_.at(server);
    auto b = co_await keep->begin_authorization();
    out.status = b.error.empty() ? 200 : 502;
    out.url = std::move(b.url);
    out.error = std::move(b.error);
    co_return out;
}

asio::awaitable<aggregator::authorization_end> aggregator::complete_authorization(std::string state, std::string code,
                                                                                  std::string iss) {
    co_return co_await asio::co_spawn(ex_, complete_on_mcp_thread(std::move(state), std::move(code), std::move(iss)),
                                      asio::use_awaitable);
}

asio::awaitable<aggregator::authorization_end> aggregator::complete_on_mcp_thread(std::string state, std::string code,
                                                                                  std::string iss) {
    authorization_end out;
    for (auto& [name, a] : auths_) {
        if (!a->expects(state)) continue;
        auto keep = a;
        out.server = name;
        out.error = co_await keep->complete_authorization(std::move(state), std::move(code), std::move(iss));
        co_return out;
    }
    out.error = "unknown or already used authorization state";
    co_return out;
}

aggregator::~aggregator() = default;

namespace {

// (Plain functions for conditional strings used in coroutines, CONTRIBUTING.md.)
std::string breaker_line(bool open, std::chrono::milliseconds open_for, unsigned failures) {
    if (!open) return "circuit breaker closed";
    return "circuit breaker open for " + std::to_string(open_for.count()) + " ms after " + std::to_string(failures) + " failures";
}

std::string start_failure(boost::system::result<server_info> const& r) {
    return r ? std::string("stopped") : "could not start: " + r.error().message();
}

// The capabilities of `client` that `cfg` lets through to the server, as the client declared them.
json::object declared_to(server_config const& cfg, json::object const& client) {
    json::object out;
    for (auto const& f : cfg.client_features)
        if (auto const* c = client.if_contains(f)) out[f] = c->is_object() ? *c : json::value(json::object());
    return out;
}

}  // namespace

void aggregator::spawn_supervisor(std::shared_ptr<server_state> s) {
    tasks_.spawn(ex_, supervise(s), [log = s->log](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (std::exception const& ex) {
            log(log_level::error, std::string("supervisor stopped by an exception: ") + ex.what());
        }
    });
}

void aggregator::start() {
    for (auto& s : servers_) spawn_supervisor(s);
}

void aggregator::start(client_link link) {
    for (auto& s : servers_) s->declared = declared_to(s->cfg, link.capabilities);
    sole_client_ = std::move(link);
    start();
}

asio::awaitable<void> aggregator::retire(std::shared_ptr<server_state> s) {
    s->closing = true;
    s->backoff_timer.cancel();
    if (auto session = s->session) co_await session->close();
}

asio::awaitable<void> aggregator::stop() {
    stopping_ = true;
    wake_settle_waiters();
    for (auto& weak : views_)
        if (auto v = weak.lock()) co_await close_view(v);
    for (auto& s : servers_) {
        s->backoff_timer.cancel();
        if (auto session = s->session) co_await session->close();
    }
    // Supervisors and catalog refreshes end once their sessions are closed; whatever still runs
    // after the bound is aborted, so nothing outlives the aggregator.
    if (!co_await tasks_.wait_for(std::chrono::seconds(5))) {
        tasks_.emit(asio::cancellation_type::terminal);
        co_await tasks_.wait_for(std::chrono::seconds(1));
    }
}

void aggregator::mark_attempted(server_state& s) {
    s.attempted = true;
    wake_settle_waiters();
}

void aggregator::wake_settle_waiters() {
    for (auto* w : settle_waiters_) w->cancel();
}

std::shared_ptr<aggregator::view> aggregator::open_view(client_link link) {
    std::erase_if(views_, [](auto const& w) { return w.expired(); });
    auto v = std::make_shared<view>(ex_);
    v->own.resize(servers_.size());
    bool any = false;
    for (std::size_t i = 0; i < servers_.size(); ++i) {
        auto& shared = *servers_[i];
        auto declared = declared_to(shared.cfg, link.capabilities);
        if (declared.empty()) continue;
        {
            std::lock_guard lock(mu_);
            if (shared.client_sessions >= shared.cfg.max_client_sessions) {
                shared.log(log_level::warn, "max_client_sessions (" + std::to_string(shared.cfg.max_client_sessions) +
                                                ") reached: a client that declared client features shares the common session");
                continue;
            }
            ++shared.client_sessions;
        }
        auto log = [base = shared.log](log_level lvl, std::string const& text) { base(lvl, "(a client's own session) " + text); };
        auto st = std::make_shared<server_state>(ex_, shared.cfg, std::move(log));
        st->own = true;
        st->owner = v;
        st->shared = &shared;
        st->declared = std::move(declared);
        v->own[i] = std::move(st);
        any = true;
    }
    if (!any) return nullptr;
    v->link = std::move(link);
    v->cat = build_catalog(v.get());
    views_.push_back(v);
    for (auto& st : v->own)
        if (st) spawn_supervisor(st);
    return v;
}

asio::awaitable<void> aggregator::close_view(std::shared_ptr<view> v) {
    if (!v || v->closed) co_return;
    v->closed = true;
    v->link = {};
    for (auto& st : v->own)
        if (st) co_await retire(st);
}

std::shared_ptr<catalog const> aggregator::snapshot(view const* v) const {
    if (v) return v->cat;
    return snapshot();
}

asio::awaitable<void> aggregator::notify_view(std::shared_ptr<view> v, std::string method, std::string capability) {
    if (!v) co_return;
    for (auto& st : v->own) {
        auto session = st ? st->session : nullptr;
        if (session && !session->closed() && st->declared.contains(capability)) co_await session->notify(method, nullptr);
    }
}

asio::awaitable<void> aggregator::settled(std::shared_ptr<view> v, std::chrono::milliseconds max) {
    asio::steady_timer wake(ex_);
    wake.expires_after(max);  // woken early (cancelled) by every first attempt, and by stop()
    for (;;) {
        bool all = true;
        for (std::size_t i = 0; i < servers_.size(); ++i) all = all && serving(i, v.get())->attempted;
        if (all || stopping_) co_return;
        settle_waiters_.push_back(&wake);
        auto [ec] = co_await wake.async_wait(nothrow_awaitable);
        std::erase(settle_waiters_, &wake);
        if (!ec) co_return;  // the bound has passed
    }
}

std::shared_ptr<aggregator::server_state> const& aggregator::serving(std::size_t i, view const* v) const {
    return v && v->own[i] ? v->own[i] : servers_[i];
}

std::shared_ptr<aggregator::server_state> aggregator::state_for(std::string const& server, view const* v) const {
    for (std::size_t i = 0; i < servers_.size(); ++i)
        if (servers_[i]->cfg.name == server) return serving(i, v);
    return nullptr;
}

std::shared_ptr<catalog const> aggregator::snapshot() const {
    std::lock_guard lock(mu_);
    return catalog_;
}

std::size_t aggregator::server_count() const { return servers_.size(); }

asio::awaitable<void> aggregator::supervise(std::shared_ptr<server_state> sp) {
    auto& s = *sp;
    backoff delays(opts_.backoff_min, opts_.backoff_max);
    while (!stopping_ && !s.closing) {
        {
            std::lock_guard lock(mu_);
            s.status = server_status::starting;
        }
        std::unique_ptr<transport> t;
        if (opts_.make_transport) t = opts_.make_transport(ex_, s.cfg, s.log);
        else if (s.cfg.stdio) t = make_stdio_transport(ex_, *s.cfg.stdio, s.log);
        else t = make_http_transport(ex_, *s.cfg.http, s.log);
        // The shared session declares no client features (no client stands behind it), unless
        // mcp-stdio serves exactly one; a client's own session declares what that client declared.
        auto so = opts_.session;
        so.client_capabilities = s.declared;
        auto session = std::make_shared<client_session>(ex_, std::move(t), so, s.log);
        // (Handlers first: a server may ask for roots right after the handshake.)
        std::weak_ptr<client_session> weak = session;
        std::weak_ptr<server_state> weak_state = sp;
        session->on_notification([this, weak_state, weak](std::string const& method, json::value const& params) {
            auto st = weak_state.lock();
            if (!st) return;
            if (method == "notifications/tools/list_changed" || method == "notifications/resources/list_changed" ||
                method == "notifications/prompts/list_changed") {
                // Before the supervisor adopts the session (during the handshake), its first
                // refresh, which follows at once, lists everything anyway.
                auto live = weak.lock();
                if (live && st->session == live) tasks_.spawn(ex_, refresh(st, live));
            } else if (method == "notifications/message") {
                to_callers(*st, params);
            }
        });
        session->on_request([this, weak_state](std::string method, json::value params) {
            return ask_caller(weak_state.lock(), std::move(method), std::move(params));
        });
        auto started_at = clock_type::now();
        auto r = co_await session->start();
        auto* auth = auth_of(s.cfg.name);
        if (r && !stopping_ && !s.closing && auth && auth->blocked()) {
            // (The handshake passed without a token, and the server wants one for the rest.)
            co_await session->close();
        } else if (r && !stopping_ && !s.closing) {
            s.session = session;
            co_await refresh(sp, session);
            if (auth && auth->blocked() && s.tools.empty()) {
                // Its lists need a token it does not have yet: wait for the authorization below.
                s.session.reset();
                s.resources.clear();
                s.templates.clear();
                s.prompts.clear();
                co_await session->close();
                rebuild_catalog(s);
                r = boost::system::result<server_info>(boost::system::error_code(asio::error::access_denied));
            }
        }
        if (auth && auth->blocked() && !stopping_ && !s.closing && !s.session) {
            // Nothing to retry until a person authorizes: wait for the tokens, not for a backoff.
            {
                std::lock_guard lock(mu_);
                s.status = server_status::down;
                s.last_error = auth->why();
            }
            mark_attempted(s);
            while (auth->blocked() && !stopping_ && !s.closing) {
                s.backoff_timer.expires_at(asio::steady_timer::time_point::max());
                co_await s.backoff_timer.async_wait(nothrow_awaitable);
            }
            delays.reset();
            continue;
        }
        if (r && !stopping_ && !s.closing && s.session == session) {
            // "up" once its catalog is in: a caller who sees "up" finds the server's tools.
            {
                std::lock_guard lock(mu_);
                s.status = session->closed() ? server_status::down : server_status::up;
                s.last_error.clear();
                s.protocol_version = r->protocol_version;
                s.server_info = r->info;
            }
            mark_attempted(s);
            s.log(log_level::info, "connected (protocol " + r->protocol_version + ", " + std::to_string(s.tools.size()) +
                                       " tools)");
            co_await keep_alive(s, session);
            s.session.reset();
            s.tools.clear();
            s.resources.clear();
            s.templates.clear();
            s.prompts.clear();
            if (!s.closing) rebuild_catalog(s);
            {
                std::lock_guard lock(mu_);
                s.status = stopping_ || s.closing ? server_status::stopped : server_status::down;
                s.last_error = "connection to the server closed";
            }
            if (clock_type::now() - started_at > std::chrono::seconds(60)) delays.reset();  // it ran well for a while
        } else {
            if (r) co_await session->close();  // started while the gateway (or the client) was leaving
            mark_attempted(s);
            std::lock_guard lock(mu_);
            s.status = stopping_ || s.closing ? server_status::stopped : server_status::down;
            s.last_error = start_failure(r);
        }
        if (stopping_ || s.closing) break;
        {
            std::lock_guard lock(mu_);
            ++s.restarts;
        }
        auto wait = delays.next();
        s.log(log_level::warn, "unavailable; restarting in " + std::to_string(wait.count()) + " ms");
        s.backoff_timer.expires_after(wait);
        co_await s.backoff_timer.async_wait(nothrow_awaitable);
    }
    if (s.own) {
        std::lock_guard lock(mu_);
        --s.shared->client_sessions;
    }
}

// Waits until the session ends, pinging the server meanwhile: a server that stops answering pings
// (a hung process, a dead HTTP peer) is dropped and restarted instead of failing every call.
asio::awaitable<void> aggregator::keep_alive(server_state& s, std::shared_ptr<client_session> session) {
    if (s.cfg.ping_interval.count() <= 0) {
        co_await session->wait_closed();
        co_return;
    }
    int missed = 0;
    while (!session->closed() && !stopping_) {
        bool closed = co_await session->wait_closed_for(s.cfg.ping_interval);
        if (closed || stopping_) break;
        auto r = co_await session->request("ping", nullptr, std::max(s.cfg.ping_interval, std::chrono::milliseconds(1000)));
        if (r.state == call_result::status::timeout || r.state == call_result::status::closed) {
            if (++missed >= 2) {
                s.log(log_level::warn, "no answer to two pings; reconnecting");
                co_await session->close();
            }
        } else {
            missed = 0;
        }
    }
    co_await session->wait_closed();
}

asio::awaitable<void> aggregator::refresh(std::shared_ptr<server_state> sp, std::shared_ptr<client_session> session) {
    auto& s = *sp;
    if (s.refresh_running) {
        s.refresh_again = true;
        co_return;
    }
    s.refresh_running = true;
    do {
        s.refresh_again = false;
        auto list_all = [&](std::string method, std::string key) -> asio::awaitable<std::optional<std::vector<json::object>>> {
            std::vector<json::object> items;
            json::value cursor;
            for (int page = 0; page < 1000; ++page) {
                json::object params;
                if (cursor.is_string()) params["cursor"] = cursor;
                auto r = co_await session->request(method, params, s.cfg.timeout);
                if (!r.ok()) {
                    s.log(log_level::warn, method + " failed: " + r.message);
                    co_return std::nullopt;
                }
                auto const* o = r.result.if_object();
                auto const* arr = o ? o->if_contains(key) : nullptr;
                if (arr && arr->is_array())
                    for (auto const& it : arr->get_array())
                        if (it.is_object()) items.push_back(it.get_object());
                auto const* next = o ? o->if_contains("nextCursor") : nullptr;
                if (!next || !next->is_string() || next->get_string().empty()) break;
                cursor = *next;
            }
            co_return items;
        };
        // A list that fails keeps what the server listed before (a server that declares no such
        // capability has none).
        auto const& caps = session->info().capabilities;
        auto tools = s.tools, resources = s.resources, templates = s.templates, prompts = s.prompts;
        if (!caps.contains("tools")) tools.clear();
        else if (auto t = co_await list_all("tools/list", "tools")) {
            tools.clear();
            for (auto& tool : *t) {
                auto const* n = tool.if_contains("name");
                if (n && n->is_string() && allowed(s.cfg, std::string(n->get_string()))) tools.push_back(std::move(tool));
            }
        }
        if (!caps.contains("resources")) {
            resources.clear();
            templates.clear();
        } else {
            if (auto r = co_await list_all("resources/list", "resources")) resources = std::move(*r);
            if (auto r = co_await list_all("resources/templates/list", "resourceTemplates")) templates = std::move(*r);
        }
        if (!caps.contains("prompts")) prompts.clear();
        else if (auto r = co_await list_all("prompts/list", "prompts")) prompts = std::move(*r);
        if (session != s.session) break;  // the session ended meanwhile
        s.tools = std::move(tools);
        s.resources = std::move(resources);
        s.templates = std::move(templates);
        s.prompts = std::move(prompts);
        rebuild_catalog(s);
    } while (s.refresh_again);
    s.refresh_running = false;
}

// The client that hears what a server sends outside any call: the owner of a client's own session,
// or mcp-stdio's one client behind the shared session. MCP thread; use it before the next co_await
// (a view lives as long as its client's session holds it, not because of this pointer).
client_link const* aggregator::outside_link(server_state const& s) const {
    if (!s.own) return sole_client_ ? &*sole_client_ : nullptr;
    auto v = s.owner.lock();
    return v && !v->closed ? &v->link : nullptr;
}

// A request from an upstream server to its client goes to the caller whose call runs there; with
// no call running, to the outside_link client.
asio::awaitable<call_result> aggregator::ask_caller(std::shared_ptr<server_state> s, std::string method, json::value params) {
    std::function<asio::awaitable<call_result>(std::string const&, json::value)> ask;
    if (s) {
        for (auto* o : s->observers)
            if (o->on_request && !ask) ask = o->on_request;
        if (auto const* link = outside_link(*s); !ask && link) ask = link->outside_calls.on_request;
    }
    if (ask) co_return co_await ask(method, std::move(params));
    call_result r;
    r.state = call_result::status::error;
    r.code = errc::method_not_found;
    r.message = "no client to ask for " + method + " (only calls through toolgate's MCP front can forward it)";
    co_return r;
}

// Log messages likewise (stdio has no request ids to tell callers apart: every caller gets them).
void aggregator::to_callers(server_state& s, json::value const& log_params) {
    if (!s.observers.empty()) {
        auto observers = s.observers;
        for (auto* o : observers)
            if (o->on_log) o->on_log(log_params);
        return;
    }
    if (auto const* link = outside_link(s); link && link->outside_calls.on_log) link->outside_calls.on_log(log_params);
}

std::shared_ptr<catalog> aggregator::build_catalog(view const* v) const {
    auto c = std::make_shared<catalog>();
    std::vector<tool_ref> refs;
    std::vector<json::object const*> origin;
    for (std::size_t i = 0; i < servers_.size(); ++i) {
        auto const& s = serving(i, v);
        if (!s->session) continue;
        for (auto const& t : s->tools) {
            refs.push_back({s->cfg.name, std::string(t.at("name").get_string())});
            origin.push_back(&t);
        }
        for (auto const& r : s->resources) c->resources.emplace_back(s->cfg.name, r);
        for (auto const& r : s->templates) c->resource_templates.emplace_back(s->cfg.name, r);
        for (auto const& p : s->prompts) c->prompts.emplace_back(s->cfg.name, p);
    }
    auto names = assign_names(refs, opts_.names);
    for (std::size_t i = 0; i < refs.size(); ++i) {
        if (names[i].exposed.empty()) {
            c->problems.push_back(names[i].problem);
            continue;
        }
        c->by_exposed.emplace(names[i].exposed, c->tools.size());
        c->tools.push_back({names[i].exposed, refs[i].server, refs[i].tool, *origin[i]});
    }
    return c;
}

void aggregator::rebuild_catalog(server_state& changed) {
    if (changed.own) {
        // Only that client's catalog changed; only it hears of it.
        auto v = changed.owner.lock();
        if (!v || v->closed) return;
        v->cat = build_catalog(v.get());
        if (auto cb = v->link.on_change) cb();
        return;
    }
    auto c = build_catalog(nullptr);
    for (auto const& weak : views_)
        if (auto v = weak.lock(); v && !v->closed) v->cat = build_catalog(v.get());
    std::function<void()> changed_cb;
    {
        std::lock_guard lock(mu_);
        catalog_ = std::move(c);
        changed_cb = on_change_;
    }
    if (changed_cb) changed_cb();
}

void aggregator::on_catalog_change(std::function<void()> cb) {
    std::lock_guard lock(mu_);
    on_change_ = std::move(cb);
}

asio::awaitable<call_result> aggregator::forward(std::string server, std::string method, json::object params,
                                                 cancel_token* cancel, std::shared_ptr<view> v) {
    auto bridge = bridge_cancel(cancel, ex_);
    co_return co_await asio::co_spawn(ex_, forward_on_mcp_thread(std::move(server), std::move(method), std::move(params), bridge.remote, std::move(v)),
                                      asio::use_awaitable);
}

asio::awaitable<call_result> aggregator::forward_on_mcp_thread(std::string server, std::string method, json::object params,
                                                               std::shared_ptr<cancel_token> cancel, std::shared_ptr<view> v) {
    auto s = state_for(server, v.get());
    auto session = s ? s->session : nullptr;
    if (!session || session->closed()) {
        call_result r;
        r.state = call_result::status::closed;
        r.message = "MCP server '" + server + "' is unavailable";
        co_return r;
    }
    co_return co_await session->request(method, json::value(std::move(params)), s->cfg.timeout, cancel.get());
}

asio::awaitable<tool_outcome> aggregator::call_tool(std::string exposed_name, json::object arguments,
                                                    cancel_token* cancel,
                                                    std::function<void(json::value const&)> on_progress,
                                                    upstream_observer* observer, std::shared_ptr<view> v) {
    // The caller's token lives on the caller's thread; the call runs on the MCP thread with its own.
    auto bridge = bridge_cancel(cancel, ex_);
    if (on_progress) {
        // Progress arrives on the MCP thread; the caller gets it on its own executor.
        auto caller = co_await asio::this_coro::executor;
        auto target = std::make_shared<std::function<void(json::value const&)>>(std::move(on_progress));
        on_progress = [caller, target](json::value const& v) { asio::post(caller, [target, v] { (*target)(v); }); };
    }
    co_return co_await asio::co_spawn(
        ex_, call_on_mcp_thread(std::move(exposed_name), std::move(arguments), bridge.remote, std::move(on_progress), observer,
                                std::move(v)),
        asio::use_awaitable);
}

asio::awaitable<tool_outcome> aggregator::call_on_mcp_thread(std::string exposed_name, json::object arguments,
                                                             std::shared_ptr<cancel_token> cancel,
                                                             std::function<void(json::value const&)> on_progress,
                                                             upstream_observer* observer, std::shared_ptr<view> v) {
    tool_outcome out;
    auto start = clock_type::now();
    auto cat = snapshot(v.get());
    auto const* entry = cat->find(exposed_name);
    if (entry == nullptr) {
        out.error = "unknown tool '" + exposed_name + "'";
        out.code = tool_errc::unknown_tool;
        co_return out;
    }
    auto s = state_for(entry->server, v.get());
    std::string tool_name = entry->name;
    auto finish = [&](tool_outcome& o) {
        o.duration = std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - start);
        std::lock_guard lock(mu_);
        auto& st = (s->shared ? s->shared : s.get())->per_tool[tool_name];
        ++st.calls;
        if (!o.ok || (o.result.contains("isError") && o.result.at("isError") == true)) ++st.errors;
        double secs = std::chrono::duration<double>(o.duration).count();
        for (std::size_t i = 0; i < latency_buckets.size(); ++i)
            if (secs <= latency_buckets[i]) ++st.buckets[i];
        st.seconds_sum += secs;
    };
    auto session = s ? s->session : nullptr;
    if (!session || session->closed()) {
        out.error = "MCP server '" + entry->server + "' is unavailable";
        out.code = tool_errc::unavailable;
        finish(out);
        co_return out;
    }
    auto ticket = s->admission.admit(clock_type::now());
    if (ticket.what == call_admission::verdict::circuit_open) {
        out.error = "MCP server '" + entry->server + "' is failing; calls are paused (circuit breaker open)";
        out.code = tool_errc::circuit_open;
        finish(out);
        co_return out;
    }
    if (ticket.what == call_admission::verdict::busy) {
        out.error = "MCP server '" + entry->server + "' is busy (" + std::to_string(s->cfg.max_queue) + " calls queued)";
        out.code = tool_errc::busy;
        finish(out);
        co_return out;
    }
    // Hands this call's slot on (to the first queued call) or frees it.
    auto release = [s](call_admission::ticket const& t, call_admission::ending how) {
        bool changed = false;
        if (s->admission.finish(t, how, clock_type::now(), &changed)) {
            auto* next = s->waiters.front();
            s->waiters.pop_front();
            next->granted = true;
            next->wake.cancel();
        }
        return changed;
    };
    if (ticket.what == call_admission::verdict::queue) {
        server_state::queued_call q(ex_);
        q.wake.expires_after(s->cfg.timeout);
        s->waiters.push_back(&q);
        auto sub = cancel->subscribe([&q] { q.wake.cancel(); });
        co_await q.wake.async_wait(nothrow_awaitable);
        if (!q.granted) std::erase(s->waiters, &q);
        if (!q.granted || cancel->cancelled()) {
            if (q.granted) release(ticket, call_admission::ending::abandoned);
            else s->admission.left_queue(ticket);
            out.error = cancel->cancelled() ? "cancelled while queued" : "timed out while queued for a free slot";
            out.code = cancel->cancelled() ? tool_errc::cancelled : tool_errc::timeout;
            finish(out);
            co_return out;
        }
    }
    auto params = call_params(tool_name, std::move(arguments));
    if (observer) s->observers.push_back(observer);
    auto r = co_await session->request("tools/call", std::move(params), s->cfg.timeout, cancel.get(), std::move(on_progress));
    if (observer) std::erase(s->observers, observer);

    bool failure = false;
    switch (r.state) {
        case call_result::status::ok:
            if (auto* o = r.result.if_object()) {
                out.ok = true;
                out.result = std::move(*o);
                out.truncated = cap_result(out.result, s->cfg.max_result_bytes);
            } else {
                out.error = "the server answered tools/call with something that is not a result object";
                out.code = tool_errc::server_error;
            }
            break;
        case call_result::status::error:
            out.error = "the server refused the call: " + r.message + " (" + std::to_string(r.code) + ")";
            out.code = r.code == errc::invalid_params ? tool_errc::invalid_arguments : tool_errc::server_error;
            break;
        case call_result::status::timeout:
            out.error = "no result within " + std::to_string(s->cfg.timeout.count()) + " ms";
            out.code = tool_errc::timeout;
            failure = true;
            break;
        case call_result::status::cancelled:
            out.error = "cancelled";
            out.code = tool_errc::cancelled;
            break;
        case call_result::status::closed:
            out.error = r.message.empty() ? "the server connection closed during the call" : r.message;
            out.code = tool_errc::unavailable;
            failure = true;
            break;
    }
    // A cancelled call says nothing about the server.
    auto how = r.state == call_result::status::cancelled ? call_admission::ending::abandoned
               : failure                                 ? call_admission::ending::failure
                                                         : call_admission::ending::success;
    if (release(ticket, how)) {
        bool open = s->breaker.is_open();
        s->log(open ? log_level::warn : log_level::info, breaker_line(open, s->cfg.breaker_open, s->breaker.failures()));
        std::lock_guard lock(mu_);
        s->breaker_open = open;
    }
    finish(out);
    co_return out;
}

json::array aggregator::servers_status() const {
    json::array out;
    auto cat = snapshot();
    std::lock_guard lock(mu_);
    for (auto const& s : servers_) {
        std::size_t tools = 0;
        for (auto const& t : cat->tools)
            if (t.server == s->cfg.name) ++tools;
        json::object o{{"name", s->cfg.name},
                       {"transport", s->cfg.stdio ? "stdio" : "http"},
                       {"status", to_string(shown_status(*s))},
                       {"required", s->cfg.required},
                       {"tools", tools},
                       {"restarts", s->restarts},
                       {"client_sessions", s->client_sessions},
                       {"circuit_breaker", s->breaker_open ? "open" : "closed"}};
        if (!s->protocol_version.empty()) o["protocol_version"] = s->protocol_version;
        if (!s->server_info.empty()) o["server_info"] = s->server_info;
        if (!s->last_error.empty()) o["last_error"] = s->last_error;
        if (auto const* a = auth_of(s->cfg.name)) o["auth"] = a->status();
        if (s->cfg.http) o["url"] = s->cfg.http->url;
        else if (s->cfg.stdio) o["command"] = s->cfg.stdio->command;
        out.push_back(std::move(o));
    }
    return out;
}

std::string_view to_string(server_status s) {
    switch (s) {
        case server_status::starting: return "starting";
        case server_status::up: return "up";
        case server_status::down: return "down";
        case server_status::stopped: return "stopped";
        case server_status::needs_authorization: return "needs_authorization";
    }
    return "down";
}

std::vector<server_view> aggregator::servers() const {
    std::vector<server_view> out;
    std::lock_guard lock(mu_);
    out.reserve(servers_.size());
    for (auto const& s : servers_) {
        server_view v;
        v.name = s->cfg.name;
        v.status = shown_status(*s);
        v.required = s->cfg.required;
        v.breaker_open = s->breaker_open;
        v.restarts = s->restarts;
        out.push_back(std::move(v));
    }
    return out;
}

bool aggregator::required_servers_up() const {
    std::lock_guard lock(mu_);
    for (auto const& s : servers_)
        if (s->cfg.required && s->status != server_status::up) return false;
    return true;
}

std::vector<std::tuple<std::string, std::string, call_stats>> aggregator::stats() const {
    std::vector<std::tuple<std::string, std::string, call_stats>> out;
    std::lock_guard lock(mu_);
    for (auto const& s : servers_)
        for (auto const& [tool, st] : s->per_tool) out.emplace_back(s->cfg.name, tool, st);
    return out;
}

}  // namespace toolgate::mcp
