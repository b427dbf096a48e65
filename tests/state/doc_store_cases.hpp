#pragma once
// The state::doc_store behaviours, written once and run against every store (test_memory.cpp,
// test_sqlite.cpp, test_redis.cpp), each with its way of running a coroutine to completion (a
// callable `run(asio::awaitable<T>) -> T`). Assertions run in plain functions, never inside a
// coroutine body (GCC 12 rules, CONTRIBUTING.md).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "state/doc_store.hpp"

namespace toolgate::testing::doc_cases {

inline state::stored_doc doc(std::string id, std::string body, std::int64_t ms) {
    state::stored_doc d;
    d.id = std::move(id);
    d.body = std::move(body);
    d.updated_ms = ms;
    return d;
}

inline std::vector<std::string> ids(std::vector<state::stored_doc> const& docs) {
    std::vector<std::string> out;
    for (auto const& d : docs) out.push_back(d.id);
    return out;
}

// Insert once, replace, list by id, remove: the whole life of a definition.
template <class Run>
void insert_replace_list_remove(state::doc_store& s, Run run) {
    auto none = run(s.get("summarize"));
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
    EXPECT_FALSE(run(s.replace(doc("summarize", "{}", 1))).value());  // nothing to replace

    std::string body = R"({"slug":"summarize","model":"smart","system_prompt":"a b\nc \"quoted\" é"})";
    EXPECT_TRUE(run(s.insert(doc("summarize", body, 1'000))).value());
    EXPECT_FALSE(run(s.insert(doc("summarize", "{\"other\":1}", 2'000))).value());  // one wins; the first stays
    auto got = run(s.get("summarize")).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->id, "summarize");
    EXPECT_EQ(got->body, body);  // byte for byte
    EXPECT_EQ(got->updated_ms, 1'000);

    EXPECT_TRUE(run(s.replace(doc("summarize", "{\"v\":2}", 3'000))).value());
    got = run(s.get("summarize")).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->body, "{\"v\":2}");
    EXPECT_EQ(got->updated_ms, 3'000);

    EXPECT_TRUE(run(s.insert(doc("b-second", "{}", 4'000))).value());
    EXPECT_TRUE(run(s.insert(doc("a-first", "{}", 5'000))).value());
    auto all = run(s.list()).value();
    EXPECT_EQ(ids(all), (std::vector<std::string>{"a-first", "b-second", "summarize"}));

    EXPECT_TRUE(run(s.remove("b-second")).value());
    EXPECT_FALSE(run(s.remove("b-second")).value());
    EXPECT_FALSE(run(s.get("b-second")).value());
    EXPECT_EQ(ids(run(s.list()).value()), (std::vector<std::string>{"a-first", "summarize"}));
    // Gone, the id may be taken again.
    EXPECT_TRUE(run(s.insert(doc("b-second", "{\"again\":true}", 6'000))).value());
}

}  // namespace toolgate::testing::doc_cases
