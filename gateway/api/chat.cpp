// POST /v1/chat/completions: a plain turn through the chat pipeline, or the agent loop when the
// gateway offers MCP tools.
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <unordered_set>

#include "common/held_count.hpp"
#include "common/sse.hpp"
#include "gateway/api/chat.hpp"
#include "gateway/api/chat_plan.hpp"
#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/routing/config.hpp"
#include "sessions/hybrid.hpp"
#include "sessions/service.hpp"

#include <spdlog/spdlog.h>

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

// The request posts tool results after the newest assistant turn (maybe with text after them, as
// Anthropic clients send): it may follow a hybrid turn.
bool ends_with_tool_result(json::array const& messages) {
    for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
        auto const* o = it->if_object();
        auto const* role = o ? o->if_contains("role") : nullptr;
        if (!role || !role->is_string()) return false;
        if (role->get_string() == "tool") return true;
        if (role->get_string() == "assistant") return false;
    }
    return false;
}

api_error loops_overloaded(std::size_t limit) {
    api_error err{503, "server_error", "overloaded",
                  "the gateway is running its limit of " + std::to_string(limit) + " agent loops; retry shortly"};
    err.retry_after = "1";
    return err;
}

// Chunks become SSE events, held until flush() so one upstream read is one write to the client.
class sse_sink final : public providers::chat_sink {
public:
    sse_sink(response_channel& ch, header_list const& headers, cancel_token& cancel)
        : ch_(ch), headers_(headers), cancel_(cancel) {}

    asio::awaitable<bool> on_chunk(json::object& chunk, std::string_view raw) override {
        pending_.append("data: ");
        if (raw.empty()) pending_.append(json::serialize(chunk));
        else pending_.append(raw);
        pending_.append("\n\n");
        co_return !failed_;
    }

    asio::awaitable<bool> flush() override {
        if (failed_) co_return false;
        if (pending_.empty()) co_return true;
        if (!ch_.started()) {  // (no co_await inside && conditions: CONTRIBUTING.md)
            bool ok = co_await ch_.begin_stream(200, "text/event-stream", headers_);
            if (!ok) co_return fail();
        }
        bool ok = co_await ch_.write(pending_);
        pending_.clear();
        if (!ok) co_return fail();
        co_return true;
    }

    asio::awaitable<bool> on_comment(std::string_view text) override {
        pending_.append(": ");
        pending_.append(text);
        pending_.append("\n\n");
        co_return !failed_;
    }

    // Ends the stream: what is still held, then `last`, in one write.
    asio::awaitable<void> finish(std::string_view last) {
        if (failed_) co_return;
        if (!ch_.started()) {
            bool ok = co_await ch_.begin_stream(200, "text/event-stream", headers_);
            if (!ok) co_return;
        }
        pending_.append(last);
        co_await ch_.end_stream(pending_);
        pending_.clear();
    }

private:
    bool fail() {
        failed_ = true;
        cancel_.cancel();  // the client is gone: stop everything done on its behalf
        return false;
    }
    response_channel& ch_;
    header_list const& headers_;
    cancel_token& cancel_;
    std::string pending_;
    bool failed_ = false;
};

// Passes a plain turn's stream on and keeps its first choice as one assistant message.
class recording_sink final : public providers::chat_sink {
public:
    explicit recording_sink(providers::chat_sink& inner) : inner_(inner) {}

    asio::awaitable<bool> on_chunk(json::object& chunk, std::string_view raw) override {
        record(chunk);
        co_return co_await inner_.on_chunk(chunk, raw);
    }
    asio::awaitable<bool> flush() override { co_return co_await inner_.flush(); }
    asio::awaitable<bool> on_comment(std::string_view text) override { co_return co_await inner_.on_comment(text); }

