#pragma once
// The HTTP/1.1 front: one io_context per worker thread, keep-alive sessions as coroutines, request
// size limits, client-disconnect detection while a request is handled, and a graceful stop on
// SIGTERM/SIGINT (stop accepting, let in-flight requests finish within a grace period, exit).
// All Beast server operations live in server.cpp; handlers see only the narrow types below.
#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/cancel.hpp"
#include "gateway/server_limits.hpp"

namespace toolgate::http {
class client;
}

namespace toolgate::gateway {

namespace asio = boost::asio;
using header_list = std::vector<std::pair<std::string, std::string>>;

struct inbound_request {
    std::string method;
    std::string target;  // path and query as sent
    std::string path;    // without the query
    header_list headers;  // names in lower case
    std::string body;
    std::string_view header(std::string_view lower_name) const;
};

// How a handler answers. Either one send(), or begin_stream() + write()* + end_stream().
// Every call returns false once the client is gone; the handler should then stop.
class response_channel {
public:
    virtual ~response_channel() = default;
    virtual asio::awaitable<bool> send(int status, std::string_view content_type, std::string_view body,
                                       header_list const& extra) = 0;
    virtual asio::awaitable<bool> begin_stream(int status, std::string_view content_type, header_list const& extra) = 0;
    virtual asio::awaitable<bool> write(std::string_view data) = 0;
    // Ends the stream; `last` (optional) is written in the same system call.
    virtual asio::awaitable<bool> end_stream(std::string_view last = {}) = 0;
    virtual bool started() const = 0;
};

// What a worker thread offers to the requests it runs.
struct worker_services {
    http::client& http;
};

class request_handler {
public:
    virtual ~request_handler() = default;
    // Runs on the worker thread that read the request. `cancel` fires when the client disconnects
    // (reason client_gone) or the request outlives server_options::request_timeout (reason timeout).
    virtual asio::awaitable<void> handle(worker_services& services, inbound_request& req, response_channel& out,
                                         cancel_token& cancel) = 0;
    // The graceful stop begins (any thread): end what would otherwise run until the grace period is
    // over, such as long-lived event streams.
    virtual void on_shutdown() {}
    // Work the handler runs after its answers went out (settles sent to a shared store): the
    // graceful stop waits, within the grace period, until none is left.
    virtual std::size_t background_work() const { return 0; }
};

struct server_options : server_limits {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    unsigned threads = 1;
};

class server {
public:
    server(server_options opts, request_handler& handler);
    ~server();
    server(server const&) = delete;
    server& operator=(server const&) = delete;

    // Binds the listening socket; throws std::system_error when that fails. Returns the bound port.
    std::uint16_t bind();
    // Runs the workers until stop() or SIGTERM/SIGINT, then drains; returns when all have exited.
    void run(std::function<void()> on_ready = {});
    // Thread-safe: begins the graceful stop.
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace toolgate::gateway
