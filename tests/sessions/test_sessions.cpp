// The sessions library without sockets: trimming, token estimates, ids, the decision table, the
// create request, rows and the API's JSON (pure functions, mostly table-driven), then the service
// over the memory store with the clock passed in as now_ms (no sleeping). Values are built and
// checked in plain functions and test bodies, never inside a coroutine body (GCC 12 rules,
// CONTRIBUTING.md).
#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/api_error.hpp"
#include "sessions/service.hpp"
#include "sessions/session.hpp"
#include "state/session_store.hpp"

namespace sessions = toolgate::sessions;
namespace state = toolgate::state;
namespace json = boost::json;
namespace asio = boost::asio;
using toolgate::api_error;

namespace {

constexpr std::int64_t t0 = 1'764'633'600'000;  // 2025-12-02T00:00:00Z
constexpr auto trim = sessions::on_limit::trim;
constexpr auto reject = sessions::on_limit::reject;

using labels = std::vector<std::string>;

template <class T>
T run(asio::awaitable<T> a) {
    asio::io_context ioc;
    auto f = asio::co_spawn(ioc, std::move(a), asio::use_future);
    ioc.run();
    return f.get();
}

// A message from a label whose first letter says what it is: s system, d developer, u user,
// a assistant, c assistant with a tool call, t a tool's result. The label is its content.
json::object message(std::string const& label) {
    json::object m;
    char kind = label.empty() ? 'u' : label[0];
    switch (kind) {
    case 's': m["role"] = "system"; break;
    case 'd': m["role"] = "developer"; break;
    case 'u': m["role"] = "user"; break;
    case 't':
        m["role"] = "tool";
        m["tool_call_id"] = "call_" + label.substr(1);
        break;
    default: m["role"] = "assistant"; break;
    }
    m["content"] = label;
    if (kind == 'c') {
        json::object fn;
        fn["name"] = "read_file";
        fn["arguments"] = "{\"path\":\"a.txt\"}";
        json::object call;
        call["id"] = "call_" + label.substr(1);
        call["type"] = "function";
        call["function"] = std::move(fn);
        json::array calls;
        calls.push_back(std::move(call));
        m["tool_calls"] = std::move(calls);
    }
    return m;
}

json::array history(labels const& ls) {
    json::array a;
    for (auto const& l : ls) a.push_back(message(l));
    return a;
}

labels labels_of(json::array const& a) {
    labels out;
    for (auto const& v : a) {
        auto const* o = v.if_object();
        auto const* c = o ? o->if_contains("content") : nullptr;
        out.push_back(c && c->is_string() ? std::string(c->get_string()) : std::string("?"));
    }
    return out;
}

std::string role_of(json::value const& m) {
    auto const* o = m.if_object();
    auto const* r = o ? o->if_contains("role") : nullptr;
    return r && r->is_string() ? std::string(r->get_string()) : std::string();
}

std::size_t ten_per_text(std::string_view) { return 10; }
std::size_t one_per_byte(std::string_view t) { return t.size(); }

// What fit_history counts for max_bytes: the array's brackets and each message with its comma.
std::size_t bytes_of(json::array const& a) {
    std::size_t n = 2;
    for (auto const& m : a) n += json::serialize(m).size() + 1;
    return n;
}

// What trimming promises of whatever it kept: after the leading system messages the history
// begins with a user message, and a tool result follows its call (or the call's other results).
void expect_whole_turns(labels const& out) {
    std::size_t i = 0;
    while (i < out.size() && (out[i][0] == 's' || out[i][0] == 'd')) ++i;
    if (i < out.size()) {
        EXPECT_EQ(out[i][0], 'u') << "the kept history begins with " << out[i];
    }
    for (std::size_t j = 0; j < out.size(); ++j) {
        if (out[j][0] != 't') continue;
        ASSERT_GT(j, 0u);
        EXPECT_TRUE(out[j - 1][0] == 'c' || out[j - 1][0] == 't') << out[j] << " parted from its call";
    }
}

}  // namespace

// ---- fit_history ----

namespace {

struct fit_case {
    char const* name;
    labels in;
    std::size_t keep_from;
    std::size_t max_messages;
    std::int64_t max_tokens;  // counted at 10 a text (see message_tokens: 14 a plain message)
    sessions::on_limit when;
    bool fits;
    std::size_t dropped;
    std::string over;
    labels out;
};

std::vector<fit_case> fit_cases() {
    return {
        {"under the limits nothing changes", {"s1", "u1", "a1", "u2"}, 3, 10, 0, trim, true, 0, "",
         {"s1", "u1", "a1", "u2"}},
        {"max_messages 0 is no limit", {"u1", "a1", "u2", "a2", "u3"}, 4, 0, 0, trim, true, 0, "",
         {"u1", "a1", "u2", "a2", "u3"}},
        {"max_messages drops the oldest turn", {"s1", "u1", "a1", "u2", "a2", "u3"}, 5, 4, 0, trim, true, 2, "",
         {"s1", "u2", "a2", "u3"}},
        {"as many whole turns as needed", {"u1", "a1", "u2", "a2", "u3", "a3", "u4"}, 6, 3, 0, trim, true, 4, "",
         {"u3", "a3", "u4"}},
        // Dropping 2 messages would do by count, but that would part c1 from t1 and t1b.
        {"a tool call goes with its results", {"u1", "c1", "t1", "t1b", "a1", "u2", "a2", "u3"}, 7, 6, 0, trim, true, 5,
         "", {"u2", "a2", "u3"}},
        {"leading system and developer messages stay", {"s1", "d1", "u1", "a1", "u2"}, 4, 3, 0, trim, true, 2, "",
         {"s1", "d1", "u2"}},
        {"a history that starts with an assistant", {"a0", "u1", "a1", "u2"}, 3, 2, 0, trim, true, 3, "", {"u2"}},
        {"the current request is never dropped", {"u1", "a1", "u2", "a2", "u3", "a3", "u4"}, 2, 3, 0, trim, false, 2,
         "max_messages 3", {"u2", "a2", "u3", "a3", "u4"}},
        {"every old turn dropped and still over", {"s1", "u1", "a1", "u2", "a2", "u3", "a3", "a3b"}, 5, 2, 0, trim, false,
         4, "max_messages 2", {"s1", "u3", "a3", "a3b"}},
        {"one turn is never split", {"s1", "u1", "c1", "t1", "t2", "a1"}, 5, 3, 0, trim, false, 0, "max_messages 3",
         {"s1", "u1", "c1", "t1", "t2", "a1"}},
        {"reject drops nothing and names the limit", {"u1", "a1", "u2", "a2", "u3"}, 4, 4, 0, reject, false, 0,
         "max_messages 4", {"u1", "a1", "u2", "a2", "u3"}},
        {"max_tokens drops just one turn", {"u1", "a1", "u2", "a2", "u3", "a3", "u4"}, 6, 0, 70, trim, true, 2, "",
         {"u2", "a2", "u3", "a3", "u4"}},
        {"max_tokens drops two turns", {"u1", "a1", "u2", "a2", "u3", "a3", "u4"}, 6, 0, 56, trim, true, 4, "",
         {"u3", "a3", "u4"}},
        // 5 plain messages would be 70; the call's name and arguments make it 93.
        {"max_tokens counts tool calls", {"u1", "c1", "t1", "a1", "u2"}, 4, 0, 70, trim, true, 4, "", {"u2"}},
        {"reject names max_tokens", {"u1", "a1", "u2"}, 2, 0, 30, reject, false, 0, "max_tokens 30", {"u1", "a1", "u2"}},
        {"max_messages is named before max_tokens", {"u1", "a1", "u2"}, 2, 2, 30, reject, false, 0, "max_messages 2",
         {"u1", "a1", "u2"}},
        {"after trimming, the limit still over is named", {"u1", "a1", "u2", "a2"}, 2, 3, 20, trim, false, 2,
         "max_tokens 20", {"u2", "a2"}},
        {"keep_from at the end keeps the last turn only", {"u1", "a1", "u2", "a2"}, 4, 2, 0, trim, true, 2, "",
         {"u2", "a2"}},
        {"keep_from past the end is the end", {"u1", "a1", "u2", "a2"}, 99, 2, 0, trim, true, 2, "", {"u2", "a2"}},
        // A continuation: the client sends only the results of the stored turn's tool call.
        {"new tool results keep their turn and its user message", {"u1", "a1", "u2", "c2", "t2"}, 4, 3, 0, trim, true, 2,
         "", {"u2", "c2", "t2"}},
        {"new tool results keep their turn even when over", {"u1", "a1", "u2", "c2", "t2"}, 4, 2, 0, trim, false, 2,
         "max_messages 2", {"u2", "c2", "t2"}},
    };
}

}  // namespace

