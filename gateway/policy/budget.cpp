// The budgets: the lines a turn reserves on and settles (the key's and its team's, day and month,
// UTC), the turn's price, and the refusals. The admission filter (admission.cpp) asks the ledger.
// A turn the client abandons mid-stream is charged for what was produced (usage when the provider
// sent it, else the input estimate and the streamed text).
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/json_util.hpp"
#include "gateway/policy/plans.hpp"

namespace toolgate::gateway::policy {

namespace json = boost::json;

namespace {

// A line without a budget still records spend (for /admin/spend and the metrics).
constexpr std::int64_t unlimited = std::int64_t(1) << 62;

void add_line(budget_plan& p, std::string scope, std::string period, double usd, budget_plan::label why) {
    p.lines.push_back(state::budget_line{std::move(scope), std::move(period), usd > 0 ? to_micros(usd) : unlimited});
    if (usd > 0) {
        p.held.push_back(p.lines.back());
        p.held_labels.push_back(why);
    }
}

void add_lines(budget_plan& p, budget_set const& b, std::string scope, std::string_view what, std::string_view name,
               std::int64_t now) {
    add_line(p, scope, state::utc_day(now), b.daily_usd, budget_plan::label{what, name, true, b.daily_usd});
    add_line(p, std::move(scope), state::utc_month(now), b.monthly_usd, budget_plan::label{what, name, false, b.monthly_usd});
}

std::string label_text(budget_plan::label const& l) {
    return fmt::format("{} budget of {} {} (${})", l.daily ? "daily" : "monthly", l.what, l.name, l.usd);
}

}  // namespace

// A cast of a larger double to int64 is undefined.
std::int64_t to_micros(double usd) {
    if (!(usd > 0)) return 0;
    return static_cast<std::int64_t>(std::ceil(std::min(usd, 1e9) * 1e6 - 1e-6));
}

budget_plan plan_budget(request_scope const& scope, std::int64_t now) {
    budget_plan p;
    if (auto const* e = scope.endpoint) add_lines(p, e->budget, "endpoint:" + e->slug, "endpoint", e->slug, now);
    if (!scope.key) return p;
    add_lines(p, scope.key->budget, "key:" + scope.key->id, "key", scope.key->name, now);
    if (scope.key_team) add_lines(p, scope.key_team->budget, "team:" + scope.key_team->name, "team", scope.key_team->name, now);
    else if (!scope.key->team.empty()) add_lines(p, budget_set{}, "team:" + scope.key->team, "team", scope.key->team, now);
    return p;
}

asio::awaitable<bool> counting_sink::on_chunk(json::object& chunk, std::string_view raw) {
    count(chunk);
    return inner_.on_chunk(chunk, raw);
}

void counting_sink::count(json::object const& chunk) {
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

api_error over_budget(budget_plan::label const& why, std::int64_t spent, std::int64_t limit, header_list* headers) {
    set_header(headers, "x-should-retry", "false");
    // An AI endpoint's budget is part of its contract: 422, as its other pre-call checks.
    return api_error{why.what == "endpoint" ? 422 : 429, "insufficient_quota", "budget_exceeded",
                     fmt::format("The {} is used up (spent or reserved ${:.6f} of ${:.6f}); this request cannot fit",
                                 label_text(why), double(spent) / 1e6, double(limit) / 1e6)};
}

api_error unpriced(std::string const& model) {
    return api_error{403, "permission_error", "model_unpriced",
                     "model '" + model + "' has no price, and this key has a budget (set the provider's prices, or budgets.unpriced: allow)"};
}

api_error ledger_down() {
    return api_error{503, "server_error", "state_unavailable", "the budget ledger is unavailable; retry later"};
}

double turn_cost(turn_context const& ctx, turn_result const& r, std::int64_t input, std::size_t streamed, bool cancelled) {
    if (!ctx.provider || ctx.cache_hit) return 0;  // no provider was called
    providers::usage u = r.tokens;
    if (!u.present) {
        // No usage: a call refused or failed before an answer costs nothing; one the client
        // abandoned (the provider had the prompt) costs its prompt and what it sent.
        if (!r.chunks_sent && r.error && !cancelled) return 0;
        u.prompt_tokens = input;
        u.completion_tokens = static_cast<std::int64_t>((streamed + 3) / 4);
    }
    return ctx.provider->config().cost(ctx.upstream_model, u, images_made(ctx, r));
}

std::int64_t images_asked(turn_context const& ctx) {
    if (!ctx.api_path.starts_with("/images/")) return 0;
    auto const* n = ctx.request.body.if_contains("n");
    return n && n->is_int64() ? std::clamp<std::int64_t>(n->get_int64(), 1, 100) : 1;
}

std::int64_t images_made(turn_context const& ctx, turn_result const& r) {
    if (!ctx.api_path.starts_with("/images/") || r.error) return 0;
    json::value parsed;
    json::value const* data = r.response.if_contains("data");
    if (!data && !r.raw_response.empty()) {  // an upload route's answer, as it came
        boost::system::error_code ec;
        parsed = parse_bounded(r.raw_response, ec);
        auto const* o = ec ? nullptr : parsed.if_object();
        data = o ? o->if_contains("data") : nullptr;
    }
    return data && data->is_array() ? static_cast<std::int64_t>(data->get_array().size()) : 0;
}

state::spend_entry spend_of(turn_context const& ctx, request_scope const& scope, std::int64_t now) {
    state::spend_entry e;
    e.request_id = ctx.request_id;
    if (scope.key) {
        e.key = scope.key->id;
        e.team = scope.key->team;
    }
    e.model = ctx.upstream_model.empty() ? ctx.requested_model : ctx.upstream_model;
    e.provider = ctx.provider ? std::string(ctx.provider->name()) : std::string();
    e.ts_ms = now;
    return e;
}

}  // namespace toolgate::gateway::policy
