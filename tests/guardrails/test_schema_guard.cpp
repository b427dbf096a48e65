#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "guardrails/factories.hpp"
#include "guardrails/schema_guard.hpp"

namespace tg = toolgate::guardrails;
namespace json = boost::json;

namespace {

json::object obj(std::string_view text) { return json::parse(text).as_object(); }

std::unique_ptr<tg::guardrail> guard(std::string_view config, tg::build_context const& ctx = {}) {
    return tg::make_schema_guard(obj(config), ctx);
}

tg::verdict run(tg::guardrail const& g, std::string answer, json::object* body = nullptr) {
    std::vector<tg::text_part> parts{{tg::part_kind::assistant, 1, std::move(answer)}};
    tg::scope s;
    return g.check(parts, body, s);
}

std::string config_error_key(std::string_view config, tg::build_context const& ctx = {}) {
    try {
        guard(config, ctx);
    } catch (tg::config_error const& e) {
        return e.key;
    }
    return "(no error)";
}

constexpr std::string_view invoice = R"({"schema": {
    "type": "object",
    "required": ["id", "items"],
    "additionalProperties": false,
    "properties": {
        "id": {"type": "string", "minLength": 3},
        "items": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "price"],
            "properties": {"name": {"type": "string", "maxLength": 8}, "price": {"type": "number", "minimum": 0}}
        }}
    }
}})";

template <class F>
double millis(F&& f) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct other_guardrail : tg::guardrail {
    std::string_view name() const override { return "other"; }
    tg::verdict check(std::vector<tg::text_part>&, json::object*, tg::scope&) const override { return {}; }
};

}  // namespace

TEST(schema_guard, passes_an_answer_that_matches_the_schema) {
    auto g = guard(invoice);
    auto v = run(*g, R"({"id": "INV-1", "items": [{"name": "pen", "price": 1.5}]})");
    EXPECT_EQ(v.what, tg::outcome::pass);
}

TEST(schema_guard, names_the_json_pointer_of_a_value_of_the_wrong_type) {
    auto g = guard(invoice);
    auto v = run(*g, R"({"id": "INV-1", "items": [{"name": "pen", "price": "cheap"}]})");
    ASSERT_EQ(v.what, tg::outcome::block);
    EXPECT_EQ(v.rule, "schema");
    EXPECT_EQ(v.part, 0u);
    EXPECT_NE(v.detail.find("/items/0/price: "), std::string::npos) << v.detail;
}

TEST(schema_guard, lists_every_nested_error_with_its_path_and_no_wrapper_lines) {
    auto g = guard(invoice);
    auto v = run(*g, R"({"id": "X", "items": [{"name": "pen", "price": -1}, {"price": 2}, {"name": "a-very-long-name", "price": 1}], "extra": 1})");
    ASSERT_EQ(v.what, tg::outcome::block);
    EXPECT_NE(v.detail.find("/id: "), std::string::npos) << v.detail;
    EXPECT_NE(v.detail.find("/items/0/price: "), std::string::npos) << v.detail;
    EXPECT_NE(v.detail.find("/items/1: Missing required property 'name'"), std::string::npos) << v.detail;
    EXPECT_NE(v.detail.find("/items/2/name: "), std::string::npos) << v.detail;
    EXPECT_NE(v.detail.find("'extra'"), std::string::npos) << v.detail;
    EXPECT_EQ(v.detail.find("Failed to validate item #"), std::string::npos) << v.detail;
    EXPECT_EQ(v.detail.find("associated with property name"), std::string::npos) << v.detail;
}

TEST(schema_guard, caps_the_error_list_at_max_errors_and_counts_the_rest) {
    auto g = guard(R"({"max_errors": 2, "schema": {"type": "array", "items": {"type": "integer"}}})");
    auto v = run(*g, R"(["a", "b", "c", "d", "e"])");
    ASSERT_EQ(v.what, tg::outcome::block);
    EXPECT_NE(v.detail.find("/0: "), std::string::npos) << v.detail;
    EXPECT_NE(v.detail.find("/1: "), std::string::npos) << v.detail;
    EXPECT_EQ(v.detail.find("/2: "), std::string::npos) << v.detail;
    EXPECT_NE(v.detail.find("... and 3 more"), std::string::npos) << v.detail;
}

