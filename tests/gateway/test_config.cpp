#include <gtest/gtest.h>

#include <map>

#include "common/duration.hpp"
#include "gateway/config_parse.hpp"
#include "gateway/policy/cache.hpp"
#include "gateway/policy/guardrails.hpp"

using namespace toolgate;
using namespace toolgate::gateway;

namespace {

env_lookup fake_env(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](std::string const& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}

std::string error_of(std::string const& yaml, std::map<std::string, std::string> env = {}) {
    try {
        parse_config(yaml, "test.yaml", fake_env(std::move(env)));
    } catch (config_error const& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(config, parses_the_documented_shape) {
    auto cfg = parse_config(R"(
server: { listen: "127.0.0.1:9090", max_body_bytes: 1048576, request_timeout: 120s }
providers:
  - name: local
    type: openai
    base_url: http://127.0.0.1:9000/v1
    api_key: ${LOCAL_KEY}
    models: [mock-1, mock-2]
    timeout: 1500ms
)",
                            "test.yaml", fake_env({{"LOCAL_KEY", "sk-test"}}));
    EXPECT_EQ(cfg.server.listen.host, "127.0.0.1");
    EXPECT_EQ(cfg.server.listen.port, 9090);
    EXPECT_EQ(cfg.server.max_body_bytes, 1048576u);
    EXPECT_EQ(cfg.server.request_timeout, std::chrono::seconds(120));
    ASSERT_EQ(cfg.providers.size(), 1u);
    EXPECT_EQ(cfg.providers[0].api_key, "sk-test");
    EXPECT_EQ(cfg.providers[0].models, (std::vector<std::string>{"mock-1", "mock-2"}));
    EXPECT_EQ(cfg.providers[0].timeout, std::chrono::milliseconds(1500));
}

TEST(config, unknown_key_is_rejected_with_line_and_path) {
    auto err = error_of("server:\n  listen: 127.0.0.1:1\n  lisen: x\n");
    EXPECT_NE(err.find("test.yaml:3"), std::string::npos) << err;
    EXPECT_NE(err.find("server.lisen"), std::string::npos) << err;
    EXPECT_NE(err.find("unknown key"), std::string::npos) << err;
}

TEST(config, unknown_top_level_key_is_rejected) {
    auto err = error_of("servers: {}\n");
    EXPECT_NE(err.find("servers"), std::string::npos) << err;
}

TEST(config, provider_errors_name_the_provider) {
    EXPECT_NE(error_of("providers:\n  - name: a\n    type: nope\n").find("unknown provider type"), std::string::npos);
    EXPECT_NE(error_of("providers:\n  - type: openai\n").find("'name' is required"), std::string::npos);
    EXPECT_NE(error_of("providers:\n  - name: a\n    type: openai\n").find("base_url is required"), std::string::npos);
    auto dup = error_of(
        "providers:\n  - {name: a, type: scripted}\n  - {name: a, type: scripted}\n");
    EXPECT_NE(dup.find("duplicate provider name"), std::string::npos) << dup;
    auto bad = error_of("providers:\n  - name: a\n    type: openai\n    base_url: http://x\n    modelz: []\n");
    EXPECT_NE(bad.find("providers[0]"), std::string::npos) << bad;
    EXPECT_NE(bad.find("modelz"), std::string::npos) << bad;
    auto rule = error_of("providers:\n  - name: a\n    type: scripted\n    rules:\n      - when: x\n");
    EXPECT_NE(rule.find("rules[0] needs a reply or a tool_call"), std::string::npos) << rule;
}

TEST(config, bad_values_are_explained) {
    EXPECT_NE(error_of("server: { listen: nonsense }").find("HOST:PORT"), std::string::npos);
    EXPECT_NE(error_of("server: { request_timeout: soon }").find("duration"), std::string::npos);
    EXPECT_NE(error_of("server: { max_body_bytes: -5 }").find("whole number"), std::string::npos);
    EXPECT_NE(error_of("server: [1, 2]").find("mapping"), std::string::npos);
    EXPECT_NE(error_of("server: {listen: \"a\"\n").find("invalid YAML"), std::string::npos);
}

TEST(config, env_expansion) {
    auto env = fake_env({{"A", "1"}, {"EMPTY", ""}});
    EXPECT_EQ(expand_env("x${A}y", env), "x1y");
    EXPECT_EQ(expand_env("${MISSING}", env), "");
    EXPECT_EQ(expand_env("${MISSING:-dflt}", env), "dflt");
    EXPECT_EQ(expand_env("${EMPTY:-dflt}", env), "dflt");
    EXPECT_EQ(expand_env("$${A}", env), "${A}");
    EXPECT_THROW(expand_env("${A", env), config_error);
    EXPECT_THROW(expand_env("${A B}", env), config_error);
}

TEST(config, providers_from_environment) {
    auto cfg = parse_config("providers:\n  - {name: demo, type: scripted}\n", "t",
                            fake_env({{"OPENAI_API_KEY", "sk-x"}, {"MISTRAL_API_KEY", ""}}));
    ASSERT_EQ(cfg.providers.size(), 2u);
    EXPECT_EQ(cfg.providers[1].name, "openai");
    EXPECT_EQ(cfg.providers[1].base_url, "https://api.openai.com/v1");
    EXPECT_EQ(cfg.providers[1].api_key, "sk-x");
    auto off = parse_config("providers_from_env: false\n", "t", fake_env({{"OPENAI_API_KEY", "sk-x"}}));
    EXPECT_TRUE(off.providers.empty());
}

TEST(config, listen_forms) {
    EXPECT_EQ(parse_listen("0.0.0.0:80")->host, "0.0.0.0");
    EXPECT_EQ(parse_listen(":8081")->host, "127.0.0.1");
    EXPECT_EQ(parse_listen("[::1]:8081")->host, "::1");
    EXPECT_EQ(parse_listen("[::1]:8081")->port, 8081);
    EXPECT_FALSE(parse_listen("host:99999"));
    EXPECT_FALSE(parse_listen("host"));
    EXPECT_FALSE(parse_listen("::1:80"));
}

TEST(duration, units) {
    EXPECT_EQ(*parse_duration("300s"), std::chrono::seconds(300));
    EXPECT_EQ(*parse_duration("1500ms"), std::chrono::milliseconds(1500));
    EXPECT_EQ(*parse_duration("5m"), std::chrono::minutes(5));
    EXPECT_EQ(*parse_duration("2.5s"), std::chrono::milliseconds(2500));
    EXPECT_EQ(*parse_duration("7"), std::chrono::seconds(7));
    EXPECT_EQ(*parse_duration("30d"), std::chrono::hours(30 * 24));
    EXPECT_FALSE(parse_duration("-1s"));
    EXPECT_FALSE(parse_duration("1 parsec"));
    EXPECT_FALSE(parse_duration(""));
    EXPECT_FALSE(parse_duration("999999h"));
}

TEST(config, agent_loop_limits_and_prices) {
    auto cfg = parse_config(R"(
server: { request_timeout: 100s }
providers:
  - name: local
    type: openai
    base_url: http://127.0.0.1:9000/v1
    prices: { img-x: { per_image: 0.25 }, gpt-x: { input: 2.5, output: 10 } }
agent_loop:
  max_iterations: 4
  tool_timeout: 5s
  max_tool_calls_per_turn: 3
  max_parallel_tools: 2
  max_tool_result_bytes: 4096
  max_total_tokens: 100000
  max_cost_usd: 0.5
  keepalive_interval: 2s
)",
                            "t.yaml", fake_env({}));
    auto const& l = cfg.agent_loop.limits;
    EXPECT_TRUE(cfg.agent_loop.inject_tools);
    EXPECT_EQ(l.max_iterations, 4u);
    EXPECT_EQ(l.tool_timeout, std::chrono::seconds(5));
    EXPECT_EQ(l.loop_timeout, std::chrono::seconds(80));  // 4/5 of request_timeout by default
    EXPECT_EQ(l.max_tool_calls_per_turn, 3u);
    EXPECT_EQ(l.max_parallel_tools, 2u);
    EXPECT_EQ(l.max_tool_result_bytes, 4096u);
    EXPECT_EQ(l.max_total_tokens, 100000);
    EXPECT_DOUBLE_EQ(l.max_cost_usd, 0.5);
    EXPECT_EQ(l.keepalive_interval, std::chrono::seconds(2));
    providers::usage u{1'000'000, 100'000, true};
    EXPECT_DOUBLE_EQ(cfg.providers[0].cost("gpt-x", u), 2.5 + 1.0);
    EXPECT_DOUBLE_EQ(cfg.providers[0].cost("other", u), 0.0);
    EXPECT_DOUBLE_EQ(cfg.providers[0].cost("img-x", providers::usage{}, 2), 0.5);

    EXPECT_NE(error_of("agent_loop: { loop_timeout: 400s }").find("agent_loop.loop_timeout: must be shorter than server.request_timeout"),
              std::string::npos);
    EXPECT_NE(error_of("agent_loop: { max_iterations: 0 }").find("test.yaml:1: agent_loop.max_iterations: must be between 1"),
              std::string::npos)
        << error_of("agent_loop: { max_iterations: 0 }");
    EXPECT_NE(error_of("agent_loop: { max_cost_usd: cheap }").find("must be a number"), std::string::npos);
    EXPECT_NE(error_of("agent_loop: { max_turns: 3 }").find("unknown key"), std::string::npos);
    EXPECT_NE(error_of("providers: [{ name: a, type: openai, base_url: 'http://x', prices: { m: { in: 1 } } }]").find("prices.m.in: unknown key"),
              std::string::npos);
}

TEST(config, mcp_front_and_client_features) {
    auto cfg = parse_config(R"(
mcp_front:
  path: /tools-mcp
  session_idle_timeout: 5m
  keys:
    - { name: ide, key: "0123456789abcdef", tools: ["fs__*"] }
mcp_servers:
  - { name: fs, command: /bin/true, client_features: [sampling, roots], max_client_sessions: 4 }
  - { name: plain, command: /bin/true }
  - { name: shared, command: /bin/true, client_features: [] }
)",
                            "test.yaml", fake_env({}));
    EXPECT_EQ(cfg.mcp_front.path, "/tools-mcp");
    EXPECT_EQ(cfg.mcp_front.session_idle_timeout, std::chrono::minutes(5));
    ASSERT_EQ(cfg.mcp_front.keys.size(), 1u);
    EXPECT_EQ(cfg.mcp_front.keys[0].tools->at(0), "fs__*");
    EXPECT_EQ(cfg.mcp_servers[0].client_features, (std::vector<std::string>{"sampling", "roots"}));
    EXPECT_EQ(cfg.mcp_servers[0].max_client_sessions, 4u);
    // By default a client's declared features may reach every server; [] keeps a server shared.
    EXPECT_EQ(cfg.mcp_servers[1].client_features, (std::vector<std::string>{"sampling", "elicitation", "roots"}));
    EXPECT_EQ(cfg.mcp_servers[1].max_client_sessions, 32u);
    EXPECT_TRUE(cfg.mcp_servers[2].client_features.empty());
    EXPECT_NE(error_of("mcp_servers: [{ name: a, command: x, client_features: [telepathy] }]").find("not one of sampling"),
              std::string::npos);
    EXPECT_NE(error_of("mcp_front: { bearer_token: short }").find("at least 16"), std::string::npos);
    EXPECT_NE(error_of("mcp_front: { path: /v1/mcp }").find("mcp_front.path"), std::string::npos);
}

TEST(config, response_cache_plugin) {
    auto cfg = parse_config(R"(
plugins:
  - name: response-cache
    config:
      mode: semantic
      ttl: 5m
      max_bytes: 64MiB
      scope: team
      semantic: { embedding_model: text-embedding-3-small, threshold: 0.95, max_messages: 2 }
)", "test.yaml", fake_env({}));
    ASSERT_TRUE(cfg.cache_settings);
    auto const& c = *cfg.cache_settings;
    EXPECT_EQ(c.how, policy::cache_settings::mode::semantic);
    EXPECT_EQ(c.whose, policy::cache_settings::scope::team);
    EXPECT_EQ(c.ttl, std::chrono::minutes(5));
    EXPECT_EQ(c.max_bytes, 64u << 20);
    EXPECT_EQ(c.max_entry_bytes, 1u << 20);
    EXPECT_DOUBLE_EQ(c.semantic.threshold, 0.95);
    EXPECT_EQ(c.semantic.max_messages, 2u);
    EXPECT_FALSE(cfg.guardrail_settings && !cfg.guardrail_settings->plugins.empty());
    auto err = [](std::string config) { return error_of("plugins:\n  - name: response-cache\n    config: " + config); };
    EXPECT_NE(err("{ mode: semantic, semantic: { embedding_model: e } }").find("threshold: is required"), std::string::npos);
    EXPECT_NE(err("{ mode: semantic }").find("needs semantic"), std::string::npos);
    EXPECT_NE(err("{ semantic: { embedding_model: e, threshold: 0.9 } }").find("is for mode: semantic"), std::string::npos);
    EXPECT_NE(err("{ store: redis }").find("state.redis"), std::string::npos);
    EXPECT_NE(err("{ scope: everyone }").find("key, team or global"), std::string::npos);
    EXPECT_NE(err("{ max_bytes: lots }").find("size such as"), std::string::npos);
    EXPECT_NE(err("{ mode: semantic, semantic: { embedding_model: e, threshold: 0.2 } }").find("between 0.5"), std::string::npos);
    EXPECT_NE(err("{ ttl: 1h, colour: red }").find("unknown key"), std::string::npos);
    EXPECT_NE(error_of("plugins:\n  - name: response-cache\n  - name: response-cache\n").find("configured once"), std::string::npos);
    EXPECT_NE(error_of("plugins:\n  - name: responsecache\n").find("schema-guard, response-cache)"), std::string::npos);
}
