#include "gateway/mcp_front.hpp"

#include "gateway/mcp_front_auth.hpp"
#include "common/ids.hpp"
#include "common/task_group.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/serialize.hpp>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <future>
#include <iostream>
#include <map>
#include <mutex>

#include "common/text.hpp"
#include "gateway/mcp_runtime.hpp"
#include "gateway/policy/guardrails.hpp"
#include "mcp/client_session.hpp"
#include "mcp/server_session.hpp"

namespace toolgate::gateway {

namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

// Streams are kept for resumption: at most this many per session, and finished ones only briefly
// (a dropped connection comes back within seconds), so a session's memory stays bounded.
constexpr std::size_t max_streams_per_session = 16;
constexpr std::int64_t keep_finished_ms = 60'000;
// Events kept per stream for resumption; older ones are dropped (a GET stream nobody reads, say).
constexpr std::size_t max_events_per_stream = 1024;

std::string random_id() { return secure_hex(16); }

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now().time_since_epoch()).count();
}

bool accepts(std::string_view accept, std::string_view type) {
    auto lower = ascii_lower(accept);
    return lower.find(type) != std::string::npos || lower.find("*/*") != std::string::npos;
}

// "http://localhost:3000" -> "localhost"; "[::1]:8080" -> "::1"
std::string host_of(std::string_view authority) {
    if (auto scheme = authority.find("://"); scheme != std::string_view::npos) authority.remove_prefix(scheme + 3);
    if (auto slash = authority.find('/'); slash != std::string_view::npos) authority = authority.substr(0, slash);
    if (authority.starts_with("[")) {
        auto close = authority.find(']');
        return ascii_lower(authority.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1));
    }
    if (auto colon = authority.rfind(':'); colon != std::string_view::npos) authority = authority.substr(0, colon);
    return ascii_lower(authority);
}

bool loopback(std::string const& host) { return host == "localhost" || host == "127.0.0.1" || host == "::1"; }

std::string jsonrpc_error_body(int code, std::string const& message) { return mcp::make_error(nullptr, code, message); }

// One SSE stream's events, kept so that a client can resume it (Last-Event-ID). Written on the MCP
// thread, read by the worker thread serving the HTTP response; thread-safe.
class event_stream {
public:
    explicit event_stream(std::uint64_t id) : id_(id) {}
    std::uint64_t id() const { return id_; }

    void push(std::string data) {
        std::function<void()> wake;
        {
            std::lock_guard lock(mu_);
            if (done_) return;
            events_.push_back(std::move(data));
            if (events_.size() > max_events_per_stream) {
                events_.pop_front();
                ++first_;
            }
            wake = wake_;
        }
        if (wake) wake();
    }
    void finish() {
        std::function<void()> wake;
        {
            std::lock_guard lock(mu_);
            if (!done_) finished_ms_ = now_ms();
            done_ = true;
            wake = wake_;
        }
        if (wake) wake();
    }
    // Finished for long enough that nobody will resume it.
    bool stale(std::int64_t now) {
        std::lock_guard lock(mu_);
        return done_ && now - finished_ms_ > keep_finished_ms;
    }
    void attach(std::function<void()> wake) {
        std::lock_guard lock(mu_);
        wake_ = std::move(wake);
    }
    // Events from index `next` on; true when the stream has ended and nothing is left.
    bool take(std::size_t& next, std::vector<std::pair<std::size_t, std::string>>& out) {
        std::lock_guard lock(mu_);
        next = std::max(next, first_);
        for (; next < first_ + events_.size(); ++next) out.emplace_back(next, events_[next - first_]);
        return done_;
    }

private:
    std::uint64_t id_;
    std::mutex mu_;
    std::deque<std::string> events_;
    std::size_t first_ = 0;  // index of events_.front()
    bool done_ = false;
    std::int64_t finished_ms_ = 0;
    std::function<void()> wake_;
};

