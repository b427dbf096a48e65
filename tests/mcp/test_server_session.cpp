// The gateway as an MCP server (mcp::server_session), sans transport, over an aggregator fed by
// scripted upstream servers: initialize and version negotiation, the order of requests, tools/list
// paging, tools/call forwarding and its errors, allowed_tools. Messages go in through handle() and
// come back as its answer; progress goes out through the emit function. One io_context thread;
// waits are for events, never for a fixed time.
// (Inside coroutines, string literals are wrapped in std::string and braced lists are built in
// plain functions: CONTRIBUTING.md.)
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fakes/scripted_aggregator.hpp"
#include "fakes/scripted_transport.hpp"
#include "mcp/client_session.hpp"
#include "mcp/jsonrpc.hpp"
#include "mcp/server_session.hpp"

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


std::string request(int id, std::string const& method, json::object params = json::object()) {
    return make_request(json::value(id), method, params);
}

json::object initialize_params(std::string const& version) {
    json::object client;
    client["name"] = "test-client";
    client["version"] = "1";
    json::object p;
    if (!version.empty()) p["protocolVersion"] = version;
    p["capabilities"] = json::object();
    p["clientInfo"] = std::move(client);
    return p;
}

json::object list_params(json::value cursor) {
    json::object p;
    if (!cursor.is_null()) p["cursor"] = std::move(cursor);
    return p;
}

json::object call_params(std::string const& name, json::object arguments = json::object()) {
    json::object p;
    p["name"] = name;
    p["arguments"] = std::move(arguments);
    return p;
}

json::object call_params_with_progress(std::string const& name, std::string const& token) {
    json::object meta;
    meta["progressToken"] = token;
    auto p = call_params(name);
    p["_meta"] = std::move(meta);
    return p;
}

json::object x_is(int x) {
    json::object o;
    o["x"] = x;
    return o;
}

// One message to the session; its answer parsed (null when there is none).
asio::awaitable<json::value> ask(server_session& s, std::string text, server_session::emit_fn emit = {}) {
    auto answer = co_await s.handle(parse_message(text), std::move(emit));
    if (!answer) co_return json::value();
    co_return json::parse(*answer);
}

// The value at a JSON pointer, or null.
json::value at(json::value const& v, std::string_view pointer) {
    boost::system::error_code ec;
    auto const* found = v.find_pointer(pointer, ec);
    return found ? *found : json::value();
}
std::string str(json::value const& v, std::string_view pointer) {
    auto found = at(v, pointer);
    return found.is_string() ? std::string(found.get_string()) : "<" + json::serialize(found) + ">";
}
std::int64_t num(json::value const& v, std::string_view pointer) {
    auto found = at(v, pointer);
    return found.is_int64() ? found.get_int64() : found.is_uint64() ? static_cast<std::int64_t>(found.get_uint64()) : -1;
}
// The names in a tools/list answer.
strings tool_names(json::value const& answer) {
    strings out;
    auto tools = at(answer, "/result/tools");
    if (tools.is_array())
        for (auto const& t : tools.get_array()) out.push_back(str(t, "/name"));
    return out;
}

// Initializes `s` (the answer is not checked here).
asio::awaitable<void> initialize(server_session& s) {
    co_await ask(s, request(0, "initialize", initialize_params("2025-06-18")));
    co_await ask(s, make_notification("notifications/initialized", nullptr));
}

// Two upstream servers, a and b, each with an echo tool that says who answered.
void two_echo_servers(scripted_aggregator& h) {
    for (auto name : {"a", "b"}) {
        auto& s = h[name];
        s.tools = tools_named({"echo"});
        s.on_request = [name = std::string(name)](message const& m, scripted_transport& t) {
            if (m.method != "tools/call") return false;
            auto args = at(m.params, "/arguments");
            t.deliver(make_result(m.id, text_result(name + " got " + json::serialize(args))));
            return true;
        };
    }
}

}  // namespace

