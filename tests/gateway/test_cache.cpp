// The response cache's pure parts: the canonical key, the entry encoding, replay in both
// directions, what may be stored, semantic eligibility, and the semantic index.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <random>

#include "gateway/policy/cache_parts.hpp"
#include "gateway/policy/semantic_index.hpp"

namespace json = boost::json;
namespace cd = toolgate::gateway::policy::cache_detail;
using toolgate::gateway::policy::semantic_index;

namespace {

json::object obj(std::string_view text) { return json::parse(text).as_object(); }
std::string fp(std::string_view body, bool without_last = false) { return cd::request_fingerprint(obj(body), without_last); }

}  // namespace

TEST(CacheKey, IgnoresKeyOrderWhitespaceAndNumberForms) {
    auto a = fp(R"({"model":"m","temperature":1,"top_p":0.5,"messages":[{"role":"user","content":"hi"}]})");
    EXPECT_EQ(a, fp(R"({ "messages" : [ {"content":"hi", "role":"user"} ], "top_p": 0.50, "temperature": 1.0, "model":"m" })"));
    EXPECT_EQ(a, fp(R"({"temperature":1e0,"top_p":5e-1,"messages":[{"role":"user","content":"hi"}],"model":"m"})"));
    EXPECT_NE(a, fp(R"({"model":"m","temperature":1.5,"top_p":0.5,"messages":[{"role":"user","content":"hi"}]})"));
    EXPECT_NE(a, fp(R"({"model":"m","temperature":1,"top_p":0.5,"messages":[{"role":"user","content":"Hi"}]})"));
    // Array order is meaning: kept.
    EXPECT_NE(fp(R"({"stop":["a","b"]})"), fp(R"({"stop":["b","a"]})"));
    std::string out;
    cd::canonical_json(json::parse(R"({"b":[1,2.5,-0.0,null,true],"a":{"y":"\u00e9","x":"\n"}})"), out);
    EXPECT_EQ(out, R"({"a":{"x":"\n","y":"é"},"b":[1,2.5,0,null,true]})");
}

TEST(CacheKey, LeavesOutWhatDoesNotDecideTheAnswer) {
    auto a = fp(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]})");
    EXPECT_EQ(a, fp(R"({"model":"other","stream":true,"stream_options":{"include_usage":true},"user":"u1","metadata":{"a":"b"},"store":true,
                        "messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]})"));
    EXPECT_NE(a, fp(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})"));  // tools decide
    EXPECT_NE(a, fp(R"({"model":"m","tool_choice":"required","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]})"));
    EXPECT_NE(a, fp(R"({"model":"m","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]})"));
    // Semantic mode's context: everything but the last message's content.
    EXPECT_EQ(fp(R"({"messages":[{"role":"user","content":"one"}]})", true), fp(R"({"messages":[{"role":"user","content":"two"}]})", true));
    EXPECT_NE(fp(R"({"messages":[{"role":"system","content":"a"},{"role":"user","content":"one"}]})", true),
              fp(R"({"messages":[{"role":"system","content":"b"},{"role":"user","content":"one"}]})", true));
}

