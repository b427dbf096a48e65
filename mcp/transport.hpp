#pragma once
// How MCP messages travel: one interface for stdio child processes, Streamable HTTP and legacy
// HTTP+SSE. A transport only moves JSON-RPC texts; correlation, deadlines and notification routing
// live in client_session, above it. A transport belongs to one executor (the MCP thread) and all its
// functions are called from there.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace toolgate::mcp {

namespace asio = boost::asio;

// Log lines from library code go through this, tagged by the caller (no logging library here).
enum class log_level { debug, info, warn, error };
using log_sink = std::function<void(log_level, std::string const&)>;

class transport {
public:
    virtual ~transport() = default;
    // Starts the child process or checks the endpoint; an error means the server is not reachable.
    virtual asio::awaitable<boost::system::error_code> start() = 0;
    virtual asio::awaitable<boost::system::error_code> send(std::string message) = 0;
    // The next message from the server; an error once the transport is closed or broken.
    virtual asio::awaitable<boost::system::result<std::string>> receive() = 0;
    // Graceful stop (stdio: close stdin, then SIGTERM, then SIGKILL; HTTP: DELETE the session).
    virtual asio::awaitable<void> close() = 0;
    // After initialize: the negotiated protocol version (HTTP transports send it as a header).
    virtual void set_protocol_version(std::string) {}
    virtual std::string describe() const = 0;
};

struct stdio_options {
    std::string command;
    std::vector<std::string> args;
    std::map<std::string, std::string> env;  // added to PATH, HOME, LANG, TMPDIR of the gateway
    std::string cwd;
    std::size_t max_message_bytes = 32u << 20;
    std::chrono::milliseconds shutdown_grace{2000};  // after closing stdin, before SIGTERM (and again before SIGKILL)
};

std::unique_ptr<transport> make_stdio_transport(asio::any_io_executor ex, stdio_options opts, log_sink log);

// Authorization for an HTTP server (OAuth, see upstream_auth.hpp). MCP thread only.
class http_auth {
public:
    virtual ~http_auth() = default;
    // The Authorization header value to send now ("" for none); renews a token that is about to expire.
    virtual asio::awaitable<std::string> header() = 0;
    // The server answered 401 or 403 to a request sent with `sent` (the header() value). True: send
    // it again with a new header(); false: give up (why() says why, for the request's error).
    virtual asio::awaitable<bool> challenged(int status, std::string www_authenticate, std::string sent) = 0;
    virtual std::string why() const = 0;
};

struct http_options {
    std::string url;
    std::map<std::string, std::string> headers;
    enum class mode { streamable_http, sse, automatic } kind = mode::automatic;
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds read_timeout{300'000};
    std::size_t max_message_bytes = 32u << 20;
    std::shared_ptr<http_auth> auth;  // set by the aggregator for servers with `auth: {type: oauth}`
};

std::unique_ptr<transport> make_http_transport(asio::any_io_executor ex, http_options opts, log_sink log);

}  // namespace toolgate::mcp