TEST(schema_guard, never_echoes_a_string_value_of_the_answer) {
    auto g = guard(R"({"schema": {"properties": {"name": {"type": "string", "maxLength": 3, "pattern": "^[a-z]+$", "enum": ["abc"]}}}})");
    auto v = run(*g, R"({"name": "SECRET-VALUE-42"})");
    ASSERT_EQ(v.what, tg::outcome::block);
    EXPECT_EQ(v.detail.find("SECRET"), std::string::npos) << v.detail;
}

TEST(schema_guard, an_answer_that_is_not_json_fails_with_rule_not_json) {
    auto g = guard(invoice);
    for (auto text : {"Sure! Here is the invoice: {\"id\": 1}", "{\"id\": \"INV-1\",}", "```json\n{}\n```",
                      "{\"id\": \"INV\"} and more", "{\"id\": \"\xff\"}"}) {
        auto v = run(*g, text);
        EXPECT_EQ(v.what, tg::outcome::block) << text;
        EXPECT_EQ(v.rule, "not_json") << text;
        EXPECT_NE(v.detail.find("not JSON"), std::string::npos) << v.detail;
        EXPECT_TRUE(tg::is_repairable(v));
    }
}

TEST(schema_guard, json_nested_deeper_than_64_levels_is_not_json) {
    auto g = guard(R"({"schema": {}})");
    auto v = run(*g, std::string(100, '[') + std::string(100, ']'));
    EXPECT_EQ(v.rule, "not_json");
    EXPECT_NE(v.detail.find("deeper than 64"), std::string::npos) << v.detail;
    EXPECT_EQ(run(*g, std::string(60, '[') + std::string(60, ']')).what, tg::outcome::pass);
}

TEST(schema_guard, joins_the_assistant_parts_and_ignores_the_others) {
    auto g = guard(invoice);
    std::vector<tg::text_part> parts{{tg::part_kind::user, 0, "not json at all"},
                                     {tg::part_kind::assistant, 1, R"({"id": "INV-1", "items": [{"name": )"},
                                     {tg::part_kind::assistant, 2, R"("pen", "price": "x"}]})"}};
    tg::scope s;
    auto v = g->check(parts, nullptr, s);
    ASSERT_EQ(v.what, tg::outcome::block);
    EXPECT_EQ(v.rule, "schema");
    EXPECT_EQ(v.part, 1u);  // the first assistant part
    EXPECT_NE(v.detail.find("/items/0/price"), std::string::npos);
}

TEST(schema_guard, an_answer_without_text_passes) {
    auto g = guard(invoice);
    EXPECT_EQ(run(*g, "").what, tg::outcome::pass);
    EXPECT_EQ(run(*g, " \n").what, tg::outcome::pass);
    std::vector<tg::text_part> none;
    tg::scope s;
    EXPECT_EQ(g->check(none, nullptr, s).what, tg::outcome::pass);
}

TEST(schema_guard, validates_against_the_request_response_format_schema_when_none_is_configured) {
    auto g = guard("{}");
    auto body = obj(R"({"model": "m", "messages": [], "response_format": {"type": "json_schema", "json_schema": {
        "name": "person", "strict": true, "schema": {"type": "object", "required": ["age"], "additionalProperties": false,
        "properties": {"age": {"type": "integer", "minimum": 0}}}}}})");
    EXPECT_EQ(run(*g, R"({"age": 31})", &body).what, tg::outcome::pass);
    auto v = run(*g, R"({"age": -3, "name": "x"})", &body);
    ASSERT_EQ(v.what, tg::outcome::block);
    EXPECT_EQ(v.rule, "schema");
    EXPECT_NE(v.detail.find("/age: "), std::string::npos) << v.detail;
    EXPECT_NE(v.detail.find("'name'"), std::string::npos) << v.detail;
    EXPECT_EQ(run(*g, "I am 31.", &body).rule, "not_json");
}

