#include "gateway/server.hpp"
#include "gateway/http_request.hpp"

#include "common/http_client.hpp"
#include "common/asio_util.hpp"
#include "common/task_group.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <list>
#include <optional>
#include <sys/socket.h>
#include <thread>

#include "common/api_error.hpp"
#include "common/held_count.hpp"
#include "common/text.hpp"

namespace toolgate::gateway {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;

std::string_view inbound_request::header(std::string_view lower_name) const {
    for (auto const& [k, v] : headers)
        if (k == lower_name) return v;
    return {};
}

bool framing_is_plain(beast_request const& msg) {
    auto [from, to] = msg.equal_range(bhttp::field::transfer_encoding);
    if (from == to) return true;
    if (msg.version() < 11) return false;  // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing
    auto v = from->value();
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return std::next(from) == to && beast::iequals(v, "chunked") && msg.count(bhttp::field::content_length) == 0;
}

// A multipart/form-data body on an upload route, which server.max_upload_bytes bounds.
bool is_upload(beast_request const& msg) {
    auto ct = msg[bhttp::field::content_type];
    constexpr std::string_view type = "multipart/form-data";
    if (ct.size() < type.size() || !beast::iequals(ct.substr(0, type.size()), type)) return false;
    auto target = msg.target();
    auto path = target.substr(0, target.find('?'));
    for (std::string_view p : {"/v1/audio/transcriptions", "/v1/audio/translations", "/v1/images/edits", "/v1/images/variations"})
        if (path == p) return true;
    return false;
}

inbound_request to_inbound(beast_request& msg) {
    inbound_request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    auto q = req.target.find('?');
    req.path = q == std::string::npos ? req.target : req.target.substr(0, q);
    req.headers.reserve(16);
    for (auto const& f : msg) req.headers.emplace_back(ascii_lower(f.name_string()), std::string(f.value()));
    req.body = std::move(msg.body());
    return req;
}

namespace {

struct session_state {
    beast::tcp_stream* stream = nullptr;
    bool busy = false;
    cancel_token* active = nullptr;  // the request in progress, for the deadline sweep
    std::chrono::steady_clock::time_point deadline{};
};

struct worker {
    std::list<session_state*> sessions;  // touched only on this worker's thread
    asio::io_context ioc{1};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
    std::unique_ptr<http::client> client;
    std::thread thread;
};


std::string make_head(int status, std::string_view content_type, header_list const& extra, std::size_t length,
                      bool chunked, bool keep_alive) {
    std::string h;
    h.reserve(256);
    h.append("HTTP/1.1 ").append(std::to_string(status)).append(" ");
    h.append(bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(status))));
    h.append("\r\nServer: toolgate\r\n");
    if (!content_type.empty()) h.append("Content-Type: ").append(content_type).append("\r\n");
    if (chunked) h.append("Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    else h.append("Content-Length: ").append(std::to_string(length)).append("\r\n");
    for (auto const& [k, v] : extra) h.append(k).append(": ").append(v).append("\r\n");
    if (!keep_alive) h.append("Connection: close\r\n");
    h.append("\r\n");
    return h;
}

class channel final : public response_channel {
public:
    channel(beast::tcp_stream& s, bool keep_alive, std::chrono::milliseconds write_timeout)
        : s_(s), keep_alive_(keep_alive), write_timeout_(write_timeout) {}

    asio::awaitable<bool> send(int status, std::string_view content_type, std::string_view body,
                               header_list const& extra) override {
        if (started_) co_return false;
        started_ = done_ = true;
        auto head = make_head(status, content_type, extra, body.size(), false, keep_alive_);
        std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(body)};
        co_return co_await write_all(bufs);
    }

    asio::awaitable<bool> begin_stream(int status, std::string_view content_type, header_list const& extra) override {
        if (started_) co_return false;
        started_ = true;
        pending_head_ = make_head(status, content_type, extra, 0, true, keep_alive_);
        co_return !broken_;
    }

    asio::awaitable<bool> write(std::string_view data) override {
        if (!started_ || done_ || broken_) co_return false;
        if (data.empty()) co_return true;
        char size_line[24];
        int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
        std::array<asio::const_buffer, 4> bufs{asio::buffer(pending_head_), asio::buffer(size_line, std::size_t(n)),
                                               asio::buffer(data), asio::buffer("\r\n", 2)};
        bool ok = co_await write_all(bufs);
        pending_head_.clear();
        co_return ok;
    }

