#include <array>

#include "guardrails/factories.hpp"

namespace toolgate::guardrails {

namespace {

struct row {
    std::string_view name;
    std::unique_ptr<guardrail> (*make)(json::object const&, build_context const&);
};

constexpr std::array<row, 7> rows{{
    {"word-filter", &make_word_filter},
    {"max-token", &make_max_token},
    {"regex-guard", &make_regex_guard},
    {"pii-redact", &make_pii_redact},
    {"secret-scan", &make_secret_scan},
    {"prompt-shield", &make_prompt_shield},
    {"schema-guard", &make_schema_guard},
}};

}  // namespace

std::string_view to_string(part_kind k) {
    switch (k) {
        case part_kind::system: return "system";
        case part_kind::user: return "user";
        case part_kind::assistant: return "assistant";
        case part_kind::tool: return "tool";
        case part_kind::mcp_call: return "mcp_call";
        case part_kind::mcp_result: return "mcp_result";
    }
    return "user";
}

std::string_view to_string(outcome o) {
    switch (o) {
        case outcome::pass: return "pass";
        case outcome::redact: return "redact";
        case outcome::block: return "block";
    }
    return "pass";
}

std::vector<std::string_view> const& known() {
    static std::vector<std::string_view> const names = [] {
        std::vector<std::string_view> v;
        for (auto const& r : rows) v.push_back(r.name);
        return v;
    }();
    return names;
}

std::unique_ptr<guardrail> make(std::string_view name, json::object const& config, build_context const& ctx) {
    for (auto const& r : rows)
        if (r.name == name) return r.make(config, ctx);
    std::string all;
    for (auto const& r : rows) all += (all.empty() ? "" : ", ") + std::string(r.name);
    throw std::invalid_argument("unknown plugin '" + std::string(name) + "' (known: " + all + ")");
}

}  // namespace toolgate::guardrails