TEST(schema_guard, checks_both_the_configured_and_the_client_schema) {
    auto g = guard(R"({"schema": {"required": ["a"]}})");
    auto body = obj(R"({"response_format": {"type": "json_schema", "json_schema": {"schema": {"required": ["b"]}}}})");
    auto v = run(*g, "{}", &body);
    ASSERT_EQ(v.what, tg::outcome::block);
    EXPECT_NE(v.detail.find("'a'"), std::string::npos) << v.detail;
    EXPECT_NE(v.detail.find("'b'"), std::string::npos) << v.detail;
    EXPECT_EQ(run(*g, R"({"a": 1, "b": 2})", &body).what, tg::outcome::pass);
}

TEST(schema_guard, response_format_json_object_requires_a_json_object) {
    auto g = guard("{}");
    auto body = obj(R"({"response_format": {"type": "json_object"}})");
    EXPECT_EQ(run(*g, R"({"x": 1})", &body).what, tg::outcome::pass);
    EXPECT_EQ(run(*g, "[1, 2]", &body).rule, "schema");
    EXPECT_EQ(run(*g, "hello", &body).rule, "not_json");
}

TEST(schema_guard, without_any_schema_every_answer_passes) {
    auto g = guard("{}");
    auto body = obj(R"({"response_format": {"type": "text"}})");
    EXPECT_EQ(run(*g, "plain prose", &body).what, tg::outcome::pass);
    EXPECT_EQ(run(*g, "plain prose").what, tg::outcome::pass);
}

TEST(schema_guard, a_client_schema_it_cannot_use_blocks_with_rule_response_format_schema) {
    auto g = guard("{}");
    for (auto schema : {R"({"$ref": "https://example.com/other.json"})", R"j({"properties": {"a": {"pattern": "(?=x)"}}})j",
                        R"({"type": 5})"}) {
        auto body = obj(std::string(R"({"response_format": {"type": "json_schema", "json_schema": {"schema": )") +
                        schema + "}}}");
        auto v = run(*g, "{}", &body);
        EXPECT_EQ(v.what, tg::outcome::block) << schema;
        EXPECT_EQ(v.rule, "response_format_schema") << schema;
        EXPECT_FALSE(tg::is_repairable(v));
    }
}

TEST(schema_guard, a_missing_schema_file_is_a_config_error_on_schema_file) {
    tg::build_context ctx{"/nonexistent-dir"};
    EXPECT_EQ(config_error_key(R"({"schema_file": "invoice.schema.json"})", ctx), "config.schema_file");
}

TEST(schema_guard, a_schema_file_that_is_not_json_is_a_config_error) {
    auto dir = ::testing::TempDir();
    {
        std::ofstream(dir + "/broken.schema.json") << "{\"type\": \"object\",";
        std::ofstream(dir + "/good.schema.json") << R"({"type": "object", "required": ["total"]})";
    }
    tg::build_context ctx{dir};
    EXPECT_EQ(config_error_key(R"({"schema_file": "broken.schema.json"})", ctx), "config.schema_file");
    auto g = guard(R"({"schema_file": "good.schema.json"})", ctx);  // relative to the config's folder
    EXPECT_EQ(run(*g, R"({"total": 3})").what, tg::outcome::pass);
    EXPECT_EQ(run(*g, R"({"sum": 3})").rule, "schema");
    std::remove((dir + "/broken.schema.json").c_str());
    std::remove((dir + "/good.schema.json").c_str());
}

