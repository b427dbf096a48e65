// The aggregator over scripted servers: start-up and naming, tool filters, restarts with backoff,
// tool calls and their failures, the concurrency limit with its queue, the circuit breaker,
// list_changed handling, and required_servers_up(). Everything runs on one io_context thread and
// waits for events (messages, connections, catalog changes), never for a fixed time.
// (Inside coroutines, string literals are wrapped in std::string and braced lists are built in
// plain functions: CONTRIBUTING.md.)
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fakes/scripted_aggregator.hpp"
#include "fakes/scripted_transport.hpp"
#include "mcp/aggregator.hpp"
#include "mcp/jsonrpc.hpp"

using namespace toolgate;
using namespace toolgate::mcp;
using fakes::scripted_aggregator;
using fakes::scripted_config;
using fakes::scripted_server;
using fakes::scripted_transport;
using fakes::text_result;
using fakes::tool;
using fakes::tools_named;

namespace {

using strings = std::vector<std::string>;


// t1 .. tn (for coroutine bodies, which may not hold braced lists).
json::array numbered_tools(int n) {
    json::array out;
    for (int i = 1; i <= n; ++i) out.push_back(tool("t" + std::to_string(i)));
    return out;
}

json::object who(std::string const& name) {
    json::object o;
    o["who"] = name;
    return o;
}

// The text of a CallToolResult's first part ("" when there is none).
std::string first_text(json::object const& result) {
    auto const* content = result.if_contains("content");
    if (!content || !content->is_array() || content->get_array().empty()) return "";
    auto const* part = content->get_array()[0].if_object();
    auto const* text = part ? part->if_contains("text") : nullptr;
    return text && text->is_string() ? std::string(text->get_string()) : "";
}

std::string string_at(json::value const& v, std::string_view key) {
    auto const* o = v.if_object();
    auto const* s = o ? o->if_contains(key) : nullptr;
    return s && s->is_string() ? std::string(s->get_string()) : "";
}

// A call running beside the test's coroutine; its outcome lands here (and wakes the waiters).
using pending_call = std::shared_ptr<std::optional<tool_outcome>>;

pending_call start_call(scripted_aggregator& h, std::string name, json::object args = json::object()) {
    auto out = std::make_shared<std::optional<tool_outcome>>();
    asio::co_spawn(h.ioc, h.agg->call_tool(std::move(name), std::move(args), nullptr),
                   [&h, out](std::exception_ptr e, tool_outcome o) {
                       if (e) std::rethrow_exception(e);
                       *out = std::move(o);
                       h.events.notify();
                   });
    return out;
}

// Runs `f` after `hops` turns of the event loop (posted `hops` times).
void after_hops(asio::any_io_executor ex, int hops, std::function<void()> f) {
    if (hops == 0) {
        f();
        return;
    }
    asio::post(ex, [ex, hops, f = std::move(f)]() mutable { after_hops(ex, hops - 1, std::move(f)); });
}

// A server whose tools/call requests wait in `held` until the test answers them.
void hold_calls(scripted_server& s, std::vector<message>& held) {
    s.on_request = [&held](message const& m, scripted_transport&) {
        if (m.method != "tools/call") return false;
        held.push_back(m);
        return true;
    };
}

// A server that answers tools/call with "<tool> for <who>".
void answer_calls(scripted_server& s) {
    s.on_request = [](message const& m, scripted_transport& t) {
        if (m.method != "tools/call") return false;
        auto const& args = m.params.at("arguments");
        t.deliver(make_result(m.id, text_result(string_at(m.params, "name") + " for " + string_at(args, "who"))));
        return true;
    };
}

}  // namespace

TEST(aggregator, lists_the_tools_of_a_server_that_came_up_under_prefixed_names) {
    scripted_aggregator h({scripted_config("files")});
    h["files"].tools = tools_named({"read", "write"});
    strings exposed;
    std::vector<tool_entry> entries;
    server_view view;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("files"); });
        EXPECT_TRUE(up);
        exposed = h.exposed();
        entries = h.agg->snapshot()->tools;
        view = h.status("files");
    });
    EXPECT_EQ(exposed, (strings{"files__read", "files__write"}));
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_EQ(entries[0].server, "files");
    EXPECT_EQ(entries[0].name, "read") << "the server's own name, for the call";
    EXPECT_EQ(string_at(json::value(entries[0].definition), "description"), "the read tool");
    EXPECT_EQ(view.restarts, 0u);
    EXPECT_FALSE(view.breaker_open);
    EXPECT_EQ(h["files"].connections(), 1u);
    EXPECT_EQ(h.status("files").status, server_status::stopped) << "after stop()";
}