TEST(FitHistory, TableOfLimitsAndShapes) {
    for (auto const& c : fit_cases()) {
        SCOPED_TRACE(c.name);
        auto msgs = history(c.in);
        sessions::limits lim;
        lim.max_messages = c.max_messages;
        lim.max_tokens = c.max_tokens;
        lim.when_full = c.when;
        auto r = sessions::fit_history(msgs, c.keep_from, lim, 0, ten_per_text);
        EXPECT_EQ(r.fits, c.fits);
        EXPECT_EQ(r.dropped, c.dropped);
        EXPECT_EQ(r.over, c.over);
        EXPECT_EQ(labels_of(msgs), c.out);
        EXPECT_EQ(msgs.size() + r.dropped, c.in.size());
        if (r.dropped > 0) expect_whole_turns(labels_of(msgs));
    }
}

TEST(FitHistory, MaxBytesDropsJustEnough) {
    sessions::limits lim;
    lim.max_messages = 0;
    auto const all = history({"u1", "a1", "u2", "a2", "u3"});
    auto const budget = bytes_of(history({"u2", "a2", "u3"}));

    auto msgs = all;
    auto whole = sessions::fit_history(msgs, 4, lim, bytes_of(all), ten_per_text);
    EXPECT_TRUE(whole.fits);
    EXPECT_EQ(whole.dropped, 0u);

    msgs = all;
    auto one = sessions::fit_history(msgs, 4, lim, budget, ten_per_text);
    EXPECT_TRUE(one.fits);
    EXPECT_EQ(one.dropped, 2u);
    EXPECT_EQ(labels_of(msgs), (labels{"u2", "a2", "u3"}));

    msgs = all;
    auto two = sessions::fit_history(msgs, 4, lim, budget - 1, ten_per_text);
    EXPECT_TRUE(two.fits);
    EXPECT_EQ(two.dropped, 4u);
    EXPECT_EQ(labels_of(msgs), (labels{"u3"}));

    msgs = all;
    auto none = sessions::fit_history(msgs, 4, lim, bytes_of(history({"u3"})) - 1, ten_per_text);
    EXPECT_FALSE(none.fits);
    EXPECT_EQ(none.dropped, 4u);
    EXPECT_EQ(none.over, "max_history_bytes " + std::to_string(bytes_of(history({"u3"})) - 1));

    msgs = all;
    lim.when_full = reject;
    auto refused = sessions::fit_history(msgs, 4, lim, budget, ten_per_text);
    EXPECT_FALSE(refused.fits);
    EXPECT_EQ(refused.dropped, 0u);
    EXPECT_EQ(refused.over, "max_history_bytes " + std::to_string(budget));
    EXPECT_EQ(msgs.size(), 5u);
}

// ---- message_tokens ----

TEST(MessageTokens, StringContentPartsAndToolCalls) {
    auto text = json::parse(R"({"role":"user","content":"hello world!"})").as_object();
    EXPECT_EQ(sessions::message_tokens(text, one_per_byte), 4 + 12);

    auto parts = json::parse(R"({"role":"user","content":[{"type":"text","text":"abcd"},)"
                             R"({"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},)"
                             R"({"type":"text","text":"xy"}]})")
                     .as_object();
    EXPECT_EQ(sessions::message_tokens(parts, one_per_byte), 4 + 4 + 85 + 2);  // an image is a flat 85

    auto calls = json::parse(R"({"role":"assistant","content":null,"tool_calls":[)"
                             R"({"id":"c1","type":"function","function":{"name":"read","arguments":"{\"p\":1}"}},)"
                             R"({"id":"c2","type":"function","function":{"name":"ls","arguments":""}},)"
                             R"({"id":"c3","type":"other"}]})")
                     .as_object();
    EXPECT_EQ(sessions::message_tokens(calls, one_per_byte), 4 + (4 + 7 + 3) + (2 + 0 + 3));

    auto both = json::parse(R"({"role":"assistant","content":"ok","tool_calls":[)"
                            R"({"id":"c1","type":"function","function":{"name":"read","arguments":"{}"}}]})")
                    .as_object();
    EXPECT_EQ(sessions::message_tokens(both, one_per_byte), 4 + 2 + (4 + 2 + 3));

    auto bare = json::parse(R"({"role":"assistant"})").as_object();
    EXPECT_EQ(sessions::message_tokens(bare, one_per_byte), 4);
    EXPECT_EQ(sessions::message_tokens(text, ten_per_text), 4 + 10);
}

// ---- ids ----

TEST(SessionIds, WhichIdsAreValid) {
    labels accepted = {"a", "Z", "0", "sess_0123abcd", "team.a:chat-1_x", std::string(128, 'x')};
    for (auto const& id : accepted) EXPECT_TRUE(sessions::valid_id(id)) << id;
    labels refused = {"",
                      std::string(129, 'x'),
                      "a b",
                      "a/b",
                      "../etc",
                      "s\xc3\xa9"
                      "ance",  // é
                      "\xe2\x82\xac",
                      "a\nb",
                      "a%2F",
                      "a+b",
                      std::string("a\0b", 3)};
    for (auto const& id : refused) EXPECT_FALSE(sessions::valid_id(id)) << id;
}

TEST(SessionIds, NewIdsAreSessPlus24HexDigits) {
    auto id = sessions::new_id();
    EXPECT_EQ(id.size(), 29u);
    EXPECT_EQ(id.rfind("sess_", 0), 0u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 5), std::string::npos) << id;
    EXPECT_TRUE(sessions::valid_id(id));
    EXPECT_NE(id, sessions::new_id());
}

// ---- decide ----

