#include "common/http_client.hpp"
#include "common/asio_util.hpp"
#include "common/text.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>
#include <sys/socket.h>
#include <unordered_map>
#include <variant>

namespace toolgate::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;

namespace {

struct client_category final : boost::system::error_category {
    char const* name() const noexcept override { return "toolgate.http_client"; }
    std::string message(int ev) const override {
        switch (static_cast<client_errc>(ev)) {
            case client_errc::cancelled: return "request cancelled";
            case client_errc::response_too_large: return "upstream response too large";
            case client_errc::bad_url: return "bad upstream URL";
        }
        return "unknown http client error";
    }
};

struct connection {
    using plain = beast::tcp_stream;
    using secure = beast::ssl_stream<beast::tcp_stream>;
    std::variant<plain, secure> stream;
    beast::flat_buffer buffer;
    std::array<char, 16 * 1024> body_chunk;  // body bytes land here; kept per connection, not per request
    std::chrono::steady_clock::time_point idle_since{};

    template <class... Args>
    explicit connection(Args&&... args) : stream(std::forward<Args>(args)...) {
        buffer.reserve(16 * 1024);  // Beast reads at most the free capacity: 512 bytes when empty
    }

    beast::tcp_stream& lowest() {
        return std::visit([](auto& s) -> beast::tcp_stream& { return beast::get_lowest_layer(s); }, stream);
    }

    // A pooled connection is reusable only if the peer has not closed it or sent stray bytes.
    bool still_open() {
        if (buffer.size() != 0) return false;
        auto& sock = lowest().socket();
        if (!sock.is_open()) return false;
        char ch;
        auto n = ::recv(sock.native_handle(), &ch, 1, MSG_PEEK | MSG_DONTWAIT);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
};

bool is_stale_connection_error(error_code const& ec) {
    return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == bhttp::error::partial_message;
}

}  // namespace

error_code make_error_code(client_errc e) {
    static client_category const cat;
    return {static_cast<int>(e), cat};
}

std::string_view response::header(std::string_view lower_name) const {
    for (auto const& [k, v] : headers)
        if (k == lower_name) return v;
    return {};
}

boost::system::result<endpoint> endpoint::parse(std::string_view url) {
    auto u = boost::urls::parse_uri(url);
    if (!u) return u.error();
    endpoint ep;
    auto scheme = ascii_lower(u->scheme());
    if (scheme == "https") ep.tls = true;
    else if (scheme != "http") return error_code(client_errc::bad_url);
    if (u->host_type() == boost::urls::host_type::ipv6) ep.host = u->host_ipv6_address().to_string();
    else ep.host = u->host();
    if (ep.host.empty()) return error_code(client_errc::bad_url);
    ep.port = u->has_port() ? std::string(u->port()) : (ep.tls ? "443" : "80");
    ep.base_path = std::string(u->encoded_path());
    ep.target = ep.base_path.empty() ? std::string("/") : ep.base_path;
    if (ep.target[0] != '/') ep.target.insert(0, "/");
    if (u->has_query()) ep.target.append("?").append(u->encoded_query());
    while (!ep.base_path.empty() && ep.base_path.back() == '/') ep.base_path.pop_back();
    return ep;
}

std::shared_ptr<ssl::context> make_verifying_tls_context() {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    ctx->set_default_verify_paths();
    ctx->set_verify_mode(ssl::verify_peer);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    return ctx;
}

struct client::impl {
    asio::any_io_executor ex;
    std::shared_ptr<ssl::context> tls;
    limits lim;
    std::unordered_map<std::string, std::vector<std::unique_ptr<connection>>> idle;

    std::unique_ptr<connection> take_idle(std::string const& key) {
        auto it = idle.find(key);
        if (it == idle.end()) return nullptr;
        auto& v = it->second;
        auto now = std::chrono::steady_clock::now();
        while (!v.empty()) {
            auto c = std::move(v.back());
            v.pop_back();
            if (now - c->idle_since > lim.idle_timeout) continue;
            // Probing costs a syscall; a connection used within the last second is taken on trust,
            // and a stale one is caught by the retry in run().
            if (now - c->idle_since > std::chrono::seconds(1) && !c->still_open()) continue;
            return c;
        }
        return nullptr;
    }

