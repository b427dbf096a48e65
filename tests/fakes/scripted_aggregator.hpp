#pragma once
// An mcp::aggregator over scripted servers (tests/fakes/scripted_transport.hpp), on one io_context
// with one thread; the test's coroutine runs beside it on the same executor. run() starts the
// aggregator, runs the scenario, stops the aggregator, and fails the test if anything is still
// running afterwards.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fakes/scripted_transport.hpp"
#include "mcp/aggregator.hpp"

namespace toolgate::fakes {

// A server the aggregator reaches through aggregator_options::make_transport (no stdio, no http).
inline mcp::server_config scripted_config(std::string name) {
    mcp::server_config c;
    c.name = std::move(name);
    return c;
}

// Restarts within milliseconds: tests wait for the restart (an event), never for a time.
inline mcp::aggregator_options fast_restarts() {
    mcp::aggregator_options o;
    o.backoff_min = std::chrono::milliseconds(1);
    o.backoff_max = std::chrono::milliseconds(4);
    return o;
}

struct scripted_aggregator {
    // Declared before the io_context: the servers outlive every connection its handlers may own.
    event_signal events;
    std::map<std::string, std::unique_ptr<scripted_server>> upstream;  // by server name
    std::vector<std::string> log;                                      // "server: text"
    std::function<void(std::string const& server, std::string const& text)> on_log;  // MCP thread
    unsigned catalog_changes = 0;
    std::function<void()> on_catalog_change;  // besides counting and waking waiters
    asio::io_context ioc{1};
    std::unique_ptr<mcp::aggregator> agg;

    explicit scripted_aggregator(std::vector<mcp::server_config> servers, mcp::aggregator_options opts = fast_restarts()) {
        for (auto const& c : servers) upstream[c.name] = std::make_unique<scripted_server>(&events);
        opts.make_transport = [this](asio::any_io_executor ex, mcp::server_config const& c, mcp::log_sink) {
            return upstream.at(c.name)->connect(ex);
        };
        agg = std::make_unique<mcp::aggregator>(
            ioc.get_executor(), std::move(servers), std::move(opts), [this](std::string const& server) -> mcp::log_sink {
                return [this, server](mcp::log_level, std::string const& text) {
                    log.push_back(server + ": " + text);
                    if (on_log) on_log(server, text);
                };
            });
        agg->on_catalog_change([this] {
            ++catalog_changes;
            if (on_catalog_change) on_catalog_change();
            events.notify();
        });
    }

    scripted_server& operator[](std::string const& server) { return *upstream.at(server); }

    // Starts the aggregator, runs `scenario` (a callable returning awaitable<void>), stops the
    // aggregator; then nothing may be left running on the io_context.
    template <class F>
    void run(F scenario) {
        bool done = false;
        asio::co_spawn(
            ioc,
            [&]() -> asio::awaitable<void> {
                agg->start();
                co_await scenario();
                co_await agg->stop();
                done = true;
            },
            [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            });
        ioc.run_for(std::chrono::seconds(20));
        EXPECT_TRUE(done) << "the scenario did not finish";
        EXPECT_TRUE(ioc.stopped()) << "something still runs after the aggregator stopped";
    }

    // Completes when `what` holds (true) or after the deadline (false); re-checked on every event.
    asio::awaitable<bool> until(std::function<bool()> what, std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
        return events.until(std::move(what), deadline);
    }

    mcp::server_view status(std::string const& server) const {
        for (auto const& v : agg->servers())
            if (v.name == server) return v;
        ADD_FAILURE() << "no server " << server;
        return {};
    }
    bool up(std::string const& server) const { return status(server).status == mcp::server_status::up; }
    bool all_up() const {
        for (auto const& v : agg->servers())
            if (v.status != mcp::server_status::up) return false;
        return true;
    }
    // The exposed names in the catalog, in its order.
    std::vector<std::string> exposed() const {
        std::vector<std::string> out;
        for (auto const& t : agg->snapshot()->tools) out.push_back(t.exposed);
        return out;
    }
};

}  // namespace toolgate::fakes