TEST(Decide, TheFullTable) {
    using found = state::session_state;
    using v = sessions::verdict;
    struct row {
        found in;
        bool same_owner;
        bool create_on_use;
        v want;
    };
    std::vector<row> rows = {
        {found::missing, true, true, v::create},      {found::missing, true, false, v::not_found},
        {found::missing, false, true, v::create},     {found::missing, false, false, v::not_found},
        {found::live, true, true, v::use},            {found::live, true, false, v::use},
        {found::live, false, true, v::not_found},     {found::live, false, false, v::not_found},
        {found::gone, true, true, v::gone},           {found::gone, true, false, v::gone},
        {found::gone, false, true, v::not_found},     {found::gone, false, false, v::not_found},
    };
    for (std::size_t i = 0; i < rows.size(); ++i) {
        auto const& r = rows[i];
        SCOPED_TRACE("row " + std::to_string(i));
        std::string owner = r.in == found::missing ? "" : "k1";  // a missing session has none
        std::string caller = r.same_owner ? owner : "k2";
        EXPECT_EQ(sessions::decide(r.in, owner, caller, r.create_on_use), r.want);
    }
}

// ---- the errors ----

TEST(SessionErrors, EachHasItsStatusAndCode) {
    struct row {
        api_error e;
        int status;
        char const* code;
    };
    std::vector<row> rows = {
        {sessions::invalid_id_error(), 400, "invalid_session_id"},
        {sessions::not_found_error("s1"), 404, "session_not_found"},
        {sessions::gone_error("s1"), 410, "session_expired"},
        {sessions::busy_error("s1"), 409, "session_busy"},
        {sessions::limit_error("max_messages 4"), 429, "session_limit"},
        {sessions::store_error(), 503, "session_store_unavailable"},
    };
    for (auto const& r : rows) {
        SCOPED_TRACE(r.code);
        EXPECT_EQ(r.e.status, r.status);
        EXPECT_EQ(r.e.code, r.code);
        EXPECT_FALSE(r.e.message.empty());
    }
    EXPECT_EQ(sessions::invalid_id_error().param, "x-session-id");
    EXPECT_NE(sessions::not_found_error("s1").message.find("'s1'"), std::string::npos);
    EXPECT_NE(sessions::limit_error("max_messages 4").message.find("max_messages 4"), std::string::npos);
    EXPECT_EQ(sessions::store_error().retry_after, "1");
}

// ---- parse_create ----

namespace {

// The gateway's sessions settings the requests are checked against.
sessions::settings gateway_settings() {
    sessions::settings s;
    s.lim.ttl = std::chrono::hours(1);
    s.lim.max_messages = 50;
    s.lim.max_tokens = 0;  // none: a session may set up to the hard limit
    s.lim.when_full = trim;
    return s;
}

json::object body(std::string const& text) { return json::parse(text).as_object(); }

json::object with(std::string const& key, json::value v) {
    json::object o;
    o[key] = std::move(v);
    return o;
}

json::object metadata(std::size_t pairs, std::size_t key_size, std::size_t value_size) {
    json::object md;
    for (std::size_t i = 0; i < pairs; ++i) {
        auto k = std::to_string(i);
        if (k.size() < key_size) k.insert(0, key_size - k.size(), 'k');
        md[k] = std::string(value_size, 'v');
    }
    return md;
}

struct create_error_case {
    std::string name;
    json::object body;
    std::string code;
    std::string param;
};

std::vector<create_error_case> create_errors() {
    std::vector<create_error_case> c;
    c.push_back({"an unknown field", body(R"({"model":"gpt-4o"})"), "unknown_parameter", "model"});
    c.push_back({"an id with a space", body(R"({"id":"a b"})"), "invalid_session_id", "x-session-id"});
    c.push_back({"an id not a string", body(R"({"id":7})"), "invalid_session_id", "x-session-id"});
    c.push_back({"an empty id", body(R"({"id":""})"), "invalid_session_id", "x-session-id"});
    c.push_back({"an id of 129", with("id", json::value(std::string(129, 'x'))), "invalid_session_id", "x-session-id"});
    c.push_back({"metadata a string", body(R"({"metadata":"x"})"), "invalid_metadata", ""});
    c.push_back({"metadata an array", body(R"({"metadata":["a"]})"), "invalid_metadata", ""});
    c.push_back({"a metadata value a number", body(R"({"metadata":{"a":1}})"), "invalid_metadata", ""});
    c.push_back({"a metadata value null", body(R"({"metadata":{"a":null}})"), "invalid_metadata", ""});
    c.push_back({"17 metadata pairs", with("metadata", metadata(17, 1, 1)), "invalid_metadata", ""});
    c.push_back({"a metadata key of 65", with("metadata", metadata(1, 65, 1)), "invalid_metadata", ""});
    c.push_back({"a metadata value of 513", with("metadata", metadata(1, 1, 513)), "invalid_metadata", ""});
    c.push_back({"system a number", body(R"({"system":1})"), "invalid_system", ""});
    c.push_back({"system over 256 KiB", with("system", json::value(std::string(256 * 1024 + 1, 's'))), "invalid_system",
                 ""});
    c.push_back({"ttl_seconds 0", body(R"({"ttl_seconds":0})"), "invalid_session_limit", "ttl_seconds"});
    c.push_back({"ttl_seconds negative", body(R"({"ttl_seconds":-1})"), "invalid_session_limit", "ttl_seconds"});
    c.push_back({"ttl_seconds over the gateway's", body(R"({"ttl_seconds":3601})"), "invalid_session_limit",
                 "ttl_seconds"});
    c.push_back({"ttl_seconds a fraction", body(R"({"ttl_seconds":1.5})"), "invalid_session_limit", "ttl_seconds"});
    c.push_back({"ttl_seconds a string", body(R"({"ttl_seconds":"60"})"), "invalid_session_limit", "ttl_seconds"});
    c.push_back({"max_messages 0", body(R"({"max_messages":0})"), "invalid_session_limit", "max_messages"});
    c.push_back({"max_messages over the gateway's", body(R"({"max_messages":51})"), "invalid_session_limit",
                 "max_messages"});
    c.push_back({"max_tokens 0", body(R"({"max_tokens":0})"), "invalid_session_limit", "max_tokens"});
    c.push_back({"max_tokens over the hard limit", body(R"({"max_tokens":1000000001})"), "invalid_session_limit",
                 "max_tokens"});
    c.push_back({"max_tokens beyond int64", body(R"({"max_tokens":18446744073709551615})"), "invalid_session_limit",
                 "max_tokens"});
    c.push_back({"on_limit unknown", body(R"({"on_limit":"drop"})"), "invalid_session_limit", ""});
    c.push_back({"on_limit not a string", body(R"({"on_limit":true})"), "invalid_session_limit", ""});
    return c;
}

api_error create_error(json::object const& b, sessions::settings const& s) {
    auto r = sessions::parse_create(b, s);
    if (auto const* e = std::get_if<api_error>(&r)) return *e;
    return api_error(0, "", "accepted", "");
}

}  // namespace