    void put_idle(std::string const& key, std::unique_ptr<connection> c) {
        auto& v = idle[key];
        if (v.size() >= lim.max_idle_per_host) return;
        c->idle_since = std::chrono::steady_clock::now();
        c->lowest().expires_never();
        v.push_back(std::move(c));
    }

    asio::awaitable<boost::system::result<std::unique_ptr<connection>>> connect(endpoint const& ep, timeouts t,
                                                                                 cancel_token* cancel) {
        cancel_token::subscription sub;
        std::vector<tcp::endpoint> targets;
        error_code aec;
        auto literal = asio::ip::make_address(ep.host, aec);
        if (!aec) {
            // An IP literal needs no resolver (which would cost a hop to its thread).
            targets.emplace_back(literal, static_cast<unsigned short>(std::stoi(ep.port)));
        } else {
            tcp::resolver resolver(ex);
            if (cancel) sub = cancel->subscribe([&resolver] { resolver.cancel(); });
            auto [rec, results] = co_await resolver.async_resolve(ep.host, ep.port, nothrow_awaitable);
            sub.reset();
            if (cancel && cancel->cancelled()) co_return error_code(client_errc::cancelled);
            if (rec) co_return rec;
            for (auto const& r : results) targets.push_back(r.endpoint());
        }

        beast::tcp_stream s(ex);
        if (cancel) sub = cancel->subscribe([&s] { s.close(); });
        s.expires_after(t.connect);
        auto [cec, _] = co_await s.async_connect(targets, nothrow_awaitable);
        if (cancel && cancel->cancelled()) co_return error_code(client_errc::cancelled);
        if (cec) co_return cec;
        s.socket().set_option(tcp::no_delay(true));
        if (!ep.tls) {
            sub.reset();
            s.expires_never();
            co_return std::make_unique<connection>(std::in_place_type<connection::plain>, std::move(s));
        }
        sub.reset();
        auto c = std::make_unique<connection>(std::in_place_type<connection::secure>, std::move(s), *tls);
        auto& ss = std::get<connection::secure>(c->stream);
        if (!SSL_set_tlsext_host_name(ss.native_handle(), ep.host.c_str()))
            co_return error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
        ss.set_verify_mode(ssl::verify_peer);
        ss.set_verify_callback(ssl::host_name_verification(ep.host));
        if (cancel) sub = cancel->subscribe([conn = c.get()] { conn->lowest().close(); });
        c->lowest().expires_after(t.connect);
        auto [hec] = co_await ss.async_handshake(ssl::stream_base::client, nothrow_awaitable);
        if (cancel && cancel->cancelled()) co_return error_code(client_errc::cancelled);
        if (hec) co_return hec;
        c->lowest().expires_never();
        co_return std::move(c);
    }

    static std::string build_head(endpoint const& ep, request const& req) {
        std::string head;
        head.reserve(256 + req.target.size());
        head.append(req.method).append(" ").append(req.target).append(" HTTP/1.1\r\nHost: ");
        bool v6 = ep.host.find(':') != std::string::npos;
        if (v6) head.append("[");
        head.append(ep.host);
        if (v6) head.append("]");
        if (!((ep.tls && ep.port == "443") || (!ep.tls && ep.port == "80"))) head.append(":").append(ep.port);
        head.append("\r\n");
        for (auto const& [k, v] : req.headers) head.append(k).append(": ").append(v).append("\r\n");
        if (req.method != "GET" || !req.body.empty())
            head.append("Content-Length: ").append(std::to_string(req.body.size())).append("\r\n");
        head.append("\r\n");
        return head;
    }

    struct exchange_state {
        bool reusable = false;
        bool received = false;  // any byte of the response arrived
    };