TEST(aggregator, names_tools_by_prefix_mode_and_drops_collisions_under_never) {
    struct row {
        prefix_mode mode;
        strings exposed;
        std::size_t problems;
    };
    std::vector<row> const rows{
        {prefix_mode::always, {"a__search", "b__search", "b__fetch"}, 0},
        {prefix_mode::conditional, {"a__search", "b__search", "fetch"}, 0},
        {prefix_mode::never, {"search", "fetch"}, 1},
    };
    for (auto const& r : rows) {
        SCOPED_TRACE(static_cast<int>(r.mode));
        auto opts = fakes::fast_restarts();
        opts.names = r.mode;
        scripted_aggregator h({scripted_config("a"), scripted_config("b")}, opts);
        h["a"].tools = tools_named({"search"});
        h["b"].tools = tools_named({"search", "fetch"});
        strings exposed;
        std::size_t problems = 99;
        h.run([&]() -> asio::awaitable<void> {
            bool up = co_await h.until([&] { return h.all_up(); });
            EXPECT_TRUE(up);
            exposed = h.exposed();
            problems = h.agg->snapshot()->problems.size();
        });
        EXPECT_EQ(exposed, r.exposed);
        EXPECT_EQ(problems, r.problems);
        EXPECT_EQ(h.agg->names(), r.mode);
    }
}

TEST(aggregator, keeps_only_allowed_tools_that_are_not_denied) {
    auto cfg = scripted_config("s");
    cfg.allowed_tools = {"x", "y"};
    cfg.denied_tools = {"y"};
    scripted_aggregator h({cfg});
    h["s"].tools = tools_named({"x", "y", "z"});
    answer_calls(h["s"]);
    strings exposed;
    std::optional<tool_outcome> denied, hidden, allowed;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("s"); });
        EXPECT_TRUE(up);
        exposed = h.exposed();
        denied = co_await h.agg->call_tool(std::string("s__y"), json::object(), nullptr);
        hidden = co_await h.agg->call_tool(std::string("s__z"), json::object(), nullptr);
        allowed = co_await h.agg->call_tool(std::string("s__x"), who("me"), nullptr);
    });
    EXPECT_EQ(exposed, (strings{"s__x"}));
    EXPECT_EQ(denied->code, tool_errc::unknown_tool);
    EXPECT_EQ(hidden->code, tool_errc::unknown_tool);
    EXPECT_TRUE(allowed->ok) << allowed->error;
    EXPECT_EQ(h["s"].count("tools/call"), 1u) << "filtered tools never reach the server";
}

TEST(aggregator, follows_the_pages_of_a_servers_tools_list) {
    scripted_aggregator h({scripted_config("p")});
    h["p"].tools = tools_named({"t1", "t2", "t3", "t4", "t5"});
    h["p"].page_size = 2;
    strings exposed;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("p"); });
        EXPECT_TRUE(up);
        exposed = h.exposed();
    });
    EXPECT_EQ(exposed, (strings{"p__t1", "p__t2", "p__t3", "p__t4", "p__t5"}));
    auto lists = h["p"].requests("tools/list");
    ASSERT_EQ(lists.size(), 3u);
    EXPECT_EQ(string_at(lists[1].params, "cursor"), "2");
    EXPECT_EQ(string_at(lists[2].params, "cursor"), "4");
}