TEST(ParseCreate, AnEmptyBodyTakesTheGatewaysSettings) {
    auto r = sessions::parse_create(json::object(), gateway_settings());
    ASSERT_TRUE(std::holds_alternative<sessions::create_request>(r));
    auto const& c = std::get<sessions::create_request>(r);
    EXPECT_EQ(c.id, "");
    EXPECT_TRUE(c.metadata.empty());
    EXPECT_EQ(c.system, "");
    EXPECT_EQ(c.lim.ttl.count(), 3'600'000);
    EXPECT_EQ(c.lim.max_messages, 50u);
    EXPECT_EQ(c.lim.max_tokens, 0);
    EXPECT_EQ(c.lim.when_full, trim);
}

TEST(ParseCreate, TakesEveryField) {
    auto b = body(R"({"id":"team-a:chat.1","metadata":{"user":"u-1","topic":"billing"},"system":"be brief",)"
                  R"("ttl_seconds":60,"max_messages":10,"max_tokens":1000,"on_limit":"reject"})");
    auto r = sessions::parse_create(b, gateway_settings());
    ASSERT_TRUE(std::holds_alternative<sessions::create_request>(r)) << create_error(b, gateway_settings()).message;
    auto const& c = std::get<sessions::create_request>(r);
    EXPECT_EQ(c.id, "team-a:chat.1");
    EXPECT_EQ(json::serialize(c.metadata), R"({"user":"u-1","topic":"billing"})");
    EXPECT_EQ(c.system, "be brief");
    EXPECT_EQ(c.lim.ttl.count(), 60'000);
    EXPECT_EQ(c.lim.max_messages, 10u);
    EXPECT_EQ(c.lim.max_tokens, 1000);
    EXPECT_EQ(c.lim.when_full, reject);
}

TEST(ParseCreate, NullFieldsAreAbsentOnes) {
    auto b = body(R"({"id":null,"metadata":null,"system":null,"ttl_seconds":null,"max_messages":null,)"
                  R"("max_tokens":null,"on_limit":null})");
    auto r = sessions::parse_create(b, gateway_settings());
    ASSERT_TRUE(std::holds_alternative<sessions::create_request>(r)) << create_error(b, gateway_settings()).message;
    auto const& c = std::get<sessions::create_request>(r);
    EXPECT_EQ(c.id, "");
    EXPECT_TRUE(c.metadata.empty());
    EXPECT_EQ(c.lim.ttl.count(), 3'600'000);
    EXPECT_EQ(c.lim.max_messages, 50u);
    EXPECT_EQ(c.lim.when_full, trim);
}

TEST(ParseCreate, AcceptsEachFieldAtItsBounds) {
    std::vector<std::pair<std::string, json::object>> ok;
    ok.emplace_back("ttl_seconds 1", body(R"({"ttl_seconds":1})"));
    ok.emplace_back("ttl_seconds at the gateway's", body(R"({"ttl_seconds":3600})"));
    ok.emplace_back("max_messages 1", body(R"({"max_messages":1})"));
    ok.emplace_back("max_messages at the gateway's", body(R"({"max_messages":50})"));
    ok.emplace_back("max_tokens 1", body(R"({"max_tokens":1})"));
    ok.emplace_back("max_tokens at the hard limit", body(R"({"max_tokens":1000000000})"));
    ok.emplace_back("on_limit trim", body(R"({"on_limit":"trim"})"));
    ok.emplace_back("16 metadata pairs, keys of 64, values of 512", with("metadata", metadata(16, 64, 512)));
    ok.emplace_back("an id of 128", with("id", json::value(std::string(128, 'x'))));
    ok.emplace_back("system of 256 KiB", with("system", json::value(std::string(256 * 1024, 's'))));
    for (auto const& [name, b] : ok) {
        SCOPED_TRACE(name);
        auto r = sessions::parse_create(b, gateway_settings());
        EXPECT_TRUE(std::holds_alternative<sessions::create_request>(r)) << create_error(b, gateway_settings()).message;
    }
    auto r = sessions::parse_create(body(R"({"max_tokens":1000000000})"), gateway_settings());
    ASSERT_TRUE(std::holds_alternative<sessions::create_request>(r));
    EXPECT_EQ(std::get<sessions::create_request>(r).lim.max_tokens, 1'000'000'000);
}

TEST(ParseCreate, RefusesEachMalformedField) {
    for (auto const& c : create_errors()) {
        SCOPED_TRACE(c.name);
        auto e = create_error(c.body, gateway_settings());
        EXPECT_EQ(e.status, 400);
        EXPECT_EQ(e.type, "invalid_request_error");
        EXPECT_EQ(e.code, c.code);
        EXPECT_EQ(e.param, c.param);
    }
}

TEST(ParseCreate, TheGatewaysLimitIsTheCeilingAndZeroMeansTheHardLimit) {
    auto s = gateway_settings();
    s.lim.max_messages = 0;  // none at the gateway
    s.lim.max_tokens = 5'000;
    auto many = sessions::parse_create(body(R"({"max_messages":1000000})"), s);
    ASSERT_TRUE(std::holds_alternative<sessions::create_request>(many));
    EXPECT_EQ(std::get<sessions::create_request>(many).lim.max_messages, 1'000'000u);
    EXPECT_EQ(std::get<sessions::create_request>(many).lim.max_tokens, 5'000) << "the gateway's, by default";
    auto too_many = create_error(body(R"({"max_messages":1000001})"), s);
    EXPECT_EQ(too_many.code, "invalid_session_limit");
    EXPECT_EQ(too_many.message, "'max_messages' must be an integer from 1 to 1000000");

    EXPECT_TRUE(std::holds_alternative<sessions::create_request>(sessions::parse_create(body(R"({"max_tokens":5000})"), s)));
    auto over = create_error(body(R"({"max_tokens":5001})"), s);
    EXPECT_EQ(over.code, "invalid_session_limit");
    EXPECT_EQ(over.message, "'max_tokens' must be an integer from 1 to 5000 (the gateway's limit)");
    auto ttl = create_error(body(R"({"ttl_seconds":3601})"), s);
    EXPECT_EQ(ttl.message, "'ttl_seconds' must be an integer from 1 to 3600 (the gateway's limit)");
}

// ---- rows and the API's JSON ----

namespace {

sessions::session sample_session() {
    sessions::session s;
    s.id = "sess_0123456789abcdef01234567";
    s.owner = "key_ab12";
    s.created_ms = t0 + 123;
    s.updated_ms = t0 + 5'999;
    s.expires_ms = t0 + 5'999 + 90'500;
    s.version = 3;
    s.metadata["team"] = "support";
    s.metadata["ticket"] = "T-1";
    s.system = "be brief";
    s.lim.ttl = std::chrono::milliseconds(90'500);
    s.lim.max_messages = 7;
    s.lim.max_tokens = 500;
    s.lim.when_full = reject;
    s.messages = history({"sys", "u1", "c1", "t1", "a1"});
    return s;
}

}  // namespace

TEST(SessionRows, RoundTripEveryField) {
    auto s = sample_session();
    auto row = sessions::to_row(s);
    EXPECT_EQ(row.id, s.id);
    EXPECT_EQ(row.owner, s.owner);
    EXPECT_EQ(row.created_ms, s.created_ms);
    EXPECT_EQ(row.updated_ms, s.updated_ms);
    EXPECT_EQ(row.expires_ms, s.expires_ms);
    EXPECT_EQ(row.version, 3);
    auto meta = json::parse(row.meta).as_object();
    EXPECT_EQ(meta.at("count").to_number<std::int64_t>(), 5);
    EXPECT_EQ(meta.at("limits").as_object().at("ttl_ms").to_number<std::int64_t>(), 90'500);

    auto back = sessions::from_row(row);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->id, s.id);
    EXPECT_EQ(back->owner, s.owner);
    EXPECT_EQ(back->created_ms, s.created_ms);
    EXPECT_EQ(back->updated_ms, s.updated_ms);
    EXPECT_EQ(back->expires_ms, s.expires_ms);
    EXPECT_EQ(back->version, 3);
    EXPECT_EQ(json::serialize(back->metadata), json::serialize(s.metadata));
    EXPECT_EQ(back->system, "be brief");
    EXPECT_EQ(back->lim.ttl.count(), 90'500);
    EXPECT_EQ(back->lim.max_messages, 7u);
    EXPECT_EQ(back->lim.max_tokens, 500);
    EXPECT_EQ(back->lim.when_full, reject);
    EXPECT_EQ(json::serialize(back->messages), json::serialize(s.messages));
    EXPECT_EQ(back->message_count, 5u);

    // A list page's row has no messages: the count comes from the meta.
    auto listed_row = row;
    listed_row.messages.clear();
    auto listed = sessions::from_row(listed_row);
    ASSERT_TRUE(listed);
    EXPECT_TRUE(listed->messages.empty());
    EXPECT_EQ(listed->message_count, 5u);
    EXPECT_EQ(json::serialize(listed->metadata), json::serialize(s.metadata));

    // Without a system prompt the meta has none, and on_limit trim reads back as trim.
    s.system.clear();
    s.lim.when_full = trim;
    auto plain = sessions::from_row(sessions::to_row(s));
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->system, "");
    EXPECT_EQ(plain->lim.when_full, trim);
    EXPECT_FALSE(json::parse(sessions::to_row(s).meta).as_object().contains("system"));
}

TEST(SessionRows, ADamagedRowIsNoSession) {
    auto good = sessions::to_row(sample_session());
    struct damage {
        char const* name;
        std::string meta;
        std::string messages;
    };
    std::vector<damage> cases = {
        {"meta cut short", "{\"metadata\":", good.messages},
        {"meta empty", "", good.messages},
        {"meta an array", "[1,2]", good.messages},
        {"messages cut short", good.meta, "[{\"role\":"},
        {"messages an object", good.meta, "{\"role\":\"user\"}"},
    };
    for (auto const& c : cases) {
        SCOPED_TRACE(c.name);
        auto row = good;
        row.meta = c.meta;
        row.messages = c.messages;
        EXPECT_FALSE(sessions::from_row(row));
    }
}

TEST(SessionJson, SecondsLimitsAndMessagesOnlyWhenAsked) {
    auto s = sample_session();
    auto o = sessions::to_json(s, false);
    EXPECT_EQ(std::string(o.at("id").as_string()), s.id);
    EXPECT_EQ(std::string(o.at("object").as_string()), "session");
    EXPECT_EQ(o.at("created_at").to_number<std::int64_t>(), (t0 + 123) / 1000);
    EXPECT_EQ(o.at("updated_at").to_number<std::int64_t>(), (t0 + 5'999) / 1000);
    EXPECT_EQ(o.at("expires_at").to_number<std::int64_t>(), (t0 + 5'999 + 90'500) / 1000);
    EXPECT_EQ(json::serialize(o.at("metadata")), R"({"team":"support","ticket":"T-1"})");
    EXPECT_EQ(std::string(o.at("system").as_string()), "be brief");
    auto const& l = o.at("limits").as_object();
    EXPECT_EQ(l.at("ttl_seconds").to_number<std::int64_t>(), 90);
    EXPECT_FALSE(l.contains("ttl_ms"));
    EXPECT_EQ(l.at("max_messages").to_number<std::int64_t>(), 7);
    EXPECT_EQ(l.at("max_tokens").to_number<std::int64_t>(), 500);
    EXPECT_EQ(std::string(l.at("on_limit").as_string()), "reject");
    EXPECT_EQ(o.at("message_count").to_number<std::int64_t>(), 5);
    EXPECT_FALSE(o.contains("messages"));

    auto full = sessions::to_json(s, true);
    EXPECT_EQ(json::serialize(full.at("messages")), json::serialize(s.messages));

    s.system.clear();
    EXPECT_FALSE(sessions::to_json(s, false).contains("system"));

    auto listed = sample_session();
    listed.messages.clear();
    listed.message_count = 9;
    auto lo = sessions::to_json(listed, true);
    EXPECT_EQ(lo.at("message_count").to_number<std::int64_t>(), 9);
    EXPECT_TRUE(lo.at("messages").as_array().empty());
}

// ---- the service over the memory store ----

namespace {

sessions::token_counter quarter() {
    return [](std::string_view t) -> std::size_t { return t.size() / 4; };
}

// A service on its own memory store (kept, to look at leases from outside).
struct rig {
    explicit rig(sessions::settings s)
        : cfg(std::move(s)), store(state::make_memory_sessions(cfg.tombstone.count())), svc(cfg, store, quarter()) {}
    sessions::settings cfg;
    std::shared_ptr<state::session_store> store;
    sessions::service svc;
};

sessions::create_request request(std::string id, sessions::limits lim, std::string system = {}) {
    sessions::create_request r;
    r.id = std::move(id);
    r.lim = lim;
    r.system = std::move(system);
    return r;
}

template <class T>
std::string why(sessions::answer<T> const& a) {
    if (auto const* e = std::get_if<api_error>(&a)) return std::to_string(e->status) + " " + e->code + ": " + e->message;
    return "a value";
}

template <class T>
api_error error_of(sessions::answer<T> const& a) {
    if (auto const* e = std::get_if<api_error>(&a)) return *e;
    return api_error(0, "", "none", "a value, not an error");
}

void make(rig& x, std::string const& owner, sessions::create_request req, std::int64_t now) {
    auto r = run(x.svc.create(owner, std::move(req), now));
    ASSERT_TRUE(std::holds_alternative<sessions::session>(r)) << why(r);
}

sessions::session fetch(rig& x, std::string const& id, std::int64_t now, std::string const& owner = "k1") {
    auto r = run(x.svc.get(id, owner, now));
    if (auto const* s = std::get_if<sessions::session>(&r)) return *s;
    ADD_FAILURE() << "get " << id << ": " << why(r);
    return {};
}

// True when nobody holds the session's lease (taken and given back by a probe).
bool lease_free(rig& x, std::string const& id, std::int64_t now) {
    bool was_free = run(x.store->lock(id, "probe", 1'000, now)).value();
    if (was_free) run(x.store->unlock(id, "probe")).value();
    return was_free;
}

// One request: begin, prepare with `incoming` (what was sent goes to `sent`), commit of `added`
// a millisecond later.
void one_turn(rig& x, std::string const& id, labels const& incoming, labels const& added, std::int64_t now,
              labels* sent = nullptr) {
    auto begun = run(x.svc.begin(id, "k1", now));
    ASSERT_TRUE(std::holds_alternative<sessions::turn>(begun)) << why(begun);
    auto& t = std::get<sessions::turn>(begun);
    json::array out;
    auto refused = x.svc.prepare(t, history(incoming), out);
    ASSERT_FALSE(refused) << refused->message;
    if (sent != nullptr) *sent = labels_of(out);
    ASSERT_TRUE(run(x.svc.commit(t, history(added), now + 1)));
}

std::vector<std::string> ids_of(sessions::page const& p) {
    std::vector<std::string> out;
    for (auto const& s : p.items) out.push_back(s.id);
    return out;
}

}  // namespace

TEST(SessionService, CreateGeneratesOrTakesTheIdAndRefusesADuplicate) {
    rig x(sessions::settings{});
    auto made = run(x.svc.create("k1", request("", x.cfg.lim), t0));
    ASSERT_TRUE(std::holds_alternative<sessions::session>(made)) << why(made);
    auto const& s = std::get<sessions::session>(made);
    EXPECT_EQ(s.id.rfind("sess_", 0), 0u);
    EXPECT_TRUE(sessions::valid_id(s.id));
    EXPECT_EQ(s.owner, "k1");
    EXPECT_EQ(s.created_ms, t0);
    EXPECT_EQ(s.updated_ms, t0);
    EXPECT_EQ(s.expires_ms, t0 + 24 * 3'600'000);
    EXPECT_EQ(s.version, 1);
    EXPECT_TRUE(s.messages.empty());
    EXPECT_EQ(fetch(x, s.id, t0 + 1).id, s.id);

    auto named = run(x.svc.create("k1", request("mine", x.cfg.lim, "be brief"), t0));
    ASSERT_TRUE(std::holds_alternative<sessions::session>(named)) << why(named);
    auto const& n = std::get<sessions::session>(named);
    EXPECT_EQ(n.id, "mine");
    EXPECT_EQ(n.system, "be brief");
    ASSERT_EQ(n.messages.size(), 1u);
    EXPECT_EQ(role_of(n.messages[0]), "system");
    EXPECT_EQ(labels_of(n.messages), (labels{"be brief"}));

    auto again = run(x.svc.create("k1", request("mine", x.cfg.lim), t0 + 1));
    EXPECT_EQ(error_of(again).status, 409);
    EXPECT_EQ(error_of(again).code, "session_exists");
    auto theirs = run(x.svc.create("k2", request("mine", x.cfg.lim), t0 + 1));
    EXPECT_EQ(error_of(theirs).status, 409);
    EXPECT_EQ(x.svc.stats().created.load(), 2u);
    EXPECT_EQ(x.svc.store_kind(), "memory");
}

TEST(SessionService, GetIsTheOwnersOnlyThenGoneAfterEraseThenNotFound) {
    rig x(sessions::settings{});
    auto const tomb = x.cfg.tombstone.count();
    make(x, "k1", request("mine", x.cfg.lim), t0);

    EXPECT_EQ(fetch(x, "mine", t0 + 1).owner, "k1");
    auto foreign = run(x.svc.get("mine", "k2", t0 + 1));
    EXPECT_EQ(error_of(foreign).status, 404);
    EXPECT_EQ(error_of(foreign).code, "session_not_found");
    auto bad = run(x.svc.get("not valid!", "k1", t0 + 1));
    EXPECT_EQ(error_of(bad).status, 400);
    EXPECT_EQ(error_of(bad).code, "invalid_session_id");

    auto not_theirs = run(x.svc.erase("mine", "k2", t0 + 2));
    ASSERT_TRUE(not_theirs);
    EXPECT_EQ(not_theirs->status, 404);
    EXPECT_FALSE(run(x.svc.erase("mine", "k1", t0 + 2)));

    auto gone = run(x.svc.get("mine", "k1", t0 + 3));
    EXPECT_EQ(error_of(gone).status, 410);
    EXPECT_EQ(error_of(gone).code, "session_expired");
    EXPECT_EQ(error_of(run(x.svc.get("mine", "k2", t0 + 3))).status, 404) << "another key never learns of it";
    auto twice = run(x.svc.erase("mine", "k1", t0 + 3));
    ASSERT_TRUE(twice);
    EXPECT_EQ(twice->status, 410);
    EXPECT_EQ(error_of(run(x.svc.get("mine", "k1", t0 + 2 + tomb - 1))).status, 410);
    EXPECT_EQ(error_of(run(x.svc.get("mine", "k1", t0 + 2 + tomb))).status, 404) << "the tombstone lapsed";

    // An idle session expires the same way.
    auto brief = x.cfg.lim;
    brief.ttl = std::chrono::seconds(10);
    make(x, "k1", request("brief", brief), t0);
    EXPECT_EQ(fetch(x, "brief", t0 + 9'999).id, "brief");
    EXPECT_EQ(error_of(run(x.svc.get("brief", "k1", t0 + 10'000))).status, 410);
    EXPECT_EQ(error_of(run(x.svc.get("brief", "k1", t0 + 10'000 + tomb))).status, 404);
}

TEST(SessionService, ASecondTurnIsBusyUntilTheFirstReleasesOrCommits) {
    rig x(sessions::settings{});
    make(x, "k1", request("mine", x.cfg.lim, "be brief"), t0);

    auto first = run(x.svc.begin("mine", "k1", t0 + 1));
    ASSERT_TRUE(std::holds_alternative<sessions::turn>(first)) << why(first);
    auto& t1 = std::get<sessions::turn>(first);
    EXPECT_TRUE(t1.open);
    EXPECT_FALSE(t1.created);
    EXPECT_FALSE(t1.holder.empty());
    EXPECT_EQ(t1.history, 1u);
    EXPECT_EQ(t1.s.system, "be brief");

    auto second = run(x.svc.begin("mine", "k1", t0 + 2));
    EXPECT_EQ(error_of(second).status, 409);
    EXPECT_EQ(error_of(second).code, "session_busy");
    EXPECT_EQ(x.svc.stats().busy.load(), 1u);

    run(x.svc.release(t1));
    EXPECT_FALSE(t1.open);
    run(x.svc.release(t1));  // a second release does nothing
    EXPECT_TRUE(lease_free(x, "mine", t0 + 3));

    auto third = run(x.svc.begin("mine", "k1", t0 + 4));
    ASSERT_TRUE(std::holds_alternative<sessions::turn>(third)) << why(third);
    auto& t3 = std::get<sessions::turn>(third);
    EXPECT_FALSE(lease_free(x, "mine", t0 + 4));
    ASSERT_TRUE(run(x.svc.commit(t3, history({"u1", "a1"}), t0 + 5)));
    EXPECT_FALSE(t3.open);
    EXPECT_TRUE(lease_free(x, "mine", t0 + 6)) << "commit gives the lease back";

    auto fourth = run(x.svc.begin("mine", "k1", t0 + 7));
    ASSERT_TRUE(std::holds_alternative<sessions::turn>(fourth)) << why(fourth);
    run(x.svc.release(std::get<sessions::turn>(fourth)));

    // Another key's request: 404, and the lease is not kept.
    auto foreign = run(x.svc.begin("mine", "k2", t0 + 8));
    EXPECT_EQ(error_of(foreign).status, 404);
    EXPECT_EQ(error_of(foreign).code, "session_not_found");
    EXPECT_TRUE(lease_free(x, "mine", t0 + 8));
}

TEST(SessionService, BeginStartsAnUnknownIdWithCreateOnUse) {
    rig x(sessions::settings{});
    auto begun = run(x.svc.begin("fresh-1", "k1", t0));
    ASSERT_TRUE(std::holds_alternative<sessions::turn>(begun)) << why(begun);
    auto& t = std::get<sessions::turn>(begun);
    EXPECT_TRUE(t.created);
    EXPECT_TRUE(t.open);
    EXPECT_EQ(t.s.id, "fresh-1");
    EXPECT_EQ(t.s.owner, "k1");
    EXPECT_EQ(t.s.version, 1);
    EXPECT_EQ(t.history, 0u);
    EXPECT_EQ(t.s.lim.max_messages, x.cfg.lim.max_messages);
    EXPECT_EQ(t.s.expires_ms, t0 + x.cfg.lim.ttl.count());
    EXPECT_EQ(x.svc.stats().created.load(), 1u);
    ASSERT_TRUE(run(x.svc.commit(t, history({"u1", "a1"}), t0 + 1)));
    auto s = fetch(x, "fresh-1", t0 + 2);
    EXPECT_EQ(labels_of(s.messages), (labels{"u1", "a1"}));
    EXPECT_EQ(s.version, 2);
}

TEST(SessionService, BeginStartsAnUnknownIdWithTheLimitsItIsGivenAndAKnownOneKeepsItsOwn) {
    rig x(sessions::settings{});
    auto lim = x.cfg.lim;
    lim.max_messages = 3;
    lim.ttl = std::chrono::seconds(30);
    lim.when_full = reject;
    auto begun = run(x.svc.begin("fresh-3", "k1", t0, &lim));
    ASSERT_TRUE(std::holds_alternative<sessions::turn>(begun)) << why(begun);
    auto& t = std::get<sessions::turn>(begun);
    EXPECT_TRUE(t.created);
    EXPECT_EQ(t.s.lim.max_messages, 3u);
    EXPECT_EQ(t.s.lim.when_full, reject);
    EXPECT_EQ(t.s.expires_ms, t0 + 30'000);
    run(x.svc.release(t));
    EXPECT_EQ(fetch(x, "fresh-3", t0 + 1).lim.max_messages, 3u) << "stored with the session";

    auto other = x.cfg.lim;
    other.max_messages = 9;
    auto again = run(x.svc.begin("fresh-3", "k1", t0 + 2, &other));
    ASSERT_TRUE(std::holds_alternative<sessions::turn>(again)) << why(again);
    EXPECT_FALSE(std::get<sessions::turn>(again).created);
    EXPECT_EQ(std::get<sessions::turn>(again).s.lim.max_messages, 3u);
    run(x.svc.release(std::get<sessions::turn>(again)));
}

TEST(SessionService, BeginWithoutCreateOnUseAnswers404AndKeepsNoLease) {
    sessions::settings cfg;
    cfg.create_on_use = false;
    rig x(cfg);
    auto r = run(x.svc.begin("fresh-2", "k1", t0));
    EXPECT_EQ(error_of(r).status, 404);
    EXPECT_EQ(error_of(r).code, "session_not_found");
    EXPECT_TRUE(lease_free(x, "fresh-2", t0));
    EXPECT_EQ(error_of(run(x.svc.get("fresh-2", "k1", t0 + 1))).status, 404) << "nothing was made";
}

TEST(SessionService, BeginAnswers410ForAnErasedSessionUntilItsTombstoneLapses) {
    rig x(sessions::settings{});
    auto const tomb = x.cfg.tombstone.count();
    make(x, "k1", request("old", x.cfg.lim), t0);
    ASSERT_FALSE(run(x.svc.erase("old", "k1", t0 + 1)));

    auto r = run(x.svc.begin("old", "k1", t0 + 2));
    EXPECT_EQ(error_of(r).status, 410) << "create_on_use does not revive a tombstone";
    EXPECT_TRUE(lease_free(x, "old", t0 + 2));
    auto bad = run(x.svc.begin("bad id", "k1", t0 + 2));
    EXPECT_EQ(error_of(bad).status, 400);
    EXPECT_EQ(error_of(bad).code, "invalid_session_id");

    auto later = run(x.svc.begin("old", "k1", t0 + 1 + tomb));
    ASSERT_TRUE(std::holds_alternative<sessions::turn>(later)) << why(later);
    EXPECT_TRUE(std::get<sessions::turn>(later).created);
    run(x.svc.release(std::get<sessions::turn>(later)));
}

TEST(SessionService, PrepareAndCommitGrowTheHistoryByTheAddedMessages) {
    rig x(sessions::settings{});
    make(x, "k1", request("chat", x.cfg.lim, "sys"), t0);

    labels sent;
    one_turn(x, "chat", {"u1"}, {"u1", "a1"}, t0 + 10, &sent);
    EXPECT_EQ(sent, (labels{"sys", "u1"}));
    auto after1 = fetch(x, "chat", t0 + 12);
    EXPECT_EQ(labels_of(after1.messages), (labels{"sys", "u1", "a1"}));
    EXPECT_EQ(after1.version, 2);
    EXPECT_EQ(after1.created_ms, t0);
    EXPECT_EQ(after1.updated_ms, t0 + 11);
    EXPECT_EQ(after1.expires_ms, t0 + 11 + x.cfg.lim.ttl.count());

    one_turn(x, "chat", {"u2"}, {"u2", "a2"}, t0 + 20, &sent);
    EXPECT_EQ(sent, (labels{"sys", "u1", "a1", "u2"}));
    auto after2 = fetch(x, "chat", t0 + 22);
    EXPECT_EQ(labels_of(after2.messages), (labels{"sys", "u1", "a1", "u2", "a2"}));
    EXPECT_EQ(after2.version, 3);
    EXPECT_EQ(after2.message_count, 5u);
    EXPECT_EQ(x.svc.stats().turns.load(), 2u);
    EXPECT_EQ(x.svc.stats().trimmed.load(), 0u);
}

TEST(SessionService, TrimDropsTheOldestTurnAtPrepareAndAgainAtCommit) {
    rig x(sessions::settings{});
    auto lim = x.cfg.lim;
    lim.max_messages = 4;
    make(x, "k1", request("chat", lim), t0);
    one_turn(x, "chat", {"u1"}, {"u1", "a1"}, t0 + 10);
    one_turn(x, "chat", {"u2"}, {"u2", "a2"}, t0 + 20);
    EXPECT_EQ(labels_of(fetch(x, "chat", t0 + 22).messages), (labels{"u1", "a1", "u2", "a2"}));

    // At prepare: 4 stored + 1 new is over 4; the oldest turn goes from what is sent and stored.
    {
        auto begun = run(x.svc.begin("chat", "k1", t0 + 30));
        ASSERT_TRUE(std::holds_alternative<sessions::turn>(begun)) << why(begun);
        auto& t = std::get<sessions::turn>(begun);
        json::array out;
        auto refused = x.svc.prepare(t, history({"u3"}), out);
        ASSERT_FALSE(refused) << refused->message;
        EXPECT_EQ(labels_of(out), (labels{"u2", "a2", "u3"}));
        EXPECT_EQ(labels_of(t.s.messages), (labels{"u2", "a2"}));
        EXPECT_EQ(t.history, 2u);
        EXPECT_EQ(x.svc.stats().trimmed.load(), 1u);
        ASSERT_TRUE(run(x.svc.commit(t, history({"u3", "a3"}), t0 + 31)));
    }
    EXPECT_EQ(labels_of(fetch(x, "chat", t0 + 32).messages), (labels{"u2", "a2", "u3", "a3"}));

    // At commit: an agent loop's tool turn makes the history 6; the turn before it goes.
    {
        auto begun = run(x.svc.begin("chat", "k1", t0 + 40));
        ASSERT_TRUE(std::holds_alternative<sessions::turn>(begun)) << why(begun);
        auto& t = std::get<sessions::turn>(begun);
        json::array out;
        ASSERT_FALSE(x.svc.prepare(t, history({"u4"}), out));
        EXPECT_EQ(labels_of(out), (labels{"u3", "a3", "u4"}));
        ASSERT_TRUE(run(x.svc.commit(t, history({"u4", "c4", "t4", "a4"}), t0 + 41)));
    }
    auto s = fetch(x, "chat", t0 + 42);
    EXPECT_EQ(labels_of(s.messages), (labels{"u4", "c4", "t4", "a4"}));
    EXPECT_EQ(s.version, 5);
    EXPECT_EQ(x.svc.stats().trimmed.load(), 3u);  // prepare of turn 3, prepare and commit of turn 4
}

TEST(SessionService, RejectAnswers429SessionLimitAndKeepsTheHistory) {
    rig x(sessions::settings{});
    auto lim = x.cfg.lim;
    lim.max_messages = 2;
    lim.when_full = reject;
    make(x, "k1", request("full", lim), t0);
    one_turn(x, "full", {"u1"}, {"u1", "a1"}, t0 + 10);

    auto begun = run(x.svc.begin("full", "k1", t0 + 20));
    ASSERT_TRUE(std::holds_alternative<sessions::turn>(begun)) << why(begun);
    auto& t = std::get<sessions::turn>(begun);
    json::array out;
    auto refused = x.svc.prepare(t, history({"u2"}), out);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 429);
    EXPECT_EQ(refused->code, "session_limit");
    EXPECT_EQ(refused->type, "invalid_request_error");
    EXPECT_NE(refused->message.find("max_messages 2"), std::string::npos) << refused->message;
    EXPECT_EQ(labels_of(t.s.messages), (labels{"u1", "a1"}));
    EXPECT_EQ(x.svc.stats().rejected.load(), 1u);
    run(x.svc.release(t));
    EXPECT_FALSE(t.open);
    auto s = fetch(x, "full", t0 + 21);
    EXPECT_EQ(labels_of(s.messages), (labels{"u1", "a1"}));
    EXPECT_EQ(s.version, 2);
}

TEST(SessionService, ARequestTooLargeByItselfIsRefusedEvenWithTrim) {
    rig x(sessions::settings{});
    auto lim = x.cfg.lim;
    lim.max_messages = 2;
    make(x, "k1", request("big", lim), t0);
    auto begun = run(x.svc.begin("big", "k1", t0 + 1));
    ASSERT_TRUE(std::holds_alternative<sessions::turn>(begun)) << why(begun);
    auto& t = std::get<sessions::turn>(begun);
    json::array out;
    auto refused = x.svc.prepare(t, history({"u1", "a1", "u2"}), out);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 429);
    EXPECT_EQ(refused->code, "session_limit");
    run(x.svc.release(t));
    EXPECT_TRUE(lease_free(x, "big", t0 + 2));
}

TEST(SessionService, CommitAfterTheSessionExpiredFailsAndGivesTheLeaseBack) {
    rig x(sessions::settings{});
    auto lim = x.cfg.lim;
    lim.ttl = std::chrono::seconds(10);
    make(x, "k1", request("brief", lim), t0);
    auto begun = run(x.svc.begin("brief", "k1", t0 + 1));
    ASSERT_TRUE(std::holds_alternative<sessions::turn>(begun)) << why(begun);
    auto& t = std::get<sessions::turn>(begun);
    json::array out;
    ASSERT_FALSE(x.svc.prepare(t, history({"u1"}), out));
    EXPECT_FALSE(run(x.svc.commit(t, history({"u1", "a1"}), t0 + 10'000)));
    EXPECT_FALSE(t.open);
    EXPECT_EQ(x.svc.stats().save_failures.load(), 1u);
    EXPECT_EQ(x.svc.stats().turns.load(), 0u);
    EXPECT_TRUE(lease_free(x, "brief", t0 + 10'000));
    EXPECT_EQ(error_of(run(x.svc.get("brief", "k1", t0 + 10'000))).status, 410);
}

TEST(SessionService, ListPagesNewestFirstAfterAnId) {
    rig x(sessions::settings{});
    make(x, "k1", request("s1", x.cfg.lim, "sys"), t0);
    make(x, "k1", request("s2", x.cfg.lim), t0 + 1);
    make(x, "k2", request("x1", x.cfg.lim), t0 + 2);
    make(x, "k1", request("s3", x.cfg.lim), t0 + 3);
    make(x, "k1", request("s4", x.cfg.lim), t0 + 4);
    ASSERT_FALSE(run(x.svc.erase("s4", "k1", t0 + 5)));

    auto first = run(x.svc.list("k1", "", 2, t0 + 10));
    ASSERT_TRUE(std::holds_alternative<sessions::page>(first)) << why(first);
    auto const& p1 = std::get<sessions::page>(first);
    EXPECT_EQ(ids_of(p1), (std::vector<std::string>{"s3", "s2"}));
    EXPECT_TRUE(p1.more);

    auto second = run(x.svc.list("k1", "s2", 2, t0 + 10));
    ASSERT_TRUE(std::holds_alternative<sessions::page>(second)) << why(second);
    auto const& p2 = std::get<sessions::page>(second);
    ASSERT_EQ(ids_of(p2), (std::vector<std::string>{"s1"}));
    EXPECT_FALSE(p2.more);
    EXPECT_TRUE(p2.items[0].messages.empty()) << "a page leaves the messages out";
    EXPECT_EQ(p2.items[0].message_count, 1u);
    EXPECT_EQ(p2.items[0].system, "sys");
    EXPECT_EQ(p2.items[0].owner, "k1");

    auto other = run(x.svc.list("k2", "", 10, t0 + 10));
    ASSERT_TRUE(std::holds_alternative<sessions::page>(other)) << why(other);
    EXPECT_EQ(ids_of(std::get<sessions::page>(other)), (std::vector<std::string>{"x1"}));

    auto bad = run(x.svc.list("k1", "bad id!", 2, t0 + 10));
    EXPECT_EQ(error_of(bad).status, 400);
    EXPECT_EQ(error_of(bad).code, "invalid_session_id");
}
