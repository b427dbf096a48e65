#pragma once
// In-memory MCP peers for unit tests: no processes, no sockets, no sleeps.
//
// - scripted_transport: one connection; the test plays the server by reacting to what the client
//   session sends (a responder called on every send), and can deliver messages, hang up (the
//   server dies) or refuse to start (the server is unreachable).
// - scripted_server: one upstream server across the connections an aggregator makes to it
//   (restarts): answers initialize, ping and tools/list from its fields, hands other requests to
//   the test, and records everything it received.
// - event_signal: how a test waits for something to happen. Every fake event (a message sent, a
//   transport made or closed) and whatever else the test hooks in (catalog changes) wakes the
//   waiters, which re-check their condition; a deadline only bounds a test that would hang.
//
// All of it is single-threaded: it lives on the io_context the code under test runs on.
// (Inside coroutines, string literals are wrapped in std::string: GCC 12 cannot keep arrays in a
// coroutine frame. Braced JSON is built in plain functions: CONTRIBUTING.md.)
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fakes/manual_clock.hpp"
#include "common/asio_util.hpp"
#include "mcp/jsonrpc.hpp"
#include "mcp/message_queue.hpp"
#include "mcp/transport.hpp"

namespace toolgate::fakes {

namespace asio = boost::asio;
namespace json = boost::json;

// Wakes every coroutine waiting in until() whenever notify() is called.
class event_signal {
public:
    void notify() {
        ++count_;
        for (auto* t : waiters_) t->cancel();
    }
    std::size_t count() const { return count_; }

    // Completes once `done()` holds (true), or when `deadline` has passed without it (false).
    asio::awaitable<bool> until(std::function<bool()> done, std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
        auto end = std::chrono::steady_clock::now() + deadline;
        asio::steady_timer timer(co_await asio::this_coro::executor);
        waiters_.push_back(&timer);
        struct unregister {
            std::list<asio::steady_timer*>& list;
            asio::steady_timer* t;
            ~unregister() { list.remove(t); }
        } guard{waiters_, &timer};
        while (!done()) {
            if (std::chrono::steady_clock::now() >= end) co_return false;
            timer.expires_at(end);
            co_await timer.async_wait(nothrow_awaitable);
        }
        co_return true;
    }

private:
    std::list<asio::steady_timer*> waiters_;
    std::size_t count_ = 0;
};

// A transport in memory: the test plays the server by reacting to what the session sends.
class scripted_transport final : public mcp::transport {
public:
    using responder = std::function<void(mcp::message const&, scripted_transport&)>;

    scripted_transport(asio::any_io_executor ex, responder r, event_signal* events = nullptr)
        : queue_(ex), respond_(std::move(r)), events_(events) {}
    ~scripted_transport() override {
        if (on_destroy) on_destroy(this);
    }

    asio::awaitable<boost::system::error_code> start() override {
        started_ = !start_error;
        if (start_error) closed_ = true;
        wake();
        co_return start_error;
    }
    asio::awaitable<boost::system::error_code> send(std::string m) override {
        if (closed_) co_return asio::error::broken_pipe;  // the server has gone
        sent.push_back(m);
        auto parsed = mcp::parse_message(m);
        if (respond_) respond_(parsed, *this);
        wake();
        // Like a real transport, whose write completes later, after other handlers have run.
        if (async_send) {
            auto ex = co_await asio::this_coro::executor;
            co_await asio::post(ex, asio::use_awaitable);
        }
        co_return boost::system::error_code{};
    }
    asio::awaitable<boost::system::result<std::string>> receive() override { co_return co_await queue_.pop(); }
    asio::awaitable<void> close() override {
        closed_ = true;
        queue_.close(asio::error::eof);
        wake();
        co_return;
    }
    std::string describe() const override { return "scripted"; }

