#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <csignal>
#include <fcntl.h>
#include <set>
#include <unistd.h>

#include "fakes/scripted_transport.hpp"
#include "mcp/client_session.hpp"
#include "mcp/jsonrpc.hpp"
#include "mcp/names.hpp"
#include "mcp/resilience.hpp"
#include "mcp/transport.hpp"

using namespace toolgate;
using namespace toolgate::mcp;
namespace asio = boost::asio;
namespace json = boost::json;

TEST(jsonrpc, classify) {
    EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":1,"method":"ping"})").type, message::kind::request);
    EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","method":"notifications/x"})").type, message::kind::notification);
    auto r = parse_message(R"({"jsonrpc":"2.0","id":"a","result":{"ok":true}})");
    EXPECT_EQ(r.type, message::kind::response);
    EXPECT_EQ(r.id, "a");
    auto e = parse_message(R"({"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"bad"}})");
    EXPECT_EQ(e.type, message::kind::error);
    EXPECT_EQ(e.error_code, -32602);
    EXPECT_EQ(e.error_message, "bad");
    for (auto bad : {R"([{"jsonrpc":"2.0","method":"a"}])", R"({"id":1,"method":"a"})", R"({"jsonrpc":"2.0","id":1.5,"method":"a"})",
                     R"({"jsonrpc":"2.0","id":1})", "not json", R"("str")", R"({"jsonrpc":"2.0","method":7})"})
        EXPECT_EQ(parse_message(bad).type, message::kind::invalid) << bad;
    auto built = parse_message(make_request(json::value(5), "tools/list", json::object{{"cursor", "x"}}));
    EXPECT_EQ(built.type, message::kind::request);
    EXPECT_EQ(built.params.at("cursor"), "x");
}

TEST(line_framer, partial_lines_crlf_and_empty_lines) {
    line_framer f(1024);
    std::vector<std::string> lines;
    std::size_t oversized = 0;
    f.feed("{\"a\":", lines, oversized);
    EXPECT_TRUE(lines.empty());
    f.feed("1}\r\n\n{\"b\":2}\n{\"c\"", lines, oversized);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0], "{\"a\":1}");
    EXPECT_EQ(lines[1], "{\"b\":2}");
    f.feed(":3}\n", lines, oversized);
    EXPECT_EQ(lines.back(), "{\"c\":3}");
    EXPECT_EQ(oversized, 0u);
}

TEST(line_framer, huge_line_is_dropped_and_reading_resumes) {
    line_framer f(100);
    std::vector<std::string> lines;
    std::size_t oversized = 0;
    f.feed(std::string(60, 'x'), lines, oversized);
    f.feed(std::string(60, 'x'), lines, oversized);  // now over the bound, still no newline
    f.feed(std::string(5000, 'x'), lines, oversized);
    EXPECT_EQ(f.buffered(), 0u) << "memory stays bounded while skipping";
    f.feed("xx\n{\"ok\":1}\n", lines, oversized);
    EXPECT_EQ(oversized, 1u);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0], "{\"ok\":1}");
}

// The caller of an answer too large to read learns it at once: the dropped line's id is found in
// its first or last bytes, where JSON-RPC libraries put it.
TEST(line_framer, reports_the_id_of_a_dropped_answer) {
    line_framer f(100);
    std::vector<std::string> lines;
    std::vector<std::int64_t> ids;
    std::size_t oversized = 0;
    f.feed("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"x\":\"" + std::string(500, 'a'), lines, oversized, &ids);
    EXPECT_TRUE(ids.empty()) << "known once the line ends";
    f.feed(std::string(500, 'a') + "\"}}\n", lines, oversized, &ids);
    ASSERT_EQ(ids, std::vector<std::int64_t>{7});
    // The TypeScript SDK writes the id last.
    ids.clear();
    f.feed("{\"result\":{\"x\":\"" + std::string(500, 'b') + "\"},\"jsonrpc\":\"2.0\",\"id\": 12}\r\n", lines, oversized, &ids);
    ASSERT_EQ(ids, std::vector<std::int64_t>{12});
    // An id that is not a top-level member at either end is not guessed.
    ids.clear();
    f.feed("{\"result\":{\"id\":3,\"x\":\"" + std::string(500, 'c') + "\"}}\n", lines, oversized, &ids);
    EXPECT_TRUE(ids.empty());
    EXPECT_EQ(oversized, 3u);
    EXPECT_TRUE(lines.empty());
    EXPECT_EQ(answer_id_of_ends("{\"id\":5,", ""), 5);
    EXPECT_EQ(answer_id_of_ends("", ",\"id\":9}"), 9);
    EXPECT_EQ(answer_id_of_ends("", ",\"id\":9,\"x\":1}"), std::nullopt);
}

