// `toolgate mcp-login SERVER`: the OAuth authorization code flow of one upstream MCP server from a
// terminal, before (or without) a running gateway: it prints the URL to open, waits on the
// loopback redirect URI for the authorization server's redirect (at most ten minutes), exchanges
// the code, and keeps the tokens where `serve` finds them (the state's SQLite file).
#include "gateway/mcp_login.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <algorithm>
#include <iostream>
#include <optional>

#include "common/asio_util.hpp"
#include "gateway/mcp_tokens.hpp"
#include "mcp/oauth.hpp"
#include "mcp/upstream_auth.hpp"
#include "state/secret_store.hpp"

namespace toolgate::gateway {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

struct callback {
    std::string state, code, error, iss;
};

// "GET /oauth/callback?code=..&state=.. HTTP/1.1" -> its parameters; nullopt for anything else.
std::optional<callback> parse_request_line(std::string const& head, std::string const& path) {
    auto sp = head.find(' ');
    auto sp2 = head.find(' ', sp + 1);
    if (head.compare(0, 4, "GET ") != 0 || sp2 == std::string::npos) return std::nullopt;
    auto target = head.substr(sp + 1, sp2 - sp - 1);
    auto q = target.find('?');
    if (target.substr(0, q) != path) return std::nullopt;
    auto query = q == std::string::npos ? std::string() : target.substr(q + 1);
    callback c;
    c.state = mcp::oauth::query_value(query, "state");
    c.code = mcp::oauth::query_value(query, "code");
    c.error = mcp::oauth::query_value(query, "error");
    c.iss = mcp::oauth::query_value(query, "iss");
    if (auto d = mcp::oauth::query_value(query, "error_description"); !d.empty()) c.error += ": " + d;
    return c;
}

std::string http_answer(int status, std::string const& text) {
    return "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Bad Request") +
           "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
           std::to_string(text.size()) + "\r\n\r\n" + text;
}

std::string callback_answer(int status, std::string const& outcome) {
    return http_answer(status, status == 200 ? std::string("toolgate is authorized. You can close this window.\n") : outcome + "\n");
}

// Serves the redirect until the authorization is complete or failed; the result is its message
// ("" on success).
asio::awaitable<std::string> serve_callback(tcp::acceptor& acceptor, mcp::upstream_auth& auth, std::string path) {
    for (;;) {
        auto [ec, sock] = co_await acceptor.async_accept(nothrow_awaitable);
        if (ec) co_return "the callback listener failed: " + ec.message();
        // A connection that sends nothing (a browser's preconnect) must not hold up the callback.
        asio::streambuf buf(16 * 1024);
        asio::steady_timer idle(acceptor.get_executor());
        idle.expires_after(std::chrono::seconds(5));
        auto read = co_await (asio::async_read_until(sock, buf, "\r\n", nothrow_awaitable) || idle.async_wait(nothrow_awaitable));
        if (read.index() != 0 || std::get<0>(std::get<0>(read))) continue;
        std::string line;
        std::istream in(&buf);
        std::getline(in, line);
        auto cb = parse_request_line(line, path);
        std::string outcome;
        int status = 400;
        bool done = false;
        if (!cb) {
            outcome = "not the OAuth callback";
        } else if (!auth.expects(cb->state)) {
            outcome = "unknown or already used authorization state";
        } else if (!cb->error.empty()) {
            co_await auth.complete_authorization(cb->state, std::string());
            outcome = "the authorization server refused: " + cb->error;
            done = true;
        } else {
            outcome = co_await auth.complete_authorization(cb->state, cb->code, cb->iss);
            status = outcome.empty() ? 200 : 400;
            done = true;
        }
        auto answer = callback_answer(status, outcome);
        co_await asio::async_write(sock, asio::buffer(answer), nothrow_awaitable);
        if (done) co_return outcome;
    }
}

