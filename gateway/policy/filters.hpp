#pragma once
// The turn filters of keys, rate limits, budgets and the request log (registry.cpp puts them in
// the chain: request log, admission (keys, rate limits, budgets), guardrails, ..., router).
#include <functional>
#include <memory>
#include <string>

#include "gateway/pipeline.hpp"
#include "gateway/policy/access.hpp"

namespace toolgate::gateway::policy {

// The most a turn for this model may cost per million tokens: the dearest target that may serve
// it (`known` false when one of them has no price; `model` names it).
struct price_quote {
    bool known = false;
    double input = 0;
    double output = 0;
    double per_image = 0;
    std::string model;
};
using price_fn = std::function<price_quote(turn_context const&)>;

// Per turn: 403 model_not_allowed for a model outside the key's `models`; requests, tokens and
// concurrency per key, team, user, model and globally (x-ratelimit-* headers); the key's and its
// team's budgets, reserved before and settled after (admission.cpp).
std::shared_ptr<turn_filter> make_admission_filter(access_runtime& rt, price_fn price, std::chrono::milliseconds lease);
// One record per model turn into the request log.
std::shared_ptr<turn_filter> make_turn_log_filter(access_runtime& rt);

// Estimates for admission, before the provider answers.
std::int64_t input_tokens_estimate(providers::chat_request const& req);
// The request's max_tokens / max_completion_tokens, else `fallback`.
std::int64_t output_allowance(boost::json::object const& body, std::int64_t fallback);

// The 403 for a tool outside the key's mcp_tools.
api_error tool_not_allowed(std::string_view tool);

}  // namespace toolgate::gateway::policy
