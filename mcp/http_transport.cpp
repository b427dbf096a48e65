// MCP over HTTP: Streamable HTTP (POST per message, JSON or SSE answers, Mcp-Session-Id,
// MCP-Protocol-Version, a GET stream for server-initiated messages with Last-Event-ID resumption,
// DELETE on close) and the legacy HTTP+SSE transport of 2024-11-05 (GET /sse announces a POST
// endpoint; every message comes back on the SSE stream), detected when POST initialize is refused.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>

#include "common/http_client.hpp"
#include "common/asio_util.hpp"
#include "common/sse.hpp"
#include "common/text.hpp"
#include "mcp/http_reader.hpp"
#include "mcp/jsonrpc.hpp"
#include "mcp/message_queue.hpp"
#include "mcp/transport.hpp"

namespace toolgate::mcp {

using boost::system::error_code;

namespace {

using detail::message_reader;

// "HTTP 503" or the transport error (a plain function: conditional strings, CONTRIBUTING.md).
std::string outcome_text(boost::system::result<http::response> const& r) {
    return r ? "HTTP " + std::to_string(r->status) : r.error().message();
}

class http_transport final : public transport {
public:
    http_transport(asio::any_io_executor ex, http_options opts, log_sink log)
        : ex_(ex), opts_(std::move(opts)), log_(std::move(log)), queue_(ex),
          client_(ex, http::make_verifying_tls_context()), endpoint_ready_(ex, asio::steady_timer::time_point::max()) {
        mode_ = opts_.kind;
    }

    ~http_transport() override {
        *alive_ = false;
        stop_.cancel();
    }

    asio::awaitable<error_code> start() override {
        auto ep = http::endpoint::parse(opts_.url);
        if (!ep) co_return ep.error();
        ep_ = *ep;
        target_ = ep_.target;
        if (mode_ == http_options::mode::sse) co_return co_await start_legacy();
        co_return error_code{};
    }

    asio::awaitable<error_code> send(std::string message) override {
        if (queue_.is_closed()) co_return asio::error::not_connected;
        if (mode_ == http_options::mode::sse) co_return co_await post_legacy(std::move(message));
        auto m = parse_message(message);
        bool is_request = m.type == message::kind::request;
        if (mode_ == http_options::mode::automatic || m.method == "initialize") {
            // Decide the transport on the first exchange: wait for it.
            co_return co_await post_streamable(std::move(message), std::move(m), true);
        }
        if (!is_request) co_return co_await post_streamable(std::move(message), std::move(m), false);
        // Requests may take long (their answer streams back): run them beside the session.
        asio::co_spawn(ex_, post_streamable(std::move(message), std::move(m), false), asio::detached);
        co_return error_code{};
    }

    asio::awaitable<boost::system::result<std::string>> receive() override { co_return co_await queue_.pop(); }

    asio::awaitable<void> close() override {
        stop_.cancel();
        if (mode_ != http_options::mode::sse && !session_id_.empty()) {
            auto req = base_request("DELETE");
            co_await authorize(req);
            auto r = co_await client_.send(ep_, req, timeouts(std::chrono::seconds(5)), nullptr);
            (void)r;
        }
        queue_.close(asio::error::eof);
    }

    void set_protocol_version(std::string v) override {
        protocol_version_ = std::move(v);
        // Server-initiated messages arrive on a GET stream once the session is set up.
        if (mode_ == http_options::mode::streamable_http && !get_running_) {
            get_running_ = true;
            asio::co_spawn(ex_, get_stream(alive_), asio::detached);
        }
    }

    std::string describe() const override {
        return std::string(mode_ == http_options::mode::sse ? "sse:" : "http:") + opts_.url;
    }

private:
    http::timeouts timeouts(std::chrono::milliseconds read) const { return {opts_.connect_timeout, read}; }

