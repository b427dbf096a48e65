// The router's decisions (classify, counts_as_failure), the routing config's checks, and the
// route table are unit-tested here; the I/O is tested end to end in tests/e2e/routing.test.mjs.
#include <gtest/gtest.h>

#include "gateway/config_parse.hpp"
#include "gateway/routing/config.hpp"
#include "gateway/routing/router.hpp"

using namespace toolgate;
using namespace toolgate::gateway;
using routing::verdict;

namespace {

gateway::turn_result failed(int upstream, int shown) {
    gateway::turn_result r;
    r.upstream_status = upstream;
    r.error = api_error::upstream(shown, "x");
    return r;
}

}  // namespace

TEST(router_classify, each_outcome_leads_to_its_step) {
    routing::retry_policy p;  // on 429, 500, 502, 503, 504
    gateway::turn_result ok;
    EXPECT_EQ(routing::classify(ok, false, false, p, false), verdict::success);
    EXPECT_EQ(routing::classify(failed(500, 502), true, false, p, false), verdict::cancelled);
    EXPECT_EQ(routing::classify(failed(500, 502), false, true, p, false), verdict::give_up);  // stream started
    EXPECT_EQ(routing::classify(failed(500, 502), false, false, p, false), verdict::retry);
    EXPECT_EQ(routing::classify(failed(503, 503), false, false, p, false), verdict::retry);
    EXPECT_EQ(routing::classify(failed(429, 429), false, false, p, false), verdict::retry);
    EXPECT_EQ(routing::classify(failed(429, 429), false, false, p, true), verdict::rotate_key);
    EXPECT_EQ(routing::classify(failed(401, 502), false, false, p, true), verdict::rotate_key);
    EXPECT_EQ(routing::classify(failed(403, 502), false, false, p, false), verdict::next_target);
    EXPECT_EQ(routing::classify(failed(400, 400), false, false, p, false), verdict::give_up);
    EXPECT_EQ(routing::classify(failed(422, 400), false, false, p, false), verdict::give_up);
    EXPECT_EQ(routing::classify(failed(501, 502), false, false, p, false), verdict::next_target);  // not listed
    EXPECT_EQ(routing::classify(failed(0, 502), false, false, p, false), verdict::retry);          // unreachable
    EXPECT_EQ(routing::classify(failed(0, 504), false, false, p, false), verdict::retry);          // timed out
    EXPECT_EQ(routing::classify(failed(0, 400), false, false, p, false), verdict::next_target);    // refused locally
    EXPECT_EQ(routing::classify(failed(200, 502), false, false, p, false), verdict::retry);        // malformed
    routing::retry_policy only_503;
    only_503.on_status_codes = {503};
    EXPECT_EQ(routing::classify(failed(500, 502), false, false, only_503, false), verdict::next_target);
    EXPECT_EQ(routing::classify(failed(429, 429), false, false, only_503, false), verdict::next_target);
}

TEST(router_classify, client_errors_do_not_count_against_the_breaker) {
    EXPECT_TRUE(routing::counts_as_failure(failed(500, 502)));
    EXPECT_TRUE(routing::counts_as_failure(failed(429, 429)));
    EXPECT_TRUE(routing::counts_as_failure(failed(401, 502)));
    EXPECT_TRUE(routing::counts_as_failure(failed(0, 502)));
    EXPECT_FALSE(routing::counts_as_failure(failed(0, 400)));
    EXPECT_FALSE(routing::counts_as_failure(failed(400, 400)));
    EXPECT_FALSE(routing::counts_as_failure(failed(404, 404)));
    EXPECT_FALSE(routing::counts_as_failure(gateway::turn_result{}));
}

namespace {

env_lookup no_env() {
    return [](std::string const&) -> std::optional<std::string> { return std::nullopt; };
}

gateway_config parse(std::string const& yaml) { return parse_config(yaml, "test.yaml", no_env()); }

std::string error_of(std::string const& yaml) {
    try {
        parse(yaml);
    } catch (config_error const& e) {
        return e.what();
    }
    return "(no error)";
}

constexpr char const* two_providers = R"(
providers_from_env: false
providers:
  - { name: openai, type: openai, base_url: "http://127.0.0.1:1/v1" }
  - { name: anthropic, type: anthropic, base_url: "http://127.0.0.1:2/v1" }
)";

}  // namespace