struct front_session {
    std::string id;
    std::string key_name;
    std::shared_ptr<mcp::server_session> protocol;  // used on the MCP thread only
    std::atomic<std::int64_t> last_used_ms{now_ms()};
    std::mutex mu;  // guards the streams
    std::map<std::uint64_t, std::shared_ptr<event_stream>> streams;
    std::uint64_t next_stream = 1;
    // The GET stream: messages the server sends on its own. It exists from the start, so that what
    // comes before the client's first GET (an upstream server asking for roots) waits there.
    std::shared_ptr<event_stream> general;
    bool general_claimed = false;  // a GET has taken `general`; the next GET starts a new one

    void to_general(std::string message) {
        std::shared_ptr<event_stream> g;
        {
            std::lock_guard lock(mu);
            g = general;
        }
        if (g) g->push(std::move(message));
    }

    std::shared_ptr<event_stream> new_stream() {
        std::lock_guard lock(mu);
        auto s = std::make_shared<event_stream>(next_stream++);
        auto now = now_ms();
        std::erase_if(streams, [now](auto const& entry) { return entry.second->stale(now); });
        streams.emplace(s->id(), s);
        // The oldest go first, but never the current GET stream.
        for (auto it = streams.begin(); streams.size() > max_streams_per_session && it != streams.end();)
            it = it->second == general ? std::next(it) : streams.erase(it);
        return s;
    }
    std::shared_ptr<event_stream> find_stream(std::uint64_t id) {
        std::lock_guard lock(mu);
        auto it = streams.find(id);
        return it == streams.end() ? nullptr : it->second;
    }
    void finish_all() {
        std::lock_guard lock(mu);
        for (auto& [id, s] : streams) s->finish();
    }
};

asio::awaitable<std::optional<std::string>> on_mcp_thread(std::shared_ptr<front_session> s, mcp::message msg,
                                                         mcp::server_session::emit_fn emit) {
    co_return co_await s->protocol->handle(std::move(msg), std::move(emit));
}

// Runs a request whose answer goes into an SSE stream, to the end, whether or not anyone listens.
asio::awaitable<void> run_streamed(std::shared_ptr<front_session> s, mcp::message msg, std::shared_ptr<event_stream> stream) {
    mcp::server_session::emit_fn emit = [stream](std::string m) { stream->push(std::move(m)); };
    auto answer = co_await s->protocol->handle(std::move(msg), emit);
    if (answer) stream->push(std::move(*answer));
    stream->finish();
}

// The sessions end on the MCP thread: what runs is cancelled, the clients' own upstream sessions close.
asio::awaitable<void> close_sessions(std::vector<std::shared_ptr<mcp::server_session>> all) {
    for (auto& s : all) co_await s->close();
}

}  // namespace

struct mcp_front::impl : std::enable_shared_from_this<impl> {
    mcp_front_config cfg;
    std::string listen_host;
    mcp::aggregator& agg;
    mutable std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<front_session>> sessions;

    policy::mcp_screens screens;  // the guardrails on tools/call arguments and results

    impl(gateway_config const& c, mcp::aggregator& a)
        : cfg(c.mcp_front), listen_host(ascii_lower(c.server.listen.host)), agg(a),
          screens(policy::make_mcp_screens(c.guardrail_settings)) {}

    // Catalog changes: every session hears list_changed on its GET stream. MCP thread.
    void broadcast_list_changed() {
        std::vector<std::shared_ptr<front_session>> all;
        {
            std::lock_guard lock(mu);
            for (auto& [id, s] : sessions) all.push_back(s);
        }
        for (auto& s : all) s->protocol->catalog_changed();
    }

    std::atomic<std::int64_t> last_sweep_ms{0};

    // At most once a second (it walks every session under the lock).
    void expire_idle() {
        auto now = now_ms();
        auto last = last_sweep_ms.load();
        if (now - last < 1000 || !last_sweep_ms.compare_exchange_strong(last, now)) return;
        auto limit = now - cfg.session_idle_timeout.count();
        std::vector<std::shared_ptr<front_session>> gone;
        {
            std::lock_guard lock(mu);
            for (auto it = sessions.begin(); it != sessions.end();) {
                if (it->second->last_used_ms.load() < limit) {
                    gone.push_back(it->second);
                    it = sessions.erase(it);
                } else {
                    ++it;
                }
            }
        }
        for (auto& s : gone) end_session(s);
    }