    json::object message() const {
        json::object m;
        m["role"] = "assistant";
        if (content_.empty() && !calls_.calls().empty()) m["content"] = nullptr;
        else m["content"] = content_;
        if (!calls_.calls().empty()) {
            json::array calls;
            for (auto const& c : calls_.calls()) {
                json::object fn;
                fn["name"] = c.name;
                fn["arguments"] = c.arguments;
                json::object call;
                call["id"] = c.id;
                call["type"] = "function";
                call["function"] = std::move(fn);
                calls.push_back(std::move(call));
            }
            m["tool_calls"] = std::move(calls);
        }
        return m;
    }

private:
    void record(json::object const& chunk) {
        auto const* choices = chunk.if_contains("choices");
        if (!choices || !choices->is_array()) return;
        for (auto const& c : choices->get_array()) {
            auto const* co = c.if_object();
            if (!co) continue;
            auto const* index = co->if_contains("index");
            if (index && index->is_int64() && index->get_int64() != 0) continue;
            auto const* delta = co->if_contains("delta");
            auto const* d = delta ? delta->if_object() : nullptr;
            if (!d) continue;
            if (auto const* text = d->if_contains("content"); text && text->is_string()) content_.append(text->get_string());
            if (auto const* calls = d->if_contains("tool_calls"); calls && calls->is_array())
                for (auto const& f : calls->get_array())
                    if (auto const* fo = f.if_object()) calls_.add(*fo);
        }
    }
    providers::chat_sink& inner_;
    std::string content_;
    agentloop::call_assembler calls_;
};

}  // namespace

json::object answer_message(json::object const& response) {
    json::object m;
    m["role"] = "assistant";
    m["content"] = "";
    auto const* choices = response.if_contains("choices");
    if (!choices || !choices->is_array() || choices->get_array().empty()) return m;
    auto const* first = choices->get_array()[0].if_object();
    auto const* msg = first ? first->if_contains("message") : nullptr;
    auto const* mo = msg ? msg->if_object() : nullptr;
    if (!mo) return m;
    if (auto const* c = mo->if_contains("content"); c && (c->is_string() || c->is_array() || c->is_null())) m["content"] = *c;
    if (auto const* t = mo->if_contains("tool_calls"); t && t->is_array() && !t->get_array().empty()) m["tool_calls"] = *t;
    return m;
}