TEST(server_session, echoes_a_supported_protocol_version_at_initialize) {
    for (auto const& version : supported_protocol_versions()) {
        SCOPED_TRACE(version);
        scripted_aggregator h({scripted_config("a")});
        json::value answer;
        std::string session_version;
        bool initialized_before = true;
        h.run([&]() -> asio::awaitable<void> {
            auto s = std::make_shared<server_session>(*h.agg, server_session_options());
            initialized_before = s->initialized();
            answer = co_await ask(*s, request(1, "initialize", initialize_params(version)));
            session_version = s->protocol_version();
            co_await s->close();
        });
        EXPECT_FALSE(initialized_before);
        EXPECT_EQ(num(answer, "/id"), 1);
        EXPECT_EQ(str(answer, "/result/protocolVersion"), version);
        EXPECT_EQ(session_version, version);
        EXPECT_EQ(str(answer, "/result/serverInfo/name"), "toolgate");
        EXPECT_EQ(at(answer, "/result/capabilities/tools/listChanged"), true);
    }
}

TEST(server_session, answers_an_unknown_or_missing_protocol_version_with_the_newest_supported) {
    scripted_aggregator h({scripted_config("a")});
    json::value unknown, missing;
    h.run([&]() -> asio::awaitable<void> {
        auto s1 = std::make_shared<server_session>(*h.agg, server_session_options());
        unknown = co_await ask(*s1, request(1, "initialize", initialize_params("1999-01-01")));
        auto s2 = std::make_shared<server_session>(*h.agg, server_session_options());
        missing = co_await ask(*s2, request(1, "initialize", initialize_params("")));
        co_await s1->close();
        co_await s2->close();
    });
    EXPECT_EQ(str(unknown, "/result/protocolVersion"), supported_protocol_versions().front());
    EXPECT_EQ(str(missing, "/result/protocolVersion"), supported_protocol_versions().front());
}

TEST(server_session, refuses_requests_before_initialize_but_answers_ping) {
    scripted_aggregator h({scripted_config("a")});
    h["a"].tools = tools_named({"echo"});
    json::value list, call, ping, note, list_after;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up(std::string("a")); });
        EXPECT_TRUE(up);
        auto s = std::make_shared<server_session>(*h.agg, server_session_options());
        list = co_await ask(*s, request(1, "tools/list"));
        call = co_await ask(*s, request(2, "tools/call", call_params("a__echo")));
        ping = co_await ask(*s, request(3, "ping"));
        note = co_await ask(*s, make_notification("notifications/initialized", nullptr));
        co_await initialize(*s);
        list_after = co_await ask(*s, request(4, "tools/list"));
        co_await s->close();
    });
    EXPECT_EQ(num(list, "/error/code"), errc::invalid_request);
    EXPECT_EQ(num(list, "/id"), 1);
    EXPECT_EQ(num(call, "/error/code"), errc::invalid_request);
    EXPECT_EQ(h["a"].count("tools/call"), 0u);
    EXPECT_TRUE(at(ping, "/result").is_object()) << json::serialize(ping);
    EXPECT_EQ(num(ping, "/id"), 3);
    EXPECT_TRUE(note.is_null()) << "a notification gets no answer";
    EXPECT_EQ(tool_names(list_after), (strings{"a__echo"}));
}

TEST(server_session, pages_tools_list_along_a_next_cursor_chain) {
    scripted_aggregator h({scripted_config("a")});
    h["a"].tools = tools_named({"t1", "t2", "t3", "t4", "t5"});
    std::vector<json::value> pages;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up(std::string("a")); });
        EXPECT_TRUE(up);
        server_session_options opts;
        opts.page_size = 2;
        auto s = std::make_shared<server_session>(*h.agg, opts);
        co_await initialize(*s);
        json::value cursor;
        for (int i = 0; i < 5; ++i) {  // (bounded: a broken chain must not loop forever)
            auto page = co_await ask(*s, request(10 + i, "tools/list", list_params(cursor)));
            pages.push_back(page);
            cursor = at(page, "/result/nextCursor");
            if (!cursor.is_string()) break;
        }
        co_await s->close();
    });
    ASSERT_EQ(pages.size(), 3u);
    EXPECT_EQ(tool_names(pages[0]), (strings{"a__t1", "a__t2"}));
    EXPECT_EQ(tool_names(pages[1]), (strings{"a__t3", "a__t4"}));
    EXPECT_EQ(tool_names(pages[2]), (strings{"a__t5"}));
    EXPECT_TRUE(at(pages[0], "/result/nextCursor").is_string());
    EXPECT_TRUE(at(pages[2], "/result/nextCursor").is_null()) << "the last page has no nextCursor";
    EXPECT_EQ(str(pages[0], "/result/tools/0/description"), "the t1 tool") << "the upstream's definition";
    EXPECT_TRUE(at(pages[0], "/result/tools/0/inputSchema").is_object());
}