    asio::awaitable<bool> end_stream(std::string_view last) override {
        if (!started_ || done_ || broken_) co_return false;
        done_ = true;
        char size_line[24];
        int n = last.empty() ? 0 : std::snprintf(size_line, sizeof size_line, "%zx\r\n", last.size());
        std::array<asio::const_buffer, 5> bufs{asio::buffer(pending_head_), asio::buffer(size_line, std::size_t(n)),
                                               asio::buffer(last), asio::buffer("\r\n", last.empty() ? 0 : 2),
                                               asio::buffer("0\r\n\r\n", 5)};
        bool ok = co_await write_all(bufs);
        pending_head_.clear();
        co_return ok;
    }

    bool started() const override { return started_; }
    bool done() const { return done_; }
    bool broken() const { return broken_; }

private:
    template <class Buffers>
    asio::awaitable<bool> write_all(Buffers const& bufs) {
        if (broken_) co_return false;
        s_.expires_after(write_timeout_);
        auto [ec, n] = co_await asio::async_write(s_, bufs, nothrow_awaitable);
        s_.expires_never();
        if (ec) broken_ = true;
        co_return !broken_;
    }

    beast::tcp_stream& s_;
    bool keep_alive_;
    std::chrono::milliseconds write_timeout_;
    bool started_ = false;
    bool done_ = false;
    bool broken_ = false;
    std::string pending_head_;
};

// Watches the client's socket while its request is handled: an EOF or reset means the client is
// gone, and the request's cancel_token fires so upstream work stops. A plain completion handler,
// not a coroutine: it costs one reactor registration per request. The state outlives the request
// (shared with the handler) because an aborted wait completes after the request has ended.
struct disconnect_watch : std::enable_shared_from_this<disconnect_watch> {
    tcp::socket& sock;
    cancel_token* token = nullptr;
    bool waiting = false;
    std::uint64_t generation = 0;  // tells a stale completion (of an earlier request) from a live one

    explicit disconnect_watch(tcp::socket& s) : sock(s) {}

    void start(cancel_token& t) {
        token = &t;
        ++generation;
        check();
    }
    // Called when the request is done; any pending wait completes later and does nothing.
    void stop() {
        token = nullptr;
        if (waiting) {
            error_code ec;
            sock.cancel(ec);
        }
    }

private:
    void check() {
        if (token == nullptr) return;
        char c;
        auto n = ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) return;  // the next pipelined request: nothing to watch any more
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            token->cancel();
            return;
        }
        waiting = true;
        sock.async_wait(tcp::socket::wait_read, [self = shared_from_this(), gen = generation](error_code ec) {
            if (gen != self->generation) return;
            self->waiting = false;
            if (self->token == nullptr || ec == asio::error::operation_aborted) return;
            if (ec) {
                self->token->cancel();
                return;
            }
            self->check();
        });
    }
};

}  // namespace

struct server::impl {
    server_options opts;
    request_handler& handler;
    std::vector<std::unique_ptr<worker>> workers;
    std::optional<tcp::acceptor> acceptor;
    std::optional<asio::signal_set> signals;
    std::atomic<bool> stopping{false};
    task_group sessions;  // every connection, each on its worker's executor
    std::atomic<std::size_t> connections{0};  // open client connections
    std::atomic<std::size_t> inflight{0};     // requests in the handler
    std::shared_ptr<asio::ssl::context> tls = http::make_verifying_tls_context();
    std::shared_ptr<spdlog::logger> log = spdlog::default_logger();

    impl(server_options o, request_handler& h) : opts(std::move(o)), handler(h) {
        unsigned n = std::max(1u, opts.threads);
        for (unsigned i = 0; i < n; ++i) {
            auto w = std::make_unique<worker>();
            w->guard.emplace(w->ioc.get_executor());
            w->client = std::make_unique<http::client>(w->ioc.get_executor(), tls);
            workers.push_back(std::move(w));
        }
    }

    asio::awaitable<void> respond_error(beast::tcp_stream& stream, api_error const& err) {
        channel ch(stream, false, opts.write_timeout);
        co_await ch.send(err.status, "application/json", err.to_json(), {});
    }

    // Reads and discards what the client still sends (bounded), so that it can read our error
    // response before the connection closes instead of seeing a reset.
    asio::awaitable<void> drain(beast::tcp_stream& stream) {
        error_code ec;
        stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        std::array<char, 64 * 1024> scratch;
        std::size_t total = 0;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (total < (64u << 20) && std::chrono::steady_clock::now() < deadline) {
            stream.expires_at(deadline);
            auto [rec, n] = co_await stream.async_read_some(asio::buffer(scratch), nothrow_awaitable);
            if (rec) break;
            total += n;
        }
    }

