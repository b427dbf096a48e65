// Keys, rate limits and budgets as turn filters, on the memory stores and a fake router: what is
// counted, refused, reserved and charged, without a server. Coroutine bodies avoid braced lists
// (CONTRIBUTING.md).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "gateway/config_parse.hpp"
#include "gateway/pipeline.hpp"
#include "gateway/policy/access.hpp"
#include "gateway/policy/filters.hpp"
#include "gateway/policy/registry.hpp"
#include "providers/config.hpp"

using namespace toolgate;
using namespace toolgate::gateway;
namespace json = boost::json;

namespace {

std::shared_ptr<providers::provider> priced_provider() {
    providers::provider_config pc;
    pc.name = "fake";
    pc.type = "scripted";
    pc.models = {"m", "free"};
    pc.prices["m"] = providers::model_price{1'000'000, 2'000'000};  // $1 per input token, $2 per output token
    return providers::make_provider(pc);
}

// The innermost step: answers with fixed usage, as the provider `p` with model "m".
class fake_router final : public turn_filter {
public:
    explicit fake_router(providers::provider* p) : p_(p) {}
    std::string_view name() const override { return "router"; }
    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const&) override {
        ++calls;
        ctx.provider = p_;
        ctx.upstream_model = ctx.requested_model;
        turn_result r;
        r.tokens.prompt_tokens = prompt;
        r.tokens.completion_tokens = completion;
        r.tokens.present = true;
        co_return r;
    }
    int calls = 0;
    std::int64_t prompt = 3, completion = 2;

private:
    providers::provider* p_;
};

policy::virtual_key key_named(std::string name, std::string text) {
    policy::virtual_key k;
    k.name = name;
    k.id = "key_" + name;
    k.hash = state::sha256_hex(text);
    k.from_config = true;
    return k;
}

struct harness {
    std::shared_ptr<providers::provider> provider = priced_provider();
    std::shared_ptr<fake_router> router = std::make_shared<fake_router>(provider.get());
    std::unique_ptr<policy::access_runtime> rt;
    std::unique_ptr<turn_pipeline> pipeline;
    gateway_config cfg;

    explicit harness(policy::access_settings s) {
        rt = std::make_unique<policy::access_runtime>(std::move(s));
        policy::price_fn price = [](turn_context const& ctx) {
            policy::price_quote q;
            q.known = ctx.requested_model == "m";
            q.input = q.known ? 1'000'000 : 0;
            q.output = q.known ? 2'000'000 : 0;
            q.model = ctx.requested_model;
            return q;
        };
        filter_inputs in{cfg, router, rt.get(), price};
        pipeline = std::make_unique<turn_pipeline>(build_filters(in, turn_kind::chat));
    }

    struct outcome {
        turn_result result;
        header_list headers;
    };

    // One request of one turn as `token`'s key.
    outcome request(std::string const& token, std::string const& model = "m", std::string const& body = R"({"max_tokens":4})") {
        outcome out;
        asio::io_context ioc;
        asio::co_spawn(ioc, run(token, model, body, out), asio::detached);
        ioc.run();
        return out;
    }

    asio::awaitable<void> run(std::string token, std::string model, std::string body, outcome& out) {
        policy::request_scope scope;
        auto auth = "Bearer " + token;
        auto err = co_await rt->authenticate(auth, "", scope);
        if (err) {
            out.result.error = failure(*err);
            co_return;
        }
        turn_context ctx;
        ctx.request_id = "req" + std::to_string(++seq_);
        ctx.requested_model = model;
        ctx.request.body = json::parse(body).as_object();
        ctx.response_headers = &out.headers;
        ctx.access = &scope;
        out.result = co_await pipeline->run(ctx);
        co_await rt->finish(scope);
    }

    int seq_ = 0;
};

std::string header(header_list const& h, std::string_view name) {
    for (auto const& [k, v] : h)
        if (k == name) return v;
    return {};
}

}  // namespace