namespace {

void set_final_content(providers::chat_outcome& out, json::object const& final_message) {
    auto* choices = out.response.if_contains("choices");
    if (!choices || !choices->is_array() || choices->get_array().empty()) return;
    auto* first = choices->get_array()[0].if_object();
    auto* msg = first ? first->if_contains("message") : nullptr;
    if (!msg || !msg->is_object()) return;
    if (auto const* c = final_message.if_contains("content")) msg->get_object()["content"] = *c;
    out.raw_response.clear();
}

// The MCP tools one request may use.
class mcp_toolbox final : public agentloop::toolbox {
public:
    mcp_toolbox(mcp::aggregator& agg, std::vector<std::string> const& names) : agg_(agg), names_(names.begin(), names.end()) {}
    bool has(std::string_view name) const override { return names_.count(std::string(name)) > 0; }
    asio::awaitable<mcp::tool_outcome> call(std::string name, json::object arguments, cancel_token& cancel) override {
        co_return co_await agg_.call_tool(std::move(name), std::move(arguments), &cancel);
    }

private:
    mcp::aggregator& agg_;
    std::unordered_set<std::string> names_;
};

// Routing facts of a turn go into the record (the last turn's provider and model win).
void note_route(request_record& rec, turn_context const& ctx) {
    if (ctx.provider) rec.provider = ctx.provider->name();
    if (!ctx.upstream_model.empty()) rec.upstream_model = ctx.upstream_model;
    if (!ctx.variant.empty()) rec.variant = ctx.variant;
    if (!ctx.cache_status.empty()) rec.cache = ctx.cache_status;
    rec.attempts += ctx.attempts;
}

// The end of a chat request, plain or looped: the answer, or the error (mid-stream as an event).
asio::awaitable<void> answer(api_request& r, sse_sink* sink, providers::chat_outcome& result,
                             session_hold* hold = nullptr) {
    if (client_left(r, result.error)) co_return;
    // Stored before the answer ends: the client's next turn must find it. A failed request gives
    // its lease back before the error goes out, so that an immediate retry is not refused.
    if (!result.error) co_await store_turn(r, hold);
    else if (hold && hold->svc) co_await hold->svc->release(hold->t);
    if (result.error) {
        r.rec.error_detail = result.error->detail;
        if (!r.out.started()) {  // nothing sent yet (chunks held back are dropped): a plain error
            co_await reply_error(r, *result.error);
            co_return;
        }
        // Mid-stream failure: the status line is gone already; tell the client in the stream.
        r.rec.status = result.error->status;
        r.rec.error_code = result.error->code;
        co_await sink->finish(sse::format_data(result.error->to_json()));
        co_return;
    }
    r.rec.status = 200;
    if (sink) co_await sink->finish("data: [DONE]\n\n");
    else co_await r.out.send(200, "application/json", result.raw_response, r.headers);
}

bool follows_tool_results(json::object const& body) {
    auto const* messages = body.if_contains("messages");
    if (messages == nullptr || !messages->is_array() || messages->get_array().empty()) return false;
    auto const* last = messages->get_array().back().if_object();
    auto const* role = last ? last->if_contains("role") : nullptr;
    return role && role->is_string() && role->get_string() == "tool";
}

asio::awaitable<providers::chat_outcome> run_turn(api_request& r, providers::chat_request& request,
                                                  providers::chat_sink* sink, cancel_token& cancel,
                                                  providers::provider*& last, bool gateway_turn) {
    providers::call_context call{r.services.http, cancel, r.rec.request_id};
    auto ctx = make_turn(r, call);
    ctx.request = std::move(request);
    ctx.sink = sink;
    // From the second turn on, tool results are the gateway's own (the first turn's come from the client).
    ctx.loop_turn = gateway_turn;
    // agent_loop.tool_turn_model: the turns that read tool results may go to another model or pool.
    if (auto const& m = r.app.cfg.routing().tool_turn_model; !m.empty() && follows_tool_results(ctx.request.body))
        ctx.requested_model = m;
    auto result = co_await r.app.chat_pipeline->run(ctx);
    request = std::move(ctx.request);
    note_route(r.rec, ctx);
    // A cache hit called no provider: the loop prices that turn at nothing.
    if (ctx.cache_hit) last = nullptr;
    else if (ctx.provider) last = ctx.provider;
    co_return result;
}

// One request-log record per tool call the loop ran.
void log_tool_calls(api_request& r, std::vector<agentloop::tool_call_record> const& calls) {
    auto* log = r.app.access ? r.app.access->log() : nullptr;
    if (!log) return;
    auto now = policy::unix_now_ms();
    for (auto const& c : calls) {
        state::log_record rec;
        rec.kind = state::log_kind::tool;
        rec.ts_ms = now;
        rec.request_id = r.rec.request_id;
        rec.key = r.rec.key;
        rec.team = r.rec.team;
        rec.model = r.rec.model;
        rec.status = c.ok ? 200 : 0;
        rec.record["kind"] = "tool";
        rec.record["tool"] = c.name;
        rec.record["call_id"] = c.id;
        rec.record["ok"] = c.ok;
        if (!c.error.empty()) rec.record["error"] = c.error;
        rec.record["latency_ms"] = std::chrono::duration<double, std::milli>(c.duration).count();
        log->append(std::move(rec));
    }
}

asio::awaitable<void> run_loop(api_request& r, json::object body, loop_plan& plan, chat_run const& how) {
    bool stream = how.stream;
    auto* hold = how.hold;
    auto* capture = how.capture;
    r.rec.loop = true;
    agentloop::loop_input in;
    in.body = std::move(body);
    in.client_tools = std::move(plan.client_tools);
    in.observer = how.observer;
    in.run_first = how.run_first;
    if (how.on_offered) how.on_offered(plan.tools);
    in.stream = stream;
    in.include_usage = providers::wants_usage(in.body);
    std::optional<sse_sink> sink;
    if (stream) {
        sink.emplace(r.out, r.headers, r.cancel);
        in.sink = &*sink;
    }
    mcp_toolbox tools(r.app.aggregator(), plan.tools);
    in.cancel = &r.cancel;
    in.lim = plan.limits;
    in.tools = &tools;
    in.fallback_model = r.rec.model;
    providers::provider* last = nullptr;
    in.cost = [&last](std::string_view model, providers::usage const& u) {
        return last ? last->config().cost(model, u) : 0.0;
    };
    unsigned turns = 0;
    agentloop::turn_fn turn = [&r, &last, &turns](providers::chat_request& req, providers::chat_sink* s, cancel_token& c) {
        return run_turn(r, req, s, c, last, ++turns > 1);
    };
    auto res = co_await agentloop::run(in, turn);
    r.rec.tokens = res.outcome.tokens;
    r.rec.iterations = res.iterations;
    r.rec.tool_calls = res.calls.size();
    for (auto const& c : res.calls) r.rec.tool_errors += c.ok ? 0 : 1;
    if (res.stopped != agentloop::stop_reason::none) r.rec.stopped = agentloop::to_string(res.stopped);
    log_tool_calls(r, res.calls);
    if (hold) {
        // The session keeps the loop's own turns; its history replaces the hybrid store.
        hold->added = std::move(res.transcript);
        if (!res.final_message.empty()) hold->added.push_back(std::move(res.final_message));
    } else if (how.hybrid && !res.outcome.error && !r.cancel.cancelled() && !res.client_call_ids.empty() &&
               res.transcript.size() > 1) {
        co_await r.app.hybrid->remember(session_owner(r), std::move(res.client_call_ids), res.transcript);
    }
    if (!res.outcome.error && !stream) res.outcome.raw_response = json::serialize(res.outcome.response);
    if (capture) {
        // A captured answer (an AI endpoint's) is the last turn's text alone, which the endpoint
        // checks against its output schema; the earlier turns' words were spoken to the tools.
        if (!res.outcome.error && !res.final_message.empty()) set_final_content(res.outcome, res.final_message);
        *capture = std::move(res.outcome);
        co_return;
    }
    auto* to = sink ? &*sink : nullptr;
    co_await answer(r, to, res.outcome, hold);
}

namespace {

api_error approved_without_tools() {
    auto err = api_error::bad_request("an approved MCP call can only run when the request offers its mcp tool again "
                                      "(send the same tools with the mcp_approval_response)",
                                      "invalid_request");
    err.param = "tools";
    return err;
}

}  // namespace

// The request checks every chat body passes; a 400 when one fails.
std::optional<api_error> check_chat_body(json::object const& body, bool& stream) {
    auto const* messages = body.if_contains("messages");
    if (messages == nullptr || !messages->is_array() || messages->get_array().empty())
        return api_error::bad_request("'messages' is required and must be a non-empty array", "invalid_messages");
    for (auto const& m : messages->get_array()) {
        auto const* mo = m.if_object();
        auto const* role = mo ? mo->if_contains("role") : nullptr;
        if (!role || !role->is_string())
            return api_error::bad_request("every message needs a string 'role'", "invalid_messages");
    }
    if (auto const* s = body.if_contains("stream"); s && !s->is_null()) {
        if (!s->is_bool()) return api_error::bad_request("'stream' must be a boolean", "invalid_stream");
        stream = s->get_bool();
    }
    return std::nullopt;
}

}  // namespace