    http::request base_request(std::string method, std::string target = {}) const {
        http::request r;
        r.method = std::move(method);
        r.target = target.empty() ? target_ : std::move(target);
        for (auto const& [k, v] : opts_.headers) r.headers.emplace_back(k, v);
        if (!session_id_.empty()) r.headers.emplace_back("Mcp-Session-Id", session_id_);
        if (!protocol_version_.empty()) r.headers.emplace_back("MCP-Protocol-Version", protocol_version_);
        return r;
    }

    // Sets the Authorization header of `req` from the server's authorization; returns what it sent.
    asio::awaitable<std::string> authorize(http::request& req) {
        if (!opts_.auth) co_return std::string();
        auto h = co_await opts_.auth->header();
        std::erase_if(req.headers, [](auto const& kv) { return ascii_lower(kv.first) == "authorization"; });
        if (!h.empty()) req.headers.emplace_back("Authorization", h);
        co_return h;
    }

    // A failed request must still get an answer, or its caller waits for the timeout.
    void fail_request(message const& m, std::string const& why) {
        if (m.type == message::kind::request) queue_.push(make_error(m.id, errc::transport_failure, why));
    }

    asio::awaitable<error_code> post_streamable(std::string body, message m, bool deciding) {
        auto alive = alive_;
        auto req = base_request("POST");
        req.headers.emplace_back("Content-Type", "application/json");
        req.headers.emplace_back("Accept", "application/json, text/event-stream");
        req.body = std::move(body);
        std::string last_event_id;
        message_reader reader(queue_, opts_.max_message_bytes, &last_event_id);
        bool answered = m.type != message::kind::request;
        if (!answered) reader.on_message = [&](std::string_view data) { return answered = answers(data, m); };
        boost::system::result<http::response> r;
        // An authorization server may have to be asked once or twice (a token, then a wider one).
        for (int tries = 0;; ++tries) {
            auto sent = co_await authorize(req);
            if (!*alive) co_return asio::error::operation_aborted;
            r = co_await client_.stream(ep_, req, timeouts(opts_.read_timeout), &stop_, reader);
            if (!*alive) co_return asio::error::operation_aborted;
            if (!r || (r->status != 401 && r->status != 403)) break;
            if (!opts_.auth) {
                if (r->status == 401) {
                    fail_request(m, "the MCP server requires authorization (HTTP 401); configure 'auth' for it");
                    co_return error_code{};
                }
                break;
            }
            bool again = false;
            if (tries < 2) again = co_await opts_.auth->challenged(r->status, std::string(r->header("www-authenticate")), sent);
            if (!*alive) co_return asio::error::operation_aborted;
            if (!again) {
                fail_request(m, opts_.auth->why());
                co_return error_code{};
            }
        }
        if (!r && (answered || last_event_id.empty())) {
            if (!answered) fail_request(m, "could not reach the MCP server: " + r.error().message());
            co_return error_code{};
        }
        // (Without r: a 2xx SSE head came, with event ids, and the stream broke.)
        if (!r || r->status / 100 == 2) {
            if (r) reader.finish();
            if (m.method == "initialize") {
                if (!reader.session_id.empty()) session_id_ = reader.session_id;
                if (mode_ == http_options::mode::automatic) mode_ = http_options::mode::streamable_http;
            }
            if (answered || (r && !reader.is_sse())) co_return error_code{};
            if (reader.overflowed()) {
                fail_request(m, "the MCP server's answer exceeds max_message_bytes");
                co_return error_code{};
            }
            // A stream that ended before its answer (SEP-1699: the server may close it at any time)
            // is resumed with GET and Last-Event-ID after the stream's retry time.
            if (!stop_.cancelled()) co_await resume(std::move(m), std::move(last_event_id), reader.retry_ms(), alive);
            co_return error_code{};
        }
        if (deciding && mode_ == http_options::mode::automatic && m.method == "initialize" &&
            (r->status == 400 || r->status == 404 || r->status == 405)) {
            log_(log_level::info, "POST initialize answered " + std::to_string(r->status) +
                                      ": trying the legacy HTTP+SSE transport");
            mode_ = http_options::mode::sse;
            if (auto ec = co_await start_legacy()) {
                fail_request(m, "neither Streamable HTTP nor HTTP+SSE worked");
                co_return error_code{};
            }
            co_return co_await post_legacy(make_request(m.id, m.method, m.params));
        }
        if (r->status == 404 && !session_id_.empty()) {
            // The server forgot our session: the supervisor starts a new one.
            log_(log_level::warn, "the server ended the MCP session (404); reconnecting");
            fail_request(m, "MCP session expired");
            queue_.close(asio::error::connection_reset);
            co_return error_code{};
        }
        fail_request(m, "MCP server answered HTTP " + std::to_string(r->status));
        co_return error_code{};
    }