TEST(names, valid_names_pass_untouched) {
    EXPECT_EQ(model_safe_name("fs__read_file", "fs", "read_file"), "fs__read_file");
    EXPECT_TRUE(valid_model_tool_name("a-b_C9"));
    EXPECT_FALSE(valid_model_tool_name(""));
    EXPECT_FALSE(valid_model_tool_name("a.b"));
    EXPECT_FALSE(valid_model_tool_name(std::string(65, 'a')));
}

// ^[a-zA-Z0-9_-]{1,64}$, written out (std::regex draws a false GCC 12 warning under ASan).
bool model_name_ok(std::string const& s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
    return true;
}

TEST(names, invalid_and_long_names_are_shortened_deterministically) {
    auto a = model_safe_name("srv__weird.name/x", "srv", "weird.name/x");
    EXPECT_TRUE(model_name_ok(a)) << a;
    EXPECT_EQ(a, model_safe_name("srv__weird.name/x", "srv", "weird.name/x"));
    auto b = model_safe_name("srv__weird_name_x", "srv", "weird_name_x");
    EXPECT_NE(a, b) << "a sanitised name never equals an original that was valid";
    auto long_name = model_safe_name("srv__" + std::string(100, 'z'), "srv", std::string(100, 'z'));
    EXPECT_EQ(long_name.size(), 64u);
    EXPECT_TRUE(model_name_ok(long_name));
    auto long2 = model_safe_name("srv__" + std::string(100, 'z') + "q", "srv", std::string(100, 'z') + "q");
    EXPECT_NE(long_name, long2) << "same 55-char prefix, different originals";
    EXPECT_TRUE(model_name_ok(model_safe_name("", "s", "")));
}

TEST(names, prefix_modes_and_collisions) {
    std::vector<tool_ref> tools{{"a", "search"}, {"b", "search"}, {"b", "fetch"}};
    auto always = assign_names(tools, prefix_mode::always);
    EXPECT_EQ(always[0].exposed, "a__search");
    EXPECT_EQ(always[2].exposed, "b__fetch");
    auto conditional = assign_names(tools, prefix_mode::conditional);
    EXPECT_EQ(conditional[0].exposed, "a__search");
    EXPECT_EQ(conditional[1].exposed, "b__search");
    EXPECT_EQ(conditional[2].exposed, "fetch");
    auto never = assign_names(tools, prefix_mode::never);
    EXPECT_EQ(never[0].exposed, "search");
    EXPECT_TRUE(never[1].exposed.empty());
    EXPECT_NE(never[1].problem.find("same name"), std::string::npos);
    EXPECT_EQ(never[2].exposed, "fetch");
}

TEST(names, round_trip_is_exact_for_many_awkward_names) {
    std::vector<tool_ref> tools;
    for (int i = 0; i < 200; ++i) {
        tools.push_back({"s" + std::to_string(i % 3), "tool." + std::to_string(i)});
        tools.push_back({"s" + std::to_string(i % 3), "tool_" + std::to_string(i)});
        tools.push_back({"s" + std::to_string(i % 3), std::string(70, 'n') + std::to_string(i)});
    }
    auto named = assign_names(tools, prefix_mode::always);
    std::map<std::string, std::pair<std::string, std::string>> back;
    for (std::size_t i = 0; i < tools.size(); ++i) {
        ASSERT_FALSE(named[i].exposed.empty()) << named[i].problem;
        ASSERT_TRUE(valid_model_tool_name(named[i].exposed)) << named[i].exposed;
        ASSERT_TRUE(back.emplace(named[i].exposed, std::make_pair(tools[i].server, tools[i].tool)).second)
            << "duplicate " << named[i].exposed;
    }
    for (std::size_t i = 0; i < tools.size(); ++i)
        EXPECT_EQ(back[named[i].exposed], std::make_pair(tools[i].server, tools[i].tool));
}