    // 503 overloaded with Retry-After: over server.max_connections (the connection then closes) or
    // server.max_inflight (it stays open: the request was read whole).
    static header_list retry_soon() {
        header_list h;
        h.emplace_back("retry-after", "1");
        return h;
    }
    asio::awaitable<bool> respond_overloaded(beast::tcp_stream& stream, bool keep_alive, std::string_view what) {
        api_error err{503, "server_error", "overloaded", "the gateway is at its limit of " + std::string(what) + "; retry shortly"};
        channel ch(stream, keep_alive, opts.write_timeout);
        co_await ch.send(err.status, "application/json", err.to_json(), retry_soon());
        co_return !ch.broken();
    }

    // 413, then the rest of the upload is read and dropped so the client sees the answer.
    asio::awaitable<void> reject_too_large(beast::tcp_stream& stream, std::size_t limit) {
        auto err = api_error::payload_too_large("request body is larger than the limit of " + std::to_string(limit) +
                                                " bytes");
        co_await respond_error(stream, err);
        co_await drain(stream);
    }

    asio::awaitable<void> session(worker& w, tcp::socket sock) {
        // A terminal cancellation at shutdown aborts what is pending; what follows (the error
        // answer, closing the socket) still runs.
        co_await asio::this_coro::throw_if_cancelled(false);
        error_code ec;
        sock.set_option(tcp::no_delay(true), ec);
        beast::tcp_stream stream(std::move(sock));
        held_count open_connection(connections);
        bool over_capacity = open_connection.before >= opts.max_connections;
        session_state st{&stream, false};
        w.sessions.push_front(&st);
        auto self_it = w.sessions.begin();
        struct cleanup {
            worker& w;
            std::list<session_state*>::iterator it;
            ~cleanup() { w.sessions.erase(it); }
        } guard{w, self_it};

        beast::flat_buffer buffer;
        buffer.reserve(8 * 1024);  // Beast reads at most the free capacity: 512 bytes when empty
        worker_services services{*w.client};
        std::shared_ptr<disconnect_watch> watch;
        bool first = true;
        while (!stopping.load(std::memory_order_relaxed)) {
            st.busy = false;
            bhttp::request_parser<bhttp::string_body> parser;
            parser.header_limit(64 * 1024);
            // The larger of the two limits until the head tells which one applies.
            std::size_t limit = std::max(opts.max_body_bytes, opts.max_upload_bytes);
            parser.body_limit(limit);
            if (!first && buffer.size() == 0) {
                // Idle between two requests: keepalive_timeout for the next one's first bytes; its
                // head then has header_timeout like any other (a slow head is no idle connection).
                stream.expires_after(opts.keepalive_timeout);
                auto [iec, in] = co_await stream.async_read_some(buffer.prepare(8 * 1024), nothrow_awaitable);
                if (iec) break;
                buffer.commit(in);
            }
            stream.expires_after(opts.header_timeout);
            first = false;
            auto [hec, hn] = co_await bhttp::async_read_header(stream, buffer, parser, nothrow_awaitable);
            if (hec == bhttp::error::body_limit) {  // Content-Length above the limit, seen in the head
                co_await reject_too_large(stream, limit);
                break;
            }
            if (hec) {
                if (hec == bhttp::error::header_limit) {
                    api_error err{431, "invalid_request_error", "headers_too_large",
                                  "request headers are larger than 64 KiB"};  // named: (CONTRIBUTING.md)
                    co_await respond_error(stream, err);
                } else if (hec != bhttp::error::end_of_stream && hec != asio::error::operation_aborted &&
                           hec != beast::error::timeout && hec != asio::error::connection_reset &&
                           hec != asio::error::eof && buffer.size() > 0) {
                    co_await respond_error(stream, api_error::bad_request("malformed HTTP request", "bad_http"));
                }
                break;
            }
            st.busy = true;
            if (!framing_is_plain(parser.get())) {
                // Any coding but a lone "chunked" (or one beside Content-Length) could be framed
                // differently by a proxy in front: refused, and the connection closed (RFC 9112 6.3).
                co_await respond_error(stream, api_error::bad_request("unsupported Transfer-Encoding: only chunked is accepted",
                                                                      "bad_http"));
                co_await drain(stream);  // so that the client reads the 400 instead of a reset
                break;
            }
            // Multipart uploads (audio, images) may be larger than other bodies.
            limit = is_upload(parser.get()) ? opts.max_upload_bytes : opts.max_body_bytes;
            if (auto n = parser.content_length(); n && *n > limit) {
                co_await reject_too_large(stream, limit);
                break;
            }
            parser.body_limit(limit);
            auto expect = parser.get()[bhttp::field::expect];
            if (!expect.empty() && beast::iequals(expect, "100-continue")) {
                static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
                auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(cont), nothrow_awaitable);
                if (wec) break;
            }
            if (!parser.is_done()) {
                stream.expires_after(opts.body_timeout);
                auto [bec, bn] = co_await bhttp::async_read(stream, buffer, parser, nothrow_awaitable);
                if (bec == bhttp::error::body_limit) {  // a chunked body that grew past the limit
                    co_await reject_too_large(stream, limit);
                    break;
                }
                if (bec) {
                    if (bec != beast::error::timeout && bec != bhttp::error::partial_message &&
                        bec != asio::error::connection_reset && bec != bhttp::error::end_of_stream)
                        co_await respond_error(stream, api_error::bad_request("malformed HTTP request body", "bad_http"));
                    break;
                }
            }
            stream.expires_never();

            auto& msg = parser.get();
            auto req = to_inbound(msg);
            bool keep_alive = msg.keep_alive() && !stopping.load(std::memory_order_relaxed);

            if (over_capacity) {
                co_await respond_overloaded(stream, false, "open connections");
                break;
            }
            std::optional<held_count> slot(std::in_place, inflight);
            if (slot->before >= opts.max_inflight) {
                slot.reset();  // a refusal being written holds no slot
                bool sent = co_await respond_overloaded(stream, keep_alive, "requests in flight");
                if (!sent || !keep_alive) break;
                continue;
            }
            channel ch(stream, keep_alive, opts.write_timeout);
            cancel_token cancel;
            bool failed = false;
            if (!watch) watch = std::make_shared<disconnect_watch>(stream.socket());
            watch->start(cancel);
            st.active = &cancel;
            st.deadline = std::chrono::steady_clock::now() + opts.request_timeout;
            try {
                co_await handler.handle(services, req, ch, cancel);
            } catch (std::exception const& e) {
                log->error("unhandled error in request handler: {}", e.what());
                failed = true;
            }
            watch->stop();
            st.active = nullptr;
            if (failed) {
                if (!ch.started()) co_await respond_error(stream, api_error::internal());
                break;
            }
            if (!ch.started() && !cancel.cancelled()) {
                co_await respond_error(stream, api_error::internal("the request produced no response"));
                break;
            }
            if (!keep_alive || ch.broken() || !ch.done() || cancel.cancelled()) break;
        }
        error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream.close();
    }

    asio::awaitable<void> accept_loop() {
        std::size_t next = 0;
        asio::steady_timer backoff(workers[0]->ioc);
        while (!stopping.load()) {
            auto& w = *workers[next++ % workers.size()];
            auto [ec, sock] = co_await acceptor->async_accept(w.ioc, nothrow_awaitable);
            if (stopping.load()) co_return;
            if (ec) {
                if (ec == asio::error::operation_aborted) co_return;
                log->warn("accept failed: {}", ec.message());
                backoff.expires_after(std::chrono::milliseconds(50));
                co_await backoff.async_wait(nothrow_awaitable);
                continue;
            }
            sessions.spawn(w.ioc.get_executor(), session(w, std::move(sock)), [this](std::exception_ptr e) {
                if (!e) return;
                try {
                    std::rethrow_exception(e);
                } catch (std::exception const& ex) {
                    log->error("session ended by an exception: {}", ex.what());
                }
            });
        }
    }

    // One coarse timer per worker enforces request deadlines, instead of a timer per request.
    asio::awaitable<void> deadline_sweep(worker& w) {
        asio::steady_timer t(w.ioc);
        while (!stopping.load(std::memory_order_relaxed)) {
            t.expires_after(std::chrono::milliseconds(100));
            auto [ec] = co_await t.async_wait(nothrow_awaitable);
            if (ec) co_return;
            auto now = std::chrono::steady_clock::now();
            for (auto* s : w.sessions)
                if (s->active != nullptr && now >= s->deadline) s->active->cancel(cancel_reason::timeout);
        }
    }

    void begin_stop() {
        if (stopping.exchange(true)) return;
        log->info("shutting down: no new connections, finishing in-flight requests (grace {} ms)",
                  opts.shutdown_grace.count());
        error_code ec;
        if (acceptor) acceptor->close(ec);
        if (signals) signals->cancel(ec);
        handler.on_shutdown();
        for (auto& w : workers) {
            asio::post(w->ioc, [wp = w.get()] {
                for (auto* s : wp->sessions)
                    if (!s->busy) {
                        error_code ec;
                        s->stream->socket().close(ec);
                    }
            });
        }
        asio::co_spawn(workers[0]->ioc, drain_then_exit(), asio::detached);
    }

    // Graceful first (busy connections finish their request), then terminal (their requests are
    // cancelled and pending operations aborted), always bounded.
    asio::awaitable<void> drain_then_exit() {
        if (!co_await sessions.wait_for(opts.shutdown_grace)) {
            log->warn("shutdown grace period over; closing {} connection(s) still busy", sessions.size());
            for (auto& w : workers) {
                asio::post(w->ioc, [wp = w.get()] {
                    for (auto* s : wp->sessions) {
                        if (s->active != nullptr) s->active->cancel(cancel_reason::timeout);
                        error_code ec;
                        s->stream->socket().close(ec);
                    }
                });
            }
            sessions.emit(asio::cancellation_type::terminal);
            if (!co_await sessions.wait_for(std::chrono::seconds(2)))
                log->warn("{} connection(s) did not end after being cancelled; stopping anyway", sessions.size());
        }
        co_await background_done();
        for (auto& w : workers) {
            w->guard.reset();
            w->ioc.stop();
        }
    }

    // Polled: a few milliseconds at shutdown, and the handler's counter needs no notifier.
    asio::awaitable<void> background_done() {
        // Bounded on its own (the drain before it may have used the grace): a settle is one
        // store command with its own timeout.
        auto wait = std::clamp<std::chrono::milliseconds>(opts.shutdown_grace, std::chrono::seconds(1), std::chrono::seconds(5));
        auto until = std::chrono::steady_clock::now() + wait;
        asio::steady_timer t(co_await asio::this_coro::executor);
        while (handler.background_work() > 0 && std::chrono::steady_clock::now() < until) {
            t.expires_after(std::chrono::milliseconds(2));
            auto [ec] = co_await t.async_wait(nothrow_awaitable);
            if (ec) break;
        }
        if (auto left = handler.background_work())
            log->warn("stopping with {} settle(s) still unanswered; their reservations lapse", left);
    }
};