    static bool answers(std::string_view data, message const& request) {
        auto m = parse_message(data);
        return (m.type == message::kind::response || m.type == message::kind::error) && m.id == request.id;
    }

    // Reads the rest of a request's stream through GET with Last-Event-ID until its answer comes,
    // waiting the stream's retry time (1 s when it gave none) before each try. Bounded: five tries
    // in a row that bring no new event, and the read timeout since the last one that did (a long
    // call whose server closes the stream again and again goes on as long as it makes progress).
    // A stream without event ids cannot be resumed: the request fails.
    asio::awaitable<void> resume(message m, std::string last_event_id, std::int64_t retry_ms, std::shared_ptr<bool> alive) {
        constexpr int max_tries = 5;
        auto deadline = std::chrono::steady_clock::now() + opts_.read_timeout;
        asio::steady_timer pause(ex_);
        for (int attempt = 0; attempt < max_tries && !last_event_id.empty(); ++attempt) {
            auto wait = std::chrono::milliseconds(retry_ms >= 0 ? retry_ms : 1000);
            if (std::chrono::steady_clock::now() + wait >= deadline) break;
            pause.expires_after(wait);
            co_await pause.async_wait(nothrow_awaitable);
            if (!*alive || stop_.cancelled()) co_return;
            auto req = base_request("GET");
            req.headers.emplace_back("Accept", "text/event-stream");
            req.headers.emplace_back("Last-Event-ID", last_event_id);
            co_await authorize(req);
            if (!*alive) co_return;
            bool answered = false;
            message_reader reader(queue_, opts_.max_message_bytes, &last_event_id);
            reader.on_message = [&](std::string_view data) { return answered = answers(data, m); };
            auto before = last_event_id;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            auto r = co_await client_.stream(ep_, req, timeouts(std::max(left, std::chrono::milliseconds(1))), &stop_, reader);
            if (!*alive) co_return;
            if (answered) co_return;
            if (r && r->status == 404 && !session_id_.empty()) {
                // The server forgot our session: the supervisor starts a new one.
                fail_request(m, "MCP session expired");
                queue_.close(asio::error::connection_reset);
                co_return;
            }
            if (r && r->status / 100 != 2) {
                fail_request(m, "the MCP server refused to resume the stream (HTTP " + std::to_string(r->status) + ")");
                co_return;
            }
            if (r) reader.finish();  // a JSON answer instead of a stream
            if (answered) co_return;
            if (reader.overflowed()) break;
            if (reader.retry_ms() >= 0) retry_ms = reader.retry_ms();
            if (last_event_id != before) {
                attempt = -1;  // progress: the tries start again
                deadline = std::chrono::steady_clock::now() + opts_.read_timeout;
            }
        }
        fail_request(m, last_event_id.empty() ? "the MCP server ended the stream before answering"
                                              : "the MCP server's resumed stream never brought the answer");
    }