TEST(CacheKey, ToolCallIdsOnlyPairCallsWithResults) {
    // Calls a and b; results for r1 then r2.
    auto loop = [](std::string_view a, std::string_view b, std::string_view r1, std::string_view r2) {
        return std::string(R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,"tool_calls":[)") +
               R"({"id":")" + std::string(a) + R"(","type":"function","function":{"name":"f","arguments":"{}"}},)" +
               R"({"id":")" + std::string(b) + R"(","type":"function","function":{"name":"g","arguments":"{}"}}]},)" +
               R"({"role":"tool","tool_call_id":")" + std::string(r1) + R"(","content":"1"},)" +
               R"({"role":"tool","tool_call_id":")" + std::string(r2) + R"(","content":"2"}]})";
    };
    EXPECT_EQ(fp(loop("call_x", "call_y", "call_x", "call_y")), fp(loop("call_p", "call_q", "call_p", "call_q")));
    // Which result belongs to which call still matters.
    EXPECT_NE(fp(loop("call_x", "call_y", "call_x", "call_y")), fp(loop("call_x", "call_y", "call_y", "call_x")));
}

TEST(CacheReplay, ToolCallsGetFreshIdsConsistentWithinOneReplay) {
    std::vector<std::pair<std::string, std::string>> renamed;
    auto first = obj(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_old","type":"function"}]}}]})");
    auto again = obj(R"({"choices":[{"index":0,"message":{"tool_calls":[{"id":"call_old"},{"id":"call_two"}]}}]})");
    EXPECT_TRUE(cd::refresh_call_ids(first, renamed));
    EXPECT_TRUE(cd::refresh_call_ids(again, renamed));
    auto id1 = first.at("choices").as_array()[0].at("delta").at("tool_calls").as_array()[0].at("id").as_string();
    auto const& calls = again.at("choices").as_array()[0].at("message").at("tool_calls").as_array();
    EXPECT_NE(id1, "call_old");
    EXPECT_TRUE(id1.starts_with("call_"));
    EXPECT_EQ(calls[0].at("id").as_string(), id1);
    EXPECT_NE(calls[1].at("id").as_string(), id1);
    auto plain = obj(R"({"choices":[{"index":0,"delta":{"content":"x"}}]})");
    EXPECT_FALSE(cd::refresh_call_ids(plain, renamed));
    // Stored provider and model names become headers: nothing that could end a header line.
    EXPECT_FALSE(cd::decode(R"({"v":1,"provider":"p
x-evil: 1","model":"m","usage":[0,0,false],"response":"{}"})"));
}

TEST(CacheKey, BindsScopeRouteAndModelIntoTheKeyWithErasablePrefixes) {
    auto k = cd::entry_key("key:a", "gpt", "openai/gpt", "{}");
    EXPECT_EQ(k, cd::entry_key("key:a", "gpt", "openai/gpt", "{}"));
    EXPECT_NE(k, cd::entry_key("key:b", "gpt", "openai/gpt", "{}"));
    EXPECT_NE(k, cd::entry_key("key:a", "gpt", "azure/gpt", "{}"));
    EXPECT_TRUE(k.starts_with(cd::short_hash("key:a") + ":" + cd::short_hash("gpt") + ":"));
    EXPECT_EQ(k.size(), 16 + 1 + 16 + 1 + 64u);
}

TEST(CacheEntry, EncodesAndDecodesBothForms) {
    cd::cached_answer a;
    a.provider = "openai";
    a.model = "gpt-4o";
    a.tokens = {12, 5, true};
    a.chunks = {R"({"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]})"};
    auto back = cd::decode(cd::encode(a));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->provider, "openai");
    EXPECT_EQ(back->chunks, a.chunks);
    EXPECT_EQ(back->tokens.prompt_tokens, 12);
    EXPECT_TRUE(back->tokens.present);
    a.chunks.clear();
    a.response = R"({"id":"x"})";
    back = cd::decode(cd::encode(a));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->response, a.response);
    EXPECT_FALSE(cd::decode("not json"));
    EXPECT_FALSE(cd::decode(R"({"v":2,"response":"{}"})"));
    EXPECT_FALSE(cd::decode(R"({"v":1})"));
}

TEST(CacheReplay, AJsonAnswerBecomesAStreamTheSdkReads) {
    cd::cached_answer a;
    a.tokens = {10, 4, true};
    a.response = R"({"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"gpt","system_fingerprint":"fp",
        "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
          {"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}],
        "usage":{"prompt_tokens":10,"completion_tokens":4,"total_tokens":14}})";
    auto chunks = cd::replay_chunks(a, true);
    ASSERT_EQ(chunks.size(), 3u);
    auto first = obj(chunks[0]);
    EXPECT_EQ(first.at("object"), "chat.completion.chunk");
    EXPECT_EQ(first.at("id"), "chatcmpl-1");
    EXPECT_EQ(first.at("system_fingerprint"), "fp");
    auto const& delta = first.at("choices").as_array()[0].at("delta").as_object();
    EXPECT_EQ(delta.at("role"), "assistant");
    EXPECT_FALSE(delta.contains("content"));
    auto const& call = delta.at("tool_calls").as_array()[0].as_object();
    EXPECT_EQ(call.at("index"), 0);
    EXPECT_EQ(call.at("function").at("arguments"), "{\"a\":1}");
    EXPECT_EQ(obj(chunks[1]).at("choices").as_array()[0].at("finish_reason"), "tool_calls");
    auto usage = obj(chunks[2]);
    EXPECT_TRUE(usage.at("choices").as_array().empty());
    EXPECT_EQ(usage.at("usage").at("total_tokens"), 14);
    EXPECT_EQ(cd::replay_chunks(a, false).size(), 2u);
    // And back: the same message.
    cd::cached_answer s;
    s.chunks = cd::replay_chunks(a, false);
    s.tokens = a.tokens;
    auto r = cd::replay_response(s);
    auto orig = obj(a.response);
    EXPECT_EQ(r.at("choices").as_array()[0].at("message"), orig.at("choices").as_array()[0].at("message"));
    EXPECT_EQ(r.at("usage"), orig.at("usage"));
}