TEST(aggregator, restarts_a_server_that_hung_up_with_backoff) {
    scripted_aggregator h({scripted_config("s")});
    h["s"].tools = tools_named({"t"});
    std::vector<std::size_t> catalog_sizes;  // at every catalog change
    h.on_catalog_change = [&] { catalog_sizes.push_back(h.agg->snapshot()->tools.size()); };
    strings exposed_after;
    std::vector<unsigned> restarts;
    std::vector<std::chrono::steady_clock::time_point> hung_up_at;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("s"); });
        EXPECT_TRUE(up);
        restarts.push_back(h.status("s").restarts);
        for (unsigned round = 2; round <= 3; ++round) {
            hung_up_at.push_back(std::chrono::steady_clock::now());
            h["s"].hang_up();
            bool again = co_await h.until([&] { return h["s"].connections() == round && h.up("s"); });
            EXPECT_TRUE(again) << "round " << round;
            restarts.push_back(h.status("s").restarts);
        }
        exposed_after = h.exposed();
        h.on_catalog_change = nullptr;  // (stop() empties the catalog)
    });
    EXPECT_EQ(restarts, (std::vector<unsigned>{0, 1, 2}));
    // Reconnected 1 ms, then 2 ms after the hang-up at the earliest (timers never fire early).
    auto const& at = h["s"].connected_at;
    ASSERT_EQ(at.size(), 3u);
    ASSERT_EQ(hung_up_at.size(), 2u);
    EXPECT_GE(at[1] - hung_up_at[0], std::chrono::milliseconds(1));
    EXPECT_GE(at[2] - hung_up_at[1], std::chrono::milliseconds(2));
    EXPECT_EQ(exposed_after, (strings{"s__t"}));
    EXPECT_EQ(h["s"].count("initialize"), 3u);
    // Up, gone (its tools leave the catalog while it is down), up, gone, up.
    EXPECT_EQ(catalog_sizes, (std::vector<std::size_t>{1, 0, 1, 0, 1}));
}

TEST(aggregator, retries_a_server_that_cannot_start_with_doubling_delays) {
    scripted_aggregator h({scripted_config("s")});  // backoff 1 ms, doubling, at most 4 ms
    h["s"].tools = tools_named({"t"});
    h["s"].fail_starts = 4;
    server_view view;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("s"); });
        EXPECT_TRUE(up);
        view = h.status("s");
    });
    EXPECT_EQ(view.restarts, 4u);
    ASSERT_EQ(h["s"].connections(), 5u);
    // Timers never fire early: each attempt comes at least its backoff after the one before.
    auto const& at = h["s"].connected_at;
    std::vector<std::chrono::milliseconds> const waits{std::chrono::milliseconds(1), std::chrono::milliseconds(2),
                                                       std::chrono::milliseconds(4), std::chrono::milliseconds(4)};
    for (std::size_t i = 0; i < waits.size(); ++i) EXPECT_GE(at[i + 1] - at[i], waits[i]) << "attempt " << i + 2;
}

TEST(aggregator, calls_a_tool_by_its_servers_own_name_and_returns_the_result) {
    scripted_aggregator h({scripted_config("a"), scripted_config("b")});
    h["a"].tools = tools_named({"greet"});
    h["b"].tools = tools_named({"greet"});
    answer_calls(h["a"]);
    answer_calls(h["b"]);
    std::optional<tool_outcome> r;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.all_up(); });
        EXPECT_TRUE(up);
        r = co_await h.agg->call_tool(std::string("b__greet"), who("ann"), nullptr);
    });
    ASSERT_TRUE(r && r->ok) << (r ? r->error : "");
    EXPECT_EQ(first_text(r->result), "greet for ann");
    EXPECT_FALSE(r->truncated);
    EXPECT_EQ(h["a"].count("tools/call"), 0u);
    auto calls = h["b"].requests("tools/call");
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(string_at(calls[0].params, "name"), "greet");
    EXPECT_EQ(string_at(calls[0].params.at("arguments"), "who"), "ann");
    auto stats = h.agg->stats();
    ASSERT_EQ(stats.size(), 1u);
    EXPECT_EQ(std::get<0>(stats[0]), "b");
    EXPECT_EQ(std::get<1>(stats[0]), "greet");
    EXPECT_EQ(std::get<2>(stats[0]).calls, 1u);
    EXPECT_EQ(std::get<2>(stats[0]).errors, 0u);
}

