// The budget filter: before a turn its maximum cost is reserved on every budget line of the key
// and its team (day and month, UTC); after it, the real cost replaces the reservation. A turn the
// client abandons mid-stream is charged for what was produced (usage when the provider sent it,
// else the input estimate and the streamed text).
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include <atomic>
#include <cmath>

#include "common/ids.hpp"
#include "gateway/policy/filters.hpp"
#include "providers/wire.hpp"

namespace toolgate::gateway::policy {

namespace {



// Saturated at a billion dollars: a cast of a larger double to int64 is undefined.
std::int64_t to_micros(double usd) {
    if (!(usd > 0)) return 0;
    return static_cast<std::int64_t>(std::ceil(std::min(usd, 1e9) * 1e6 - 1e-6));
}

// A line without a budget still records spend (for /admin/spend and the metrics).
constexpr std::int64_t unlimited = std::int64_t(1) << 62;

struct budget_plan {
    std::vector<state::budget_line> lines;
    struct label {
        std::string_view what;  // "key" or "team"
        std::string_view name;
        bool daily;
        double usd;
    };
    std::vector<label> labels;  // formatted only when a line refuses
    bool limited = false;             // some line has a budget: reserve before the turn
};

void add_lines(budget_plan& p, budget_set const& b, std::string scope, std::string_view what, std::string_view name,
               std::int64_t now) {
    p.lines.push_back(state::budget_line{scope, state::utc_day(now), b.daily_usd > 0 ? to_micros(b.daily_usd) : unlimited});
    p.labels.push_back(budget_plan::label{what, name, true, b.daily_usd});
    p.lines.push_back(state::budget_line{std::move(scope), state::utc_month(now), b.monthly_usd > 0 ? to_micros(b.monthly_usd) : unlimited});
    p.labels.push_back(budget_plan::label{what, name, false, b.monthly_usd});
    p.limited = p.limited || b.any();
}

std::string label_text(budget_plan::label const& l) {
    return fmt::format("{} budget of {} {} (${})", l.daily ? "daily" : "monthly", l.what, l.name, l.usd);
}

budget_plan plan_budget(request_scope const& scope, std::int64_t now) {
    budget_plan p;
    if (!scope.key) return p;
    add_lines(p, scope.key->budget, "key:" + scope.key->id, "key", scope.key->name, now);
    if (scope.key_team) add_lines(p, scope.key_team->budget, "team:" + scope.key_team->name, "team", scope.key_team->name, now);
    else if (!scope.key->team.empty()) add_lines(p, budget_set{}, "team:" + scope.key->team, "team", scope.key->team, now);
    return p;
}

// Counts the text a streamed turn delivered, for a turn that ends without usage.
class counting_sink final : public providers::chat_sink {
public:
    explicit counting_sink(providers::chat_sink& inner) : inner_(inner) {}
    asio::awaitable<bool> on_chunk(json::object& chunk, std::string_view raw) override {
        count(chunk);
        return inner_.on_chunk(chunk, raw);
    }
    asio::awaitable<bool> flush() override { return inner_.flush(); }
    asio::awaitable<bool> on_comment(std::string_view text) override { return inner_.on_comment(text); }
    std::size_t bytes() const { return bytes_; }

private:
    void count(json::object const& chunk) {
        auto const* choices = chunk.if_contains("choices");
        if (!choices || !choices->is_array()) return;
        for (auto const& c : choices->get_array()) {
            auto const* co = c.if_object();
            auto const* delta = co ? co->if_contains("delta") : nullptr;
            auto const* d = delta ? delta->if_object() : nullptr;
            if (!d) continue;
            if (auto const* t = d->if_contains("content"); t && t->is_string()) bytes_ += t->get_string().size();
            if (auto const* tc = d->if_contains("tool_calls"); tc && tc->is_array())
                for (auto const& call : tc->get_array())
                    if (auto const* f = call.is_object() ? call.get_object().if_contains("function") : nullptr; f && f->is_object())
                        if (auto const* a = f->get_object().if_contains("arguments"); a && a->is_string()) bytes_ += a->get_string().size();
        }
    }
    providers::chat_sink& inner_;
    std::size_t bytes_ = 0;
};


api_error over_budget(std::string const& label, std::int64_t spent, std::int64_t limit, header_list* headers) {
    set_header(headers, "x-should-retry", "false");
    return api_error{429, "insufficient_quota", "budget_exceeded",
                     fmt::format("The {} is used up (spent or reserved ${:.6f} of ${:.6f}); this request cannot fit", label,
                                 double(spent) / 1e6, double(limit) / 1e6)};
}

api_error unpriced(std::string const& model) {
    return api_error{403, "permission_error", "model_unpriced",
                     "model '" + model + "' has no price, and this key has a budget (set the provider's prices, or budgets.unpriced: allow)"};
}

api_error ledger_down() {
    return api_error{503, "server_error", "state_unavailable", "the budget ledger is unavailable; retry later"};
}

class budget_filter final : public turn_filter {
public:
    budget_filter(access_runtime& rt, price_fn price, std::chrono::milliseconds lease)
        : rt_(rt), price_(std::move(price)), lease_ms_(lease.count()) {}
    std::string_view name() const override { return "budget"; }

    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const& next) override {
        auto* scope = ctx.access;
        if (!scope || !scope->key) co_return co_await next(ctx);
        auto now = unix_now_ms();
        auto plan = plan_budget(*scope, now);
        auto reservation = fast_hex(32);  // never the client's request id: two turns must not share one
        auto input = scope->turn_input_tokens;
        if (plan.limited) {
            auto quote = price_(ctx);
            if (!quote.known && !rt_.settings().unpriced_allow) {
                rt_.stats().unpriced.fetch_add(1, std::memory_order_relaxed);
                co_return local_error(unpriced(quote.model.empty() ? ctx.requested_model : quote.model));
            }
            auto output = output_allowance(ctx.request.body, rt_.settings().default_max_tokens);
            auto reserve = to_micros((double(input) * quote.input + double(output) * quote.output) / 1e6);
            auto started = std::chrono::steady_clock::now();
            state::result<state::reserve_result> held;
            if (auto at_once = rt_.ledger().reserve_now(plan.lines, reservation, reserve, now, lease_ms_))
                held = std::move(*at_once);
            else
                held = co_await rt_.ledger().reserve(plan.lines, reservation, reserve, now, lease_ms_);
            note_latency(started);
            if (!held) {
                if (rt_.settings().budgets_unavailable == fail_mode::closed) {
                    rt_.stats().store_errors.fetch_add(1, std::memory_order_relaxed);
                    co_return local_error(ledger_down());
                }
                // Admitted without a reservation; the spend is still recorded below if the ledger is back.
                rt_.stats().store_open_passes.fetch_add(1, std::memory_order_relaxed);
            } else if (!held->allowed) {
                rt_.stats().budget_exceeded.fetch_add(1, std::memory_order_relaxed);
                auto i = held->rejected;
                co_return local_error(over_budget(label_text(plan.labels[i]), held->spent_micros[i], plan.lines[i].limit_micros, ctx.response_headers));
            }
        }
        std::optional<counting_sink> counter;
        sink_restorer restore(ctx);
        if (ctx.sink) {
            counter.emplace(*ctx.sink);
            ctx.sink = &*counter;
        }
        auto result = co_await next(ctx);
        restore.now();
        bool cancelled = ctx.call && ctx.call->cancel.cancelled();
        auto cost = cost_of(ctx, result, input, counter ? counter->bytes() : 0, cancelled);
        ctx.cost_usd = cost;
        scope->cost_usd += cost;
        rt_.note_spend(*scope->key, cost);
        auto who = spend_of(ctx, *scope, now);
        auto micros = to_micros(cost);
        auto started = std::chrono::steady_clock::now();
        // A settle that fails is tried once more (a Redis connection that failed reconnects); a
        // reservation left behind lapses with its lease.
        if (!rt_.ledger().settle_now(plan.lines, reservation, micros, who)) {
            auto settled = co_await rt_.ledger().settle(plan.lines, reservation, micros, who);
            if (!settled) settled = co_await rt_.ledger().settle(plan.lines, reservation, micros, who);
            if (!settled) rt_.stats().store_errors.fetch_add(1, std::memory_order_relaxed);
        }
        note_latency(started);
        co_return result;
    }

private:
    static double cost_of(turn_context const& ctx, turn_result const& r, std::int64_t input, std::size_t streamed,
                          bool cancelled) {
        if (!ctx.provider) return 0;  // no provider was called
        providers::usage u = r.tokens;
        if (!u.present) {
            // No usage: a call refused or failed before an answer costs nothing; one the client
            // abandoned (the provider had the prompt) costs its prompt and what it sent.
            if (!r.chunks_sent && r.error && !cancelled) return 0;
            u.prompt_tokens = input;
            u.completion_tokens = static_cast<std::int64_t>((streamed + 3) / 4);
        }
        return ctx.provider->config().cost(ctx.upstream_model, u);
    }

    static state::spend_entry spend_of(turn_context const& ctx, request_scope const& scope, std::int64_t now) {
        state::spend_entry e;
        e.request_id = ctx.request_id;
        e.key = scope.key->id;
        e.team = scope.key->team;
        e.model = ctx.upstream_model.empty() ? ctx.requested_model : ctx.upstream_model;
        e.provider = ctx.provider ? std::string(ctx.provider->name()) : std::string();
        e.ts_ms = now;
        return e;
    }

    void note_latency(std::chrono::steady_clock::time_point started) {
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
        rt_.stats().ledger_calls.fetch_add(1, std::memory_order_relaxed);
        rt_.stats().ledger_us.fetch_add(static_cast<std::uint64_t>(us), std::memory_order_relaxed);
    }

    access_runtime& rt_;
    price_fn price_;
    std::int64_t lease_ms_;
};

}  // namespace

std::shared_ptr<turn_filter> make_budget_filter(access_runtime& rt, price_fn price, std::chrono::milliseconds lease) {
    return std::make_shared<budget_filter>(rt, std::move(price), lease);
}

}  // namespace toolgate::gateway::policy