TEST(CacheReplay, AStreamIsAssembledIntoOneAnswer) {
    cd::cached_answer a;
    a.tokens = {3, 2, true};
    a.chunks = {
        R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})",
        R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]})",
        R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"lo"}}]})",
        R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"f","arguments":"{\"x\""}}]}}]})",
        R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":2}"}}]}}]})",
        R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
    };
    auto r = cd::replay_response(a);
    EXPECT_EQ(r.at("object"), "chat.completion");
    EXPECT_EQ(r.at("id"), "c1");
    auto const& c = r.at("choices").as_array()[0].as_object();
    EXPECT_EQ(c.at("finish_reason"), "tool_calls");
    EXPECT_EQ(c.at("message").at("content"), "Hello");
    auto const& call = c.at("message").at("tool_calls").as_array()[0];
    EXPECT_EQ(call.at("id"), "t1");
    EXPECT_EQ(call.at("function").at("arguments"), "{\"x\":2}");
    EXPECT_EQ(r.at("usage").at("prompt_tokens"), 3);
    EXPECT_TRUE(cd::storable(r));
    // The recorded chunks replay as they were, plus a usage chunk when asked.
    auto chunks = cd::replay_chunks(a, true);
    ASSERT_EQ(chunks.size(), a.chunks.size() + 1);
    EXPECT_EQ(chunks[2], a.chunks[2]);
    EXPECT_EQ(obj(chunks.back()).at("id"), "c1");
}

TEST(CacheStore, OnlyCompleteAnswersAreStorable) {
    EXPECT_TRUE(cd::storable(obj(R"({"choices":[{"index":0,"message":{"content":"a"},"finish_reason":"stop"}]})")));
    EXPECT_FALSE(cd::storable(obj(R"({"choices":[{"index":0,"message":{"content":"a"},"finish_reason":"length"}]})")));
    EXPECT_FALSE(cd::storable(obj(R"({"choices":[{"index":0,"message":{"content":"a"},"finish_reason":"content_filter"}]})")));
    EXPECT_FALSE(cd::storable(obj(R"({"choices":[{"index":0,"message":{"content":"a"},"finish_reason":null}]})")));
    EXPECT_FALSE(cd::storable(obj(R"({"choices":[]})")));
    EXPECT_FALSE(cd::storable(obj(R"({"choices":[{"index":0,"message":{"content":"a"},"finish_reason":"stop"},
                                                 {"index":1,"message":{"content":"b"},"finish_reason":"stop"}]})"), 2));
    EXPECT_TRUE(cd::storable(obj(R"({"choices":[{"index":0,"message":{"content":"a"},"finish_reason":"stop"},
                                                {"index":1,"message":{"content":"a"},"finish_reason":"stop"}]})"), 2));
    // A stream cut before the second choice came: not the n the request asked for.
    EXPECT_FALSE(cd::storable(obj(R"({"choices":[{"index":0,"message":{"content":"a"},"finish_reason":"stop"}]})"), 2));
    EXPECT_EQ(cd::choices_asked(obj(R"({"n":3})")), 3u);
    EXPECT_EQ(cd::choices_asked(obj(R"({"n":-1})")), 1u);
    EXPECT_TRUE(cd::usage_only(obj(R"({"choices":[],"usage":{"prompt_tokens":1}})")));
    EXPECT_FALSE(cd::usage_only(obj(R"({"choices":[{"index":0,"delta":{}}],"usage":null})")));
}

TEST(CacheSemantic, OnlyShortConversationsEndingInPlainUserText) {
    auto body = [](std::string_view messages) { return obj(std::string(R"({"messages":)") + std::string(messages) + "}"); };
    EXPECT_EQ(cd::semantic_text(body(R"([{"role":"system","content":"s"},{"role":"user","content":"q"}])"), 1), "q");
    EXPECT_EQ(cd::semantic_text(body(R"([{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}])"), 3), "a\nb");
    EXPECT_FALSE(cd::semantic_text(body(R"([{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}])"), 2));
    EXPECT_FALSE(cd::semantic_text(body(R"([{"role":"user","content":"a"},{"role":"tool","content":"b"}])"), 3));
    EXPECT_FALSE(cd::semantic_text(body(R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}])"), 3));
}

TEST(CacheControl, ReadsNoStoreAndNoCache) {
    EXPECT_TRUE(cd::parse_cache_control("no-store").no_store);
    auto d = cd::parse_cache_control("max-age=0, No-Cache");
    EXPECT_TRUE(d.no_cache);
    EXPECT_FALSE(d.no_store);
    EXPECT_FALSE(cd::parse_cache_control("").no_cache);
    EXPECT_FALSE(cd::parse_cache_control("no-stored").no_store);
}