TEST(aggregator, reports_an_unknown_tool_without_calling_any_server) {
    scripted_aggregator h({scripted_config("a")});
    h["a"].tools = tools_named({"t"});
    std::optional<tool_outcome> r;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("a"); });
        EXPECT_TRUE(up);
        r = co_await h.agg->call_tool(std::string("a__nope"), json::object(), nullptr);
    });
    EXPECT_FALSE(r->ok);
    EXPECT_EQ(r->code, tool_errc::unknown_tool);
    EXPECT_EQ(r->error_code(), "unknown_tool");
    EXPECT_EQ(h["a"].count("tools/call"), 0u);
}

TEST(aggregator, reports_server_errors_refused_arguments_and_error_results) {
    scripted_aggregator h({scripted_config("a")});
    h["a"].tools = tools_named({"crash", "picky", "sad"});
    h["a"].on_request = [](message const& m, scripted_transport& t) {
        if (m.method != "tools/call") return false;
        auto name = string_at(m.params, "name");
        if (name == "crash") t.deliver(make_error(m.id, -32000, "it broke"));
        else if (name == "picky") t.deliver(make_error(m.id, errc::invalid_params, "bad arguments"));
        else t.deliver(make_result(m.id, text_result("sad result", true)));
        return true;
    };
    std::optional<tool_outcome> crash, picky, sad;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("a"); });
        EXPECT_TRUE(up);
        crash = co_await h.agg->call_tool(std::string("a__crash"), json::object(), nullptr);
        picky = co_await h.agg->call_tool(std::string("a__picky"), json::object(), nullptr);
        sad = co_await h.agg->call_tool(std::string("a__sad"), json::object(), nullptr);
    });
    EXPECT_FALSE(crash->ok);
    EXPECT_EQ(crash->code, tool_errc::server_error);
    EXPECT_NE(crash->error.find("it broke"), std::string::npos) << crash->error;
    EXPECT_FALSE(picky->ok);
    EXPECT_EQ(picky->code, tool_errc::invalid_arguments);
    EXPECT_TRUE(sad->ok) << "an isError result is still the tool's answer";
    EXPECT_EQ(sad->result.at("isError"), true);
    std::uint64_t calls = 0, errors = 0;
    for (auto const& [server, tool_name, st] : h.agg->stats()) {
        calls += st.calls;
        errors += st.errors;
    }
    EXPECT_EQ(calls, 3u);
    EXPECT_EQ(errors, 3u) << "an isError result counts as an error";
    EXPECT_FALSE(h.status("a").breaker_open) << "answers, even errors, are not failures of the server";
}

TEST(aggregator, answers_busy_when_the_only_slot_is_taken_and_nothing_may_queue) {
    auto cfg = scripted_config("a");
    cfg.max_concurrency = 1;
    cfg.max_queue = 0;
    scripted_aggregator h({cfg});
    h["a"].tools = tools_named({"work"});
    std::vector<message> held;
    hold_calls(h["a"], held);
    pending_call first, second, third;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("a"); });
        EXPECT_TRUE(up);
        first = start_call(h, "a__work", who("first"));
        bool sent = co_await h.until([&] { return held.size() == 1; });
        EXPECT_TRUE(sent);
        second = start_call(h, "a__work", who("second"));
        bool refused = co_await h.until([&] { return second->has_value(); });
        EXPECT_TRUE(refused);
        EXPECT_FALSE(first->has_value()) << "the first call still runs";
        h["a"].reply(held[0].id, text_result("first done"));
        bool answered = co_await h.until([&] { return first->has_value(); });
        EXPECT_TRUE(answered);
        third = start_call(h, "a__work", who("third"));  // the slot is free again
        bool sent_third = co_await h.until([&] { return held.size() == 2; });
        EXPECT_TRUE(sent_third);
        h["a"].reply(held[1].id, text_result("third done"));
        bool done = co_await h.until([&] { return third->has_value(); });
        EXPECT_TRUE(done);
    });
    ASSERT_TRUE(first->has_value() && second->has_value() && third->has_value());
    EXPECT_TRUE((*first)->ok);
    EXPECT_FALSE((*second)->ok);
    EXPECT_EQ((*second)->code, tool_errc::busy);
    EXPECT_TRUE((*third)->ok) << (*third)->error;
    EXPECT_EQ(h["a"].count("tools/call"), 2u) << "the refused call never reached the server";
}