    void end_session(std::shared_ptr<front_session> const& s) {
        s->finish_all();
        asio::co_spawn(agg.executor(), close_sessions({s->protocol}), asio::detached);
    }

    std::shared_ptr<front_session> find(std::string const& id) {
        std::lock_guard lock(mu);
        auto it = sessions.find(id);
        return it == sessions.end() ? nullptr : it->second;
    }

    mcp_front_key const* authenticate(inbound_request const& req) const {
        auto auth = req.header("authorization");
        if (auth.size() < 7 || ascii_lower(auth.substr(0, 7)) != "bearer ") return nullptr;
        auto token = auth.substr(7);
        for (auto const& k : cfg.keys)
            if (k.key.size() == token.size() && CRYPTO_memcmp(k.key.data(), token.data(), token.size()) == 0) return &k;
        return nullptr;
    }

    bool origin_allowed(std::string_view origin) const {
        if (origin.empty()) return true;  // not a browser
        for (auto const& o : cfg.allowed_origins)
            if (o == origin) return true;
        return loopback(host_of(origin));
    }

    bool host_allowed(std::string_view host_header) const {
        if (host_header.empty()) return false;
        auto host = host_of(host_header);
        if (loopback(host) || host == listen_host) return true;
        for (auto const& h : cfg.allowed_hosts)
            if (ascii_lower(h) == host) return true;
        return false;
    }
};

mcp_front::mcp_front(gateway_config const& cfg, mcp::aggregator& agg) : impl_(std::make_shared<impl>(cfg, agg)) {
    std::weak_ptr<impl> weak = impl_;
    agg.on_catalog_change([weak] {
        if (auto self = weak.lock()) self->broadcast_list_changed();
    });
}

mcp_front::~mcp_front() {
    impl_->agg.on_catalog_change({});
    std::vector<std::shared_ptr<front_session>> all;
    {
        std::lock_guard lock(impl_->mu);
        for (auto& [id, s] : impl_->sessions) all.push_back(s);
        impl_->sessions.clear();
    }
    std::vector<std::shared_ptr<mcp::server_session>> protocols;
    for (auto& s : all) {
        s->finish_all();
        protocols.push_back(s->protocol);
    }
    // (Bounded: the MCP thread may be stopping.)
    auto done = asio::co_spawn(impl_->agg.executor(), close_sessions(std::move(protocols)), asio::use_future);
    done.wait_for(std::chrono::seconds(5));
}

void mcp_front::shutdown() {
    std::vector<std::shared_ptr<front_session>> all;
    {
        std::lock_guard lock(impl_->mu);
        for (auto& [id, s] : impl_->sessions) all.push_back(s);
    }
    // Only the GET streams: tool calls in flight may still finish within the grace period.
    for (auto& s : all) {
        std::lock_guard lock(s->mu);
        if (s->general) s->general->finish();
    }
}

std::size_t mcp_front::session_count() const {
    std::lock_guard lock(impl_->mu);
    return impl_->sessions.size();
}

