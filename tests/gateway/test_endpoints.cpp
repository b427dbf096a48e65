// AI endpoints: the decisions without I/O (template rendering, time windows, rule matching) and the
// `endpoints:` section as the full config parser reads it.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/api_error.hpp"
#include "gateway/api/endpoint_config.hpp"
#include "gateway/api/endpoint_directory.hpp"
#include "gateway/config_parse.hpp"
#include "gateway/policy/access.hpp"
#include "guardrails/schema_guard.hpp"
#include "sessions/session.hpp"
#include "state/doc_store.hpp"

namespace toolgate::gateway {

namespace json = boost::json;

namespace {

json::object vars_of(std::string const& text) {
    json::object vars = json::parse(text).as_object();
    return vars;
}

std::optional<std::string> no_env(std::string const&) { return std::nullopt; }

gateway_config parse_yaml(std::string const& yaml, std::string const& source = "test.yaml") {
    return parse_config(yaml, source, env_lookup(no_env));
}

std::string config_error_of(std::string const& yaml) {
    try {
        parse_config(yaml, "test.yaml", env_lookup(no_env));
    } catch (config_error const& e) {
        return e.what();
    }
    return "no error";
}

endpoint_rule make_rule(std::string model, std::optional<std::int64_t> tokens_gt = std::nullopt,
                        std::optional<double> spend_gt = std::nullopt,
                        std::optional<std::pair<int, int>> window = std::nullopt) {
    endpoint_rule r;
    r.input_tokens_gt = tokens_gt;
    r.monthly_spend_pct_gt = spend_gt;
    r.time_of_day = window;
    r.model = std::move(model);
    return r;
}

rule_facts facts(std::int64_t tokens, double spend_pct = -1, int minute = 0) {
    rule_facts f;
    f.input_tokens = tokens;
    f.monthly_spend_pct = spend_pct;
    f.minute_of_day = minute;
    return f;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// render_template

TEST(endpoint_template, renders_the_variables) {
    struct render_case {
        std::string name;
        std::string tmpl;
        std::string vars;  // a JSON object
        std::string expected;
    };
    std::vector<render_case> const cases{
        {"plain text is unchanged", "Summarize the text below.", R"({"input":"x"})", "Summarize the text below."},
        {"empty template", "", R"({})", ""},
        {"stray closing braces are text", "a }} b", R"({})", "a }} b"},
        {"input", "{{input}}", R"({"input":"hello"})", "hello"},
        {"input inside text", "Q: {{input}}?", R"({"input":"why"})", "Q: why?"},
        {"spaces inside the tag", "{{ input }}", R"({"input":"hello"})", "hello"},
        {"tabs inside the tag", "{{\tinput\t}}", R"({"input":"hello"})", "hello"},
        {"default without quotes, with a space", "{{a | default: x y}}", R"({})", "x y"},
        {"default in double quotes", "{{a | default: \"q\"}}", R"({})", "q"},
        {"default in single quotes", "{{a | default: 'q r'}}", R"({})", "q r"},
        {"default without spaces around the bar", "{{a|default:x}}", R"({})", "x"},
        {"empty default", "[{{a | default:}}]", R"({})", "[]"},
        {"a present variable wins over its default", "{{a | default: x}}", R"({"a":"v"})", "v"},
        {"a present empty string wins over its default", "[{{a | default: x}}]", R"({"a":""})", "[]"},
        {"null uses the default", "{{a | default: fallback}}", R"({"a":null})", "fallback"},
        {"a number is inserted as JSON", "n={{n}}", R"({"n":42})", "n=42"},
        {"a negative number", "{{n}}", R"({"n":-3})", "-3"},
        {"a boolean is inserted as JSON", "{{b}}", R"({"b":true})", "true"},
        {"an object is inserted as JSON", "{{o}}", R"({"o":{"k":1,"s":"t"}})", R"({"k":1,"s":"t"})"},
        {"an array is inserted as JSON", "{{a}}", R"({"a":[1,"x"]})", R"([1,"x"])"},
        {"a number wins over its default", "{{n | default: 0}}", R"({"n":7})", "7"},
        {"a value is not rendered again", "{{a}}", R"({"a":"{{b}}","b":"X"})", "{{b}}"},
        {"a value with an unclosed tag is text", "<{{a}}>", R"({"a":"{{oops"})", "<{{oops>"},
        {"several tags", "{{greeting}}, {{name}}! {{greeting}} again.", R"({"greeting":"Hi","name":"Ann"})",
         "Hi, Ann! Hi again."},
        {"adjacent tags", "{{a}}{{b}}{{a}}", R"({"a":1,"b":"two"})", "1two1"},
        {"UTF-8 around the tags is kept", "Привет, {{name}}! 你好 — {{ emoji }} ✓",
         R"({"name":"Zoë","emoji":"🌍"})", "Привет, Zoë! 你好 — 🌍 ✓"},
        {"UTF-8 default", "{{a | default: «нет»}}", R"({})", "«нет»"},
    };
    for (auto const& c : cases) {
        SCOPED_TRACE(c.name);
        auto out = render_template(c.tmpl, vars_of(c.vars));
        ASSERT_TRUE(std::holds_alternative<std::string>(out)) << std::get<api_error>(out).message;
        EXPECT_EQ(std::get<std::string>(out), c.expected);
    }
}

TEST(endpoint_template, errors_name_the_variable_or_the_template) {
    struct error_case {
        std::string name;
        std::string tmpl;
        std::string vars;
        int status;
        std::string type;
        std::string code;
        std::string param;
    };
    std::vector<error_case> const cases{
        {"missing variable", "Hello {{name}}", R"({})", 422, "invalid_request_error", "missing_variable", "variables.name"},
        {"missing variable with spaces", "{{  name  }}", R"({"other":"x"})", 422, "invalid_request_error",
         "missing_variable", "variables.name"},
        {"null without default", "{{name}}", R"({"name":null})", 422, "invalid_request_error", "missing_variable",
         "variables.name"},
        {"second tag missing", "{{a}} and {{b}}", R"({"a":"x"})", 422, "invalid_request_error", "missing_variable",
         "variables.b"},
        {"unterminated tag", "Hello {{name", R"({"name":"x"})", 500, "server_error", "invalid_template", ""},
        {"bare open", "{{", R"({})", 500, "server_error", "invalid_template", ""},
        {"unterminated after a good tag", "{{a}} {{", R"({"a":"x"})", 500, "server_error", "invalid_template", ""},
        {"unknown filter", "{{a | upper}}", R"({"a":"x"})", 500, "server_error", "invalid_template", ""},
        {"default without colon", "{{a | default x}}", R"({})", 500, "server_error", "invalid_template", ""},
    };
    for (auto const& c : cases) {
        SCOPED_TRACE(c.name);
        auto out = render_template(c.tmpl, vars_of(c.vars));
        ASSERT_TRUE(std::holds_alternative<api_error>(out)) << "rendered: " << std::get<std::string>(out);
        auto const& err = std::get<api_error>(out);
        EXPECT_EQ(err.status, c.status);
        EXPECT_EQ(err.type, c.type);
        EXPECT_EQ(err.code, c.code);
        EXPECT_EQ(err.param, c.param);
        EXPECT_FALSE(err.message.empty());
    }
}

TEST(endpoint_template, missing_variable_message_names_it) {
    auto out = render_template("Dear {{customer_name}},", json::object{});
    ASSERT_TRUE(std::holds_alternative<api_error>(out));
    auto const& err = std::get<api_error>(out);
    EXPECT_NE(err.message.find("'customer_name'"), std::string::npos) << err.message;
    EXPECT_EQ(err.param, "variables.customer_name");
}

// ---------------------------------------------------------------------------------------------
// parse_window and in_window

TEST(endpoint_window, parses_hh_mm_ranges) {
    struct window_case {
        std::string text;
        std::optional<std::pair<int, int>> expected;
    };
    std::vector<window_case> const cases{
        {"22:00-06:00", std::make_pair(1320, 360)},
        {"00:00-24:00", std::make_pair(0, 0)},
        {"09:00-17:30", std::make_pair(540, 1050)},
        {"23:59-00:00", std::make_pair(1439, 0)},
        {"00:00-00:01", std::make_pair(0, 1)},
        {"2200-0600", std::nullopt},
        {"25:00-01:00", std::nullopt},
        {"10:60-11:00", std::nullopt},
        {"10:00-11:60", std::nullopt},
        {"10:00-24:01", std::nullopt},
        {"ab:cd-01:00", std::nullopt},
        {"10:00-ab:cd", std::nullopt},
        {"10:00", std::nullopt},
        {"10:00-", std::nullopt},
        {"-10:00", std::nullopt},
        {"", std::nullopt},
        {"1:00-02:00", std::nullopt},
        {" 10:00-11:00", std::nullopt},
        {"10:00 - 11:00", std::nullopt},
        {"10:00-11:00-12:00", std::nullopt},
    };
    for (auto const& c : cases) {
        SCOPED_TRACE("\"" + c.text + "\"");
        auto got = parse_window(c.text);
        ASSERT_EQ(got.has_value(), c.expected.has_value());
        if (got) {
            EXPECT_EQ(*got, *c.expected);
        }
    }
}

TEST(endpoint_window, from_is_inclusive_to_is_exclusive_and_windows_may_wrap) {
    struct in_case {
        std::pair<int, int> window;
        int minute;
        bool expected;
    };
    std::vector<in_case> const cases{
        // 09:00-17:00
        {{540, 1020}, 539, false},
        {{540, 1020}, 540, true},
        {{540, 1020}, 800, true},
        {{540, 1020}, 1019, true},
        {{540, 1020}, 1020, false},
        {{540, 1020}, 0, false},
        {{540, 1020}, 1439, false},
        // 22:00-06:00, past midnight
        {{1320, 360}, 1319, false},
        {{1320, 360}, 1320, true},
        {{1320, 360}, 1439, true},
        {{1320, 360}, 0, true},
        {{1320, 360}, 359, true},
        {{1320, 360}, 360, false},
        {{1320, 360}, 720, false},
        // equal ends: always
        {{0, 0}, 0, true},
        {{0, 0}, 720, true},
        {{0, 0}, 1439, true},
        {{600, 600}, 0, true},
        {{600, 600}, 599, true},
        {{600, 600}, 600, true},
    };
    for (auto const& c : cases) {
        SCOPED_TRACE("[" + std::to_string(c.window.first) + ", " + std::to_string(c.window.second) + ") at " +
                     std::to_string(c.minute));
        EXPECT_EQ(in_window(c.window, c.minute), c.expected);
    }
}

// ---------------------------------------------------------------------------------------------
// choose_model

TEST(endpoint_rules, without_rules_the_endpoint_model_is_used) {
    endpoint_config e;
    e.model = "base";
    EXPECT_EQ(choose_model(e, facts(0)), "base");
    EXPECT_EQ(choose_model(e, facts(1'000'000, 500, 720)), "base");
}

TEST(endpoint_rules, the_first_matching_rule_wins) {
    endpoint_config e;
    e.model = "base";
    e.rules = {make_rule("huge", 10'000), make_rule("big", 1'000), make_rule("also-big", 1'000)};
    struct case_ {
        std::int64_t tokens;
        std::string expected;
    };
    for (auto const& c : std::vector<case_>{{20'000, "huge"}, {10'001, "huge"}, {10'000, "big"}, {5'000, "big"},
                                            {1'001, "big"}, {1'000, "base"}, {0, "base"}}) {
        SCOPED_TRACE(c.tokens);
        EXPECT_EQ(choose_model(e, facts(c.tokens)), c.expected);
    }
}

TEST(endpoint_rules, input_tokens_gt_is_strictly_greater) {
    endpoint_config e;
    e.model = "base";
    e.rules = {make_rule("big", 1000)};
    EXPECT_EQ(choose_model(e, facts(999)), "base");
    EXPECT_EQ(choose_model(e, facts(1000)), "base");
    EXPECT_EQ(choose_model(e, facts(1001)), "big");
    e.rules = {make_rule("any", 0)};
    EXPECT_EQ(choose_model(e, facts(0)), "base");
    EXPECT_EQ(choose_model(e, facts(1)), "any");
}

TEST(endpoint_rules, monthly_spend_rule_never_matches_an_unknown_spend) {
    endpoint_config e;
    e.model = "base";
    e.rules = {make_rule("cheap", std::nullopt, 80.0)};
    struct case_ {
        double spend;
        std::string expected;
    };
    for (auto const& c : std::vector<case_>{{-1, "base"}, {-0.5, "base"}, {0, "base"}, {79.9, "base"}, {80, "base"},
                                            {80.5, "cheap"}, {100, "cheap"}, {250, "cheap"}}) {
        SCOPED_TRACE(c.spend);
        EXPECT_EQ(choose_model(e, facts(0, c.spend)), c.expected);
    }
    // Even a threshold of 0 needs a known spend.
    e.rules = {make_rule("cheap", std::nullopt, 0.0)};
    EXPECT_EQ(choose_model(e, facts(0, -1)), "base");
    EXPECT_EQ(choose_model(e, facts(0, 0)), "base");
    EXPECT_EQ(choose_model(e, facts(0, 0.1)), "cheap");
}

TEST(endpoint_rules, time_of_day_rule_matches_inside_its_window) {
    endpoint_config e;
    e.model = "base";
    e.rules = {make_rule("night", std::nullopt, std::nullopt, std::make_pair(1320, 360))};  // 22:00-06:00
    struct case_ {
        int minute;
        std::string expected;
    };
    for (auto const& c : std::vector<case_>{{1319, "base"}, {1320, "night"}, {1439, "night"}, {0, "night"},
                                            {359, "night"}, {360, "base"}, {720, "base"}}) {
        SCOPED_TRACE(c.minute);
        EXPECT_EQ(choose_model(e, facts(0, -1, c.minute)), c.expected);
    }
}

TEST(endpoint_rules, a_rule_with_two_conditions_needs_both) {
    endpoint_config e;
    e.model = "base";
    // More than 100 input tokens during 09:00-17:00.
    e.rules = {make_rule("day-big", 100, std::nullopt, std::make_pair(540, 1020)),
               make_rule("spend", 100, 50.0)};
    struct case_ {
        std::string name;
        rule_facts f;
        std::string expected;
    };
    std::vector<case_> const cases{
        {"both", facts(200, -1, 600), "day-big"},
        {"tokens, not the time", facts(200, -1, 1200), "base"},
        {"the time, not the tokens", facts(50, -1, 600), "base"},
        {"neither", facts(50, -1, 1200), "base"},
        {"tokens and spend (second rule)", facts(200, 60, 1200), "spend"},
        {"tokens, unknown spend", facts(200, -1, 1200), "base"},
        {"spend, not the tokens", facts(50, 60, 1200), "base"},
        {"first rule still first", facts(200, 60, 600), "day-big"},
    };
    for (auto const& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(choose_model(e, c.f), c.expected);
    }
}

// ---------------------------------------------------------------------------------------------
// parse_endpoints, through the full config parser

TEST(endpoints_config, a_valid_endpoint_parses) {
    auto cfg = parse_yaml(R"(
keys:
  - { name: app, key: sk-app-12345 }
mcp_servers:
  - { name: fs, command: /bin/true }
endpoints:
  - slug: summarize
    model: mock-1
    system_prompt: "You summarize."
    prompt_template: "Summarize: {{input}} [{{lang | default: en}}]"
    stream: false
    failover: [mock-2, mock-3]
    mcp: { servers: [fs] }
    limits: { requests_per_minute: 10, max_tokens_per_request: 2000 }
    budget: { monthly_usd: 5 }
    keys: [app]
    input_schema:
      type: object
      properties: { text: { type: string } }
      required: [text]
    rules:
      - when: { input_tokens_gt: 1000 }
        model: big-model
      - when: { monthly_spend_pct_gt: 80, time_of_day: "22:00-06:00" }
        model: cheap-model
  - { slug: plain_2, model: mock-2 }
)");
    ASSERT_EQ(cfg.endpoints.size(), 2u);
    auto const& e = *cfg.endpoints[0];
    EXPECT_EQ(e.slug, "summarize");
    EXPECT_EQ(e.model, "mock-1");
    EXPECT_EQ(e.system_prompt, "You summarize.");
    EXPECT_EQ(e.prompt_template, "Summarize: {{input}} [{{lang | default: en}}]");
    EXPECT_FALSE(e.stream);
    EXPECT_FALSE(e.sessions);
    EXPECT_EQ(e.failover, (std::vector<std::string>{"mock-2", "mock-3"}));
    ASSERT_TRUE(e.mcp_servers);
    EXPECT_EQ(*e.mcp_servers, (std::vector<std::string>{"fs"}));
    EXPECT_EQ(e.keys, (std::vector<std::string>{"app"}));

    EXPECT_EQ(e.policy.slug, "summarize");
    EXPECT_EQ(e.policy.limits[0], 10);  // requests_per_minute
    for (std::size_t i = 1; i < e.policy.limits.size(); ++i) EXPECT_EQ(e.policy.limits[i], 0) << i;
    EXPECT_EQ(e.policy.max_tokens_per_request, 2000);
    EXPECT_DOUBLE_EQ(e.policy.budget.monthly_usd, 5.0);
    EXPECT_DOUBLE_EQ(e.policy.budget.daily_usd, 0.0);

    ASSERT_TRUE(e.input_schema);
    EXPECT_TRUE(e.input_schema->validate(json::parse(R"({"text":"hello"})")).empty());
    EXPECT_FALSE(e.input_schema->validate(json::parse(R"({})")).empty());
    EXPECT_FALSE(e.output_schema);

    ASSERT_EQ(e.rules.size(), 2u);
    EXPECT_EQ(e.rules[0].model, "big-model");
    ASSERT_TRUE(e.rules[0].input_tokens_gt);
    EXPECT_EQ(*e.rules[0].input_tokens_gt, 1000);
    EXPECT_FALSE(e.rules[0].monthly_spend_pct_gt);
    EXPECT_FALSE(e.rules[0].time_of_day);
    EXPECT_EQ(e.rules[1].model, "cheap-model");
    EXPECT_FALSE(e.rules[1].input_tokens_gt);
    ASSERT_TRUE(e.rules[1].monthly_spend_pct_gt);
    EXPECT_DOUBLE_EQ(*e.rules[1].monthly_spend_pct_gt, 80.0);
    ASSERT_TRUE(e.rules[1].time_of_day);
    EXPECT_EQ(*e.rules[1].time_of_day, std::make_pair(1320, 360));

    // The parsed rules decide as choose_model says.
    EXPECT_EQ(choose_model(e, facts(1001)), "big-model");
    EXPECT_EQ(choose_model(e, facts(10, 90, 1380)), "cheap-model");
    EXPECT_EQ(choose_model(e, facts(10, 90, 720)), "mock-1");

    // The second endpoint has the defaults.
    auto const& p = *cfg.endpoints[1];
    EXPECT_EQ(p.slug, "plain_2");
    EXPECT_EQ(p.model, "mock-2");
    EXPECT_TRUE(p.stream);
    EXPECT_FALSE(p.sessions);
    EXPECT_TRUE(p.prompt_template.empty());
    EXPECT_TRUE(p.keys.empty());
    EXPECT_TRUE(p.rules.empty());
    EXPECT_TRUE(p.failover.empty());
    EXPECT_FALSE(p.mcp_servers);
    EXPECT_FALSE(p.input_schema);
    EXPECT_EQ(p.policy.max_tokens_per_request, 0);
    EXPECT_FALSE(p.policy.budget.any());

    // Limits and a budget of an endpoint switch on the access runtime.
    ASSERT_TRUE(cfg.access_settings);
    EXPECT_TRUE(cfg.access_settings->endpoint_limits);
    EXPECT_TRUE(cfg.access_settings->endpoint_budgets);
}

TEST(endpoints_config, null_limits_mean_unlimited) {
    auto cfg = parse_yaml(R"(
endpoints:
  - slug: free
    model: m
    limits: { requests_per_minute: null, max_tokens_per_request: null }
)");
    ASSERT_EQ(cfg.endpoints.size(), 1u);
    auto const& e = *cfg.endpoints[0];
    EXPECT_EQ(e.policy.max_tokens_per_request, 0);
    for (auto v : e.policy.limits) EXPECT_EQ(v, 0);
    EXPECT_FALSE(cfg.access_settings && cfg.access_settings->endpoint_limits);
}

TEST(endpoints_config, sessions_take_the_top_level_defaults) {
    auto cfg = parse_yaml(R"(
sessions: { store: memory, ttl: 2h, max_messages: 50 }
endpoints:
  - slug: chat
    model: m
    sessions: { enabled: true, max_messages: 10 }
  - { slug: stateless, model: m }
)");
    ASSERT_EQ(cfg.endpoints.size(), 2u);
    auto const& chat = *cfg.endpoints[0];
    EXPECT_TRUE(chat.sessions);
    EXPECT_EQ(chat.session_limits.ttl, std::chrono::hours(2));
    EXPECT_EQ(chat.session_limits.max_messages, 10u);
    EXPECT_FALSE(cfg.endpoints[1]->sessions);

    // Sessions switched off need no sessions section.
    auto off = parse_yaml("endpoints:\n  - { slug: a, model: m, sessions: { enabled: false } }\n");
    ASSERT_EQ(off.endpoints.size(), 1u);
    EXPECT_FALSE(off.endpoints[0]->sessions);
}

TEST(endpoints_config, keys_may_name_admin_keys_when_there_is_an_admin_token) {
    auto cfg = parse_yaml(R"(
admin: { token: admin-token-0123456789 }
endpoints:
  - { slug: a, model: m, keys: [made-later] }
)");
    ASSERT_EQ(cfg.endpoints.size(), 1u);
    EXPECT_EQ(cfg.endpoints[0]->keys, (std::vector<std::string>{"made-later"}));
}

TEST(endpoints_config, input_schema_ref_is_read_relative_to_the_config_folder) {
    namespace fs = std::filesystem;
    struct temp_dir {
        fs::path path;
        ~temp_dir() {
            std::error_code ec;
            fs::remove_all(path, ec);
        }
    } dir{fs::temp_directory_path() /
          ("toolgate-endpoints-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()))};
    fs::create_directories(dir.path);
    {
        std::ofstream out(dir.path / "schema.json");
        out << R"({"type":"object","properties":{"q":{"type":"string"}},"required":["q"]})";
    }
    auto cfg = parse_yaml(R"(
endpoints:
  - slug: ask
    model: m
    input_schema: { "$ref": "file:schema.json" }
    output_schema: { "$ref": "file:schema.json" }
)",
                          (dir.path / "gateway.yaml").string());
    ASSERT_EQ(cfg.endpoints.size(), 1u);
    auto const& e = *cfg.endpoints[0];
    ASSERT_TRUE(e.input_schema);
    EXPECT_TRUE(e.input_schema->validate(json::parse(R"({"q":"x"})")).empty());
    EXPECT_FALSE(e.input_schema->validate(json::parse(R"({})")).empty());
    ASSERT_TRUE(e.output_schema);
    ASSERT_TRUE(e.output_schema_doc.is_object());
    EXPECT_TRUE(e.output_schema_doc.as_object().contains("required"));
}

TEST(endpoints_config, mistakes_name_the_key) {
    struct error_case {
        std::string name;
        std::string yaml;
        std::string expected;  // a part of the message: "PATH: what"
    };
    std::vector<error_case> const cases{
        {"not a list", "endpoints: { slug: a, model: m }\n", "endpoints: must be a list"},
        {"unknown mcp server", "endpoints:\n  - { slug: a, model: m, mcp: { servers: [nope] } }\n",
         "endpoints[0].mcp.servers: names an MCP server that is not configured: 'nope'"},
        {"a bad tag after a variable", "endpoints:\n  - { slug: a, model: m, prompt_template: \"{{input}} {{x | upper}}\" }\n",
         "endpoints[0].prompt_template: "},
        {"missing slug", "endpoints:\n  - { model: m }\n", "endpoints[0].slug: required"},
        {"bad slug", "endpoints:\n  - { slug: \"Bad Slug\", model: m }\n", "endpoints[0].slug: must be 1 to 64"},
        {"upper-case slug", "endpoints:\n  - { slug: Summarize, model: m }\n", "endpoints[0].slug: must be 1 to 64"},
        {"duplicate slug", "endpoints:\n  - { slug: a, model: m }\n  - { slug: a, model: n }\n",
         "endpoints[1].slug: duplicate endpoint 'a'"},
        {"missing model", "endpoints:\n  - { slug: a }\n", "endpoints[0].model: required"},
        {"missing model of the second", "endpoints:\n  - { slug: a, model: m }\n  - { slug: b }\n",
         "endpoints[1].model: required"},
        {"unknown key", "endpoints:\n  - { slug: a, model: m, modle: x }\n", "endpoints[0].modle: unknown key"},
        {"rule without condition", "endpoints:\n  - { slug: a, model: m, rules: [{ when: {}, model: b }] }\n",
         "endpoints[0].rules[0].when: needs a condition"},
        {"rule without when", "endpoints:\n  - { slug: a, model: m, rules: [{ model: b }] }\n",
         "endpoints[0].rules[0].when: required"},
        {"rule without model", "endpoints:\n  - { slug: a, model: m, rules: [{ when: { input_tokens_gt: 5 } }] }\n",
         "endpoints[0].rules[0].model: required"},
        {"rule with an unknown condition",
         "endpoints:\n  - { slug: a, model: m, rules: [{ when: { output_tokens_gt: 5 }, model: b }] }\n",
         "endpoints[0].rules[0].when.output_tokens_gt: unknown key"},
        {"bad time_of_day",
         "endpoints:\n  - { slug: a, model: m, rules: [{ when: { time_of_day: \"25:00-01:00\" }, model: b }] }\n",
         "endpoints[0].rules[0].when.time_of_day: must be \"HH:MM-HH:MM\""},
        {"time_of_day without minutes",
         "endpoints:\n  - { slug: a, model: m, rules: [{ when: { time_of_day: \"22-06\" }, model: b }] }\n",
         "endpoints[0].rules[0].when.time_of_day"},
        {"bad monthly_spend_pct_gt",
         "endpoints:\n  - { slug: a, model: m, rules: [{ when: { monthly_spend_pct_gt: lots }, model: b }] }\n",
         "endpoints[0].rules[0].when.monthly_spend_pct_gt: must be a number from 0 to 1000"},
        {"rules not a list", "endpoints:\n  - { slug: a, model: m, rules: { when: {} } }\n",
         "endpoints[0].rules: must be a list"},
        {"sessions without a sessions section", "endpoints:\n  - { slug: a, model: m, sessions: { enabled: true } }\n",
         "endpoints[0].sessions: needs a top-level sessions section"},
        {"max_tokens_per_request 0",
         "endpoints:\n  - { slug: a, model: m, limits: { max_tokens_per_request: 0 } }\n",
         "endpoints[0].limits.max_tokens_per_request: must be a whole number >= 1"},
        {"max_tokens_per_request text",
         "endpoints:\n  - { slug: a, model: m, limits: { max_tokens_per_request: many } }\n",
         "endpoints[0].limits.max_tokens_per_request: must be a whole number >= 1"},
        {"unknown limit", "endpoints:\n  - { slug: a, model: m, limits: { requests_per_week: 1 } }\n",
         "endpoints[0].limits.requests_per_week: unknown limit"},
        {"unknown budget key", "endpoints:\n  - { slug: a, model: m, budget: { yearly_usd: 1 } }\n",
         "endpoints[0].budget.yearly_usd: unknown key"},
        {"keys naming an unknown key", "endpoints:\n  - { slug: a, model: m, keys: [ghost] }\n",
         "endpoints[0].keys: names a key that is not configured: 'ghost'"},
        {"keys naming an unknown key beside a known one",
         "keys:\n  - { name: app, key: sk-app-12345 }\nendpoints:\n  - { slug: a, model: m, keys: [app, ghost] }\n",
         "endpoints[0].keys: names a key that is not configured: 'ghost'"},
        {"input_schema a list", "endpoints:\n  - { slug: a, model: m, input_schema: [1, 2] }\n",
         "endpoints[0].input_schema: must be a JSON Schema object"},
        {"input_schema a string", "endpoints:\n  - { slug: a, model: m, input_schema: \"object\" }\n",
         "endpoints[0].input_schema: must be a JSON Schema object"},
        {"output_schema a number", "endpoints:\n  - { slug: a, model: m, output_schema: 5 }\n",
         "endpoints[0].output_schema: must be a JSON Schema object"},
        {"input_schema $ref to a missing file",
         "endpoints:\n  - { slug: a, model: m, input_schema: { \"$ref\": \"file:no-such-schema-7c1e5b.json\" } }\n",
         "endpoints[0].input_schema.$ref: cannot read"},
        {"input_schema $ref that is no file",
         "endpoints:\n  - { slug: a, model: m, input_schema: { \"$ref\": \"http://example.com/s.json\" } }\n",
         "endpoints[0].input_schema.$ref: must be \"file:PATH\""},
        {"unclosed prompt template", "endpoints:\n  - { slug: a, model: m, prompt_template: \"Hi {{name\" }\n",
         "endpoints[0].prompt_template:"},
        {"prompt template with an unknown filter",
         "endpoints:\n  - { slug: a, model: m, prompt_template: \"{{name | upper}}\" }\n",
         "endpoints[0].prompt_template:"},
        {"stream not a boolean", "endpoints:\n  - { slug: a, model: m, stream: maybe }\n",
         "endpoints[0].stream: must be true or false"},
    };
    for (auto const& c : cases) {
        SCOPED_TRACE(c.name);
        auto err = config_error_of(c.yaml);
        EXPECT_NE(err.find(c.expected), std::string::npos) << err;
        EXPECT_EQ(err.rfind("test.yaml", 0), 0u) << err;
    }
}

TEST(endpoints_config, errors_carry_the_line) {
    auto err = config_error_of("endpoints:\n  - slug: a\n    model: m\n    modle: x\n");
    EXPECT_NE(err.find("test.yaml:4: endpoints[0].modle: unknown key"), std::string::npos) << err;
    auto slug = config_error_of("endpoints:\n  - slug: ok\n    model: m\n  - slug: \"Bad Slug\"\n    model: m\n");
    EXPECT_NE(slug.find("test.yaml:4: endpoints[1].slug"), std::string::npos) << slug;
}

}  // namespace toolgate::gateway

// ---- endpoints made through the admin API: the same fields as JSON ----

namespace toolgate::gateway {

namespace {

std::variant<std::shared_ptr<endpoint_config const>, std::string> from_json(std::string const& text,
                                                                            endpoint_context const& ctx = {}) {
    return parse_endpoint_json(json::parse(text).as_object(), ctx);
}

std::string error_of_json(std::string const& text, endpoint_context const& ctx = {}) {
    auto r = from_json(text, ctx);
    auto const* msg = std::get_if<std::string>(&r);
    return msg ? *msg : "no error";
}

}  // namespace

TEST(endpoints_json, a_definition_parses_as_the_config_would) {
    sessions::settings defaults;
    endpoint_context ctx;
    ctx.session_defaults = &defaults;
    ctx.mcp_servers = {"docs"};
    auto r = from_json(R"({
        "slug": "summarize", "model": "smart", "system_prompt": "Be brief, ${HOME}.",
        "prompt_template": "Text: {{input}} for {{audience | default: engineers}}",
        "input_schema": {"type": "object", "required": ["input"], "properties": {"input": {"type": "string", "maxLength": 5}}},
        "output_schema": {"type": "object", "properties": {"n": {"const": "5"}, "x": {"type": "number", "maximum": 1e300}}},
        "stream": false, "sessions": {"enabled": true, "max_messages": 12}, "mcp": {"servers": ["docs"]},
        "failover": ["cheap"], "keys": ["made-later"],
        "limits": {"requests_per_minute": 60, "max_tokens_per_request": 2000, "tokens_per_minute": null},
        "budget": {"monthly_usd": 50.5},
        "rules": [{"when": {"input_tokens_gt": 8000}, "model": "big"}, {"when": {"monthly_spend_pct_gt": 80.5}, "model": "cheap"},
                  {"when": {"time_of_day": "22:00-06:00"}, "model": "night"}]})",
                       ctx);
    ASSERT_TRUE(std::holds_alternative<std::shared_ptr<endpoint_config const>>(r)) << std::get<std::string>(r);
    auto const& e = *std::get<std::shared_ptr<endpoint_config const>>(r);
    EXPECT_EQ(e.slug, "summarize");
    EXPECT_EQ(e.system_prompt, "Be brief, ${HOME}.");  // taken as written: no environment
    EXPECT_FALSE(e.stream);
    EXPECT_TRUE(e.sessions);
    EXPECT_EQ(e.session_limits.max_messages, 12u);
    ASSERT_TRUE(e.mcp_servers);
    EXPECT_EQ(*e.mcp_servers, std::vector<std::string>{"docs"});
    EXPECT_EQ(e.keys, std::vector<std::string>{"made-later"});
    EXPECT_EQ(e.policy.max_tokens_per_request, 2000);
    EXPECT_DOUBLE_EQ(e.policy.budget.monthly_usd, 50.5);
    ASSERT_EQ(e.rules.size(), 3u);
    EXPECT_DOUBLE_EQ(*e.rules[1].monthly_spend_pct_gt, 80.5);
    // A string stays a string and a number a number on the way through YAML.
    ASSERT_TRUE(e.input_schema);
    EXPECT_TRUE(e.input_schema->validate(json::parse(R"({"input":"12345"})")).empty());
    EXPECT_FALSE(e.input_schema->validate(json::parse(R"({"input":"123456"})")).empty());
    EXPECT_TRUE(e.output_schema->validate(json::parse(R"({"n":"5","x":0.5})")).empty());
    EXPECT_FALSE(e.output_schema->validate(json::parse(R"({"n":5})")).empty());
    EXPECT_EQ(e.output_schema_doc.at("properties").at("n").at("const"), "5");
    EXPECT_EQ(e.output_schema_doc.at("properties").at("x").at("maximum").as_double(), 1e300);
}

TEST(endpoints_json, mistakes_are_named_without_a_file_or_line) {
    EXPECT_EQ(error_of_json(R"({"slug":"a","model":"m","nope":1})").substr(0, 29), "endpoint.nope: unknown key (k");
    EXPECT_EQ(error_of_json(R"({"model":"m"})"), "endpoint.slug: required");
    EXPECT_EQ(error_of_json(R"({"slug":"Bad Slug","model":"m"})"), "endpoint.slug: must be 1 to 64 of a-z, 0-9, '-' and '_'");
    EXPECT_EQ(error_of_json(R"({"slug":"a","model":null})"), "endpoint.model: must be a string");
    EXPECT_EQ(error_of_json(R"({"slug":"a","model":"m","input_schema":{"$ref":"file:/etc/passwd"}})"),
              "endpoint.input_schema.$ref: a file reference works in the config file only; send the schema itself");
    EXPECT_EQ(error_of_json(R"({"slug":"a","model":"m","sessions":{"enabled":true}})"),
              "endpoint.sessions: needs a top-level sessions section (it says where sessions are kept)");
    EXPECT_EQ(error_of_json(R"({"slug":"a","model":"m","mcp":{"servers":["gone"]}})"),
              "endpoint.mcp.servers: names an MCP server that is not configured: 'gone'");
    EXPECT_EQ(error_of_json(R"({"slug":"a","model":"m","prompt_template":"{{x"})").substr(0, 25), "endpoint.prompt_template:");
    EXPECT_EQ(error_of_json(R"({"slug":"a","model":"m","input_schema":{"type":"nonsense"}})").substr(0, 22),
              "endpoint.input_schema:");
}

namespace {

template <class T>
T run_io(asio::awaitable<T> a) {
    asio::io_context ioc;
    auto f = asio::co_spawn(ioc, std::move(a), asio::use_future);
    ioc.run();
    return f.get();
}

state::stored_doc stored(std::string slug, std::string model, std::int64_t ms) {
    state::stored_doc d;
    d.id = slug;
    d.body = R"({"slug":")" + slug + R"(","model":")" + model + "\"}";
    d.updated_ms = ms;
    return d;
}

}  // namespace

TEST(endpoint_directory, config_first_then_the_store_behind_its_cache) {
    auto store = state::make_memory_docs();
    endpoint_list config;
    auto cfg_one = std::make_shared<endpoint_config>();
    cfg_one->slug = "from-config";
    cfg_one->model = "m0";
    config.push_back(cfg_one);
    endpoint_directory dir(config, store, endpoint_context{}, std::chrono::hours(1));
    EXPECT_EQ(run_io(dir.find("from-config")).endpoint.get(), cfg_one.get());

    EXPECT_FALSE(run_io(dir.find("made")).endpoint);  // not there yet (and that is cached too)
    ASSERT_TRUE(run_io(store->insert(stored("made", "m1", 1))).value());
    EXPECT_FALSE(run_io(dir.find("made")).endpoint);  // another replica's change waits for the cache time
    dir.invalidate("made");                            // this replica's change does not
    auto first = run_io(dir.find("made")).endpoint;
    ASSERT_TRUE(first);
    EXPECT_EQ(first->model, "m1");
    EXPECT_EQ(run_io(dir.find("made")).endpoint.get(), first.get());  // cached: the same object

    // A stored definition that no longer fits (here: it names a server the config does not have)
    // is reported, not served.
    auto bad = stored("bad", "m", 2);
    bad.body = R"({"slug":"bad","model":"m","mcp":{"servers":["gone"]}})";
    ASSERT_TRUE(run_io(store->insert(bad)).value());
    auto f = run_io(dir.find("bad"));
    EXPECT_FALSE(f.endpoint);
    EXPECT_NE(f.invalid.find("not configured: 'gone'"), std::string::npos) << f.invalid;
}

TEST(endpoint_directory, a_definition_is_parsed_again_only_when_it_changed) {
    auto store = state::make_memory_docs();
    endpoint_directory dir(endpoint_list{}, store, endpoint_context{}, std::chrono::milliseconds(0));
    ASSERT_TRUE(run_io(store->insert(stored("e", "m1", 10))).value());
    auto a = run_io(dir.find("e")).endpoint;
    auto b = run_io(dir.find("e")).endpoint;  // read again (no cache time), same updated_ms: same object
    ASSERT_TRUE(a);
    EXPECT_EQ(a.get(), b.get());
    ASSERT_TRUE(run_io(store->replace(stored("e", "m2", 11))).value());
    auto c = run_io(dir.find("e")).endpoint;
    ASSERT_TRUE(c);
    EXPECT_EQ(c->model, "m2");
    ASSERT_TRUE(run_io(store->remove("e")).value());
    EXPECT_FALSE(run_io(dir.find("e")).endpoint);
    EXPECT_EQ(a->model, "m1");  // a call that holds the old one finishes with it
}

}  // namespace toolgate::gateway
