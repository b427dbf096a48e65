#pragma once
// An MCP client session over any transport: initialize with protocol version negotiation,
// request/response correlation with per-request deadlines, notifications/cancelled on timeout or
// when the caller goes away, progress relayed to whoever asked, ping answered, other notifications
// handed to an observer. Single-threaded: every function runs on the session's executor.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/cancel.hpp"
#include "common/time_source.hpp"
#include "mcp/jsonrpc.hpp"
#include "mcp/transport.hpp"

namespace toolgate::mcp {

namespace json = boost::json;

inline std::vector<std::string> const& supported_protocol_versions() {
    static std::vector<std::string> const v{"2025-11-25", "2025-06-18", "2025-03-26"};
    return v;
}

struct session_options {
    std::string client_name = "toolgate";
    std::string client_version = "0.1.0";
    std::chrono::milliseconds initialize_timeout{30'000};
    json::object client_capabilities;  // empty: we declare no client features to upstreams (yet)
    time_source* clock = nullptr;      // request deadlines and wait_closed_for; null: the steady clock
};

struct server_info {
    std::string protocol_version;
    json::object capabilities;
    json::object info;  // serverInfo
    std::string instructions;
};

struct call_result {
    enum class status { ok, error, timeout, cancelled, closed };
    status state = status::closed;
    json::value result;  // ok
    int code = 0;        // error
    std::string message;  // error / why
    bool ok() const { return state == status::ok; }
};

class client_session : public std::enable_shared_from_this<client_session> {
public:
    using notification_handler = std::function<void(std::string const& method, json::value const& params)>;
    using progress_handler = std::function<void(json::value const& params)>;

    client_session(asio::any_io_executor ex, std::unique_ptr<transport> t, session_options opts, log_sink log);
    ~client_session();

    // Starts the transport and runs the initialize handshake; the read loop runs until close().
    asio::awaitable<boost::system::result<server_info>> start();

    asio::awaitable<call_result> request(std::string const& method, json::value params, std::chrono::milliseconds timeout,
                                         cancel_token* cancel = nullptr, progress_handler on_progress = {});
    asio::awaitable<void> notify(std::string const& method, json::value params);

    void on_notification(notification_handler h) { on_notification_ = std::move(h); }
    // Requests the server sends us (beyond ping): sampling/createMessage, elicitation/create, ...
    using request_handler = std::function<asio::awaitable<call_result>(std::string method, json::value params)>;
    void on_request(request_handler h) { on_request_ = std::move(h); }
    bool closed() const { return closed_; }
    // Completes when the connection to the server is gone.
    asio::awaitable<void> wait_closed();
    // Waits at most `d`; true when the connection is gone. (One waiter at a time, as wait_closed.)
    asio::awaitable<bool> wait_closed_for(std::chrono::milliseconds d);
    asio::awaitable<void> close();
    server_info const& info() const { return info_; }

private:
    struct pending;
    asio::awaitable<void> read_loop();
    void handle_message(std::string const& text);
    static asio::awaitable<void> answer_request(std::shared_ptr<client_session> self, message m);
    void mark_closed();

    asio::any_io_executor ex_;
    std::unique_ptr<transport> transport_;
    session_options opts_;
    log_sink log_;
    std::int64_t next_id_ = 1;
    std::unordered_map<std::int64_t, pending*> pending_;
    std::unordered_map<std::string, std::int64_t> progress_tokens_;
    notification_handler on_notification_;
    request_handler on_request_;
    server_info info_;
    bool closed_ = false;
    bool read_loop_running_ = false;
    alarm_timer closed_signal_;
};

}  // namespace toolgate::mcp