namespace {

struct http_reply {
    int status;
    std::string body;
};

// Writes a stream's events from `next` on as SSE (ids "<stream>-<index>") until it ends or the
// client goes; keep-alive comments while nothing happens.
asio::awaitable<int> pump(std::shared_ptr<event_stream> stream, std::size_t next, response_channel& out,
                          cancel_token& cancel, header_list const& headers, bool priming) {
    auto ex = co_await asio::this_coro::executor;
    auto timer = std::make_shared<asio::steady_timer>(ex);
    std::weak_ptr<asio::steady_timer> weak = timer;
    stream->attach([ex, weak] {
        asio::post(ex, [weak] {
            if (auto t = weak.lock()) t->cancel();
        });
    });
    auto sub = cancel.subscribe([timer] { timer->cancel(); });
    bool ok = co_await out.begin_stream(200, "text/event-stream", headers);
    // A priming event (an id, no data) and a retry hint first, so that a client can resume the
    // stream even if it drops before the first message (SEP-1699).
    if (ok && priming) ok = co_await out.write("id: " + std::to_string(stream->id()) + "-start\nretry: 1000\ndata: \n\n");
    std::vector<std::pair<std::size_t, std::string>> batch;
    while (ok && !cancel.cancelled()) {
        batch.clear();
        bool done = stream->take(next, batch);
        if (!batch.empty()) {
            std::string text;
            for (auto const& [index, data] : batch)
                text += "id: " + std::to_string(stream->id()) + "-" + std::to_string(index) + "\nevent: message\ndata: " +
                        data + "\n\n";
            ok = co_await out.write(text);
            continue;
        }
        if (done) {
            co_await out.end_stream();
            break;
        }
        timer->expires_after(std::chrono::seconds(15));
        auto [ec] = co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
        if (!ec && !cancel.cancelled()) ok = co_await out.write(": keep-alive\n\n");
    }
    stream->attach({});
    co_return 200;
}

// Tool calls answer through an SSE stream: progress, the server's log messages and its requests to
// the client (sampling, elicitation) come first.
bool streamed(mcp::message const& msg) { return msg.method == "tools/call"; }

}  // namespace