TEST(aggregator, queues_a_call_for_the_slot_and_refuses_one_beyond_the_queue) {
    auto cfg = scripted_config("a");
    cfg.max_concurrency = 1;
    cfg.max_queue = 1;
    scripted_aggregator h({cfg});
    h["a"].tools = tools_named({"work"});
    std::vector<message> held;
    hold_calls(h["a"], held);
    pending_call first, queued, refused;
    std::size_t sent_while_queued = 0;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("a"); });
        EXPECT_TRUE(up);
        first = start_call(h, "a__work", who("first"));
        bool sent = co_await h.until([&] { return held.size() == 1; });
        EXPECT_TRUE(sent);
        queued = start_call(h, "a__work", who("queued"));
        refused = start_call(h, "a__work", who("refused"));
        bool answered = co_await h.until([&] { return refused->has_value(); });
        EXPECT_TRUE(answered);
        sent_while_queued = held.size();
        h["a"].reply(held[0].id, text_result("first done"));
        bool next = co_await h.until([&] { return held.size() == 2; });
        EXPECT_TRUE(next) << "the queued call gets the slot";
        if (held.size() == 2) h["a"].reply(held[1].id, text_result("queued done"));
        bool done = co_await h.until([&] { return first->has_value() && queued->has_value(); });
        EXPECT_TRUE(done);
    });
    ASSERT_TRUE(first->has_value() && queued->has_value() && refused->has_value());
    EXPECT_EQ(sent_while_queued, 1u) << "a queued call waits; it is not sent";
    EXPECT_TRUE((*first)->ok);
    EXPECT_TRUE((*queued)->ok) << (*queued)->error;
    EXPECT_EQ((*refused)->code, tool_errc::busy);
    ASSERT_EQ(held.size(), 2u);
    EXPECT_EQ(string_at(held[1].params.at("arguments"), "who"), "queued");
}

// A slot freed while a call waits in the queue belongs to that call, even when another call
// arrives before the waiting one has woken up (which takes a turn of the event loop). The newcomer
// is started 0..5 turns after the running call's answer arrives, to hit that window wherever the
// implementation puts it. (Before call_admission, the aggregator freed the slot and woke the
// waiter: a newcomer 2 turns later took the slot and the queued call failed at once with "timed
// out while queued for a free slot".)
TEST(aggregator, hands_a_freed_slot_to_the_queued_call_before_a_newcomer) {
    for (int hops = 0; hops <= 5; ++hops) {
        SCOPED_TRACE("newcomer after " + std::to_string(hops) + " turns");
        auto cfg = scripted_config("a");
        cfg.max_concurrency = 1;
        cfg.max_queue = 1;
        scripted_aggregator h({cfg});
        h["a"].tools = tools_named({"work"});
        std::vector<message> held;
        hold_calls(h["a"], held);
        pending_call first, queued, newcomer;
        h.run([&]() -> asio::awaitable<void> {
            bool up = co_await h.until([&] { return h.up("a"); });
            EXPECT_TRUE(up);
            first = start_call(h, "a__work", who("first"));
            bool sent = co_await h.until([&] { return held.size() == 1; });
            EXPECT_TRUE(sent);
            queued = start_call(h, "a__work", who("queued"));
            h["a"].reply(held[0].id, text_result("first done"));
            after_hops(h.ioc.get_executor(), hops, [&] { newcomer = start_call(h, "a__work", who("newcomer")); });
            // Answer every call that reaches the server until all three have ended.
            std::size_t answered = 1;
            for (;;) {
                bool progress = co_await h.until([&] {
                    return held.size() > answered ||
                           (newcomer && first->has_value() && queued->has_value() && newcomer->has_value());
                });
                if (!progress) break;
                if (held.size() == answered) break;
                while (answered < held.size()) {
                    h["a"].reply(held[answered].id, text_result("done"));
                    ++answered;
                }
            }
        });
        ASSERT_TRUE(first && queued && newcomer);
        ASSERT_TRUE(first->has_value() && queued->has_value() && newcomer->has_value());
        EXPECT_TRUE((*queued)->ok) << "the queued call failed: " << (*queued)->error;
        EXPECT_TRUE((*newcomer)->ok || (*newcomer)->code == tool_errc::busy) << (*newcomer)->error;
        if (held.size() == 3) {
            EXPECT_EQ(string_at(held[1].params.at("arguments"), "who"), "queued") << "first come, first served";
        }
    }
}