TEST(schema_guard, a_schema_valijson_or_re2_refuses_is_a_config_error_on_schema) {
    EXPECT_EQ(config_error_key(R"({"schema": {"$ref": "other.json#/a"}})"), "config.schema");
    EXPECT_EQ(config_error_key(R"({"schema": {"properties": {"a": {"pattern": "(a)\\1"}}}})"), "config.schema");
    EXPECT_EQ(config_error_key(R"({"schema": {"properties": 3}})"), "config.schema");
    EXPECT_EQ(config_error_key(R"({"schema": {"items": [1]}})"), "config.schema");
    EXPECT_EQ(config_error_key(R"({"schema": "object"})"), "config.schema");
}

TEST(schema_guard, a_configured_schema_with_keywords_valijson_does_not_check_is_a_config_error) {
    try {
        guard(R"({"schema": {"properties": {"a": {"unevaluatedProperties": false}}}})");
        FAIL() << "no error";
    } catch (tg::config_error const& e) {
        EXPECT_EQ(e.key, "config.schema");
        EXPECT_NE(std::string(e.what()).find("unevaluatedProperties at /properties/a"), std::string::npos) << e.what();
    }
    EXPECT_EQ(config_error_key(R"({"schema": {"contains": {}, "minContains": 2}})"), "config.schema");
}

TEST(schema_guard, refuses_unknown_keys_and_bad_values) {
    EXPECT_EQ(config_error_key(R"({"schema": {}, "shema_file": "x"})"), "config.shema_file");
    EXPECT_EQ(config_error_key(R"({"schema": {}, "schema_file": "x.json"})"), "config.schema_file");
    EXPECT_EQ(config_error_key(R"({"on_failure": "retry"})"), "config.on_failure");
    EXPECT_EQ(config_error_key(R"({"max_errors": 0})"), "config.max_errors");
    EXPECT_EQ(config_error_key(R"({"max_errors": 2.5})"), "config.max_errors");
}

TEST(schema_guard, exposes_on_failure_repair_to_the_gateway) {
    EXPECT_TRUE(tg::wants_repair(*guard(R"({"on_failure": "repair"})")));
    EXPECT_FALSE(tg::wants_repair(*guard(R"({"on_failure": "reject"})")));
    EXPECT_FALSE(tg::wants_repair(*guard("{}")));
    EXPECT_FALSE(tg::wants_repair(other_guardrail{}));
}

TEST(schema_guard, sees_the_answer_and_does_not_check_streams) {
    auto g = guard("{}");
    EXPECT_EQ(g->name(), "schema-guard");
    ASSERT_EQ(g->default_apply_to().size(), 1u);
    EXPECT_EQ(g->default_apply_to()[0], tg::part_kind::assistant);
    EXPECT_EQ(g->window(), 0u);
}

TEST(schema_guard, reads_2020_12_prefix_items_dependent_keywords_and_ref_siblings) {
    auto g = guard(R"({"schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"pos": {"type": "integer", "minimum": 0}},
        "type": "object",
        "properties": {
            "point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "items": false},
            "count": {"$ref": "#/$defs/pos", "maximum": 10}
        },
        "dependentRequired": {"card": ["cvv"]},
        "dependentSchemas": {"vip": {"required": ["tier"]}}
    }})");
    EXPECT_EQ(run(*g, R"({"point": [1, 2], "count": 3, "card": 1, "cvv": 2})").what, tg::outcome::pass);
    EXPECT_EQ(run(*g, R"({"point": [1, 2, 3]})").rule, "schema");    // items: false after the prefix
    EXPECT_EQ(run(*g, R"({"point": ["a", 2]})").rule, "schema");     // prefixItems[0]
    EXPECT_EQ(run(*g, R"({"count": 11})").rule, "schema");           // the $ref's sibling applies
    EXPECT_EQ(run(*g, R"({"count": -1})").rule, "schema");           // the $ref applies
    EXPECT_EQ(run(*g, R"({"card": 1})").rule, "schema");             // dependentRequired
    EXPECT_EQ(run(*g, R"({"vip": true})").rule, "schema");           // dependentSchemas
    EXPECT_EQ(run(*g, R"({"vip": true, "tier": 1})").what, tg::outcome::pass);
}