TEST(routing_config, the_issue_example_parses) {
    auto cfg = parse(std::string(two_providers) + R"(
aliases: { cheap: openai/gpt-4o-mini, smart: anthropic/claude-sonnet-4-5 }
strategy:
  mode: fallback
  targets:
    - provider: openai
      model: gpt-4o-mini
      weight: 3
      retry: { attempts: 3, on_status_codes: [429, 500, 502, 503, 504], backoff: 200ms, max_backoff: 5s }
      circuit_breaker: { failure_threshold: 5, success_threshold: 2, timeout: 30s }
      max_concurrency: 64
    - provider: anthropic
  conditions:
    - { key: model_prefix, value: "gpt-", target: openai }
    - { key: has_tools, value: true, target: anthropic }
  content_conditions:
    - { type: prompt_regex, value: "(?i)invoice", target: anthropic }
  variants:
    - { label: a, target: openai, weight: 90 }
    - { label: b, target: anthropic, weight: 10 }
pools:
  - name: fast
    mode: least-latency
    targets: [ { provider: anthropic, model: claude-haiku-4-5 }, { provider: openai, model: gpt-4o-mini } ]
)");
    ASSERT_TRUE(cfg.routing().default_pool);
    auto const& d = *cfg.routing().default_pool;
    EXPECT_EQ(d.strategy.how, routing::mode::fallback);
    ASSERT_EQ(d.targets.size(), 2u);
    EXPECT_EQ(d.targets[0].retry.attempts, 3u);
    EXPECT_EQ(d.targets[0].retry.backoff.count(), 200);
    EXPECT_EQ(d.targets[0].breaker->success_threshold, 2u);
    EXPECT_EQ(d.targets[0].max_concurrency, 64u);
    EXPECT_EQ(d.strategy.weights[0], 3u);
    EXPECT_EQ(d.strategy.conditions[1].target, 1u);
    EXPECT_EQ(d.strategy.variants[0].weight, 90u);
    ASSERT_TRUE(d.strategy.content_conditions[0].regex);
    ASSERT_EQ(cfg.routing().pools.size(), 1u);
    EXPECT_EQ(cfg.routing().pools[0].strategy.how, routing::mode::least_latency);
    EXPECT_EQ(cfg.routing().aliases.at("cheap"), "openai/gpt-4o-mini");
}

TEST(routing_config, check_config_explains_each_mistake) {
    std::string base = two_providers;
    struct row {
        char const* yaml;
        char const* expect;
    };
    row const rows[] = {
        {"strategy: { mode: fallback, targets: [ { provider: nope } ] }", "unknown provider 'nope'"},
        {"aliases: { a: b, b: a }", "alias cycle"},
        {"aliases: { openai: anthropic/x }", "shadows the provider"},
        {"strategy: { mode: loadbalance, targets: [ { provider: openai, weight: 0 } ] }", "weights sum to 0"},
        {"pools: [ { name: p, targets: [] } ]", "needs at least one target"},
        {"strategy: { mode: content-based, targets: [ { provider: openai } ], content_conditions: [ { type: prompt_regex, value: \"(\", target: openai } ] }",
         "not a valid RE2"},
        {"strategy: { mode: sometimes, targets: [ { provider: openai } ] }", "unknown mode 'sometimes'"},
        {"strategy: { mode: conditional, targets: [ { provider: openai } ] }", "needs 'conditions'"},
        {"strategy: { mode: conditional, targets: [ { provider: openai } ], conditions: [ { key: model, value: x, target: anthropic } ] }",
         "is not a target of this pool"},
        {"pools: [ { name: openai, targets: [ { provider: openai, model: m } ] } ]", "also a provider's name"},
        {"pools: [ { name: p, targets: [ { provider: openai } ] } ]", "needs a 'model'"},
        {"aliases: { a: nope/model }", "provider 'nope'"},
        {"strategy: { targets: [ { provider: openai, retry: { attempts: 0 } } ] }", "between 1 and 10"},
        {"strategy: { mode: conditional, targets: [ { provider: openai } ], conditions: [ { key: time_of_day, value: \"25:00-01:00\", target: openai } ] }",
         "HH:MM-HH:MM"},
    };
    for (auto const& r : rows) {
        auto err = error_of(base + r.yaml + "\n");
        EXPECT_NE(err.find(r.expect), std::string::npos) << r.yaml << "\n  gave: " << err;
        EXPECT_NE(err.find("test.yaml:"), std::string::npos) << err;  // with a line
    }
}

TEST(routing_config, api_keys_list_the_secondary_credentials) {
    auto cfg = parse(R"(
providers_from_env: false
providers:
  - { name: openai, type: openai, base_url: "http://127.0.0.1:1/v1", api_keys: [k1, k2] }
)");
    EXPECT_EQ(cfg.providers[0].api_key, "k1");
    ASSERT_EQ(cfg.providers[0].api_keys.size(), 2u);
    EXPECT_NE(error_of(R"(
providers_from_env: false
providers:
  - { name: openai, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: a, api_keys: [k1] }
)").find("not both"), std::string::npos);
}

TEST(config, a_duplicate_key_is_an_error_not_a_silent_first_win) {
    auto err = error_of(R"(
providers_from_env: false
providers:
  - { name: a, type: openai, base_url: "http://127.0.0.1:1/v1", timeout: 5s, timeout: 300ms }
)");
    EXPECT_NE(err.find("duplicate key"), std::string::npos) << err;
    err = error_of("server: { threads: 1, threads: 2 }\n");
    EXPECT_NE(err.find("server.threads: duplicate key"), std::string::npos) << err;
}

TEST(routing_config, single_takes_one_target_and_targets_are_distinct) {
    std::string base = two_providers;
    auto err = error_of(base + "strategy: { mode: single, targets: [ { provider: openai }, { provider: anthropic } ] }\n");
    EXPECT_NE(err.find("exactly one target"), std::string::npos) << err;
    err = error_of(base + "strategy: { mode: fallback, targets: [ { provider: openai, model: m }, { provider: openai, model: m } ] }\n");
    EXPECT_NE(err.find("the same provider and model"), std::string::npos) << err;
}