asio::awaitable<std::optional<api_error>> open_session(api_request& r, std::string_view id, json::object& body,
                                                       session_hold& hold, sessions::limits const* limits) {
    if (!r.app.sessions) co_return sessions_disabled();
    auto begun = co_await r.app.sessions->begin(std::string(id), session_owner(r), policy::unix_now_ms(), limits);
    if (auto* err = std::get_if<api_error>(&begun)) co_return *err;
    hold.svc = r.app.sessions.get();
    hold.t = std::move(std::get<sessions::turn>(begun));
    hold.incoming = body.at("messages").get_array();
    json::array full;
    if (auto err = hold.svc->prepare(hold.t, hold.incoming, full)) {
        co_await hold.svc->release(hold.t);
        co_return *err;
    }
    body["messages"] = std::move(full);
    r.req.body.clear();  // the body sent on is not the client's any more
    set_header(&r.headers, "x-session-id", hold.t.s.id);
    co_return std::nullopt;
}

asio::awaitable<void> store_turn(api_request& r, session_hold* hold) {
    if (!hold || !hold->svc || !hold->t.open) co_return;
    json::array added = std::move(hold->incoming);
    for (auto& m : hold->added) added.push_back(std::move(m));
    bool saved = co_await hold->svc->commit(hold->t, std::move(added), policy::unix_now_ms());
    if (!saved) set_header(&r.headers, "x-session-stored", "false");  // heard by a JSON answer's client
    if (!saved)
        r.app.log->warn("{} session {}: the turn was not stored (the store refused it or cannot answer)", r.rec.request_id,
                        hold->t.s.id);
}

asio::awaitable<void> finish_answer(api_request& r, providers::chat_outcome& result, session_hold* hold) {
    if (result.raw_response.empty() && !result.error) result.raw_response = json::serialize(result.response);
    co_await answer(r, nullptr, result, hold);
}

asio::awaitable<void> chat_completions(api_request& r) {
    auto body = co_await parse_model_body(r);
    if (!body) co_return;
    co_await chat_body(r, *body);
}