TEST(SemanticIndex, FindsTheBestAboveTheThresholdWithinOneGroup) {
    semantic_index idx(100);
    idx.add("g", "k1", {1, 0, 0}, 1000);
    idx.add("g", "k2", {1, 1, 0}, 1000);
    idx.add("other", "k3", {0, 1, 0}, 1000);
    auto m = idx.best("g", {2, 0.1f, 0}, 0.9f, 0);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->key, "k1");
    EXPECT_GT(m->score, 0.99f);
    EXPECT_FALSE(idx.best("g", {0, 0, 1}, 0.5f, 0));
    EXPECT_FALSE(idx.best("g", {0, 1, 0}, 0.9f, 0));      // k3 is in another group
    EXPECT_FALSE(idx.best("g", {1, 0}, 0.5f, 0));         // another length
    EXPECT_FALSE(idx.best("g", {1, 0, 0}, 0.9f, 1000));   // lapsed
    auto diagonal = idx.best("g", {1, 1, 0}, 0.5f, 0);  // k1 at 45 degrees, k2 the same direction
    ASSERT_TRUE(diagonal);
    EXPECT_EQ(diagonal->key, "k2");
    EXPECT_FLOAT_EQ(idx.best("g", {1, 0, 1}, 0.5f, 0)->score, float(1 / std::sqrt(2.0)));  // only k1 near
}

TEST(SemanticIndex, IsBoundedOldestFirstAndErasable) {
    semantic_index idx(3);
    for (int i = 0; i < 5; ++i) idx.add("g", "s:m:" + std::to_string(i), {1, float(i), 0}, 1000);
    EXPECT_EQ(idx.size(), 3u);
    EXPECT_FALSE(idx.best("g", {1, 0, 0}, 0.999f, 0));  // s:m:0 went first
    idx.add("g", "t:m:9", {0, 0, 1}, 1000);
    idx.erase("s", "");
    EXPECT_EQ(idx.size(), 1u);
    EXPECT_TRUE(idx.best("g", {0, 0, 1}, 0.9f, 0));
    idx.add("g", "zero", {0, 0, 0}, 1000);  // no direction: not kept
    EXPECT_EQ(idx.size(), 1u);
    // Many clears between adds never let the bound slip.
    for (int round = 0; round < 50; ++round) {
        for (int i = 0; i < 10; ++i) idx.add("g", "u:m:" + std::to_string(round * 10 + i), {1, float(i), 2}, 1000);
        if (round % 2) idx.erase("u", "");
    }
    EXPECT_LE(idx.size(), 3u);
}

TEST(SemanticIndex, ALargeGroupMovesIntoAGraphAndStillFindsItsNeighbours) {
    semantic_index idx(10'000, 64);
    std::mt19937 rng(7);
    std::normal_distribution<float> gauss;
    std::vector<std::vector<float>> vs;
    for (int i = 0; i < 1000; ++i) {
        std::vector<float> v(32);
        for (auto& x : v) x = gauss(rng);
        vs.push_back(v);
        idx.add("g", "s:m:" + std::to_string(i), v, 1000);
    }
    idx.wait_idle();
    EXPECT_EQ(idx.graph_groups(), 1u);
    EXPECT_EQ(idx.size(), 1000u);
    int found = 0;
    for (int i = 0; i < 1000; i += 10) {
        auto q = vs[i];
        q[0] += 0.01f;  // a near neighbour, not the vector itself
        auto m = idx.best("g", q, 0.99f, 0);
        if (m && m->key == "s:m:" + std::to_string(i)) ++found;
    }
    EXPECT_GE(found, 98);  // recall of the graph search
    EXPECT_FALSE(idx.best("g", vs[3], 0.9f, 1000));  // lapsed
    // Replacing, erasing and growing past the graph's first capacity keep it consistent.
    idx.add("g", "s:m:5", vs[6], 2000);
    idx.wait_idle();
    auto m = idx.best("g", vs[6], 0.999f, 1500);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->key, "s:m:5");
    idx.erase("s", "");
    EXPECT_EQ(idx.size(), 0u);
    EXPECT_FALSE(idx.best("g", vs[6], 0.5f, 0));
    for (int i = 0; i < 3000; ++i) idx.add("g", "t:m:" + std::to_string(i), vs[i % 1000], 1000 + i);
    idx.wait_idle();
    EXPECT_EQ(idx.size(), 3000u);
    auto again = idx.best("g", vs[999], 0.999f, 0);
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->key == "t:m:999" || again->key == "t:m:1999" || again->key == "t:m:2999") << again->key;
}

TEST(SemanticIndex, TheGraphIsBoundedOldestFirst) {
    semantic_index idx(500, 32);
    std::mt19937 rng(9);
    std::normal_distribution<float> gauss;
    std::vector<float> first;
    for (int i = 0; i < 2000; ++i) {
        std::vector<float> v(16);
        for (auto& x : v) x = gauss(rng);
        if (i == 0) first = v;
        idx.add("g", "s:m:" + std::to_string(i), v, 1000);
    }
    idx.wait_idle();
    EXPECT_EQ(idx.size(), 500u);
    auto m = idx.best("g", first, 0.999f, 0);
    EXPECT_FALSE(m && m->key == "s:m:0");
}
