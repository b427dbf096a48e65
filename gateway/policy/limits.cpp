// The key filter (which models a key may use) and the rate-limit filter. Deciding what to count is
// a plain function (plan_checks); the filter only asks the counter store and answers.
#include <boost/json/value.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>

#include "common/ids.hpp"
#include "gateway/policy/filters.hpp"
#include "providers/wire.hpp"

namespace toolgate::gateway::policy {

namespace {



// ---- keys ----

class key_filter final : public turn_filter {
public:
    explicit key_filter(access_runtime& rt) : rt_(rt) {}
    std::string_view name() const override { return "keys"; }
    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const& next) override {
        if (ctx.access) {  // the first filter of a turn that knows its scope
            ++ctx.access->turns;
            ctx.access->turn_input_tokens = input_tokens_estimate(ctx.request);
        }
        auto const* key = ctx.access ? ctx.access->key.get() : nullptr;
        // The agent loop's own turns may go to agent_loop.tool_turn_model: the gateway's choice.
        if (key && !ctx.loop_turn && !key->allows_model(ctx.requested_model)) {
            rt_.stats().forbidden.fetch_add(1, std::memory_order_relaxed);
            co_return local_error(model_not_allowed(*key, ctx.requested_model));
        }
        co_return co_await next(ctx);
    }

private:
    static api_error model_not_allowed(virtual_key const& k, std::string const& model) {
        return api_error{403, "permission_error", "model_not_allowed",
                         "key '" + k.name + "' may not use model '" + model + "'"};
    }
    access_runtime& rt_;
};

// ---- rate limits ----

struct planned_checks {
    std::vector<state::limit_check> checks;
    struct label {
        std::string_view field;  // "requests_per_minute"
        std::string_view what;   // "key", "team", "user", "model", "the gateway"
        std::string_view name;
    };
    std::vector<label> labels;  // formatted only when a check refuses
    std::vector<limit_unit> units;
    struct slot {
        std::string counter;
        std::int64_t limit;
        label why;
    };
    std::vector<slot> concurrency;
    std::vector<std::size_t> token_checks;  // indexes into checks
};

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
        if (f.unit == limit_unit::tokens) p.token_checks.push_back(p.checks.size());
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

planned_checks plan_checks(access_runtime const& rt, request_scope const& scope, std::string const& model,
                           bool first_turn, std::int64_t tokens) {
    planned_checks p;
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

// The tightest of one unit's verdicts for the x-ratelimit-* headers.
void rate_headers(header_list* headers, planned_checks const& p, state::admit_result const& r, limit_unit unit,
                  std::string_view suffix, std::int64_t now) {
    std::optional<std::size_t> best;
    for (std::size_t i = 0; i < p.checks.size(); ++i) {
        if (p.units[i] != unit) continue;
        if (!best || r.verdicts[i].remaining < r.verdicts[*best].remaining) best = i;
    }
    if (!best) return;
    auto const& v = r.verdicts[*best];
    auto const& c = p.checks[*best];
    set_header(headers, "x-ratelimit-limit-" + std::string(suffix), std::to_string(c.spec.limit));
    set_header(headers, "x-ratelimit-remaining-" + std::string(suffix), std::to_string(v.remaining));
    // An admitted request is in the window too: no reset before its own bucket leaves.
    auto reset = v.reset_ms;
    if (v.allowed) {
        auto w = c.spec.bucket_ms();
        reset = std::max(reset, (now / w + state::window_slots) * w - now);
    }
    set_header(headers, "x-ratelimit-reset-" + std::string(suffix), format_reset(reset));
}

api_error limited(std::string const& label, std::int64_t retry_after_ms, header_list* headers) {
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

state::result<state::admit_result> nothing_to_count() {
    state::admit_result r;
    r.allowed = true;
    return r;
}

api_error store_down() {
    return api_error{503, "server_error", "state_unavailable", "the rate-limit store is unavailable; retry later"};
}

class limit_filter final : public turn_filter {
public:
    limit_filter(access_runtime& rt, std::chrono::milliseconds lease) : rt_(rt), lease_ms_(lease.count()) {}
    std::string_view name() const override { return "rate_limits"; }

    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const& next) override {
        auto* scope = ctx.access;
        if (!scope) co_return co_await next(ctx);
        bool first = scope->turns <= 1;
        if (first && scope->user.empty()) scope->user = user_of(ctx.request.body);
        auto tokens = scope->turn_input_tokens + output_allowance(ctx.request.body, 0);
        auto plan = plan_checks(rt_, *scope, ctx.requested_model, first, tokens);
        if (plan.checks.empty() && plan.concurrency.empty()) co_return co_await next(ctx);
        auto now = unix_now_ms();
        auto started = std::chrono::steady_clock::now();
        auto admitted = nothing_to_count();
        if (!plan.checks.empty()) {
            if (auto at_once = rt_.counters().admit_now(plan.checks, now)) admitted = std::move(*at_once);
            else admitted = co_await rt_.counters().admit(plan.checks, now);
        }
        note_latency(started);
        if (!admitted) {
            if (rt_.settings().limits_unavailable == fail_mode::closed) {
                rt_.stats().store_errors.fetch_add(1, std::memory_order_relaxed);
                co_return local_error(store_down());
            }
            rt_.stats().store_open_passes.fetch_add(1, std::memory_order_relaxed);
            co_return co_await next(ctx);
        }
        if (!plan.checks.empty()) {
            rate_headers(ctx.response_headers, plan, *admitted, limit_unit::requests, "requests", now);
            rate_headers(ctx.response_headers, plan, *admitted, limit_unit::tokens, "tokens", now);
        }
        if (!admitted->allowed) {
            rt_.stats().rate_limited.fetch_add(1, std::memory_order_relaxed);
            auto const& v = admitted->verdicts[admitted->rejected];
            co_return local_error(limited(label_text(plan.labels[admitted->rejected]), v.retry_after_ms, ctx.response_headers));
        }
        // Concurrency slots last: a request refused above holds none.
        for (auto const& slot : plan.concurrency) {
            auto lease = fast_hex(32);  // never the client's request id: two requests must not share a slot
            auto got = co_await rt_.counters().acquire(slot.counter, slot.limit, lease, now, lease_ms_);
            if (!got && rt_.settings().limits_unavailable == fail_mode::closed) {
                rt_.stats().store_errors.fetch_add(1, std::memory_order_relaxed);
                co_await undo(plan, now, tokens, *scope);
                co_return local_error(store_down());
            }
            if (got && !*got) {
                rt_.stats().rate_limited.fetch_add(1, std::memory_order_relaxed);
                co_await undo(plan, now, tokens, *scope);
                co_return local_error(limited(label_text(slot.why), 1000, ctx.response_headers));
            }
            if (got) scope->leases.emplace_back(slot.counter, std::move(lease));
        }
        auto result = co_await next(ctx);
        // Tokens were admitted on the estimate; the usage corrects them.
        if (!plan.token_checks.empty() && result.tokens.present) {
            auto real = result.tokens.prompt_tokens + result.tokens.completion_tokens;
            if (real != tokens)
                for (auto i : plan.token_checks) {
                    if (rt_.counters().adjust_now(plan.checks[i], now, real - tokens, unix_now_ms())) continue;
                    auto r = co_await rt_.counters().adjust(plan.checks[i], now, real - tokens, unix_now_ms());
                    if (!r) rt_.stats().store_errors.fetch_add(1, std::memory_order_relaxed);
                }
        }
        co_return result;
    }

private:
    // A request refused for concurrency gives back what it counted and the slots it took.
    asio::awaitable<void> undo(planned_checks const& plan, std::int64_t at, std::int64_t tokens, request_scope& scope) {
        for (std::size_t i = 0; i < plan.checks.size(); ++i) {
            auto back = plan.units[i] == limit_unit::tokens ? -tokens : -1;
            (void)co_await rt_.counters().adjust(plan.checks[i], at, back, unix_now_ms());
        }
        co_await rt_.finish(scope);
    }

    void note_latency(std::chrono::steady_clock::time_point started) {
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
        rt_.stats().limiter_calls.fetch_add(1, std::memory_order_relaxed);
        rt_.stats().limiter_us.fetch_add(static_cast<std::uint64_t>(us), std::memory_order_relaxed);
    }

    access_runtime& rt_;
    std::int64_t lease_ms_;
};

}  // namespace

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

std::shared_ptr<turn_filter> make_key_filter(access_runtime& rt) { return std::make_shared<key_filter>(rt); }
std::shared_ptr<turn_filter> make_limit_filter(access_runtime& rt, std::chrono::milliseconds lease) {
    return std::make_shared<limit_filter>(rt, lease);
}

}  // namespace toolgate::gateway::policy