TEST(aggregator, opens_the_breaker_after_two_failures_and_then_rejects_without_calling_the_server) {
    auto cfg = scripted_config("a");
    cfg.breaker_failures = 2;
    scripted_aggregator h({cfg});
    h["a"].tools = tools_named({"work"});
    // The server dies in the middle of every call.
    h["a"].on_request = [](message const& m, scripted_transport& t) {
        if (m.method != "tools/call") return false;
        t.hang_up();
        return true;
    };
    std::vector<tool_outcome> outcomes;
    std::vector<bool> breaker_open;
    h.run([&]() -> asio::awaitable<void> {
        for (unsigned connection = 1; connection <= 3; ++connection) {
            bool up = co_await h.until([&] { return h["a"].connections() == connection && h.up("a"); });
            EXPECT_TRUE(up) << "connection " << connection;
            breaker_open.push_back(h.status("a").breaker_open);
            auto r = co_await h.agg->call_tool(std::string("a__work"), json::object(), nullptr);
            outcomes.push_back(std::move(r));
        }
        breaker_open.push_back(h.status("a").breaker_open);
    });
    ASSERT_EQ(outcomes.size(), 3u);
    EXPECT_EQ(outcomes[0].code, tool_errc::unavailable) << outcomes[0].error;
    EXPECT_EQ(outcomes[1].code, tool_errc::unavailable) << outcomes[1].error;
    EXPECT_EQ(outcomes[2].code, tool_errc::circuit_open) << outcomes[2].error;
    EXPECT_EQ(h["a"].count("tools/call"), 2u) << "the third call never reached the server";
    EXPECT_EQ(breaker_open, (std::vector<bool>{false, false, true, true}));
}

TEST(aggregator, does_not_open_the_breaker_for_error_answers) {
    auto cfg = scripted_config("a");
    cfg.breaker_failures = 2;
    scripted_aggregator h({cfg});
    h["a"].tools = tools_named({"work"});
    h["a"].on_request = [](message const& m, scripted_transport& t) {
        if (m.method != "tools/call") return false;
        t.deliver(make_error(m.id, -32000, "no"));
        return true;
    };
    std::vector<tool_errc> codes;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("a"); });
        EXPECT_TRUE(up);
        for (int i = 0; i < 4; ++i) {
            auto r = co_await h.agg->call_tool(std::string("a__work"), json::object(), nullptr);
            codes.push_back(r.code);
        }
    });
    EXPECT_EQ(codes, std::vector<tool_errc>(4, tool_errc::server_error));
    EXPECT_EQ(h["a"].count("tools/call"), 4u);
    EXPECT_FALSE(h.status("a").breaker_open);
}

namespace {

// Every refresh ends with a catalog change, and sends its tools/list requests in one go: when the
// catalog has changed once per tools/list sent, no refresh is in flight.
bool refreshes_settled(scripted_aggregator& h, std::string const& server, unsigned changes0, std::size_t lists0) {
    return h.catalog_changes - changes0 == h[server].count("tools/list") - lists0;
}

}  // namespace

TEST(aggregator, coalesces_list_changed_notifications_delivered_back_to_back) {
    scripted_aggregator h({scripted_config("a")});
    h["a"].tools = tools_named({"t1"});
    std::size_t lists = 0;
    strings exposed;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("a"); });
        EXPECT_TRUE(up);
        auto lists0 = h["a"].count("tools/list");
        auto changes0 = h.catalog_changes;
        h["a"].tools = numbered_tools(3);
        for (int i = 0; i < 5; ++i) h["a"].deliver(make_notification("notifications/tools/list_changed", nullptr));
        bool settled = co_await h.until([&] {
            return h.exposed().size() == 3 && refreshes_settled(h, "a", changes0, lists0);
        });
        EXPECT_TRUE(settled);
        lists = h["a"].count("tools/list") - lists0;
        exposed = h.exposed();
    });
    EXPECT_EQ(exposed, (strings{"a__t1", "a__t2", "a__t3"}));
    EXPECT_GE(lists, 1u);
    EXPECT_LT(lists, 5u) << "fewer tools/list requests than notifications";
    // One refresh in flight, and one more for everything that arrived meanwhile.
    EXPECT_EQ(lists, 2u);
}