TEST(circuit_breaker, opens_after_threshold_and_half_opens) {
    using clock = circuit_breaker::clock;
    circuit_breaker b(3, std::chrono::milliseconds(1000));
    auto t0 = clock::now();
    for (int i = 0; i < 2; ++i) {
        auto d = b.admit(t0);
        ASSERT_EQ(d, circuit_breaker::decision::allow);
        EXPECT_FALSE(b.record(d, true, t0));
    }
    EXPECT_TRUE(b.record(b.admit(t0), true, t0));  // third failure opens it
    EXPECT_TRUE(b.is_open());
    EXPECT_EQ(b.admit(t0 + std::chrono::milliseconds(999)), circuit_breaker::decision::reject);
    auto trial = b.admit(t0 + std::chrono::milliseconds(1000));
    EXPECT_EQ(trial, circuit_breaker::decision::trial);
    EXPECT_EQ(b.admit(t0 + std::chrono::milliseconds(1001)), circuit_breaker::decision::reject) << "one trial at a time";
    EXPECT_FALSE(b.record(trial, true, t0 + std::chrono::milliseconds(1000)));  // failed trial: open again
    EXPECT_EQ(b.admit(t0 + std::chrono::milliseconds(1500)), circuit_breaker::decision::reject);
    auto trial2 = b.admit(t0 + std::chrono::milliseconds(2001));
    EXPECT_EQ(trial2, circuit_breaker::decision::trial);
    EXPECT_TRUE(b.record(trial2, false, t0 + std::chrono::milliseconds(2001)));  // success closes
    EXPECT_FALSE(b.is_open());
    EXPECT_EQ(b.admit(t0), circuit_breaker::decision::allow);
}

TEST(circuit_breaker, success_resets_the_count_and_abandoned_trials_free_the_slot) {
    using clock = circuit_breaker::clock;
    circuit_breaker b(2, std::chrono::milliseconds(10));
    auto t = clock::now();
    b.record(b.admit(t), true, t);
    b.record(b.admit(t), false, t);
    b.record(b.admit(t), true, t);
    EXPECT_FALSE(b.is_open());
    b.record(b.admit(t), true, t);
    EXPECT_TRUE(b.is_open());
    auto trial = b.admit(t + std::chrono::milliseconds(10));
    b.abandon(trial);
    EXPECT_EQ(b.admit(t + std::chrono::milliseconds(10)), circuit_breaker::decision::trial);
}

TEST(backoff, doubles_up_to_the_cap_and_resets) {
    backoff d(std::chrono::milliseconds(500), std::chrono::milliseconds(3000));
    EXPECT_EQ(d.next().count(), 500);
    EXPECT_EQ(d.next().count(), 1000);
    EXPECT_EQ(d.next().count(), 2000);
    EXPECT_EQ(d.next().count(), 3000);
    EXPECT_EQ(d.next().count(), 3000);
    d.reset();
    EXPECT_EQ(d.next().count(), 500);
}

namespace {

// (Inside coroutines, string literals are wrapped in std::string: GCC 12 cannot keep arrays in a
// coroutine frame.)
using fakes::run_coro;
using fakes::scripted_transport;

void standard_server(message const& m, scripted_transport& t) {
    if (m.method == "initialize")
        t.deliver(make_result(m.id, json::object{{"protocolVersion", "2025-06-18"},
                                                 {"capabilities", json::object{{"tools", json::object{}}}},
                                                 {"serverInfo", json::object{{"name", "fake"}, {"version", "1"}}}}));
    else if (m.method == "echo") t.deliver(make_result(m.id, m.params));
    else if (m.method == "fail") t.deliver(make_error(m.id, errc::invalid_params, "nope"));
    else if (m.method == "progress") {
        auto token = m.params.at("_meta").at("progressToken");
        t.deliver(make_notification("notifications/progress", json::object{{"progressToken", token}, {"progress", 1}, {"total", 2}}));
        t.deliver(make_result(m.id, json::object{{"done", true}}));
    }
    // "silent": never answered
}

}  // namespace