    // A message from the server (read by the session after its current step).
    void deliver(std::string m) { queue_.push(std::move(m)); }
    // The server dies: the session reads end-of-stream, later sends fail.
    void hang_up() {
        closed_ = true;
        queue_.close(asio::error::eof);
        wake();
    }
    bool closed() const { return closed_; }
    bool started() const { return started_; }
    // How many requests or notifications with this method were sent to the server.
    std::size_t count(std::string_view method) const {
        std::size_t n = 0;
        for (auto const& m : sent)
            if (mcp::parse_message(m).method == method) ++n;
        return n;
    }

    std::vector<std::string> sent;  // every message the session sent, in order
    boost::system::error_code start_error;  // set: start() fails with it (the server is unreachable)
    bool async_send = false;  // send() completes after a turn of the event loop instead of at once
    std::function<void(scripted_transport*)> on_destroy;

private:
    void wake() {
        if (events_) events_->notify();
    }
    mcp::detail::message_queue queue_;
    responder respond_;
    event_signal* events_;
    bool closed_ = false;
    bool started_ = false;
};

// One upstream MCP server as the test plays it, over every connection made to it (connect() is
// what aggregator_options::make_transport calls). Must outlive its connections: declare it before
// the io_context whose handlers may still own them.
class scripted_server {
public:
    explicit scripted_server(event_signal* events = nullptr) : events_(events) {
        capabilities["tools"] = json::object();
    }
    scripted_server(scripted_server const&) = delete;
    scripted_server& operator=(scripted_server const&) = delete;
    ~scripted_server() {
        for (auto* t : live_) t->on_destroy = nullptr;
    }

    // What initialize is answered with.
    std::string protocol_version = "2025-06-18";
    json::object capabilities;  // {"tools": {}} unless the test changes it
    std::string name = "fake";
    // What tools/list answers, `page_size` tools a page (0: one page); cursors are offsets.
    json::array tools;
    std::size_t page_size = 0;
    // Sees every request first (after initialize); returns true when it has answered it (through
    // t.deliver) or keeps it to answer later. Otherwise ping and tools/list get the answers above
    // and anything else -32601.
    std::function<bool(mcp::message const&, scripted_transport&)> on_request;
    // Sees every notification from the client (notifications/initialized, ...).
    std::function<void(mcp::message const&, scripted_transport&)> on_notification;
    // The next `fail_starts` connections fail in start().
    unsigned fail_starts = 0;
    // Connections whose sends complete asynchronously, as real transports' writes do.
    bool async_sends = false;

    std::unique_ptr<mcp::transport> connect(asio::any_io_executor ex) {
        auto t = std::make_unique<scripted_transport>(
            ex, [this](mcp::message const& m, scripted_transport& tr) { answer(m, tr); }, events_);
        if (fail_starts > 0) {
            --fail_starts;
            t->start_error = asio::error::connection_refused;
        }
        t->async_send = async_sends;
        t->on_destroy = [this](scripted_transport* gone) { std::erase(live_, gone); };
        live_.push_back(t.get());
        ++connections_;
        connected_at.push_back(std::chrono::steady_clock::now());
        if (events_) events_->notify();
        return t;
    }

    // How many connections were made (the first start and every restart), and when.
    unsigned connections() const { return connections_; }
    std::vector<std::chrono::steady_clock::time_point> connected_at;
    // The newest connection while it exists, else nullptr.
    scripted_transport* newest() const { return live_.empty() ? nullptr : live_.back(); }
    // The newest connection, if it is up (started and not hung up).
    scripted_transport* up() const {
        auto* t = newest();
        return t && t->started() && !t->closed() ? t : nullptr;
    }
    // Every message received, over all connections, in order.
    std::vector<mcp::message> const& received() const { return received_; }
    std::size_t count(std::string_view method) const {
        std::size_t n = 0;
        for (auto const& m : received_)
            if (m.method == method) ++n;
        return n;
    }
    // The requests with this method received so far.
    std::vector<mcp::message> requests(std::string_view method) const {
        std::vector<mcp::message> out;
        for (auto const& m : received_)
            if (m.type == mcp::message::kind::request && m.method == method) out.push_back(m);
        return out;
    }

