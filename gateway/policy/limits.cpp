// The rate limits: what a turn counts (plan_checks), the x-ratelimit-* headers and the refusals.
// The admission filter (admission.cpp) asks the stores.
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

#include "gateway/policy/plans.hpp"
#include "providers/wire.hpp"

namespace toolgate::gateway::policy {

namespace {

// `what` and `name` must outlive the plan (the key, the team, the request scope, the turn's model).
void add_scope(planned_checks& p, limit_set const& limits, std::string const& counter_scope, std::string_view what,
               std::string_view name, bool first_turn, std::int64_t tokens) {
    for (std::size_t i = 0; i < limit_fields.size(); ++i) {
        auto const& f = limit_fields[i];
        if (limits[i] <= 0) continue;
        planned_checks::label why{f.name, what, name};
        if (f.unit == limit_unit::concurrent) {
            if (first_turn) p.concurrency.push_back({"cc:" + counter_scope, limits[i], why});
            continue;
        }
        if (f.unit == limit_unit::requests && !first_turn) continue;
        state::limit_check c;
        c.key.reserve(4 + counter_scope.size() + f.name.size());
        c.key.append("rl:").append(counter_scope).append(":").append(f.name);
        c.spec = state::window_spec{f.span_ms, limits[i]};
        c.amount = f.unit == limit_unit::tokens ? tokens : 1;
        if (f.unit == limit_unit::tokens) p.token_checks.push_back(c);
        p.checks.push_back(std::move(c));
        p.labels.push_back(why);
        p.units.push_back(f.unit);
    }
}

std::string label_text(planned_checks::label const& l) {
    std::string out(l.field);
    out.append(" of ").append(l.what);
    if (!l.name.empty()) out.append(" ").append(l.name);
    return out;
}

void unit_headers(header_list* headers, planned_checks const& p, state::admit_result const& r, limit_unit unit,
                  std::array<std::string_view, 3> const& names, std::int64_t now) {
    std::optional<std::size_t> best;
    for (std::size_t i = 0; i < p.checks.size(); ++i) {
        if (p.units[i] != unit) continue;
        if (!best || r.verdicts[i].remaining < r.verdicts[*best].remaining) best = i;
    }
    if (!best) return;
    auto const& v = r.verdicts[*best];
    auto const& c = p.checks[*best];
    set_header(headers, names[0], std::to_string(c.spec.limit));
    set_header(headers, names[1], std::to_string(v.remaining));
    // An admitted request is in the window too: no reset before its own bucket leaves.
    auto reset = v.reset_ms;
    if (v.allowed) {
        auto w = c.spec.bucket_ms();
        reset = std::max(reset, (now / w + state::window_slots) * w - now);
    }
    set_header(headers, names[2], format_reset(reset));
}

}  // namespace

planned_checks plan_checks(access_runtime const& rt, request_scope const& scope, std::string const& model,
                           bool first_turn, std::int64_t tokens) {
    planned_checks p;
    if (auto const* e = scope.endpoint) add_scope(p, e->limits, "endpoint:" + e->slug, "endpoint", e->slug, first_turn, tokens);
    if (auto const* k = scope.key.get()) {
        add_scope(p, k->limits, "key:" + k->id, "key", k->name, first_turn, tokens);
        if (scope.key_team)
            add_scope(p, scope.key_team->limits, "team:" + scope.key_team->name, "team", scope.key_team->name, first_turn, tokens);
    }
    for (auto const& rule : rt.settings().rules) {
        switch (rule.applies) {
            case rate_rule::scope::global: add_scope(p, rule.limits, "global", "the gateway", {}, first_turn, tokens); break;
            case rate_rule::scope::user:
                // Per tenant: one key's "alice" is not another's.
                if (!scope.user.empty())
                    add_scope(p, rule.limits, "user:" + (scope.key ? scope.key->id + ":" : std::string()) + scope.user,
                              "user", scope.user, first_turn, tokens);
                break;
            case rate_rule::scope::model:
                if (rule.model == model) add_scope(p, rule.limits, "model:" + model, "model", model, first_turn, tokens);
                break;
        }
    }
    return p;
}

std::string user_of(json::object const& body) {
    auto const* u = body.if_contains("user");
    if (!u || !u->is_string() || u->get_string().empty()) return {};
    return std::string(std::string_view(u->get_string()).substr(0, 256));
}

void rate_headers(header_list* headers, planned_checks const& p, state::admit_result const& r, std::int64_t now) {
    static constexpr std::array<std::string_view, 3> requests{"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                                                              "x-ratelimit-reset-requests"};
    static constexpr std::array<std::string_view, 3> tokens{"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
                                                            "x-ratelimit-reset-tokens"};
    unit_headers(headers, p, r, limit_unit::requests, requests, now);
    unit_headers(headers, p, r, limit_unit::tokens, tokens, now);
}

api_error limited(planned_checks::label const& why, std::int64_t retry_after_ms, header_list* headers) {
    auto label = label_text(why);
    api_error e{429, "rate_limit_error", "rate_limit_exceeded", "Rate limit reached: " + label};
    if (retry_after_ms < 0) {
        e.message = "This request needs more than the " + label + " allows; it can never be admitted";
        set_header(headers, "x-should-retry", "false");
        return e;
    }
    auto secs = std::clamp<std::int64_t>((retry_after_ms + 999) / 1000, 1, 60);
    e.retry_after = std::to_string(secs);
    e.message += "; retry after " + std::to_string(secs) + "s";
    set_header(headers, "retry-after-ms", std::to_string(std::max<std::int64_t>(retry_after_ms, 1)));
    return e;
}

api_error limits_down() {
    return api_error{503, "server_error", "state_unavailable", "the rate-limit store is unavailable; retry later"};
}

std::int64_t input_tokens_estimate(providers::chat_request const& req) {
    std::size_t bytes = 0;
    if (!req.raw_body.empty()) {
        bytes = req.raw_body.size();
    } else {
        if (auto const* messages = req.body.if_contains("messages"); messages && messages->is_array())
            for (auto const& m : messages->get_array())
                if (auto const* mo = m.if_object()) bytes += providers::wire::text_of(mo->if_contains("content")).size() + 16;
        if (auto const* input = req.body.if_contains("input")) {
            if (input->is_string()) bytes += input->get_string().size();
            else if (input->is_array())
                for (auto const& i : input->get_array()) bytes += i.is_string() ? i.get_string().size() : 16;
        }
    }
    // About four bytes per token in English text and JSON (the same rule as routing's estimate).
    return static_cast<std::int64_t>((bytes + 3) / 4);
}

std::int64_t output_allowance(json::object const& body, std::int64_t fallback) {
    constexpr std::int64_t max_output_tokens = 1 << 30;
    for (auto name : {"max_completion_tokens", "max_tokens"}) {
        auto const* v = body.if_contains(name);
        // Capped: no model writes a billion tokens, and the sums below must not overflow.
        if (v && v->is_int64() && v->get_int64() > 0) return std::min<std::int64_t>(v->get_int64(), max_output_tokens);
        if (v && v->is_uint64()) return static_cast<std::int64_t>(std::min<std::uint64_t>(v->get_uint64(), max_output_tokens));
    }
    return fallback;
}

api_error tool_not_allowed(std::string_view tool) {
    return api_error{403, "permission_error", "tool_not_allowed", "this key may not call tool '" + std::string(tool) + "'"};
}

}  // namespace toolgate::gateway::policy
