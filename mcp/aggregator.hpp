#pragma once
// The aggregator: many MCP servers behind one catalog. Each server is supervised on the MCP
// executor (started in parallel, never blocking the gateway; restarted with exponential backoff
// when it dies; a circuit breaker per server; bounded concurrency with a bounded queue; results
// capped). The catalog is an immutable snapshot swapped atomically, so any worker thread reads it
// without locks held across I/O. call_tool() may be called from any thread.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <array>
#include <tuple>
#include <vector>

#include "common/prometheus.hpp"
#include "mcp/tool_outcome.hpp"
#include "common/cancel.hpp"
#include "common/task_group.hpp"
#include "mcp/client_session.hpp"
#include "mcp/names.hpp"
#include "mcp/transport.hpp"
#include "mcp/upstream_auth.hpp"

namespace toolgate::mcp {

struct server_config {
    std::string name;
    std::optional<stdio_options> stdio;
    std::optional<http_options> http;
    std::optional<oauth_options> oauth;  // HTTP servers behind OAuth (see upstream_auth.hpp)
    std::vector<std::string> allowed_tools;  // empty: all
    std::vector<std::string> denied_tools;
    std::chrono::milliseconds timeout{60'000};  // per call
    unsigned max_concurrency = 8;
    unsigned max_queue = 64;
    bool required = false;
    std::size_t max_result_bytes = 1u << 20;
    std::chrono::milliseconds ping_interval{30'000};  // 0: never; two unanswered pings end the session
    // Client features a downstream MCP client may pass through to this server (sampling, elicitation,
    // roots). A client that declares some of them gets its own session with the server, declaring
    // exactly those; everybody else shares one session that declares none.
    std::vector<std::string> client_features{"sampling", "elicitation", "roots"};
    unsigned max_client_sessions = 32;  // such per-client sessions at once; beyond, clients share
    unsigned breaker_failures = 5;                   // consecutive failures that open the breaker
    std::chrono::milliseconds breaker_open{30'000};  // how long it stays open before one trial call
};

struct aggregator_options {
    prefix_mode names = prefix_mode::always;
    session_options session;
    std::chrono::milliseconds backoff_min{500};
    std::chrono::milliseconds backoff_max{30'000};
    // Builds the transport for a server (MCP thread); empty: stdio or HTTP as configured. Tests
    // pass a scripted transport here.
    std::function<std::unique_ptr<transport>(asio::any_io_executor, server_config const&, log_sink)> make_transport;
    // Restores a server's saved OAuth tokens and registers where new ones are saved (constructor).
    std::function<void(server_config const&, upstream_auth&)> restore_auth;
};

enum class server_status { starting, up, down, stopped, needs_authorization };
std::string_view to_string(server_status s);

// What /health and /metrics need to know of one server, typed (the admin API has the JSON).
struct server_view {
    std::string name;
    server_status status = server_status::starting;
    bool required = false;
    bool breaker_open = false;
    unsigned restarts = 0;
};

struct tool_entry {
    std::string exposed;  // the name models and MCP clients see
    std::string server;
    std::string name;       // the server's own name
    json::object definition;  // the server's tool object (name, description, inputSchema, ...)
};

struct catalog {
    std::vector<tool_entry> tools;
    std::unordered_map<std::string, std::size_t> by_exposed;
    std::vector<std::pair<std::string, json::object>> resources;           // (server, resource)
    std::vector<std::pair<std::string, json::object>> resource_templates;  // (server, template)
    std::vector<std::pair<std::string, json::object>> prompts;             // (server, prompt)
    std::vector<std::string> problems;                                     // names dropped, and why
    tool_entry const* find(std::string_view exposed) const {
        auto it = by_exposed.find(std::string(exposed));
        return it == by_exposed.end() ? nullptr : &tools[it->second];
    }
};

// Per server and tool call figures, for /metrics.
struct call_stats {
    std::uint64_t calls = 0;
    std::uint64_t errors = 0;
    std::array<std::uint64_t, prometheus::latency_buckets.size()> buckets{};  // cumulative, by latency_buckets
    double seconds_sum = 0;
};

// What a caller offers the upstream server while its call runs (the /mcp front's session): the
// server's log messages, and its requests to the client (sampling, elicitation, roots). MCP thread.
struct upstream_observer {
    std::function<void(json::value const& params)> on_log;
    std::function<asio::awaitable<call_result>(std::string const& method, json::value params)> on_request;
};

// A downstream MCP client as its own upstream sessions see it (see aggregator::open_view): its
// capabilities are declared to them, and their requests and log messages outside any call of the
// client go to `outside_calls`. MCP thread.
struct client_link {
    json::object capabilities;      // as the client declared them in initialize
    upstream_observer outside_calls;
    std::function<void()> on_change;  // the client's catalog changed (its own sessions' lists)
};

class aggregator {
public:
    // The upstream sessions of one downstream client (opaque; MCP thread only).
    struct view;

    static constexpr auto const& latency_buckets = prometheus::latency_buckets;
    using log_factory = std::function<log_sink(std::string const& server)>;

    aggregator(asio::any_io_executor ex, std::vector<server_config> servers, aggregator_options opts, log_factory logs);
    ~aggregator();
    aggregator(aggregator const&) = delete;
    aggregator& operator=(aggregator const&) = delete;

    // Thread-safe. Starts every server in parallel; returns at once.
    void start();
    // Starts the servers for one known client (`toolgate mcp-stdio`): the shared sessions declare its
    // capabilities (as far as each server's client_features allow) and `link` answers for it.
    void start(client_link link);
    // Runs on the MCP executor; closes every server (stdio children are stopped).
    asio::awaitable<void> stop();

    // Thread-safe: a short lock to copy the current catalog's pointer; the catalog is immutable.
    std::shared_ptr<catalog const> snapshot() const;

    // MCP thread. Opens a client's own sessions with the servers whose client_features it declared
    // (nullptr when there are none: the client uses the shared sessions). They start at once and
    // live until close_view(); its catalog mixes them with the shared sessions of the other servers.
    std::shared_ptr<view> open_view(client_link link);
    asio::awaitable<void> close_view(std::shared_ptr<view> v);
    // MCP thread. The catalog the client of `v` sees (the shared one when `v` is null).
    std::shared_ptr<catalog const> snapshot(view const* v) const;
    // MCP thread. A notification from the client to its own sessions that declared `capability`
    // (notifications/roots/list_changed).
    asio::awaitable<void> notify_view(std::shared_ptr<view> v, std::string method, std::string capability);
    // MCP thread. Waits (at most `max`) until every server the client of `v` uses has been tried
    // once: a client's first list right after start-up sees the servers that come up.
    asio::awaitable<void> settled(std::shared_ptr<view> v, std::chrono::milliseconds max);

    // Thread-safe: may be awaited from any executor. `cancel` belongs to the caller's thread.
    // `on_progress` runs on the caller's executor, possibly after the call has returned: whatever
    // it touches must be owned by it (a shared_ptr).
    // `observer` (optional) is only for callers on the MCP executor; it must outlive the call.
    asio::awaitable<tool_outcome> call_tool(std::string exposed_name, json::object arguments, cancel_token* cancel,
                                            std::function<void(json::value const&)> on_progress = {},
                                            upstream_observer* observer = nullptr, std::shared_ptr<view> v = nullptr);

    // Thread-safe, like call_tool: one request to one server (resources/read, prompts/get, ...).
    asio::awaitable<call_result> forward(std::string server, std::string method, json::object params, cancel_token* cancel,
                                         std::shared_ptr<view> v = nullptr);
    // Thread-safe: the OAuth browser step of a server (authorization_code): the URL a person opens
    // (status 200), or why not (404 no such server, 409 not OAuth, 502 its authorization server).
    struct authorization_start {
        int status = 200;
        std::string url, error;
    };
    asio::awaitable<authorization_start> begin_authorization(std::string server);
    // Thread-safe: the callback's code for the authorization started with `state`.
    struct authorization_end {
        std::string server;  // empty: the state is unknown
        std::string error;   // empty: authorized
    };
    asio::awaitable<authorization_end> complete_authorization(std::string state, std::string code, std::string iss = {});

    // Runs on the MCP executor after every catalog change (tools, resources or prompts).
    void on_catalog_change(std::function<void()> cb);
    prefix_mode names() const { return opts_.names; }
    asio::any_io_executor executor() const { return ex_; }

    // Thread-safe views for /health, /v1/mcp/servers and /metrics.
    json::array servers_status() const;  // for the admin API: every detail, as JSON
    std::vector<server_view> servers() const;  // typed, for /health and /metrics
    bool required_servers_up() const;
    std::vector<std::tuple<std::string, std::string, call_stats>> stats() const;
    std::size_t server_count() const;

private:
    struct server_state;
    void spawn_supervisor(std::shared_ptr<server_state> s);
    void mark_attempted(server_state& s);
    void wake_settle_waiters();
    upstream_auth* auth_of(std::string const& server) const;
    void wake_auth_waiters(std::string const& server);
    server_status shown_status(server_state const& s) const;
    asio::awaitable<authorization_start> begin_on_mcp_thread(std::string server);
    asio::awaitable<authorization_end> complete_on_mcp_thread(std::string state, std::string code, std::string iss);
    static asio::awaitable<void> retire(std::shared_ptr<server_state> s);
    asio::awaitable<void> supervise(std::shared_ptr<server_state> s);
    asio::awaitable<void> refresh(std::shared_ptr<server_state> sp, std::shared_ptr<client_session> session);
    asio::awaitable<void> keep_alive(server_state& s, std::shared_ptr<client_session> session);
    asio::awaitable<tool_outcome> call_on_mcp_thread(std::string exposed_name, json::object arguments,
                                                     std::shared_ptr<cancel_token> cancel,
                                                     std::function<void(json::value const&)> on_progress,
                                                     upstream_observer* observer, std::shared_ptr<view> v);
    asio::awaitable<call_result> forward_on_mcp_thread(std::string server, std::string method, json::object params,
                                                       std::shared_ptr<cancel_token> cancel, std::shared_ptr<view> v);
    // The state serving `server` for the client of `v`: its own session, or the shared one.
    std::shared_ptr<server_state> state_for(std::string const& server, view const* v) const;
    // The state serving server `i` for the client of `v`.
    std::shared_ptr<server_state> const& serving(std::size_t i, view const* v) const;
    client_link const* outside_link(server_state const& s) const;
    std::shared_ptr<catalog> build_catalog(view const* v) const;
    void rebuild_catalog(server_state& changed);
    asio::awaitable<call_result> ask_caller(std::shared_ptr<server_state> s, std::string method, json::value params);
    void to_callers(server_state& s, json::value const& log_params);

    asio::any_io_executor ex_;
    aggregator_options opts_;
    log_factory logs_;
    std::vector<std::shared_ptr<server_state>> servers_;
    std::map<std::string, std::shared_ptr<upstream_auth>> auths_;  // by server; fixed after construction
    std::vector<std::weak_ptr<view>> views_;  // MCP thread
    std::optional<client_link> sole_client_;  // mcp-stdio: the one client the shared sessions serve
    mutable std::mutex mu_;  // guards catalog_ and the status fields read by other threads
    std::shared_ptr<catalog const> catalog_;
    std::function<void()> on_change_;
    std::atomic<bool> stopping_{false};
    std::vector<asio::steady_timer*> settle_waiters_;  // MCP thread: settled() calls waiting
    task_group tasks_;  // supervisors and catalog refreshes, awaited by stop()
};

}  // namespace toolgate::mcp