server::server(server_options opts, request_handler& handler) : impl_(std::make_unique<impl>(std::move(opts), handler)) {}

server::~server() = default;

std::uint16_t server::bind() {
    auto& ioc = impl_->workers[0]->ioc;
    auto addr = asio::ip::make_address(impl_->opts.host);
    tcp::endpoint ep(addr, impl_->opts.port);
    impl_->acceptor.emplace(ioc);
    impl_->acceptor->open(ep.protocol());
    impl_->acceptor->set_option(asio::socket_base::reuse_address(true));
    impl_->acceptor->bind(ep);
    impl_->acceptor->listen(asio::socket_base::max_listen_connections);
    return impl_->acceptor->local_endpoint().port();
}

void server::run(std::function<void()> on_ready) {
    auto& w0 = *impl_->workers[0];
    impl_->signals.emplace(w0.ioc, SIGINT, SIGTERM);
    impl_->signals->async_wait([this](error_code ec, int sig) {
        if (ec) return;
        impl_->log->info("received signal {}", sig);
        impl_->begin_stop();
    });
    asio::co_spawn(w0.ioc, impl_->accept_loop(), asio::detached);
    for (auto& w : impl_->workers) asio::co_spawn(w->ioc, impl_->deadline_sweep(*w), asio::detached);
    for (std::size_t i = 1; i < impl_->workers.size(); ++i) {
        auto* w = impl_->workers[i].get();
        w->thread = std::thread([w] { w->ioc.run(); });
    }
    if (on_ready) on_ready();
    w0.ioc.run();
    for (std::size_t i = 1; i < impl_->workers.size(); ++i)
        if (impl_->workers[i]->thread.joinable()) impl_->workers[i]->thread.join();
}

void server::stop() {
    asio::post(impl_->workers[0]->ioc, [this] { impl_->begin_stop(); });
}

}  // namespace toolgate::gateway