    template <class Stream>
    asio::awaitable<boost::system::result<response>> exchange(Stream& s, connection& c, endpoint const& ep,
                                                              request const& req, timeouts t, body_reader* reader,
                                                              exchange_state& st) {
        auto head = build_head(ep, req);
        std::array<asio::const_buffer, 2> out{asio::buffer(head), asio::buffer(req.body)};
        c.lowest().expires_after(t.read);
        auto [wec, wn] = co_await asio::async_write(s, out, nothrow_awaitable);
        if (wec) co_return wec;

        bhttp::response_parser<bhttp::buffer_body> p;
        p.body_limit(std::numeric_limits<std::uint64_t>::max());
        p.header_limit(64 * 1024);
        c.lowest().expires_after(t.read);
        auto [hec, hn] = co_await bhttp::async_read_header(s, c.buffer, p, nothrow_awaitable);
        if (hec) co_return hec;
        st.received = true;

        response res;
        res.status = static_cast<int>(p.get().result_int());
        for (auto const& f : p.get()) res.headers.emplace_back(ascii_lower(f.name_string()), std::string(f.value()));
        bool deliver = reader != nullptr && res.status / 100 == 2;
        if (deliver) reader->on_head(res);

        auto& tmp = c.body_chunk;
        while (!p.is_done()) {
            p.get().body().data = tmp.data();
            p.get().body().size = tmp.size();
            c.lowest().expires_after(t.read);
            auto [ec, n] = co_await bhttp::async_read_some(s, c.buffer, p, nothrow_awaitable);
            if (ec == bhttp::error::need_buffer) ec = {};
            std::size_t got = tmp.size() - p.get().body().size;
            if (ec && !(ec == bhttp::error::end_of_stream && p.is_done())) co_return ec;
            if (got == 0) continue;
            if (deliver) {
                if (!co_await reader->on_data(std::string_view(tmp.data(), got))) co_return res;
            } else {
                if (res.body.size() + got > lim.max_response_bytes) co_return error_code(client_errc::response_too_large);
                res.body.append(tmp.data(), got);
            }
        }
        st.reusable = p.keep_alive() && c.buffer.size() == 0;
        co_return res;
    }

    asio::awaitable<boost::system::result<response>> run(endpoint const& ep, request const& req, timeouts t,
                                                          cancel_token* cancel, body_reader* reader) {
        auto key = ep.pool_key();
        for (int attempt = 0;; ++attempt) {
            if (cancel && cancel->cancelled()) co_return error_code(client_errc::cancelled);
            auto conn = take_idle(key);
            bool reused = conn != nullptr;
            if (!conn) {
                auto r = co_await connect(ep, t, cancel);
                if (!r) co_return r.error();
                conn = std::move(*r);
            }
            cancel_token::subscription sub;
            if (cancel) sub = cancel->subscribe([c = conn.get()] { c->lowest().close(); });
            exchange_state st;
            boost::system::result<response> res = error_code(client_errc::cancelled);
            if (auto* plain = std::get_if<connection::plain>(&conn->stream))
                res = co_await exchange(*plain, *conn, ep, req, t, reader, st);
            else
                res = co_await exchange(std::get<connection::secure>(conn->stream), *conn, ep, req, t, reader, st);
            sub.reset();
            if (cancel && cancel->cancelled()) co_return error_code(client_errc::cancelled);
            if (!res && reused && !st.received && attempt == 0 && is_stale_connection_error(res.error())) continue;
            if (res && st.reusable) put_idle(key, std::move(conn));
            co_return res;
        }
    }
};

client::client(asio::any_io_executor ex, std::shared_ptr<ssl::context> tls) : client(std::move(ex), std::move(tls), limits{}) {}

client::client(asio::any_io_executor ex, std::shared_ptr<ssl::context> tls, limits lim)
    : impl_(std::make_unique<impl>(impl{std::move(ex), std::move(tls), lim, {}})) {}

client::~client() = default;

asio::awaitable<boost::system::result<response>> client::send(endpoint const& ep, request const& req, timeouts t,
                                                               cancel_token* cancel) {
    return impl_->run(ep, req, t, cancel, nullptr);
}

asio::awaitable<boost::system::result<response>> client::stream(endpoint const& ep, request const& req, timeouts t,
                                                                 cancel_token* cancel, body_reader& reader) {
    return impl_->run(ep, req, t, cancel, &reader);
}

asio::awaitable<boost::system::result<response>> get_json(client& c, std::string const& url, timeouts t, header_list extra) {
    auto ep = endpoint::parse(url);
    if (!ep) co_return ep.error();
    request req;
    req.method = "GET";
    req.target = ep->target;
    req.headers = std::move(extra);
    req.headers.emplace_back("Accept", "application/json");
    co_return co_await c.send(*ep, req, t, nullptr);
}

}  // namespace toolgate::http
