// The guardrails' turn filter: the request's parts before the router, the answer after it (whole,
// or as a stream through guarded_stream), schema-guard's repair, and /metrics.
#include "gateway/policy/guardrails.hpp"

#include "common/prometheus.hpp"
#include "gateway/policy/guarded_stream.hpp"
#include "gateway/policy/guardrail_parts.hpp"
#include "guardrails/schema_guard.hpp"

namespace toolgate::gateway::policy {

using namespace detail;

namespace {

// Runs the before_request plugins over the request. Returns the error to answer, if any.
std::optional<api_error> check_request(guardrail_settings const& s, turn_context& ctx, gr::scope& sc) {
    auto& body = ctx.request.body;
    bool changed = ctx.loop_turn && reredact_assistant(body, sc);
    std::vector<gr::text_part> parts;
    std::vector<part_ref> refs;
    request_parts(body, parts, refs);
    for (auto const& pp : s.plugins) {
        auto const& p = *pp;
        if (p.stage != plugin_stage::before_request) continue;
        // A plugin reports its first finding; in a loop each blocked tool result is withheld and
        // the plugin looks again, until it passes or blocks something that is not a tool result.
        for (std::size_t round = 0; round <= parts.size(); ++round) {
            std::vector<gr::text_part> sel;
            std::vector<std::size_t> where;
            for (std::size_t i = 0; i < parts.size(); ++i)
                if (applies(p, parts[i].kind)) {
                    sel.push_back(parts[i]);
                    where.push_back(i);
                }
            auto v = p.impl->check(sel, &body, sc);  // max-token may rewrite max_tokens (a redact)
            count(p, v.what);
            if (v.what == gr::outcome::pass) break;
            note(ctx, p, v);
            if (v.what == gr::outcome::redact) {
                for (std::size_t k = 0; k < sel.size(); ++k) {
                    auto& orig = parts[where[k]];
                    if (sel[k].text == orig.text) continue;
                    orig.text = sel[k].text;
                    write_part(body, refs[where[k]], orig.text);
                }
                changed = true;
                break;
            }
            if (where.empty()) return violation(p, v, std::string());
            std::size_t gi = where[std::min(v.part, where.size() - 1)];
            bool in_tool = parts[gi].kind == gr::part_kind::tool;
            auto notice = withheld_notice(p, v);
            if (ctx.loop_turn && in_tool && v.rule != "max_messages" && parts[gi].text != notice) {
                // The model reads a notice instead of the tool's text; the loop goes on.
                parts[gi].text = std::move(notice);
                write_part(body, refs[gi], parts[gi].text);
                changed = true;
                continue;
            }
            return violation(p, v, "messages[" + std::to_string(parts[gi].index) + "]");
        }
    }
    if (changed) ctx.request.raw_body.clear();  // the body goes out re-serialised
    return std::nullopt;
}

// Runs the after_request plugins over a whole (non-streamed) answer. `schema_failure` is set when
// a repairing schema-guard failed (the caller may ask the model once more).
std::optional<api_error> check_answer(guardrail_settings const& s, turn_context& ctx, gr::scope& sc, std::size_t restorable,
                                      turn_result& result, guardrail_plugin const** schema_failure,
                                      std::string* schema_errors) {
    std::vector<gr::text_part> parts;
    answer_parts(result.response, parts);
    bool changed = false;
    for (auto const& pp : s.plugins) {
        auto const& p = *pp;
        if (p.stage != plugin_stage::after_request) continue;
        std::vector<gr::text_part> sel;
        for (auto const& part : parts)
            if (applies(p, part.kind)) sel.push_back(part);
        gr::verdict v;
        if (p.whole) {
            // One answer per choice (schema-guard reads one JSON document).
            for (std::size_t k = 0; k < sel.size() && v.what == gr::outcome::pass; ++k) {
                std::vector<gr::text_part> one(1, sel[k]);
                v = p.impl->check(one, &ctx.request.body, sc);
                if (v.what != gr::outcome::pass) v.part = k;
            }
        } else {
            v = p.impl->check(sel, &ctx.request.body, sc);
        }
        count(p, v.what);
        if (v.what == gr::outcome::pass) continue;
        note(ctx, p, v);
        if (v.what == gr::outcome::redact) {
            for (auto const& part : sel)
                if (auto* c = answer_content(result.response, part.index)) *c = json::value(part.text);
            for (auto& part : parts)
                for (auto const& ns : sel)
                    if (ns.index == part.index) part.text = ns.text;
            changed = true;
            continue;
        }
        if (p.repair && schema_failure && gr::is_repairable(v)) {
            *schema_failure = &p;
            *schema_errors = v.detail;
            return std::nullopt;
        }
        auto e = violation(p, v, "choices[" + std::to_string(v.part < sel.size() ? sel[v.part].index : 0) + "].message");
        return e;
    }
    bool restore = false;
    for (auto const& p : s.plugins) restore = restore || (p->restore && restorable > 0);
    if (restore) {
        // Only the request's placeholders: an after_request redaction stays redacted.
        gr::scope inbound;
        inbound.placeholders.assign(sc.placeholders.begin(), sc.placeholders.begin() + static_cast<std::ptrdiff_t>(restorable));
        restore_answer(result.response, inbound);
        changed = true;
    }
    if (changed) result.raw_response.clear();
    return std::nullopt;
}

// The repair turn's request: the failed answer and the validation errors, for one more try.
void add_repair_messages(json::object& body, turn_result const& failed, std::string const& errors) {
    auto* messages = body.if_contains("messages");
    if (!messages || !messages->is_array()) return;
    std::string answer;
    std::vector<gr::text_part> parts;
    answer_parts(failed.response, parts);
    if (!parts.empty()) answer = parts[0].text;
    json::object assistant;
    assistant["role"] = "assistant";
    assistant["content"] = answer;
    json::object user;
    user["role"] = "user";
    user["content"] = "Your answer does not match the required JSON schema:\n" + errors +
                      "\nAnswer again with only JSON that matches the schema.";
    messages->get_array().push_back(std::move(assistant));
    messages->get_array().push_back(std::move(user));
}

api_error schema_unrepaired(guardrail_plugin const& p, std::string const& errors) {
    api_error e{422, "guardrail_violation", p.name,
                "the answer does not match the JSON schema, also after one repair attempt: " + errors};
    e.param = "choices[0].message";
    return e;
}

class guardrail_filter final : public turn_filter {
public:
    explicit guardrail_filter(std::shared_ptr<guardrail_settings const> s) : s_(std::move(s)) {
        for (auto const& p : s_->plugins) restores_ = restores_ || p->restore;
    }
    std::string_view name() const override { return "guardrails"; }

    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const& next) override {
        // One scope for all turns of a request (the agent loop's): a value keeps its placeholder.
        gr::scope local;
        gr::scope& sc = ctx.guardrail_scope ? *ctx.guardrail_scope : local;
        if (auto err = check_request(*s_, ctx, sc)) {
            turn_result blocked;
            blocked.error = std::move(*err);
            co_return blocked;
        }
        // What restore may put back: the placeholders the requests made, not an answer's own.
        gr::scope inbound;
        if (restores_) inbound.placeholders = sc.placeholders;
        std::size_t restorable = sc.placeholders.size();
        if (ctx.sink && checks_streams(*s_)) {
            sink_restorer put_back(ctx);  // also when next() throws
            auto g = make_guarded_sink(*s_, ctx, sc, inbound, *ctx.sink);
            ctx.sink = g.get();
            auto r = co_await next(ctx);
            put_back.now();
            if (!r.error && !g->error()) co_await g->drain();
            if (g->error()) {
                r.error = *g->error();
                r.chunks_sent = true;
            }
            co_return r;
        }
        auto r = co_await next(ctx);
        if (r.error || ctx.sink) co_return r;
        guardrail_plugin const* failed = nullptr;
        std::string errors;
        if (auto err = check_answer(*s_, ctx, sc, restorable, r, &failed, &errors)) {
            r.error = std::move(*err);
            co_return r;
        }
        if (!failed) co_return r;
        // schema-guard repair: once, with the validation errors.
        add_repair_messages(ctx.request.body, r, errors);
        ctx.request.raw_body.clear();
        auto again = co_await next(ctx);
        again.tokens.add(r.tokens);  // both attempts were paid for
        if (again.error) co_return again;
        guardrail_plugin const* failed_again = nullptr;
        std::string errors_again;
        if (auto err = check_answer(*s_, ctx, sc, restorable, again, &failed_again, &errors_again)) {
            again.error = std::move(*err);
            co_return again;
        }
        if (failed_again) again.error = schema_unrepaired(*failed_again, errors_again);
        co_return again;
    }

private:
    std::shared_ptr<guardrail_settings const> s_;
    bool restores_ = false;  // some plugin puts pii back into answers
};

}  // namespace

std::shared_ptr<turn_filter> make_guardrail_filter(std::shared_ptr<guardrail_settings const> settings) {
    if (!settings || settings->empty()) return nullptr;
    return std::make_shared<guardrail_filter>(std::move(settings));
}

std::string guardrail_metrics(guardrail_settings const& settings) {
    if (settings.empty()) return {};
    prometheus::writer w;
    w.family("toolgate_guardrail_verdicts_total", "counter", "Guardrail verdicts, by plugin, stage and outcome.");
    for (auto const& p : settings.plugins) {
        std::string_view stage = p->stage == plugin_stage::before_request ? "before_request" : "after_request";
        for (auto o : {gr::outcome::pass, gr::outcome::redact, gr::outcome::block})
            w.sample("toolgate_guardrail_verdicts_total",
                     {{"plugin", p->name}, {"stage", stage}, {"outcome", gr::to_string(o)}},
                     p->verdicts[static_cast<std::size_t>(o)].load(std::memory_order_relaxed));
    }
    return w.take();
}

}  // namespace toolgate::gateway::policy