TEST(access_format, reset_durations_read_like_openais) {
    EXPECT_EQ(policy::format_reset(0), "0s");
    EXPECT_EQ(policy::format_reset(250), "250ms");
    EXPECT_EQ(policy::format_reset(1000), "1s");
    EXPECT_EQ(policy::format_reset(59'500), "59.5s");
    EXPECT_EQ(policy::format_reset(360'000), "6m0s");
    EXPECT_EQ(policy::format_reset(3'723'000), "1h2m3s");
}

TEST(access_keys, fields_parse_with_errors_that_name_the_field) {
    policy::virtual_key k;
    auto ok = json::parse(R"({"name":"app","team":"t","models":["m"],"mcp_tools":["docs__*"],
        "limits":{"requests_per_minute":60,"max_concurrent":2},"budget":{"daily_usd":1.5},"metadata":{"o":1}})").as_object();
    EXPECT_EQ(policy::parse_key_fields(ok, k, false), "");
    EXPECT_TRUE(k.allows_model("m"));
    EXPECT_FALSE(k.allows_model("gpt-4o"));
    EXPECT_TRUE(k.allows_tool("docs__search"));
    EXPECT_FALSE(k.allows_tool("shell__run"));
    EXPECT_EQ(k.limits[0], 60);
    EXPECT_DOUBLE_EQ(k.budget.daily_usd, 1.5);
    policy::virtual_key bad;
    EXPECT_EQ(policy::parse_key_fields(json::parse(R"({"name":"a","limits":{"requests_per_minute":-1}})").as_object(), bad, false),
              "limits.requests_per_minute: must be a whole number between 0 and 1000000000000");
    EXPECT_NE(policy::parse_key_fields(json::parse(R"({"name":"a","colour":"red"})").as_object(), bad, false).find("colour: unknown field"),
              std::string::npos);
    EXPECT_EQ(policy::parse_key_fields(json::parse(R"({"team":"x"})").as_object(), bad, false), "name: required");
    // Stored and read back: the same key.
    k.id = "key_1";
    k.hash = state::sha256_hex("tg-secret");
    auto back = policy::from_stored(policy::to_stored(k));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->name, "app");
    EXPECT_EQ(back->mcp_tools, k.mcp_tools);
    EXPECT_EQ(back->limits, k.limits);
    EXPECT_EQ(back->hash, k.hash);
}

TEST(access_keys, new_keys_are_random_and_only_their_prefix_is_shown) {
    auto a = policy::new_key_text(), b = policy::new_key_text();
    EXPECT_NE(a, b);
    EXPECT_EQ(a.size(), 43u);
    EXPECT_TRUE(a.starts_with("tg-"));
    EXPECT_EQ(policy::display_prefix(a), a.substr(0, 7) + "...");
}

TEST(access_config, sections_parse_and_mistakes_name_the_key) {
    auto cfg = parse_config(R"(
keys:
  - { name: app, key: sk-app-12345, team: support, limits: { requests_per_minute: 5 } }
teams:
  - { name: support, budget: { monthly_usd: 10 } }
rate_limits:
  - { scope: user, requests_per_minute: 2 }
  - { scope: model, model: m, tokens_per_minute: 100 }
budgets: { unpriced: allow }
request_log: { store: memory }
)", "t.yaml", [](std::string const&) { return std::nullopt; });
    ASSERT_TRUE(cfg.access_settings);
    auto const& a = *cfg.access_settings;
    ASSERT_EQ(a.keys.size(), 1u);
    EXPECT_EQ(a.keys[0].hash, state::sha256_hex("sk-app-12345"));
    EXPECT_EQ(a.keys[0].prefix, "sk-app-...");
    EXPECT_EQ(a.rules.size(), 2u);
    EXPECT_TRUE(a.unpriced_allow);
    EXPECT_TRUE(a.log_in_memory);
    ASSERT_TRUE(a.sqlite) << "a team budget needs the ledger: the embedded SQLite file";
    EXPECT_EQ(a.sqlite->path, "toolgate.db");
    auto fails = [](std::string yaml) {
        try {
            parse_config(yaml, "t.yaml", [](std::string const&) { return std::nullopt; });
        } catch (config_error const& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_NE(fails("keys:\n  - { name: a }\n").find("keys[0]: needs exactly one of key"), std::string::npos);
    EXPECT_NE(fails("keys:\n  - { name: a, key: short }\n").find("keys[0].key: must be at least 8"), std::string::npos);
    EXPECT_NE(fails("keys:\n  - { name: a, key: sk-aaaaaaaa }\n  - { name: a, key: sk-bbbbbbbb }\n").find("duplicate key name"),
              std::string::npos);
    EXPECT_NE(fails("rate_limits:\n  - { scope: planet, requests_per_minute: 1 }\n").find("rate_limits[0].scope"), std::string::npos);
    EXPECT_NE(fails("admin: { token: abc }\n").find("admin.token: must be at least 12"), std::string::npos);
    EXPECT_NE(fails("state: { redis: { url: 'http://x' } }\n").find("state.redis.url"), std::string::npos);
}

TEST(access_filters, a_key_is_required_once_keys_exist_and_models_are_checked) {
    policy::access_settings s;
    auto k = key_named("app", "sk-app-12345");
    k.models = std::vector<std::string>{"m"};
    s.keys.push_back(k);
    harness h(s);
    auto none = h.request("");
    ASSERT_TRUE(none.result.error);
    EXPECT_EQ(none.result.error->code, "missing_api_key");
    auto wrong = h.request("sk-nobody-1");
    ASSERT_TRUE(wrong.result.error);
    EXPECT_EQ(wrong.result.error->code, "invalid_api_key");
    EXPECT_FALSE(h.request("sk-app-12345").result.error);
    auto other = h.request("sk-app-12345", "free");
    ASSERT_TRUE(other.result.error);
    EXPECT_EQ(other.result.error->status, 403);
    EXPECT_EQ(other.result.error->code, "model_not_allowed");
    EXPECT_EQ(h.router->calls, 1);
}

TEST(access_filters, a_request_limit_admits_exactly_n_and_says_when_to_retry) {
    policy::access_settings s;
    auto k = key_named("app", "sk-app-12345");
    k.limits[0] = 3;  // requests_per_minute
    s.keys.push_back(k);
    harness h(s);
    for (int i = 0; i < 3; ++i) {
        auto ok = h.request("sk-app-12345");
        ASSERT_FALSE(ok.result.error) << i;
        EXPECT_EQ(header(ok.headers, "x-ratelimit-limit-requests"), "3");
        EXPECT_EQ(header(ok.headers, "x-ratelimit-remaining-requests"), std::to_string(2 - i));
        EXPECT_FALSE(header(ok.headers, "x-ratelimit-reset-requests").empty());
    }
    auto refused = h.request("sk-app-12345");
    ASSERT_TRUE(refused.result.error);
    EXPECT_EQ(refused.result.error->status, 429);
    EXPECT_EQ(refused.result.error->code, "rate_limit_exceeded");
    EXPECT_NE(refused.result.error->message.find("requests_per_minute of key app"), std::string::npos);
    auto secs = std::stoi(refused.result.error->retry_after);
    EXPECT_GE(secs, 1);
    EXPECT_LE(secs, 60);
    EXPECT_FALSE(header(refused.headers, "retry-after-ms").empty());
    EXPECT_EQ(h.router->calls, 3);
}

TEST(access_filters, tokens_are_admitted_on_the_estimate_and_corrected_by_usage) {
    policy::access_settings s;
    auto k = key_named("app", "sk-app-12345");
    k.limits[3] = 100;  // tokens_per_minute
    s.keys.push_back(k);
    harness h(s);
    // Estimated at (body bytes / 4) + max_tokens = about 90; the usage says 5: corrected.
    auto big = R"({"max_tokens":85})";
    EXPECT_FALSE(h.request("sk-app-12345", "m", big).result.error);
    EXPECT_FALSE(h.request("sk-app-12345", "m", big).result.error) << "the first was corrected down to 5";
    auto huge = h.request("sk-app-12345", "m", R"({"max_tokens":1000})");
    ASSERT_TRUE(huge.result.error);
    EXPECT_EQ(huge.result.error->status, 429);
    EXPECT_EQ(header(huge.headers, "x-should-retry"), "false") << "more than the limit can ever admit";
}

TEST(access_filters, a_user_rule_counts_per_user) {
    policy::access_settings s;
    policy::rate_rule rule;
    rule.applies = policy::rate_rule::scope::user;
    rule.limits[0] = 1;
    s.rules.push_back(rule);
    harness h(s);
    EXPECT_FALSE(h.request("", "m", R"({"user":"ann"})").result.error);
    EXPECT_TRUE(h.request("", "m", R"({"user":"ann"})").result.error);
    EXPECT_FALSE(h.request("", "m", R"({"user":"bob"})").result.error);
}

TEST(access_filters, budgets_reserve_the_maximum_and_charge_the_usage) {
    policy::access_settings s;
    auto k = key_named("app", "sk-app-12345");
    k.team = "t";
    k.budget.daily_usd = 28;  // $1 per input token, $2 per output token
    s.keys.push_back(k);
    harness h(s);
    // Reserves 0 input (no messages) + 4 * $2 output = $8; charges 3 * $1 + 2 * $2 = $7: the
    // fourth needs 21 + 8 > 28.
    EXPECT_FALSE(h.request("sk-app-12345").result.error);
    EXPECT_FALSE(h.request("sk-app-12345").result.error);
    EXPECT_FALSE(h.request("sk-app-12345").result.error);
    auto refused = h.request("sk-app-12345");
    ASSERT_TRUE(refused.result.error);
    EXPECT_EQ(refused.result.error->code, "budget_exceeded");
    EXPECT_EQ(refused.result.error->type, "insufficient_quota");
    EXPECT_EQ(header(refused.headers, "x-should-retry"), "false");
    EXPECT_EQ(h.router->calls, 3) << "refused before the provider was called";
    asio::io_context ioc;
    std::int64_t spent = -1;
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
        auto r = co_await h.rt->ledger().spent("key:key_app", state::utc_day(policy::unix_now_ms()));
        spent = r ? *r : -2;
    }, asio::detached);
    ioc.run();
    EXPECT_EQ(spent, 21'000'000);
}

TEST(access_filters, an_unpriced_model_under_a_budget_is_refused_unless_allowed) {
    policy::access_settings s;
    auto k = key_named("app", "sk-app-12345");
    k.budget.monthly_usd = 5;
    s.keys.push_back(k);
    {
        harness h(s);
        auto r = h.request("sk-app-12345", "free");
        ASSERT_TRUE(r.result.error);
        EXPECT_EQ(r.result.error->code, "model_unpriced");
        EXPECT_NE(r.result.error->message.find("'free'"), std::string::npos);
    }
    s.unpriced_allow = true;
    harness h(s);
    auto allowed = h.request("sk-app-12345", "free");
    EXPECT_FALSE(allowed.result.error) << allowed.result.error->message;
}

TEST(access_filters, an_absurd_max_tokens_cannot_overflow_past_limits_or_budgets) {
    policy::access_settings s;
    auto k = key_named("app", "sk-app-12345");
    k.limits[3] = 1000;         // tokens_per_minute
    k.budget.daily_usd = 100;
    s.keys.push_back(k);
    harness h(s);
    auto r = h.request("sk-app-12345", "m", R"({"max_tokens":9223372036854775807})");
    ASSERT_TRUE(r.result.error);
    EXPECT_EQ(r.result.error->status, 429);
    EXPECT_EQ(h.router->calls, 0);
    EXPECT_EQ(policy::output_allowance(json::parse(R"({"max_tokens":9223372036854775807})").as_object(), 0), 1 << 30);
    EXPECT_EQ(policy::output_allowance(json::parse(R"({"max_completion_tokens":18446744073709551615})").as_object(), 0), 1 << 30);
    // The counts were not wiped by a negative amount: a normal request still fits, and what it
    // leaves is below the limit (a negative count would leave more than the limit).
    auto normal = h.request("sk-app-12345");
    ASSERT_FALSE(normal.result.error);
    std::string remaining;
    for (auto const& [k, v] : normal.headers)
        if (k == "x-ratelimit-remaining-tokens") remaining = v;
    ASSERT_FALSE(remaining.empty());
    EXPECT_GE(std::stoll(remaining), 0);
    EXPECT_LT(std::stoll(remaining), 1000);
}

TEST(access_filters, a_user_limit_is_per_key_so_tenants_do_not_share_a_user_name) {
    policy::access_settings s;
    s.keys.push_back(key_named("a", "sk-tenant-a-1"));
    s.keys.push_back(key_named("b", "sk-tenant-b-1"));
    policy::rate_rule rule;
    rule.applies = policy::rate_rule::scope::user;
    rule.limits[0] = 1;
    s.rules.push_back(rule);
    harness h(s);
    EXPECT_FALSE(h.request("sk-tenant-a-1", "m", R"({"user":"alice"})").result.error);
    EXPECT_TRUE(h.request("sk-tenant-a-1", "m", R"({"user":"alice"})").result.error);
    EXPECT_FALSE(h.request("sk-tenant-b-1", "m", R"({"user":"alice"})").result.error) << "another key's alice";
}

TEST(access_filters, spend_is_recorded_for_keys_without_a_budget) {
    policy::access_settings s;
    auto k = key_named("app", "sk-app-12345");
    k.team = "t";
    s.keys.push_back(k);
    harness h(s);
    EXPECT_FALSE(h.request("sk-app-12345", "free").result.error) << "no budget: no price needed";
    EXPECT_FALSE(h.request("sk-app-12345").result.error);
    asio::io_context ioc;
    std::int64_t key_month = -1, team_day = -1;
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
        auto now = policy::unix_now_ms();
        auto a = co_await h.rt->ledger().spent("key:key_app", state::utc_month(now));
        auto b = co_await h.rt->ledger().spent("team:t", state::utc_day(now));
        key_month = a ? *a : -2;
        team_day = b ? *b : -2;
    }, asio::detached);
    ioc.run();
    EXPECT_EQ(key_month, 7'000'000);  // 3 * $1 + 2 * $2
    EXPECT_EQ(team_day, 7'000'000);
}

TEST(access_filters, turn_records_carry_payloads_only_when_asked) {
    for (bool payloads : {false, true}) {
        policy::access_settings s;
        s.keys.push_back(key_named("app", "sk-app-12345"));
        s.log_enabled = true;
        s.log_in_memory = true;
        s.log_payloads = payloads;
        harness h(s);
        EXPECT_FALSE(h.request("sk-app-12345", "m", R"({"messages":[{"role":"user","content":"the secret plan"}]})").result.error);
        asio::io_context ioc;
        std::string text;
        asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
            auto rows = co_await h.rt->log()->query(state::log_query());
            if (rows && !rows->empty()) text = json::serialize(rows->front().rec.record);
        }, asio::detached);
        ioc.run();
        ASSERT_FALSE(text.empty());
        EXPECT_EQ(text.find("the secret plan") != std::string::npos, payloads) << text;
    }
}