TEST(aggregator, lists_again_when_the_tools_change_during_a_refresh_and_ends_with_the_latest_list) {
    scripted_aggregator h({scripted_config("a")});
    h["a"].tools = tools_named({"t1"});
    bool hold = false;
    std::vector<message> held_lists;
    h["a"].on_request = [&](message const& m, scripted_transport&) {
        if (m.method != "tools/list" || !hold) return false;
        held_lists.push_back(m);
        return true;
    };
    std::vector<strings> catalogs;
    h.on_catalog_change = [&] { catalogs.push_back(h.exposed()); };
    std::size_t lists = 0;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("a"); });
        EXPECT_TRUE(up);
        catalogs.clear();
        auto lists0 = h["a"].count("tools/list");
        auto changes0 = h.catalog_changes;
        hold = true;
        h["a"].tools = numbered_tools(2);
        h["a"].deliver(make_notification("notifications/tools/list_changed", nullptr));
        bool asked = co_await h.until([&] { return held_lists.size() == 1; });
        EXPECT_TRUE(asked);
        // While that list is on its way, the tools change again (three notifications); then the
        // answer to the first list arrives, already stale.
        auto stale = h["a"].tools_page(nullptr);
        hold = false;
        h["a"].tools = numbered_tools(3);
        for (int i = 0; i < 3; ++i) h["a"].deliver(make_notification("notifications/tools/list_changed", nullptr));
        if (!held_lists.empty()) h["a"].reply(held_lists[0].id, stale);
        bool settled = co_await h.until([&] {
            return h.exposed().size() == 3 && refreshes_settled(h, "a", changes0, lists0);
        });
        EXPECT_TRUE(settled);
        lists = h["a"].count("tools/list") - lists0;
        h.on_catalog_change = nullptr;  // (stop() empties the catalog)
    });
    EXPECT_EQ(lists, 2u) << "4 notifications, 2 lists: the one in flight and one rerun";
    EXPECT_EQ(catalogs, (std::vector<strings>{{"a__t1", "a__t2"}, {"a__t1", "a__t2", "a__t3"}}));
}

TEST(aggregator, required_servers_up_ignores_optional_servers_and_follows_the_required_one) {
    auto opts = fakes::fast_restarts();
    opts.backoff_min = opts.backoff_max = std::chrono::seconds(60);  // a server that is down stays down
    auto required = scripted_config("req");
    required.required = true;
    scripted_aggregator h({required, scripted_config("opt")}, opts);
    h["req"].tools = tools_named({"t"});
    h["opt"].fail_starts = 1;
    std::vector<bool> seen;
    std::string opt_error;
    h.run([&]() -> asio::awaitable<void> {
        // (start() has run: the required server is starting, not up.)
        seen.push_back(h.agg->required_servers_up());
        bool up = co_await h.until([&] {
            return h.up("req") && h.status("opt").status == server_status::down;
        });
        EXPECT_TRUE(up);
        seen.push_back(h.agg->required_servers_up());
        for (auto const& s : h.agg->servers_status())
            if (string_at(s, "name") == "opt") opt_error = string_at(s, "last_error");
        h["req"].hang_up();
        bool down = co_await h.until([&] { return h.status("req").status == server_status::down; });
        EXPECT_TRUE(down);
        seen.push_back(h.agg->required_servers_up());
    });
    EXPECT_EQ(seen, (std::vector<bool>{false, true, false}));
    EXPECT_EQ(opt_error.rfind("could not start", 0), 0u) << opt_error;
}