TEST(schema_guard, reads_a_draft_7_schema_as_draft_7) {
    auto g = guard(R"({"schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"pos": {"type": "integer", "minimum": 0}},
        "properties": {"count": {"$ref": "#/definitions/pos", "maximum": 10},
                       "pair": {"items": [{"type": "string"}], "additionalItems": false}},
        "if": {"required": ["a"]}, "then": {"required": ["b"]}
    }})");
    EXPECT_EQ(run(*g, R"({"count": 11})").what, tg::outcome::pass);  // siblings of $ref are ignored in draft 7
    EXPECT_EQ(run(*g, R"({"count": -1})").rule, "schema");
    EXPECT_EQ(run(*g, R"({"pair": ["x", "y"]})").rule, "schema");
    EXPECT_EQ(run(*g, R"({"a": 1})").rule, "schema");
    EXPECT_EQ(run(*g, R"({"a": 1, "b": 2, "pair": ["x"]})").what, tg::outcome::pass);
}

TEST(schema_guard, checks_date_time_and_date_time_formats_and_ignores_the_others) {
    auto g = guard(R"({"schema": {"properties": {"d": {"format": "date"}, "t": {"format": "time"},
        "dt": {"format": "date-time"}, "n": {"type": "integer", "format": "int32"}, "e": {"format": "email"}}}})");
    EXPECT_EQ(run(*g, R"({"d": "2024-02-29", "t": "23:59:60.5+02:00", "dt": "2024-12-31T08:00:00Z", "n": 5, "e": "x"})").what,
              tg::outcome::pass);
    for (auto bad : {R"({"d": "2023-02-29"})", R"({"d": "2024-13-01"})", R"({"d": "24-01-01"})", R"({"t": "24:00:00Z"})",
                     R"({"t": "12:00:00"})", R"({"dt": "2024-01-01 08:00:00Z"})", R"({"dt": "2024-04-31T08:00:00Z"})"}) {
        auto v = run(*g, bad);
        EXPECT_EQ(v.rule, "schema") << bad;
    }
}

TEST(schema_guard, pattern_properties_apply_with_additional_properties) {
    auto g = guard(R"({"schema": {"type": "object", "properties": {"id": {"type": "string"}},
        "patternProperties": {"^x-": {"type": "string"}, "^x-n": {"type": "string", "maxLength": 2}},
        "additionalProperties": false}})");
    EXPECT_EQ(run(*g, R"({"id": "a", "x-tag": "b", "x-no": "ok"})").what, tg::outcome::pass);
    auto v = run(*g, R"({"x-tag": 1})");
    ASSERT_EQ(v.rule, "schema");
    EXPECT_NE(v.detail.find("/x-tag: "), std::string::npos) << v.detail;
    EXPECT_EQ(run(*g, R"({"x-nope": "long"})").rule, "schema");  // both patterns apply
    EXPECT_EQ(run(*g, R"({"other": "b"})").rule, "schema");      // neither: additionalProperties
    // Nested, and inside a 2020-12 tuple that the translation copies.
    auto n = guard(R"({"schema": {"prefixItems": [{"patternProperties": {"^n": {"type": "number"}}}]}})");
    EXPECT_EQ(run(*n, R"([{"n1": 1}])").what, tg::outcome::pass);
    EXPECT_EQ(run(*n, R"([{"n1": "one"}])").rule, "schema");
}

TEST(schema_guard, patterns_run_in_linear_time_on_a_megabyte_string) {
    // std::regex would overflow the stack on the first and backtrack for ever on the second.
    auto g = guard(R"({"schema": {"properties": {"a": {"pattern": "^[a-z]+$"}, "b": {"pattern": "^(a+)+$"},
        "c": {"format": "date-time"}}, "patternProperties": {"^(x+x+)+y$": {}}}})");
    std::string big(1 << 20, 'a');
    std::string answer = R"({"a": ")" + big + R"(", "b": ")" + big + R"(!", "c": ")" + big + R"(", ")" +
                         std::string(100000, 'x') + R"(": 1})";
    tg::verdict v;
    double ms = millis([&] { v = run(*g, answer); });
    EXPECT_EQ(v.rule, "schema");
    EXPECT_NE(v.detail.find("/b: "), std::string::npos) << v.detail;
    EXPECT_NE(v.detail.find("/c: "), std::string::npos) << v.detail;
    EXPECT_EQ(v.detail.find("/a: "), std::string::npos) << v.detail;
    std::printf("[ schema-guard ] 3 MB answer with patterns: %.1f ms\n", ms);
    // Backtracking would take years; 10 s leaves a busy sanitizer build room (it takes ~0.3 s).
    EXPECT_LT(ms, 10000);
}