// On simulated time: the 50 ms deadline and the 20 ms delays take no real time.
TEST(client_session, handshake_correlation_errors_progress_timeout_and_cancel) {
    fakes::manual_clock clk;
    session_options so;
    so.clock = &clk;
    fakes::run_coro_simulated(clk, [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto t = std::make_unique<scripted_transport>(ex, standard_server);
        auto* tp = t.get();
        auto s = std::make_shared<client_session>(ex, std::move(t), so, [](log_level, std::string const&) {});
        auto info = co_await s->start();
        EXPECT_TRUE(info.has_value());
        EXPECT_EQ(info->protocol_version, std::string("2025-06-18"));
        EXPECT_EQ(parse_message(tp->sent.at(1)).method, std::string("notifications/initialized"));

        json::object echo_params;  // no braced list: GCC 12 mishandles initializer_list in coroutines
        echo_params["x"] = 1;
        auto r = co_await s->request("echo", echo_params, std::chrono::seconds(1));
        EXPECT_TRUE(r.ok());
        EXPECT_EQ(r.result.at("x"), 1);

        auto e = co_await s->request("fail", nullptr, std::chrono::seconds(1));
        EXPECT_EQ(e.state, call_result::status::error);
        EXPECT_EQ(e.code, errc::invalid_params);

        int progress_seen = 0;
        json::object no_params;  // named first: no braced temporary inside co_await
        auto p = co_await s->request("progress", no_params, std::chrono::seconds(1), nullptr,
                                     [&](json::value const& v) { progress_seen += v.at("progress") == 1; });
        EXPECT_TRUE(p.ok());
        EXPECT_EQ(progress_seen, 1);

        auto before = clk.now();
        auto timeout = co_await s->request("silent", nullptr, std::chrono::milliseconds(50));
        EXPECT_EQ(timeout.state, call_result::status::timeout);
        EXPECT_TRUE(clk.now() - before == std::chrono::milliseconds(50));
        auto last = parse_message(tp->sent.back());
        EXPECT_EQ(last.method, std::string("notifications/cancelled"));
        EXPECT_TRUE(last.params.at("reason") == "timeout");

        cancel_token cancel;
        alarm_timer soon(clk, ex);
        soon.expires_after(std::chrono::milliseconds(20));
        soon.async_wait([&](auto ec) { if (!ec) cancel.cancel(); });
        auto cancelled = co_await s->request("silent", nullptr, std::chrono::seconds(5), &cancel);
        EXPECT_EQ(cancelled.state, call_result::status::cancelled);
        EXPECT_EQ(parse_message(tp->sent.back()).method, std::string("notifications/cancelled"));

        // The server pings us: we answer.
        tp->deliver(make_request(json::value(std::string("p1")), std::string("ping"), nullptr));
        co_await s->request("echo", no_params, std::chrono::seconds(1));
        bool answered = false;
        for (auto const& m : tp->sent) {
            auto pm = parse_message(m);
            if (pm.type == message::kind::response && pm.id.is_string() && pm.id.get_string() == "p1") answered = true;
        }
        EXPECT_TRUE(answered);

        // Garbage from the server is ignored; the session keeps working.
        tp->deliver("{\"not\":\"jsonrpc\"}");
        auto after_garbage = co_await s->request("echo", no_params, std::chrono::seconds(1));
        EXPECT_TRUE(after_garbage.ok());

        // The connection drops while a call waits: the call ends at once.
        alarm_timer drop(clk, ex);
        drop.expires_after(std::chrono::milliseconds(20));
        drop.async_wait([&](auto ec) { if (!ec) tp->hang_up(); });
        auto closed = co_await s->request("silent", nullptr, std::chrono::seconds(5));
        EXPECT_EQ(closed.state, call_result::status::closed);
        EXPECT_TRUE(s->closed());
    });
}

TEST(client_session, refuses_an_unknown_protocol_version) {
    run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto t = std::make_unique<scripted_transport>(ex, [](message const& m, scripted_transport& t) {
            if (m.method == "initialize")
                t.deliver(make_result(m.id, json::object{{"protocolVersion", "1999-01-01"}, {"capabilities", json::object{}}}));
        });
        auto s = std::make_shared<client_session>(ex, std::move(t), session_options{}, [](log_level, std::string const&) {});
        auto info = co_await s->start();
        EXPECT_FALSE(info.has_value());
    });
}

// A stdio server is started with posix_spawn: it gets only its three pipes (no descriptor of the
// gateway leaks into it) and default signal dispositions (the gateway ignores SIGPIPE; a server
// must not inherit that).
TEST(stdio_transport, child_gets_only_its_pipes_and_default_signals) {
    auto prev = std::signal(SIGPIPE, SIG_IGN);
    int leaked = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC: fork + exec would hand it on
    ASSERT_GE(leaked, 0);
    asio::io_context io;
    stdio_options opts;
    opts.command = "sh";
    opts.args = {"-c",
                 "printf '{\"fds\":\"%s\",\"ignored\":\"%s\"}\\n' \"$(ls /proc/self/fd | tr '\\n' ' ')\" "
                 "\"$(grep SigIgn /proc/self/status | cut -f2)\"; read -r _"};
    std::vector<std::string> logged;
    auto t = make_stdio_transport(io.get_executor(), opts, [&](log_level, std::string const& m) { logged.push_back(m); });
    std::string line;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto ec = co_await t->start();
            EXPECT_FALSE(ec) << ec.message();
            auto r = co_await t->receive();
            if (r) line = *r;
            co_await t->close();
        },
        asio::detached);
    io.run_for(std::chrono::seconds(20));
    ::close(leaked);
    std::signal(SIGPIPE, prev);
    ASSERT_FALSE(line.empty());
    auto o = json::parse(line).as_object();
    // ls's own descriptors: the three pipes and the directory it reads.
    EXPECT_EQ(o.at("fds").as_string(), "0 1 2 3 ") << line;
    auto ignored = std::stoull(std::string(o.at("ignored").as_string()), nullptr, 16);
    EXPECT_EQ(ignored & (1ull << (SIGPIPE - 1)), 0u) << line;
}