TEST(server_session, answers_a_bad_cursor_with_invalid_params) {
    scripted_aggregator h({scripted_config("a")});
    h["a"].tools = tools_named({"t1", "t2", "t3"});
    std::vector<json::value> answers;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up(std::string("a")); });
        EXPECT_TRUE(up);
        server_session_options opts;
        opts.page_size = 2;
        auto s = std::make_shared<server_session>(*h.agg, opts);
        co_await initialize(*s);
        std::vector<json::value> cursors;
        cursors.emplace_back("not-a-cursor");
        cursors.emplace_back("-1");
        cursors.emplace_back("99");  // past the end
        cursors.emplace_back(2);     // not a string
        for (auto const& c : cursors) answers.push_back(co_await ask(*s, request(1, "tools/list", list_params(c))));
        co_await s->close();
    });
    ASSERT_EQ(answers.size(), 4u);
    for (auto const& a : answers) EXPECT_EQ(num(a, "/error/code"), errc::invalid_params) << json::serialize(a);
}

TEST(server_session, forwards_tools_call_to_the_server_that_owns_the_tool) {
    scripted_aggregator h({scripted_config("a"), scripted_config("b")});
    two_echo_servers(h);
    json::value answer;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.all_up(); });
        EXPECT_TRUE(up);
        auto s = std::make_shared<server_session>(*h.agg, server_session_options());
        co_await initialize(*s);
        answer = co_await ask(*s, request(7, "tools/call", call_params("b__echo", x_is(1))));
        co_await s->close();
    });
    EXPECT_EQ(num(answer, "/id"), 7);
    EXPECT_EQ(str(answer, "/result/content/0/text"), "b got {\"x\":1}") << json::serialize(answer);
    EXPECT_EQ(h["a"].count("tools/call"), 0u);
    auto calls = h["b"].requests("tools/call");
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(str(calls[0].params, "/name"), "echo") << "the upstream's own name";
}

TEST(server_session, answers_an_unknown_tool_with_invalid_params) {
    scripted_aggregator h({scripted_config("a")});
    h["a"].tools = tools_named({"echo"});
    json::value unknown, unnamed, method;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up(std::string("a")); });
        EXPECT_TRUE(up);
        auto s = std::make_shared<server_session>(*h.agg, server_session_options());
        co_await initialize(*s);
        unknown = co_await ask(*s, request(1, "tools/call", call_params("a__nope")));
        unnamed = co_await ask(*s, request(2, "tools/call"));
        method = co_await ask(*s, request(3, "no/such/method"));
        co_await s->close();
    });
    EXPECT_EQ(num(unknown, "/error/code"), errc::invalid_params);
    EXPECT_NE(str(unknown, "/error/message").find("Unknown tool"), std::string::npos) << json::serialize(unknown);
    EXPECT_EQ(num(unnamed, "/error/code"), errc::invalid_params);
    EXPECT_EQ(num(method, "/error/code"), errc::method_not_found);
    EXPECT_EQ(h["a"].count("tools/call"), 0u);
}

TEST(server_session, turns_an_upstream_failure_into_an_error_result_and_refused_arguments_into_invalid_params) {
    scripted_aggregator h({scripted_config("a")});
    h["a"].tools = tools_named({"crash", "picky"});
    h["a"].on_request = [](message const& m, scripted_transport& t) {
        if (m.method != "tools/call") return false;
        if (str(m.params, "/name") == "crash") t.deliver(make_error(m.id, -32000, "it broke"));
        else t.deliver(make_error(m.id, errc::invalid_params, "x must be positive"));
        return true;
    };
    json::value crash, picky;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up(std::string("a")); });
        EXPECT_TRUE(up);
        auto s = std::make_shared<server_session>(*h.agg, server_session_options());
        co_await initialize(*s);
        crash = co_await ask(*s, request(1, "tools/call", call_params("a__crash")));
        picky = co_await ask(*s, request(2, "tools/call", call_params("a__picky")));
        co_await s->close();
    });
    EXPECT_EQ(at(crash, "/result/isError"), true) << json::serialize(crash);
    EXPECT_NE(str(crash, "/result/content/0/text").find("server_error"), std::string::npos) << json::serialize(crash);
    EXPECT_EQ(num(picky, "/error/code"), errc::invalid_params) << json::serialize(picky);
}