TEST(schema_guard, validates_a_megabyte_answer_in_bounded_time) {
    auto g = guard(invoice);
    auto answer_of = [](std::size_t bytes) {
        std::string answer = R"({"id": "INV-1", "items": [)";
        while (answer.size() < bytes) answer += R"({"name": "pen", "price": 1.5},)";
        return answer + R"({"name": "pen", "price": 2}]})";
    };
    // Linear, not a wall-clock budget (the machine may be busy): 16 times the answer may take
    // at most about 16 times as long (40 with slack; quadratic work would be 256).
    tg::verdict v;
    auto small = answer_of(1 << 16), big = answer_of(1 << 20);
    double small_ms = millis([&] { v = run(*g, small); });
    EXPECT_EQ(v.what, tg::outcome::pass) << v.detail;
    double ms = millis([&] { v = run(*g, big); });
    EXPECT_EQ(v.what, tg::outcome::pass) << v.detail;
    std::printf("[ schema-guard ] 64 KB valid answer: %.1f ms, 1 MB: %.1f ms\n", small_ms, ms);
    EXPECT_LT(ms, 40 * small_ms + 200);
}

TEST(schema_guard, a_recursive_schema_validates_a_deep_tree) {
    auto g = guard(R"({"schema": {"$defs": {"node": {"type": "object", "properties": {
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "additionalProperties": false}},
        "$ref": "#/$defs/node"}})");
    std::string deep;
    for (int i = 0; i < 30; ++i) deep += R"({"kids": [)";
    deep += "{}";
    for (int i = 0; i < 30; ++i) deep += "]}";
    EXPECT_EQ(run(*g, deep).what, tg::outcome::pass);
    std::string bad = deep;
    bad.replace(bad.find("{}"), 2, R"({"x": 1})");
    EXPECT_EQ(run(*g, bad).rule, "schema");
}

TEST(schema_guard, a_schema_whose_validation_explodes_stops_with_schema_too_complex) {
    // anyOf of two refs to itself at every level: 2^depth visits without the budget.
    auto g = guard(R"({"schema": {"$defs": {"n": {"anyOf": [{"type": "array", "items": {"$ref": "#/$defs/n"}, "maxItems": 0},
        {"type": "array", "items": {"$ref": "#/$defs/n"}}, {"type": "integer"}]}}, "$ref": "#/$defs/n"}})");
    std::string deep = std::string(60, '[') + "\"x\"" + std::string(60, ']');
    tg::verdict v;
    double ms = millis([&] { v = run(*g, deep); });
    EXPECT_EQ(v.rule, "schema_too_complex");
    EXPECT_FALSE(tg::is_repairable(v));
    EXPECT_LT(ms, 2000);
    // A schema that applies itself to the same value recurses without descending: bounded too.
    auto self = guard(R"({"schema": {"allOf": [{"$ref": "#"}]}})");
    EXPECT_EQ(run(*self, "{}").rule, "schema_too_complex");
}

TEST(schema_guard, is_safe_to_share_between_threads) {
    auto g = guard(invoice);
    std::vector<std::thread> threads;
    std::atomic<int> wrong{0};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) {
                bool good = (i + t) % 2 == 0;
                auto v = run(*g, good ? R"({"id": "INV-1", "items": [{"name": "a", "price": 1}]})"
                                      : R"({"id": "INV-1", "items": []})");
                if ((v.what == tg::outcome::pass) != good) ++wrong;
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(wrong.load(), 0);
}
