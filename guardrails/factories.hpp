#pragma once
// One factory per guardrail, each defined in its own file; registry.cpp maps names to them.
#include "guardrails/guardrail.hpp"

namespace toolgate::guardrails {

std::unique_ptr<guardrail> make_word_filter(json::object const& config, build_context const& ctx);
std::unique_ptr<guardrail> make_max_token(json::object const& config, build_context const& ctx);
std::unique_ptr<guardrail> make_regex_guard(json::object const& config, build_context const& ctx);
std::unique_ptr<guardrail> make_pii_redact(json::object const& config, build_context const& ctx);
std::unique_ptr<guardrail> make_secret_scan(json::object const& config, build_context const& ctx);
std::unique_ptr<guardrail> make_prompt_shield(json::object const& config, build_context const& ctx);
std::unique_ptr<guardrail> make_schema_guard(json::object const& config, build_context const& ctx);

}  // namespace toolgate::guardrails
