// Hybrid turns without a session (sessions/hybrid.hpp): the keys, the slots and the splice as plain
// functions, then the store in this process and on a store two "replicas" share (a memory cache
// store standing in for Redis; the real Redis is in tests/e2e/sessions.test.mjs), and a shared
// store that does not answer. Values are built in plain functions and test bodies, never inside a
// coroutine body (GCC 12 rules, CONTRIBUTING.md).
#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "sessions/hybrid.hpp"
#include "state/cache_store.hpp"
#include "state/errors.hpp"

namespace sessions = toolgate::sessions;
namespace state = toolgate::state;
namespace json = boost::json;
namespace asio = boost::asio;

namespace {

template <class T>
T run(asio::awaitable<T> a) {
    asio::io_context ioc;
    auto f = asio::co_spawn(ioc, std::move(a), asio::use_future);
    ioc.run();
    return f.get();
}

// What the loop added on its own, ending with the assistant message that holds client call c1.
json::array transcript() {
    return json::parse(R"([
        {"role":"assistant","content":null,"tool_calls":[{"id":"g1","type":"function","function":{"name":"srv","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"g1","content":"server says"},
        {"role":"assistant","content":"x","tool_calls":[{"id":"g2","type":"function","function":{"name":"srv","arguments":"{}"}},
                                                         {"id":"c1","type":"function","function":{"name":"cli","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"g2","content":"again"}])")
        .as_array();
}

// The follow-up as the client sends it: its assistant message has only its own call.
json::array follow_up() {
    return json::parse(R"([{"role":"user","content":"hi"},
        {"role":"assistant","content":"x","tool_calls":[{"id":"c1","type":"function","function":{"name":"cli","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"c1","content":"client says"}])")
        .as_array();
}

std::vector<std::string> ids(std::initializer_list<char const*> l) { return std::vector<std::string>(l.begin(), l.end()); }

// A shared store that never answers (Redis away).
class failing_store final : public state::cache_store {
public:
    std::string_view kind() const override { return "failing"; }
    asio::awaitable<state::result<state::cache_value>> get(std::string const&, std::int64_t) override {
        co_return make_error_code(state::errc::timeout);
    }
    asio::awaitable<state::result<void>> put(std::string const&, std::string, std::string const&, std::int64_t,
                                             std::int64_t) override {
        co_return make_error_code(state::errc::timeout);
    }
    asio::awaitable<state::result<std::uint64_t>> erase(std::string const&, std::string const&) override {
        co_return make_error_code(state::errc::timeout);
    }
};

}  // namespace

TEST(hybrid_key, is_one_per_caller_and_set_of_ids_in_any_order) {
    EXPECT_EQ(sessions::hybrid_key("k1", ids({"a", "b"})), sessions::hybrid_key("k1", ids({"b", "a"})));
    EXPECT_NE(sessions::hybrid_key("k1", ids({"a", "b"})), sessions::hybrid_key("k2", ids({"a", "b"})));
    EXPECT_NE(sessions::hybrid_key("k1", ids({"ab"})), sessions::hybrid_key("k1", ids({"a", "b"})));
    EXPECT_EQ(sessions::hybrid_key("k1", ids({"a"})).size(), 64u);  // hex SHA-256: no id text in a store key
}

TEST(hybrid_slots, are_the_assistant_messages_with_tool_calls_newest_kept_when_bounded) {
    auto m = json::parse(R"([{"role":"user","content":"q"},
        {"role":"assistant","tool_calls":[{"id":"x1"}]},{"role":"tool","tool_call_id":"x1","content":"r"},
        {"role":"assistant","content":"no calls"},
        {"role":"assistant","tool_calls":[{"id":"x2"}]},{"role":"tool","tool_call_id":"x2","content":"r"},
        {"role":"user","tool_calls":[{"id":"x3"}]}, "not an object"])")
                 .as_array();
    auto all = sessions::hybrid_slots(m, "s", 16);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].index, 1u);
    EXPECT_EQ(all[1].index, 4u);
    EXPECT_EQ(all[1].key, sessions::hybrid_key("s", ids({"x2"})));
    auto newest = sessions::hybrid_slots(m, "s", 1);
    ASSERT_EQ(newest.size(), 1u);
    EXPECT_EQ(newest[0].index, 4u);
}

TEST(hybrid_turns, expands_the_clients_assistant_message_into_the_full_transcript) {
    sessions::hybrid_turns h;
    run(h.remember("k1", ids({"c1"}), transcript()));
    auto messages = follow_up();
    EXPECT_EQ(run(h.expand("k1", messages)), 1u);
    ASSERT_EQ(messages.size(), 6u);
    EXPECT_EQ(messages[0].at("role"), "user");
    EXPECT_EQ(messages[1].at("tool_calls").as_array()[0].at("id"), "g1");
    EXPECT_EQ(messages[4].at("tool_call_id"), "g2");
    EXPECT_EQ(messages[5].at("tool_call_id"), "c1");
    EXPECT_EQ(h.stats().expanded.load(), 1u);
}

TEST(hybrid_turns, leaves_another_callers_and_unknown_follow_ups_exactly_as_they_were) {
    sessions::hybrid_turns h;
    run(h.remember("k1", ids({"c1"}), transcript()));
    auto other = follow_up();
    auto copy = other;
    EXPECT_EQ(run(h.expand("k2", other)), 0u);  // another key names the same call ids: nothing
    EXPECT_EQ(other, copy);
    auto unknown = json::parse(R"([{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"zz"}]},
                                   {"role":"tool","tool_call_id":"zz","content":"r"}])")
                       .as_array();
    copy = unknown;
    EXPECT_EQ(run(h.expand("k1", unknown)), 0u);
    EXPECT_EQ(unknown, copy);
    // Nothing is kept without client calls, or without a transcript.
    run(h.remember("k1", {}, transcript()));
    run(h.remember("k1", ids({"c9"}), json::array()));
    EXPECT_EQ(h.stats().remembered.load(), 1u);
}

TEST(hybrid_turns, a_follow_up_on_another_replica_finds_the_transcript_in_the_shared_store) {
    auto shared = state::make_memory_cache(1 << 20);
    sessions::hybrid_turns a(shared), b(shared);
    run(a.remember("k1", ids({"c1"}), transcript()));
    auto messages = follow_up();
    EXPECT_EQ(run(b.expand("k1", messages)), 1u);
    EXPECT_EQ(messages.size(), 6u);
    EXPECT_EQ(b.stats().shared_hits.load(), 1u);
    // A value in the shared store that is not a transcript is not spliced in.
    std::string junk = R"({"not":"an array"})";
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
    shared->put_now(sessions::hybrid_key("k1", ids({"zz"})), junk, "hybrid", 60'000, now.count());
    ASSERT_TRUE(shared->get_now(sessions::hybrid_key("k1", ids({"zz"})), now.count()).value());
    auto m2 = json::parse(R"([{"role":"assistant","tool_calls":[{"id":"zz"}]},{"role":"tool","tool_call_id":"zz","content":"r"}])")
                  .as_array();
    EXPECT_EQ(run(b.expand("k1", m2)), 0u);
}

TEST(hybrid_turns, a_shared_store_that_does_not_answer_leaves_this_replicas_copy_working) {
    sessions::hybrid_turns h(std::make_shared<failing_store>());
    run(h.remember("k1", ids({"c1"}), transcript()));
    EXPECT_EQ(h.stats().store_errors.load(), 1u);
    auto messages = follow_up();
    EXPECT_EQ(run(h.expand("k1", messages)), 1u);  // found here, no shared read needed
    auto unknown = json::parse(R"([{"role":"assistant","tool_calls":[{"id":"zz"}]},{"role":"tool","tool_call_id":"zz","content":"r"}])")
                       .as_array();
    EXPECT_EQ(run(h.expand("k1", unknown)), 0u);  // a miss asks the shared store, which fails: no expansion, no error
    EXPECT_EQ(h.stats().store_errors.load(), 2u);
}

#include "sessions/responses.hpp"

TEST(stored_responses, a_long_conversation_loses_its_oldest_turns_and_never_starts_with_a_tool_result) {
    auto conv = json::parse(R"([{"role":"user","content":"aaaaaaaaaaaaaaaaaaaa"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"c","content":"result"},{"role":"user","content":"q2"},{"role":"assistant","content":"a2"}])")
                    .as_array();
    auto all = conv;
    EXPECT_TRUE(sessions::fit_conversation(all, 10'000));
    EXPECT_EQ(all.size(), 5u);
    auto some = conv;
    EXPECT_TRUE(sessions::fit_conversation(some, 80));  // the first two go, and the orphaned tool result too
    ASSERT_EQ(some.size(), 2u);
    EXPECT_EQ(some[0].at("content"), "q2");
    auto none = conv;
    EXPECT_FALSE(sessions::fit_conversation(none, 5));
}
