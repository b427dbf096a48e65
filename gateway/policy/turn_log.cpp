// The request log's per-turn records: one per model turn (the agent loop's included), with who,
// what answered, tokens, cost, latency and time to first token. Appending never blocks.
#include <boost/json/value.hpp>

#include <chrono>

#include "gateway/policy/filters.hpp"
#include "gateway/policy/plans.hpp"
#include "guardrails/guardrail.hpp"

namespace toolgate::gateway::policy {

namespace {

// Notes when the first chunk of a streamed turn passes.
class first_chunk_sink final : public providers::chat_sink {
public:
    explicit first_chunk_sink(providers::chat_sink& inner) : inner_(inner) {}
    asio::awaitable<bool> on_chunk(json::object& chunk, std::string_view raw) override {
        if (!first_) first_ = std::chrono::steady_clock::now();
        return inner_.on_chunk(chunk, raw);
    }
    asio::awaitable<bool> flush() override { return inner_.flush(); }
    asio::awaitable<bool> on_comment(std::string_view text) override { return inner_.on_comment(text); }
    std::optional<std::chrono::steady_clock::time_point> first_;

private:
    providers::chat_sink& inner_;
};


double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// The admission filter prices every keyed turn; a turn without a key is priced here.
double cost_of(turn_context const& ctx, turn_result const& r) {
    if (ctx.cost_usd >= 0) return ctx.cost_usd;
    return ctx.provider ? ctx.provider->config().cost(ctx.upstream_model, r.tokens, images_made(ctx, r)) : 0;
}

// request_log.payloads: the messages as the provider got them (after the guardrails' redaction),
// and a non-streamed answer unless pii-redact restored originals into it.
void add_payload(json::object& o, turn_context const& ctx, turn_result const& r) {
    if (auto const* m = ctx.request.body.if_contains("messages")) o["messages"] = *m;
    bool restored = ctx.guardrail_scope && !ctx.guardrail_scope->placeholders.empty();
    if (restored || ctx.sink) return;
    if (auto const* c = r.response.if_contains("choices")) o["choices"] = *c;
}

state::log_record turn_record(turn_context const& ctx, turn_result const& r, double cost_usd, double latency_ms,
                              double ttft_ms, std::int64_t ts, bool payloads) {
    state::log_record rec;
    rec.kind = state::log_kind::turn;
    rec.ts_ms = ts;
    rec.request_id = ctx.request_id;
    if (ctx.access && ctx.access->key) {
        rec.key = ctx.access->key->name;
        rec.team = ctx.access->key->team;
    }
    rec.model = ctx.requested_model;
    rec.status = r.error ? r.error->status : 200;
    auto& o = rec.record;
    o["kind"] = "turn";
    o["turn"] = ctx.access ? ctx.access->turns : 0;
    o["loop_turn"] = ctx.loop_turn;
    o["model"] = ctx.requested_model;
    if (ctx.provider) o["provider"] = ctx.provider->name();
    if (!ctx.upstream_model.empty()) o["upstream_model"] = ctx.upstream_model;
    o["attempts"] = ctx.attempts;
    if (!ctx.cache_status.empty()) o["cache"] = ctx.cache_status;
    if (ctx.access && ctx.access->endpoint) o["endpoint"] = ctx.access->endpoint->slug;
    o["stream"] = ctx.sink != nullptr;
    o["prompt_tokens"] = r.tokens.prompt_tokens;
    o["completion_tokens"] = r.tokens.completion_tokens;
    o["usage_reported"] = r.tokens.present;
    o["cost_usd"] = cost_usd;
    o["latency_ms"] = latency_ms;
    if (ttft_ms >= 0) o["ttft_ms"] = ttft_ms;
    o["status"] = rec.status;
    if (r.error) o["error"] = r.error->code;
    if (payloads) add_payload(o, ctx, r);
    return rec;
}

class turn_log_filter final : public turn_filter {
public:
    explicit turn_log_filter(access_runtime& rt) : rt_(rt) {}
    std::string_view name() const override { return "request_log"; }

    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const& next) override {
        auto* log = rt_.log();
        if (!log) co_return co_await next(ctx);
        auto ts = unix_now_ms();
        auto start = std::chrono::steady_clock::now();
        std::optional<first_chunk_sink> probe;
        sink_restorer restore(ctx);
        if (ctx.sink) {
            probe.emplace(*ctx.sink);
            ctx.sink = &*probe;
        }
        auto result = co_await next(ctx);
        restore.now();
        auto end = std::chrono::steady_clock::now();
        double ttft = probe && probe->first_ ? ms_between(start, *probe->first_) : -1;
        auto cost = cost_of(ctx, result);
        if (ctx.cost_usd < 0 && ctx.access) ctx.access->cost_usd += cost;
        log->append(turn_record(ctx, result, cost, ms_between(start, end), ttft, ts, rt_.settings().log_payloads));
        co_return result;
    }

private:
    access_runtime& rt_;
};

}  // namespace

std::shared_ptr<turn_filter> make_turn_log_filter(access_runtime& rt) { return std::make_shared<turn_log_filter>(rt); }

}  // namespace toolgate::gateway::policy