    // To the newest live connection: a message, a result, a hang-up.
    void deliver(std::string m) {
        if (auto* t = newest()) t->deliver(std::move(m));
    }
    void reply(json::value const& id, json::value const& result) { deliver(mcp::make_result(id, result)); }
    void hang_up() {
        if (auto* t = newest()) t->hang_up();
    }

    // The answer tools/list gets now, for a cursor (an offset; null: the first page).
    json::object tools_page(json::value const& cursor) const {
        std::size_t from = 0;
        if (cursor.is_string()) from = std::stoul(std::string(cursor.get_string()));
        std::size_t n = page_size == 0 ? tools.size() : page_size;
        json::array page;
        for (std::size_t i = from; i < tools.size() && i < from + n; ++i) page.push_back(tools[i]);
        json::object r;
        r["tools"] = std::move(page);
        if (from + n < tools.size()) r["nextCursor"] = std::to_string(from + n);
        return r;
    }

private:
    void answer(mcp::message const& m, scripted_transport& t) {
        received_.push_back(m);
        if (m.type == mcp::message::kind::notification && on_notification) on_notification(m, t);
        if (m.type != mcp::message::kind::request) return;
        if (m.method == "initialize") {
            json::object info;
            info["name"] = name;
            info["version"] = "1";
            json::object r;
            r["protocolVersion"] = protocol_version;
            r["capabilities"] = capabilities;
            r["serverInfo"] = std::move(info);
            t.deliver(mcp::make_result(m.id, r));
            return;
        }
        if (on_request && on_request(m, t)) return;
        if (m.method == "ping") {
            t.deliver(mcp::make_result(m.id, json::object()));
        } else if (m.method == "tools/list") {
            auto const* p = m.params.if_object();
            auto const* cursor = p ? p->if_contains("cursor") : nullptr;
            t.deliver(mcp::make_result(m.id, tools_page(cursor ? *cursor : json::value())));
        } else {
            t.deliver(mcp::make_error(m.id, mcp::errc::method_not_found, "the scripted server has no " + m.method));
        }
    }

    event_signal* events_;
    std::vector<scripted_transport*> live_;
    std::vector<mcp::message> received_;
    unsigned connections_ = 0;
};

// A tool definition as a server lists it.
inline json::object tool(std::string const& name, std::string const& description = "") {
    json::object schema;
    schema["type"] = "object";
    json::object t;
    t["name"] = name;
    t["description"] = description.empty() ? "the " + name + " tool" : description;
    t["inputSchema"] = std::move(schema);
    return t;
}

// The tools a server lists, by name.
inline json::array tools_named(std::vector<std::string> const& names) {
    json::array out;
    for (auto const& n : names) out.push_back(tool(n));
    return out;
}

// A CallToolResult with one text part.
inline json::object text_result(std::string const& text, bool is_error = false) {
    json::object part;
    part["type"] = "text";
    part["text"] = text;
    json::array content;
    content.push_back(std::move(part));
    json::object r;
    r["content"] = std::move(content);
    if (is_error) r["isError"] = true;
    return r;
}

// Starts scenario `f` on `ioc`; `done` is set when it has finished (an exception is rethrown).
template <class F>
void spawn_scenario(asio::io_context& ioc, F& f, bool& done) {
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            co_await f(ioc.get_executor());
            done = true;
        },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
}

// Runs one scenario on a fresh io_context and fails the test unless it finished.
template <class F>
void run_coro(F f) {
    asio::io_context ioc;
    bool done = false;
    spawn_scenario(ioc, f, done);
    ioc.run_for(std::chrono::seconds(10));
    ASSERT_TRUE(done) << "the scenario did not finish";
}

// The same on simulated time: timers on `clk` fire when nothing else is ready to run.
template <class F>
void run_coro_simulated(manual_clock& clk, F f) {
    asio::io_context ioc;
    bool done = false;
    spawn_scenario(ioc, f, done);
    ASSERT_TRUE(run_simulated(ioc, clk, [&] { return done; })) << "the scenario did not finish";
}

}  // namespace toolgate::fakes