    // Server-to-client messages outside any request; resumed with Last-Event-ID after a drop.
    asio::awaitable<void> get_stream(std::shared_ptr<bool> alive) {
        asio::steady_timer pause(ex_);
        std::string last_event_id;
        auto delay = std::chrono::milliseconds(500);
        while (*alive && !queue_.is_closed()) {
            auto req = base_request("GET");
            req.headers.emplace_back("Accept", "text/event-stream");
            if (!last_event_id.empty()) req.headers.emplace_back("Last-Event-ID", last_event_id);
            co_await authorize(req);
            if (!*alive) co_return;
            message_reader reader(queue_, opts_.max_message_bytes, &last_event_id);
            auto r = co_await client_.stream(ep_, req, timeouts(std::chrono::hours(24)), &stop_, reader);
            if (!*alive || stop_.cancelled()) co_return;
            if (r && (r->status == 405 || r->status == 404)) co_return;  // no such stream offered
            pause.expires_after(delay);
            co_await pause.async_wait(nothrow_awaitable);
            delay = std::min(delay * 2, std::chrono::milliseconds(30'000));
        }
    }

    asio::awaitable<error_code> start_legacy() {
        asio::co_spawn(ex_, legacy_stream(alive_), asio::detached);
        endpoint_ready_.expires_after(opts_.connect_timeout);
        if (post_target_.empty() && !legacy_failed_) co_await endpoint_ready_.async_wait(nothrow_awaitable);
        if (post_target_.empty()) co_return asio::error::connection_refused;
        co_return error_code{};
    }

    asio::awaitable<void> legacy_stream(std::shared_ptr<bool> alive) {
        auto req = base_request("GET");
        req.headers.emplace_back("Accept", "text/event-stream");
        co_await authorize(req);
        if (!*alive) co_return;
        message_reader reader(queue_, opts_.max_message_bytes, nullptr, [this](sse::event const& ev) {
            if (ev.type == "endpoint") {
                post_target_ = resolve(ev.data);
                endpoint_ready_.cancel();
            }
        });
        auto r = co_await client_.stream(ep_, req, timeouts(std::chrono::hours(24)), &stop_, reader);
        if (!*alive) co_return;
        if (!r || r->status / 100 != 2) {
            log_(log_level::warn, "legacy SSE stream failed: " + outcome_text(r));
        }
        legacy_failed_ = true;
        endpoint_ready_.cancel();
        queue_.close(asio::error::connection_reset);  // the stream is the connection: reconnect from scratch
    }

    std::string resolve(std::string const& ref) const {
        if (ref.rfind("http://", 0) == 0 || ref.rfind("https://", 0) == 0) {
            auto ep = http::endpoint::parse(ref);
            return ep ? ep->target : std::string("/");
        }
        if (!ref.empty() && ref[0] == '/') return ref;
        auto path = target_.substr(0, target_.find('?'));
        auto dir = path.substr(0, path.rfind('/') + 1);
        return dir + ref;
    }

    asio::awaitable<error_code> post_legacy(std::string body) {
        auto alive = alive_;
        auto req = base_request("POST", post_target_);
        req.headers.emplace_back("Content-Type", "application/json");
        req.body = std::move(body);
        co_await authorize(req);
        if (!*alive) co_return asio::error::operation_aborted;
        auto m = parse_message(req.body);
        auto r = co_await client_.send(ep_, req, timeouts(opts_.read_timeout), &stop_);
        if (!*alive) co_return asio::error::operation_aborted;
        if (!r || r->status / 100 != 2)
            fail_request(m, "MCP server refused the message: " + outcome_text(r));
        co_return error_code{};
    }

    asio::any_io_executor ex_;
    http_options opts_;
    log_sink log_;
    detail::message_queue queue_;
    http::client client_;
    http::endpoint ep_;
    std::string target_;
    http_options::mode mode_;
    std::string session_id_;
    std::string protocol_version_;
    std::string post_target_;
    bool get_running_ = false;
    bool legacy_failed_ = false;
    cancel_token stop_;
    asio::steady_timer endpoint_ready_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace

std::unique_ptr<transport> make_http_transport(asio::any_io_executor ex, http_options opts, log_sink log) {
    return std::make_unique<http_transport>(std::move(ex), std::move(opts), std::move(log));
}

}  // namespace toolgate::mcp
