// The admission filter: a key's models, its rate limits and its budget, for every model turn, in
// one coroutine frame and two store calls (turn_gate.hpp): open before the turn (count the checks,
// reserve the maximum cost; one Redis round trip), close after it (correct the token counts,
// settle the real cost). What to ask is decided by plain functions (limits.cpp, budget.cpp, and
// below); coroutine bodies follow the GCC 12 rules in CONTRIBUTING.md.
#include <boost/json/value.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>

#include "common/ids.hpp"
#include "gateway/policy/plans.hpp"

namespace toolgate::gateway::policy {

namespace {

api_error model_not_allowed(virtual_key const& k, std::string const& model) {
    return api_error{403, "permission_error", "model_not_allowed", "key '" + k.name + "' may not use model '" + model + "'"};
}

// Everything one turn asks, built before the first store call; the gate's requests point into it.
struct turn_plan {
    planned_checks limits;
    budget_plan budget;
    std::string reservation;    // never the client's request id: two turns must not share one
    std::string turn_id;        // without a reservation, for a gate that needs an id all the same
    std::int64_t tokens = 0;    // counted on the token limits: the input estimate and the output allowance
    std::int64_t input = 0;
    std::int64_t now = 0;
    state::turn_open open;
};

void count(std::atomic<std::uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

// Plans the turn; an error is the refusal to answer before anything is counted.
std::optional<api_error> plan_turn(access_runtime& rt, price_fn const& price, std::int64_t lease_ms, bool limits,
                                   bool budgets, turn_context& ctx, turn_plan& p) {
    auto& scope = *ctx.access;
    ++scope.turns;
    p.input = input_tokens_estimate(ctx.request);
    auto const* key = scope.key.get();
    // The agent loop's own turns may go to agent_loop.tool_turn_model: the gateway's choice.
    // An AI endpoint pins its model; who may call it is the endpoint's `keys`.
    if (key && !ctx.loop_turn && !scope.endpoint && !key->allows_model(ctx.requested_model)) {
        count(rt.stats().forbidden);
        return model_not_allowed(*key, ctx.requested_model);
    }
    p.now = unix_now_ms();
    bool first = scope.turns <= 1;
    auto asked = output_allowance(ctx.request.body, -1);  // the request's own max tokens, or -1
    if (limits) {
        if (first && scope.user.empty()) scope.user = user_of(ctx.request.body);
        p.tokens = p.input + std::max<std::int64_t>(asked, 0);
        p.limits = plan_checks(rt, scope, ctx.requested_model, first, p.tokens);
    }
    std::int64_t micros = 0;
    if (budgets && (key || scope.endpoint)) {
        p.budget = plan_budget(scope, p.now);
        if (p.budget.limited()) {
            auto quote = price(ctx);
            if (!quote.known && !rt.settings().unpriced_allow) {
                count(rt.stats().unpriced);
                return unpriced(quote.model.empty() ? ctx.requested_model : quote.model);
            }
            auto output = asked >= 0 ? asked : rt.settings().default_max_tokens;
            micros = to_micros((double(p.input) * quote.input + double(output) * quote.output) / 1e6 +
                               double(images_asked(ctx)) * quote.per_image);
            p.reservation = fast_hex(32);
        }
    }
    if (p.reservation.empty() && rt.gate().close_after_answer()) p.turn_id = fast_hex(32);
    p.open.checks = &p.limits.checks;
    p.open.lines = &p.budget.held;
    p.open.reservation = &p.reservation;
    p.open.micros = micros;
    p.open.now_ms = p.now;
    p.open.lease_ms = lease_ms;
    return std::nullopt;
}

// What the gate answered: the refusal to send, or nullopt to go on.
std::optional<api_error> judge(access_runtime& rt, turn_plan const& p, state::turn_admission const& a,
                               header_list* headers) {
    bool counted = !p.limits.checks.empty() && a.admitted;
    if (!p.limits.checks.empty() && !a.admitted) {
        if (rt.settings().limits_unavailable == fail_mode::closed) {
            count(rt.stats().store_errors);
            return limits_down();
        }
        count(rt.stats().store_open_passes);
    }
    if (counted && !a.admitted->allowed) {
        rate_headers(headers, p.limits, *a.admitted, p.now);
        count(rt.stats().rate_limited);
        auto i = a.admitted->rejected;
        return limited(p.limits.labels[i], a.admitted->verdicts[i].retry_after_ms, headers);
    }
    if (p.budget.limited() && a.reserved) {
        auto const& held = *a.reserved;
        if (!held) {
            if (rt.settings().budgets_unavailable == fail_mode::closed) {
                count(rt.stats().store_errors);
                return ledger_down();
            }
            // Admitted without a reservation; the spend is still settled after the turn.
            count(rt.stats().store_open_passes);
        } else if (!held->allowed) {
            // Nothing was counted: no x-ratelimit-* headers that would say otherwise.
            count(rt.stats().budget_exceeded);
            auto i = held->rejected;
            return over_budget(p.budget.held_labels[i], held->spent_micros[i], p.budget.held[i].limit_micros, headers);
        }
    }
    if (counted) rate_headers(headers, p.limits, *a.admitted, p.now);
    return std::nullopt;
}

void note_latency(std::atomic<std::uint64_t>& calls, std::atomic<std::uint64_t>& total_us,
                  std::chrono::steady_clock::time_point started) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
    calls.fetch_add(1, std::memory_order_relaxed);
    total_us.fetch_add(static_cast<std::uint64_t>(us), std::memory_order_relaxed);
}

class admission_filter final : public turn_filter {
public:
    admission_filter(access_runtime& rt, price_fn price, std::chrono::milliseconds lease, bool limits, bool budgets)
        : rt_(rt), price_(std::move(price)), lease_ms_(lease.count()), limits_(limits), budgets_(budgets) {}
    std::string_view name() const override { return "admission"; }

    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const& next) override {
        auto* scope = ctx.access;
        if (!scope) co_return co_await next(ctx);
        turn_plan plan;
        if (auto refused = plan_turn(rt_, price_, lease_ms_, limits_, budgets_, ctx, plan))
            co_return local_error(std::move(*refused));
        // Concurrency slots first (the first turn only): a request refused here has counted
        // nothing; the slots of one refused later are released when the request ends.
        for (auto const& slot : plan.limits.concurrency) {
            auto lease = fast_hex(32);  // never the client's request id: two requests must not share a slot
            auto got = co_await rt_.counters().acquire(slot.counter, slot.limit, lease, plan.now, lease_ms_);
            if (!got && rt_.settings().limits_unavailable == fail_mode::closed) {
                count(rt_.stats().store_errors);
                co_return local_error(limits_down());
            }
            if (got && !*got) {
                count(rt_.stats().rate_limited);
                co_return local_error(limited(slot.why, 1000, ctx.response_headers));
            }
            if (got) scope->leases.emplace_back(slot.counter, std::move(lease));
        }
        auto started = std::chrono::steady_clock::now();
        auto admission = rt_.gate().open_now(plan.open);
        if (!admission) admission = co_await rt_.gate().open(plan.open);
        note_latency(rt_.stats().limiter_calls, rt_.stats().limiter_us, started);
        if (auto refused = judge(rt_, plan, *admission, ctx.response_headers)) co_return local_error(std::move(*refused));

        bool priced = budgets_ && (scope->key || scope->endpoint);
        std::optional<counting_sink> counter;
        sink_restorer restore(ctx);
        if (ctx.sink && priced) {
            counter.emplace(*ctx.sink);
            ctx.sink = &*counter;
        }
        auto result = co_await next(ctx);
        restore.now();

        state::spend_entry who;
        state::turn_close close;
        close.id = plan.reservation.empty() ? &plan.turn_id : &plan.reservation;
        close.now_ms = unix_now_ms();
        close.at_ms = plan.now;
        // Tokens were admitted on the estimate; the usage corrects them (only counts that were made).
        // A cache hit used no tokens of a provider: it counts as a request only.
        if (!plan.limits.token_checks.empty() && (result.tokens.present || ctx.cache_hit) && admission->admitted) {
            close.adjust = &plan.limits.token_checks;
            auto used = ctx.cache_hit ? 0 : result.tokens.prompt_tokens + result.tokens.completion_tokens;
            close.delta = used - plan.tokens;
        }
        if (priced) {
            bool cancelled = ctx.call && ctx.call->cancel.cancelled();
            auto cost = turn_cost(ctx, result, plan.input, counter ? counter->bytes() : 0, cancelled);
            ctx.cost_usd = cost;
            scope->cost_usd += cost;
            if (scope->key) rt_.note_spend(*scope->key, cost);
            who = spend_of(ctx, *scope, plan.now);
            close.lines = &plan.budget.lines;
            close.reservation = &plan.reservation;
            close.micros = to_micros(cost);
            close.who = &who;
            if (plan.budget.limited() && admission->reserved && *admission->reserved) close.reserved_micros = plan.open.micros;
        }
        started = std::chrono::steady_clock::now();
        if (!rt_.gate().close_now(close)) {
            if (rt_.gate().close_after_answer()) {
                auto ex = co_await asio::this_coro::executor;
                rt_.close_later(ex, close);  // sent now; its reply comes while the answer goes out
            } else {
                auto closed = co_await rt_.gate().close(close);
                if (!closed) count(rt_.stats().store_errors);
            }
        }
        note_latency(rt_.stats().ledger_calls, rt_.stats().ledger_us, started);
        co_return result;
    }

private:
    access_runtime& rt_;
    price_fn price_;
    std::int64_t lease_ms_;
    bool limits_;
    bool budgets_;
};

}  // namespace

std::shared_ptr<turn_filter> make_admission_filter(access_runtime& rt, price_fn price, std::chrono::milliseconds lease) {
    return std::make_shared<admission_filter>(rt, std::move(price), lease, rt.may_limit(), rt.may_budget());
}

}  // namespace toolgate::gateway::policy
