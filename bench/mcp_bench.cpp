// MCP benchmark: tools/call through the aggregator vs. straight to the same stdio server, in one run,
// at several concurrencies; then catalog build time and memory with many servers.
//
//   build/bench/mcp_bench [--calls 2000] [--concurrency 1,16] [--servers 50] [--tools 40]
//
// The server is the fixture of tests/e2e (Node, official MCP SDK); its npm packages must be installed
// (scripts/setup.sh does it). The direct client runs on the server's own thread; the aggregator path is
// measured from another thread, as the gateway's workers call it.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mcp/aggregator.hpp"
#include "mcp/client_session.hpp"

using namespace toolgate;
using namespace toolgate::mcp;
namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

struct figures {
    double calls_per_s = 0, p50_us = 0, p99_us = 0;
    int errors = 0;
};

figures summarise(std::vector<double>& lat_us, double seconds, int errors) {
    std::sort(lat_us.begin(), lat_us.end());
    figures f;
    f.calls_per_s = lat_us.size() / seconds;
    f.p50_us = lat_us[lat_us.size() / 2];
    f.p99_us = lat_us[std::min(lat_us.size() - 1, lat_us.size() * 99 / 100)];
    f.errors = errors;
    return f;
}

long rss_kib() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return 0;
}

log_sink quiet() {
    return [](log_level lvl, std::string const& m) {
        if (lvl == log_level::error) std::fprintf(stderr, "  [server] %s\n", m.c_str());
    };
}

stdio_options fixture(std::string const& path, int bulk) {
    stdio_options o;
    o.command = "node";
    o.args = {path};
    o.env["FIXTURE_BULK_TOOLS"] = std::to_string(bulk);
    return o;
}

template <class F>
figures drive(asio::any_io_executor ex, int calls, int concurrency, F one_call) {
    std::vector<double> lat;
    lat.reserve(calls);
    int errors = 0;
    auto start = clock_type::now();
    auto worker = [&](int n) -> asio::awaitable<void> {
        for (int i = 0; i < n; ++i) {
            auto t0 = clock_type::now();
            bool ok = co_await one_call();
            lat.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
            errors += !ok;
        }
    };
    std::vector<std::future<void>> done;
    for (int w = 0; w < concurrency; ++w)
        done.push_back(asio::co_spawn(ex, worker(calls / concurrency), asio::use_future));
    for (auto& d : done) d.get();
    double secs = std::chrono::duration<double>(clock_type::now() - start).count();
    return summarise(lat, secs, errors);
}

}  // namespace