asio::awaitable<int> mcp_front::handle(inbound_request& req, response_channel& out, cancel_token& cancel,
                                      mcp_front_key const* identity) {
    auto self = impl_;
    auto& cfg = self->cfg;
    header_list headers;
    auto fail = [&](int status, int code, std::string const& message) -> http_reply {
        return http_reply{status, jsonrpc_error_body(code, message)};
    };
    std::optional<http_reply> reply;
    // DNS rebinding: a browser page from elsewhere must not reach a local server.
    if (!self->host_allowed(req.header("host")))
        reply = fail(403, mcp::errc::invalid_request, "Host not allowed");
    else if (!self->origin_allowed(req.header("origin")))
        reply = fail(403, mcp::errc::invalid_request, "Origin not allowed");
    mcp_front_key const* key = identity;
    if (!reply && !key && !cfg.keys.empty()) {
        key = self->authenticate(req);
        if (!key) {
            headers.emplace_back("www-authenticate", unauthorized_challenge(cfg));
            reply = fail(401, mcp::errc::invalid_request, "missing or unknown bearer token");
        }
    }
    if (!reply && req.method != "POST" && req.method != "GET" && req.method != "DELETE") {
        headers.emplace_back("allow", "GET, POST, DELETE");
        reply = fail(405, mcp::errc::invalid_request, "use POST, GET or DELETE");
    }
    if (reply) {
        co_await out.send(reply->status, "application/json", reply->body, headers);
        co_return reply->status;
    }
    self->expire_idle();

    std::shared_ptr<front_session> session;
    auto sid = std::string(req.header("mcp-session-id"));
    mcp::message msg;
    bool is_initialize = false;
    if (req.method == "POST") {
        auto accept = req.header("accept");
        if (!accepts(accept, "application/json") || !accepts(accept, "text/event-stream"))
            reply = fail(406, mcp::errc::invalid_request, "Accept must list application/json and text/event-stream");
        else if (!ascii_lower(req.header("content-type")).starts_with("application/json"))
            reply = fail(415, mcp::errc::invalid_request, "Content-Type must be application/json");
        else {
            msg = mcp::parse_message(req.body);
            if (msg.type == mcp::message::kind::invalid)
                reply = fail(400, msg.problem.find("JSON") != std::string::npos ? mcp::errc::parse_error : mcp::errc::invalid_request,
                             "invalid JSON-RPC message: " + msg.problem);
            is_initialize = msg.type == mcp::message::kind::request && msg.method == "initialize";
        }
    } else if (req.method == "GET" && !accepts(req.header("accept"), "text/event-stream")) {
        reply = fail(406, mcp::errc::invalid_request, "Accept must list text/event-stream");
    }
    if (!reply && !is_initialize) {
        if (sid.empty()) {
            reply = fail(400, mcp::errc::invalid_request, "Mcp-Session-Id header required (send initialize first)");
        } else {
            session = self->find(sid);
            if (!session || (key && session->key_name != key->name))
                reply = fail(404, mcp::errc::invalid_request, "unknown or ended session");
        }
    }
    if (!reply && session) {
        auto version = std::string(req.header("mcp-protocol-version"));
        bool known = version.empty();
        for (auto const& v : mcp::supported_protocol_versions()) known = known || v == version;
        if (!known) reply = fail(400, mcp::errc::invalid_request, "unsupported MCP-Protocol-Version: " + version);
    }
    if (reply) {
        co_await out.send(reply->status, "application/json", reply->body, headers);
        co_return reply->status;
    }

    if (is_initialize) {
        std::size_t count = session_count();
        if (count >= cfg.max_sessions) {
            auto body = jsonrpc_error_body(mcp::errc::internal_error, "too many MCP sessions");
            co_await out.send(503, "application/json", body, headers);
            co_return 503;
        }
        session = std::make_shared<front_session>();
        session->id = random_id();
        session->key_name = key ? key->name : std::string();
        mcp::server_session_options so;
        so.version = TOOLGATE_VERSION;
        so.page_size = cfg.page_size;
        if (key) so.allowed_tools = key->tools;
        so.screen_arguments = self->screens.arguments;
        so.screen_result = self->screens.result;
        session->protocol = std::make_shared<mcp::server_session>(self->agg, so);
        session->general = session->new_stream();
        std::weak_ptr<front_session> weak_session = session;
        session->protocol->set_channel([weak_session](std::string m) {
            if (auto live = weak_session.lock()) live->to_general(std::move(m));
        });
        auto answer = co_await asio::co_spawn(self->agg.executor(), on_mcp_thread(session, msg, {}), asio::use_awaitable);
        if (session->protocol->initialized()) {  // (read after the MCP thread finished with it)
            std::lock_guard lock(self->mu);
            self->sessions.emplace(session->id, session);
            headers.emplace_back("mcp-session-id", session->id);
        } else {
            self->end_session(session);
        }
        co_await out.send(200, "application/json", answer.value_or(""), headers);
        co_return 200;
    }

    session->last_used_ms = now_ms();
    headers.emplace_back("mcp-session-id", session->id);
    if (req.method == "DELETE") {
        {
            std::lock_guard lock(self->mu);
            self->sessions.erase(session->id);
        }
        self->end_session(session);
        co_await out.send(200, "application/json", "{}", headers);
        co_return 200;
    }
    if (req.method == "GET") {
        // Resumption: "<stream>-<index>" of an earlier stream of this session.
        auto last = req.header("last-event-id");
        if (!last.empty()) {
            auto dash = last.find('-');
            std::shared_ptr<event_stream> stream;
            std::size_t next = 0;
            if (dash != std::string_view::npos) {
                try {
                    stream = session->find_stream(std::stoull(std::string(last.substr(0, dash))));
                    auto index = last.substr(dash + 1);
                    next = index == "start" ? 0 : std::stoull(std::string(index)) + 1;
                } catch (std::exception const&) {
                    stream = nullptr;
                }
            }
            if (!stream) {
                auto body = jsonrpc_error_body(mcp::errc::invalid_request, "unknown Last-Event-ID");
                co_await out.send(404, "application/json", body, headers);
                co_return 404;
            }
            co_return co_await pump(stream, next, out, cancel, headers, false);
        }
        std::shared_ptr<event_stream> stream, previous;
        {
            std::lock_guard lock(session->mu);
            if (!std::exchange(session->general_claimed, true)) stream = session->general;
        }
        if (!stream) {
            stream = session->new_stream();
            std::lock_guard lock(session->mu);
            previous = std::exchange(session->general, stream);
        }
        if (previous) previous->finish();
        co_return co_await pump(stream, 0, out, cancel, headers, true);
    }
    // POST of a notification or response: accepted.
    if (msg.type != mcp::message::kind::request) {
        co_await asio::co_spawn(self->agg.executor(), on_mcp_thread(session, msg, {}), asio::use_awaitable);
        co_await out.send(202, "application/json", "", headers);
        co_return 202;
    }
    if (streamed(msg)) {
        // The answer comes as an SSE stream (progress first); the call goes on if the client drops
        // the connection, and the rest of the stream can be fetched again with Last-Event-ID.
        auto stream = session->new_stream();
        asio::co_spawn(self->agg.executor(), run_streamed(session, msg, stream), asio::detached);
        co_return co_await pump(stream, 0, out, cancel, headers, true);
    }
    auto answer = co_await asio::co_spawn(self->agg.executor(), on_mcp_thread(session, msg, {}), asio::use_awaitable);
    co_await out.send(200, "application/json", answer.value_or(""), headers);
    co_return 200;
}