asio::awaitable<int> login(mcp::server_config sc, std::shared_ptr<state::secret_store> store, tcp::acceptor& acceptor,
                           std::string path) {
    auto ex = co_await asio::this_coro::executor;
    mcp::log_sink log = [](mcp::log_level lvl, std::string const& text) {
        if (lvl >= mcp::log_level::warn) std::cerr << "toolgate mcp-login: " << text << "\n";
    };
    auto auth = std::make_shared<mcp::upstream_auth>(ex, sc.name, sc.http->url, *sc.oauth, log);
    keep_tokens(store, sc, *auth);
    auto begun = co_await auth->begin_authorization();
    if (!begun.error.empty()) {
        std::cerr << "toolgate mcp-login: " << begun.error << "\n";
        co_return 1;
    }
    std::cout << "Open this URL in a browser to authorize toolgate at MCP server '" << sc.name << "':\n\n  " << begun.url
              << "\n\nWaiting for the authorization server to send the browser back to " << sc.oauth->redirect_uri
              << " (10 minutes) ...\n"
              << std::flush;
    asio::steady_timer deadline(ex);
    deadline.expires_after(std::chrono::minutes(10));
    auto r = co_await (serve_callback(acceptor, *auth, path) || deadline.async_wait(nothrow_awaitable));
    if (r.index() == 1) {
        std::cerr << "toolgate mcp-login: no callback within 10 minutes\n";
        co_return 1;
    }
    auto const& outcome = std::get<0>(r);
    if (!outcome.empty()) {
        std::cerr << "toolgate mcp-login: " << outcome << "\n";
        co_return 1;
    }
    std::cout << "Authorized: the tokens are kept for 'toolgate serve' with this config.\n";
    co_return 0;
}

}  // namespace

int run_mcp_login(gateway_config const& cfg, std::string const& server) {
    auto it = std::find_if(cfg.mcp_servers.begin(), cfg.mcp_servers.end(), [&](auto const& s) { return s.name == server; });
    if (it == cfg.mcp_servers.end()) {
        std::cerr << "toolgate mcp-login: no MCP server named '" << server << "' in the config\n";
        return 2;
    }
    auto sc = *it;
    if (!sc.oauth || !sc.http) {
        std::cerr << "toolgate mcp-login: MCP server '" << server << "' has no 'auth: { type: oauth }'\n";
        return 2;
    }
    if (sc.oauth->flow != mcp::oauth_options::grant::authorization_code) {
        std::cerr << "toolgate mcp-login: MCP server '" << server
                  << "' gets its tokens without a person (client credentials or enterprise-managed): nothing to do here\n";
        return 2;
    }
    if (sc.oauth->redirect_uri.empty()) sc.oauth->redirect_uri = default_redirect_uri(cfg.server.listen);
    // The redirect must reach this process: a loopback http URI with a port (RFC 8252 §7.3).
    auto u = mcp::oauth::split_url(sc.oauth->redirect_uri);
    auto colon = u ? u->origin.rfind(':') : std::string::npos;
    if (!u || u->origin.rfind("http://", 0) != 0 || !mcp::oauth::is_loopback_url(sc.oauth->redirect_uri) || colon < 7) {
        std::cerr << "toolgate mcp-login: the redirect URI " << sc.oauth->redirect_uri
                  << " does not come back to this machine; authorize through the running gateway instead: GET "
                     "/admin/mcp/servers/"
                  << server << "/authorize\n";
        return 2;
    }
    auto host = u->origin.substr(7, colon - 7);
    if (host == "localhost") host = "127.0.0.1";
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    auto port = static_cast<unsigned short>(std::stoi(u->origin.substr(colon + 1)));
    asio::io_context ioc{1};
    tcp::acceptor acceptor(ioc);
    try {
        tcp::endpoint ep(asio::ip::make_address(host), port);
        acceptor.open(ep.protocol());
        acceptor.set_option(tcp::acceptor::reuse_address(true));
        acceptor.bind(ep);
        acceptor.listen();
    } catch (std::exception const& e) {
        std::cerr << "toolgate mcp-login: cannot listen on " << host << ":" << port << " for the redirect (" << e.what()
                  << "); is the gateway running? Then authorize through it: GET /admin/mcp/servers/" << server
                  << "/authorize\n";
        return 1;
    }
    auto store = open_secrets(cfg);
    int rc = 1;
    asio::co_spawn(ioc, login(sc, store, acceptor, u->path.empty() ? "/" : u->path), [&](std::exception_ptr e, int r) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (std::exception const& ex) {
                std::cerr << "toolgate mcp-login: " << ex.what() << "\n";
            }
        }
        rc = e ? 1 : r;
    });
    ioc.run();
    return rc;
}

}  // namespace toolgate::gateway