int main(int argc, char** argv) {
    int calls = 2000, servers = 50, tools = 40;
    std::vector<int> conc{1, 16};
    std::string fixture_path = "tests/e2e/fixtures/fixture_server.mjs";
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        if (k == "--calls") calls = std::stoi(v);
        else if (k == "--servers") servers = std::stoi(v);
        else if (k == "--tools") tools = std::stoi(v);
        else if (k == "--fixture") fixture_path = v;
        else if (k == "--concurrency") {
            conc.clear();
            std::stringstream ss(v);
            std::string x;
            while (std::getline(ss, x, ',')) conc.push_back(std::stoi(x));
        } else {
            std::fprintf(stderr, "unknown option %s\n", k.c_str());
            return 2;
        }
    }

    // The MCP thread, as in the gateway.
    asio::io_context mcp_ioc(1);
    auto guard = asio::make_work_guard(mcp_ioc);
    std::thread mcp_thread([&] { mcp_ioc.run(); });
    // A "worker" thread that calls into the aggregator.
    asio::io_context worker_ioc(1);
    auto wguard = asio::make_work_guard(worker_ioc);
    std::thread worker_thread([&] { worker_ioc.run(); });

    // Direct session to one fixture instance.
    auto direct = std::make_shared<client_session>(mcp_ioc.get_executor(),
                                                   make_stdio_transport(mcp_ioc.get_executor(), fixture(fixture_path, 0), quiet()),
                                                   session_options{}, quiet());
    auto started = asio::co_spawn(mcp_ioc, direct->start(), asio::use_future).get();
    if (!started) {
        std::fprintf(stderr, "cannot start the fixture server (%s): run scripts/setup.sh first\n", fixture_path.c_str());
        return 1;
    }
    // The same server behind the aggregator.
    server_config sc;
    sc.name = "fixture";
    sc.stdio = fixture(fixture_path, 0);
    sc.max_concurrency = 64;
    auto agg = std::make_unique<aggregator>(mcp_ioc.get_executor(), std::vector<server_config>{sc}, aggregator_options{},
                                            [](std::string const&) { return quiet(); });
    agg->start();
    for (int i = 0; i < 200 && agg->snapshot()->find("fixture__pid") == nullptr; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));

    std::printf("tools/call round trip, fixture server over stdio, %d calls per run\n", calls);
    std::printf("%-6s %14s %14s %8s %12s %12s %12s %12s\n", "conc", "direct call/s", "gateway call/s", "ratio",
                "direct p50", "gateway p50", "direct p99", "gateway p99");
    for (int c : conc) {
        for (int warm = 0; warm < 2; ++warm) {
            auto d = drive(mcp_ioc.get_executor(), warm ? calls : calls / 10, c, [&]() -> asio::awaitable<bool> {
                json::object params{{"name", "pid"}, {"arguments", json::object{}}};
                auto r = co_await direct->request("tools/call", std::move(params), std::chrono::seconds(30));
                co_return r.ok();
            });
            auto g = drive(worker_ioc.get_executor(), warm ? calls : calls / 10, c, [&]() -> asio::awaitable<bool> {
                auto r = co_await agg->call_tool("fixture__pid", json::object{}, nullptr);
                co_return r.ok;
            });
            if (!warm) continue;
            std::printf("%-6d %14.0f %14.0f %7.1f%% %10.0fus %10.0fus %10.0fus %10.0fus%s\n", c, d.calls_per_s,
                        g.calls_per_s, 100.0 * g.calls_per_s / d.calls_per_s, d.p50_us, g.p50_us, d.p99_us, g.p99_us,
                        d.errors + g.errors ? " (errors!)" : "");
        }
    }
    asio::co_spawn(mcp_ioc, direct->close(), asio::use_future).get();
    asio::co_spawn(mcp_ioc, agg->stop(), asio::use_future).get();
    agg.reset();

    // Catalog build with many servers.
    long rss_before = rss_kib();
    std::vector<server_config> many;
    for (int i = 0; i < servers; ++i) {
        server_config s;
        s.name = "s" + std::to_string(i);
        s.stdio = fixture(fixture_path, std::max(0, tools - 10));  // the fixture has 10 tools of its own
        many.push_back(std::move(s));
    }
    auto t0 = clock_type::now();
    auto big = std::make_unique<aggregator>(mcp_ioc.get_executor(), many, aggregator_options{},
                                            [](std::string const&) { return quiet(); });
    big->start();
    std::size_t want = std::size_t(servers) * std::size_t(std::max(tools, 10));
    std::size_t have = 0;
    while (std::chrono::duration<double>(clock_type::now() - t0).count() < 180) {
        have = big->snapshot()->tools.size();
        if (have >= want) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    double build_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    long rss_after = rss_kib();
    auto t1 = clock_type::now();
    for (int i = 0; i < 100; ++i) (void)big->snapshot()->find("s" + std::to_string(i % servers) + "__bulk_1");
    double lookup_ns = std::chrono::duration<double, std::nano>(clock_type::now() - t1).count() / 100;
    std::printf("\ncatalog: %d servers x %d tools = %zu tools in %.2f s (start-up of %d Node processes on %u cores "
                "included); gateway-side memory +%.1f MiB; name lookup %.0f ns\n",
                servers, tools, have, build_s, servers, std::thread::hardware_concurrency(),
                (rss_after - rss_before) / 1024.0, lookup_ns);
    asio::co_spawn(mcp_ioc, big->stop(), asio::use_future).get();
    big.reset();

    wguard.reset();
    worker_ioc.stop();
    worker_thread.join();
    guard.reset();
    mcp_ioc.stop();
    mcp_thread.join();
    return have >= want ? 0 : 1;
}