TEST(server_session, relays_upstream_progress_under_the_clients_token) {
    scripted_aggregator h({scripted_config("a")});
    h["a"].tools = tools_named({"slow"});
    h["a"].on_request = [](message const& m, scripted_transport& t) {
        if (m.method != "tools/call") return false;
        json::object progress;
        progress["progressToken"] = at(m.params, "/_meta/progressToken");
        progress["progress"] = 1;
        progress["total"] = 2;
        t.deliver(make_notification("notifications/progress", progress));
        t.deliver(make_result(m.id, text_result("done")));
        return true;
    };
    json::value answer;
    std::vector<json::value> emitted;
    std::string upstream_token;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.up(std::string("a")); });
        EXPECT_TRUE(up);
        auto s = std::make_shared<server_session>(*h.agg, server_session_options());
        co_await initialize(*s);
        server_session::emit_fn emit = [&](std::string m) {
            emitted.push_back(json::parse(m));
            h.events.notify();
        };
        answer = co_await ask(*s, request(5, "tools/call", call_params_with_progress("a__slow", "client-token")), emit);
        // Progress is relayed on the caller's executor and may come after the answer.
        bool relayed = co_await h.until([&] { return !emitted.empty(); });
        EXPECT_TRUE(relayed);
        co_await s->close();
    });
    EXPECT_EQ(str(answer, "/result/content/0/text"), "done");
    ASSERT_EQ(emitted.size(), 1u);
    EXPECT_EQ(str(emitted[0], "/method"), "notifications/progress");
    EXPECT_EQ(str(emitted[0], "/params/progressToken"), "client-token");
    EXPECT_EQ(num(emitted[0], "/params/progress"), 1);
    auto calls = h["a"].requests("tools/call");
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_NE(str(calls[0].params, "/_meta/progressToken"), "client-token") << "the upstream gets toolgate's own token";
}

TEST(server_session, hides_and_refuses_tools_outside_allowed_tools) {
    scripted_aggregator h({scripted_config("a"), scripted_config("b")});
    two_echo_servers(h);
    h["a"].tools = tools_named({"echo", "other"});
    json::value list, refused, allowed, exact;
    h.run([&]() -> asio::awaitable<void> {
        bool up = co_await h.until([&] { return h.all_up(); });
        EXPECT_TRUE(up);
        server_session_options opts;
        std::vector<std::string> patterns;
        patterns.push_back("a__*");
        opts.allowed_tools = patterns;
        auto s = std::make_shared<server_session>(*h.agg, opts);
        co_await initialize(*s);
        list = co_await ask(*s, request(1, "tools/list"));
        refused = co_await ask(*s, request(2, "tools/call", call_params("b__echo")));
        allowed = co_await ask(*s, request(3, "tools/call", call_params("a__echo", x_is(2))));
        co_await s->close();

        server_session_options exact_opts;
        std::vector<std::string> names;
        names.push_back("b__echo");
        exact_opts.allowed_tools = names;
        auto s2 = std::make_shared<server_session>(*h.agg, exact_opts);
        co_await initialize(*s2);
        exact = co_await ask(*s2, request(1, "tools/list"));
        co_await s2->close();
    });
    EXPECT_EQ(tool_names(list), (strings{"a__echo", "a__other"}));
    EXPECT_EQ(num(refused, "/error/code"), errc::invalid_params) << json::serialize(refused);
    EXPECT_EQ(h["b"].count("tools/call"), 0u) << "a tool outside allowed_tools never reaches its server";
    EXPECT_EQ(str(allowed, "/result/content/0/text"), "a got {\"x\":2}") << json::serialize(allowed);
    EXPECT_EQ(tool_names(exact), (strings{"b__echo"}));
}

TEST(server_session, tells_its_channel_of_catalog_changes_once_initialized) {
    scripted_aggregator h({scripted_config("a")});
    strings before, after;
    h.run([&]() -> asio::awaitable<void> {
        auto s = std::make_shared<server_session>(*h.agg, server_session_options());
        strings* sink = &before;
        s->set_channel([&sink](std::string m) { sink->push_back(str(json::parse(m), "/method")); });
        s->catalog_changed();
        sink = &after;
        co_await initialize(*s);
        s->catalog_changed();
        co_await s->close();
        s->catalog_changed();  // closed: nothing more
    });
    EXPECT_TRUE(before.empty());
    EXPECT_EQ(after, (strings{"notifications/tools/list_changed", "notifications/resources/list_changed",
                              "notifications/prompts/list_changed"}));
}