TEST(aggregator, required_servers_up_is_false_while_a_required_server_cannot_start) {
    auto opts = fakes::fast_restarts();
    opts.backoff_min = opts.backoff_max = std::chrono::seconds(60);
    auto a = scripted_config("a");
    a.required = true;
    auto b = scripted_config("b");
    b.required = true;
    scripted_aggregator h({a, b}, opts);
    h["b"].fail_starts = 1;
    bool up_after = true;
    h.run([&]() -> asio::awaitable<void> {
        bool settled = co_await h.until([&] { return h.up("a") && h.status("b").status == server_status::down; });
        EXPECT_TRUE(settled);
        up_after = h.agg->required_servers_up();
    });
    EXPECT_FALSE(up_after);
}

namespace {

// A server that says its tools changed as soon as it has the initialized notification (the
// "everything" server does), and what the catalog held when the aggregator declared it up.
struct eager_list_changed {
    bool seen_up = false;
    strings tools_when_up;
    std::string connected_line;  // the aggregator's "connected (...)" log line

    void arrange(scripted_aggregator& h, bool async_sends) {
        h["a"].tools = tools_named({"t"});
        h["a"].async_sends = async_sends;
        h["a"].on_notification = [](message const& m, scripted_transport& t) {
            if (m.method == "notifications/initialized")
                t.deliver(make_notification("notifications/tools/list_changed", nullptr));
        };
        // supervise() logs "connected" right after it has set the status to up.
        h.on_log = [this, &h](std::string const&, std::string const& text) {
            if (seen_up || !h.up("a")) return;
            seen_up = true;
            tools_when_up = h.exposed();
            connected_line = text;
        };
    }
    asio::awaitable<void> wait_for_tools(scripted_aggregator& h) {
        bool up = co_await h.until([&] { return h.up("a") && !h.exposed().empty(); });
        EXPECT_TRUE(up);
    }
};

}  // namespace

TEST(aggregator, declares_a_server_up_with_its_tools_when_list_changed_follows_initialized) {
    scripted_aggregator h({scripted_config("a")});
    eager_list_changed probe;
    probe.arrange(h, false);
    h.run([&] { return probe.wait_for_tools(h); });
    EXPECT_TRUE(probe.seen_up);
    EXPECT_EQ(probe.tools_when_up, (strings{"a__t"})) << probe.connected_line;
}

// The same server over a transport whose send completes asynchronously, as every real
// transport's does: the session reads list_changed while start() still waits for its send of
// `initialized`. The server must still be "up" only with its tools in the catalog (a caller who
// sees "up" finds them; settled() wakes then).
TEST(aggregator, declares_a_server_up_only_once_its_tools_are_in_the_catalog_with_asynchronous_sends) {
    scripted_aggregator h({scripted_config("a")});
    eager_list_changed probe;
    probe.arrange(h, true);
    h.run([&] { return probe.wait_for_tools(h); });
    EXPECT_TRUE(probe.seen_up);
    EXPECT_EQ(probe.tools_when_up, (strings{"a__t"})) << "up before its tools were in: " << probe.connected_line;
}

// A tools/list that fails during a refresh (the server answers it with an error) keeps the tools
// the server listed before, instead of leaving every call an unknown_tool until the next
// list_changed.
TEST(aggregator, keeps_the_last_tools_when_a_refresh_fails) {
    scripted_aggregator h({scripted_config("a")});
    h["a"].tools = tools_named({"t"});
    bool refuse = false;
    h["a"].on_request = [&](message const& m, scripted_transport& t) {
        if (m.method != "tools/list" || !refuse) return false;
        t.deliver(make_error(m.id, errc::internal_error, "try later"));
        return true;
    };
    strings exposed;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up("a"); });
        EXPECT_TRUE(up);
        auto lists0 = h["a"].count("tools/list");
        auto changes0 = h.catalog_changes;
        refuse = true;
        h["a"].deliver(make_notification("notifications/tools/list_changed", nullptr));
        bool settled = co_await h.until([&] {
            return h["a"].count("tools/list") > lists0 && refreshes_settled(h, "a", changes0, lists0);
        });
        EXPECT_TRUE(settled);
        exposed = h.exposed();
    });
    EXPECT_EQ(exposed, (strings{"a__t"}));
}