asio::awaitable<void> chat_body(api_request& r, json::object& body_in) {
    auto* body = &body_in;
    bool stream = false;
    if (auto err = check_chat_body(*body, stream)) {
        co_await reply_error(r, *err);
        co_return;
    }
    r.rec.stream = stream;
    auto session_id = r.req.header("x-session-id");
    chat_run how;
    how.stream = stream;
    if (session_id.empty()) {
        co_await run_chat(r, *body, how);
        co_return;
    }
    session_hold hold;
    auto err = co_await open_session(r, session_id, *body, hold, nullptr);
    if (err) {
        co_await reply_error(r, *err);
        co_return;
    }
    how.hold = &hold;
    std::exception_ptr failed;
    try {
        co_await run_chat(r, *body, how);
    } catch (...) {
        failed = std::current_exception();  // (no co_await in a handler: the lease goes back below)
    }
    // Not stored (an error, a cancelled request): the lease goes back all the same.
    co_await hold.svc->release(hold.t);
    if (failed) std::rethrow_exception(failed);
}

asio::awaitable<void> run_chat(api_request& r, json::object& body_in, chat_run const& how) {
    auto* body = &body_in;
    bool stream = how.stream;
    auto* hold = how.hold;

    loop_plan plan;
    bool body_changed = false;
    std::optional<api_error> plan_error;
    if (!r.app.cfg.mcp_servers.empty() && r.app.cfg.agent_loop.inject_tools) {
        // A follow-up after a hybrid turn: put back the tool turns the gateway ran on its own (a
        // session's history has them already).
        auto& messages = body->at("messages").get_array();
        if (!hold && how.hybrid && ends_with_tool_result(messages)) {
            auto expanded = co_await r.app.hybrid->expand(session_owner(r), messages);
            if (expanded > 0) body_changed = true;
        }
        auto catalog = r.app.injected();
        plan_error = plan_loop(r.app.cfg, r.req, *catalog, *body, plan, body_changed,
                               r.access_scope.key.get(), how.mcp_servers, how.mcp_tools);
        if (!plan_error && plan.run && how.hand_back)
            for (auto const& t : plan.tools)
                if (how.hand_back->count(t)) plan.client_tools.insert(t);
    }
    if (!plan_error && !plan.run && !how.run_first.empty()) plan_error = approved_without_tools();
    if (plan_error) {
        if (how.capture) {
            how.capture->error = failure(std::move(*plan_error));
            co_return;
        }
        co_await reply_error(r, *plan_error);
        co_return;
    }
    if (body_changed) r.req.body.clear();
    if (plan.run) {
        std::optional<held_count> slot(std::in_place, r.app.loops_running);
        if (slot->before >= r.app.cfg.agent_loop.max_concurrent) {
            slot.reset();  // a refusal being written holds no slot
            if (how.capture) {
                how.capture->error = failure(loops_overloaded(r.app.cfg.agent_loop.max_concurrent));
                co_return;
            }
            co_await reply_error(r, loops_overloaded(r.app.cfg.agent_loop.max_concurrent));
            co_return;
        }
        co_await run_loop(r, std::move(*body), plan, how);
        co_return;
    }

    providers::call_context call{r.services.http, r.cancel, r.rec.request_id};
    auto ctx = make_turn(r, call);
    ctx.request.body = std::move(*body);
    ctx.request.stream = stream;
    ctx.request.raw_body = std::move(r.req.body);
    std::optional<sse_sink> sink;
    std::optional<recording_sink> recorder;
    if (stream) {
        sink.emplace(r.out, r.headers, r.cancel);
        ctx.sink = &*sink;
        if (hold) ctx.sink = &recorder.emplace(*sink);
    }
    auto result = co_await r.app.chat_pipeline->run(ctx);
    note_route(r.rec, ctx);
    r.rec.tokens = result.tokens;
    if (result.raw_response.empty() && !result.error && !stream) result.raw_response = json::serialize(result.response);
    if (hold && !result.error) {
        if (recorder) hold->added.push_back(recorder->message());
        else hold->added.push_back(answer_message(result.response));
    }
    if (how.capture) {
        *how.capture = std::move(result);
        co_return;
    }
    auto* to = sink ? &*sink : nullptr;
    co_await answer(r, to, result, hold);
}

}  // namespace toolgate::gateway::api