// ---- stdio ----------------------------------------------------------------------------------

namespace {

class stdout_writer {
public:
    void write(std::string const& line) {
        std::lock_guard lock(mu_);
        std::cout << line << '\n' << std::flush;
    }

private:
    std::mutex mu_;
};

asio::awaitable<void> serve_line(std::shared_ptr<mcp::server_session> session, std::shared_ptr<stdout_writer> out,
                                 mcp::message msg) {
    mcp::server_session::emit_fn emit = [out](std::string m) { out->write(m); };
    auto answer = co_await session->handle(std::move(msg), emit);
    if (answer) out->write(*answer);
}

// The client left: its sessions close (their calls are cancelled upstream), then what still runs
// gets a bounded moment to answer, and is aborted after it.
asio::awaitable<void> finish_lines(task_group& lines, std::shared_ptr<mcp::server_session> session) {
    std::vector<std::shared_ptr<mcp::server_session>> all(1, session);
    co_await close_sessions(std::move(all));
    if (!co_await lines.wait_for(std::chrono::seconds(5))) {
        lines.emit(asio::cancellation_type::terminal);
        co_await lines.wait_for(std::chrono::seconds(1));
    }
}

}  // namespace

int run_mcp_stdio(gateway_config const& cfg) {
    std::ios::sync_with_stdio(false);
    // The servers start when the client has said who it is: its one client stands behind the
    // shared sessions, which declare its sampling, elicitation and roots capabilities.
    mcp_runtime runtime(cfg, false);
    auto& agg = runtime.aggregator();
    mcp::server_session_options so;
    so.version = TOOLGATE_VERSION;
    so.page_size = cfg.mcp_front.page_size;
    auto screens = policy::make_mcp_screens(cfg.guardrail_settings);
    so.screen_arguments = screens.arguments;
    so.screen_result = screens.result;
    so.serve_alone = [&agg](mcp::client_link link) { agg.start(std::move(link)); };
    auto session = std::make_shared<mcp::server_session>(agg, so);
    auto out = std::make_shared<stdout_writer>();
    session->set_channel([out](std::string m) { out->write(m); });
    // The first list waits (bounded) for the servers to come up; later changes say list_changed.
    agg.on_catalog_change([session] { session->catalog_changed(); });
    task_group lines;  // one member per request line being answered
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line.empty() || line == "\r") continue;
        if (line.size() > (16u << 20)) {
            out->write(mcp::make_error(nullptr, mcp::errc::invalid_request, "message too large"));
            continue;
        }
        auto msg = mcp::parse_message(line);
        lines.spawn(agg.executor(), serve_line(session, out, std::move(msg)));
    }
    // stdin closed: the client is gone.
    asio::co_spawn(agg.executor(), finish_lines(lines, session), asio::use_future).wait();
    agg.on_catalog_change({});
    return 0;
}

}  // namespace toolgate::gateway
