// POST /v1/endpoints/{slug}: an AI endpoint's call (endpoint_config.hpp; the admin routes are in
// endpoints_admin.cpp).
// The body becomes a chat request (the input checked against the input schema and rendered into
// the template, or plain messages), the model is chosen by the endpoint's rules, and the request
// runs through the chat machinery with the endpoint's limits and budget in its scope. A non-streamed
// call, or any call of an endpoint with an output schema or failover models, is captured: the
// answer is checked (one repair turn), failover models are tried, and only then is it sent (as a
// stream when one was asked for).
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <spdlog/spdlog.h>

#include "common/json_util.hpp"
#include "common/sse.hpp"
#include "gateway/api/chat.hpp"
#include "gateway/api/endpoint_config.hpp"
#include "gateway/api/endpoint_directory.hpp"
#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/policy/cache_parts.hpp"
#include "guardrails/schema_guard.hpp"
#include "guardrails/token_estimate.hpp"
#include "state/ledger.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

std::string text_of(json::value const& v) { return v.is_string() ? std::string(v.get_string()) : json::serialize(v); }

json::object message(std::string_view role, std::string content) {
    json::object m;
    m["role"] = role;
    m["content"] = std::move(content);
    return m;
}

std::string joined(std::vector<std::string> const& lines) {
    std::string out;
    for (auto const& l : lines) out += (out.empty() ? "" : "; ") + l;
    return out;
}

// The call as a chat body, checked: the errors a client sees before anything is counted.
struct built_call {
    json::object body;
    bool stream = false;
    std::string session_id;
};

std::variant<built_call, api_error> build_call(endpoint_config const& e, json::object const& in, std::string_view header_session) {
    static constexpr std::string_view known[] = {"input", "variables", "messages", "stream", "max_tokens",
                                                 "session_id", "user", "temperature", "top_p", "seed"};
    for (auto const& kv : in) {
        bool ok = false;
        for (auto k : known) ok = ok || kv.key() == k;
        if (!ok) {
            auto err = api_error::bad_request("unknown field '" + std::string(kv.key()) +
                                              "' (an endpoint takes input, variables, messages, stream, max_tokens, "
                                              "session_id, user, temperature, top_p, seed)",
                                              "unknown_parameter");
            err.param = std::string(kv.key());
            return err;
        }
    }
    built_call out;
    json::object vars;
    if (auto const* v = in.if_contains("variables"); v && !v->is_null()) {
        if (!v->is_object()) return api_error::bad_request("'variables' must be an object", "invalid_variables");
        vars = v->get_object();
    }
    auto const* input = in.if_contains("input");
    auto const* msgs = in.if_contains("messages");
    if ((input && !input->is_null()) == (msgs && !msgs->is_null()))
        return api_error::bad_request("send either 'input' (with optional 'variables') or 'messages'", "invalid_endpoint_call");
    json::array messages;
    if (!e.system_prompt.empty()) messages.push_back(message("system", e.system_prompt));
    if (input && !input->is_null()) {
        vars["input"] = *input;
        if (e.input_schema) {
            if (auto errors = e.input_schema->validate(vars); !errors.empty()) {
                auto err = api_error(422, "invalid_request_error", "input_validation_failed",
                                     "the input does not match the endpoint's input_schema: " + joined(errors));
                err.param = "input";
                return err;
            }
        }
        std::string prompt;
        if (e.prompt_template.empty()) {
            prompt = text_of(*input);
        } else {
            auto rendered = render_template(e.prompt_template, vars);
            if (auto* err = std::get_if<api_error>(&rendered)) return *err;
            prompt = std::move(std::get<std::string>(rendered));
        }
        messages.push_back(message("user", std::move(prompt)));
    } else {
        if (!msgs->is_array() || msgs->get_array().empty())
            return api_error::bad_request("'messages' must be a non-empty array", "invalid_messages");
        for (auto const& m : msgs->get_array()) {
            auto const* mo = m.if_object();
            auto const* role = mo ? mo->if_contains("role") : nullptr;
            if (!role || !role->is_string())
                return api_error::bad_request("every message needs a string 'role'", "invalid_messages");
            // The endpoint's system prompt is pinned: a caller cannot add one of its own.
            if (!e.system_prompt.empty() && (role->get_string() == "system" || role->get_string() == "developer"))
                return api_error::bad_request("endpoint '" + e.slug + "' has its own system prompt; send user and "
                                              "assistant messages only", "invalid_messages");
            // Every user message is input: each is checked against the schema.
            if (e.input_schema && role->get_string() == "user") {
                auto const* c = mo->if_contains("content");
                vars["input"] = c ? json::value(text_of(*c)) : json::value("");
                if (auto errors = e.input_schema->validate(vars); !errors.empty()) {
                    auto err = api_error(422, "invalid_request_error", "input_validation_failed",
                                         "a user message does not match the endpoint's input_schema: " + joined(errors));
                    err.param = "messages";
                    return err;
                }
            }
            messages.push_back(m);
        }
    }
    if (auto const* s = in.if_contains("stream"); s && !s->is_null()) {
        if (!s->is_bool()) return api_error::bad_request("'stream' must be a boolean", "invalid_stream");
        out.stream = s->get_bool();
    }
    if (out.stream && !e.stream)
        return api_error::bad_request("endpoint '" + e.slug + "' does not stream (its config says stream: false)",
                                      "stream_not_allowed");
    auto cap = e.policy.max_tokens_per_request;
    if (auto const* m = in.if_contains("max_tokens"); m && !m->is_null()) {
        if (!m->is_int64() || m->get_int64() < 1)
            return api_error::bad_request("'max_tokens' must be a whole number >= 1", "invalid_max_tokens");
        if (cap > 0 && m->get_int64() > cap) {
            auto err = api_error(422, "invalid_request_error", "max_tokens_exceeded",
                                 "max_tokens " + std::to_string(m->get_int64()) + " is above endpoint '" + e.slug +
                                     "''s max_tokens_per_request of " + std::to_string(cap));
            err.param = "max_tokens";
            return err;
        }
        out.body["max_tokens"] = m->get_int64();
    } else if (cap > 0) {
        out.body["max_tokens"] = cap;
    }
    for (char const* k : {"user", "temperature", "top_p", "seed"})
        if (auto const* v = in.if_contains(k); v && !v->is_null()) out.body[k] = *v;
    if (e.output_schema) {
        json::object schema;
        schema["name"] = e.slug;
        schema["schema"] = e.output_schema_doc;
        json::object format;
        format["type"] = "json_schema";
        format["json_schema"] = std::move(schema);
        out.body["response_format"] = std::move(format);
    }
    out.body["messages"] = std::move(messages);
    out.body["stream"] = out.stream;
    if (auto const* sid = in.if_contains("session_id"); sid && !sid->is_null()) {
        if (!sid->is_string()) return sessions::invalid_id_error();
        out.session_id = std::string(sid->get_string());
    } else {
        out.session_id = std::string(header_session);
    }
    if (!out.session_id.empty() && !e.sessions)
        return api_error::bad_request("endpoint '" + e.slug + "' keeps no sessions (its config: sessions.enabled)",
                                      "sessions_disabled");
    return out;
}

std::optional<api_error> check_caller(endpoint_config const& e, api_request const& r) {
    if (e.keys.empty()) return std::nullopt;
    auto const* key = r.access_scope.key.get();
    if (key)
        for (auto const& k : e.keys)
            if (k == key->name) return std::nullopt;
    return api_error(403, "permission_error", "endpoint_forbidden",
                     key ? "key '" + key->name + "' may not call endpoint '" + e.slug + "'"
                         : "endpoint '" + e.slug + "' needs an API key that it lists");
}

rule_facts facts_of(json::object const& body, std::int64_t now_ms) {
    rule_facts f;
    std::size_t tokens = 0;
    for (auto const& m : body.at("messages").get_array())
        if (auto const* o = m.if_object(); o && o->contains("content")) tokens += guardrails::estimate_tokens(text_of(o->at("content")));
    f.input_tokens = static_cast<std::int64_t>(tokens);
    f.minute_of_day = static_cast<int>((now_ms / 60'000) % 1440);
    return f;
}

bool uses_spend(endpoint_config const& e) {
    for (auto const& r : e.rules)
        if (r.monthly_spend_pct_gt) return true;
    return false;
}

bool retriable(failure const& f) { return f.status >= 500 || f.status == 429 || f.status == 408; }

// The answer's text checked against the output schema: the errors, none when it matches.
std::vector<std::string> output_errors(endpoint_config const& e, json::object const& response) {
    auto msg = answer_message(response);
    auto const* c = msg.if_contains("content");
    std::string text = c && c->is_string() ? std::string(c->get_string()) : std::string();
    boost::system::error_code ec;
    auto doc = parse_bounded(text, ec);
    if (ec) {
        std::vector<std::string> out;
        out.push_back("(root): the answer is not JSON (" + ec.message() + ")");
        return out;
    }
    return e.output_schema->validate(doc);
}

json::object repair_body(json::object body, json::object const& response, std::vector<std::string> const& errors) {
    auto& messages = body.at("messages").get_array();
    messages.push_back(answer_message(response));
    messages.push_back(message("user", "Your answer does not match the required JSON schema: " + joined(errors) +
                                           ". Answer again with only the corrected JSON."));
    return body;
}

api_error unavailable(std::string_view slug, bool store_error) {
    if (store_error)
        return api_error{503, "server_error", "state_unavailable", "the endpoint store is unavailable; retry later"};
    // The detail (what no longer fits the config) is in the gateway's log and on GET /admin/endpoints.
    return api_error{503, "server_error", "endpoint_unavailable",
                     "endpoint '" + std::string(slug) + "' cannot be served as it is defined; its administrator can "
                     "see why on GET /admin/endpoints"};
}

bool drop_system_prompt(endpoint_config const& e, json::object& body) {
    if (e.system_prompt.empty()) return false;
    auto& messages = body.at("messages").get_array();
    messages.erase(messages.begin());
    return true;
}

// In front of what is sent unless the history has a system message already; stored with the new
// messages when the history is empty (a new session).
void put_system_prompt(endpoint_config const& e, json::object& body, session_hold& hold) {
    auto const& history = hold.t.s.messages;
    auto& messages = body.at("messages").get_array();
    if (!history.empty()) {
        auto const* first = history[0].if_object();
        auto const* role = first ? first->if_contains("role") : nullptr;
        if (role && role->is_string() && role->get_string() == "system") {
            // The endpoint's prompt is pinned: a session begun elsewhere does not replace it.
            messages[0] = message("system", e.system_prompt);
            return;
        }
    }
    messages.insert(messages.begin(), message("system", e.system_prompt));
    if (history.empty()) hold.incoming.insert(hold.incoming.begin(), message("system", e.system_prompt));
}

json::object with_model(json::object body, std::string const& model) {
    body["model"] = model;
    body["stream"] = false;
    return body;
}

// A captured answer sent as a stream of chunks (the endpoint asked to stream, but the answer had
// to be checked first).
asio::awaitable<void> send_as_stream(api_request& r, providers::chat_outcome& result, bool include_usage) {
    policy::cache_detail::cached_answer a;
    a.response = result.raw_response.empty() ? json::serialize(result.response) : result.raw_response;
    a.tokens = result.tokens;
    std::string text;
    for (auto const& c : policy::cache_detail::replay_chunks(a, include_usage)) text += "data: " + c + "\n\n";
    text += "data: [DONE]\n\n";
    r.rec.status = 200;
    bool ok = co_await r.out.begin_stream(200, "text/event-stream", r.headers);
    if (ok) co_await r.out.end_stream(text);
}

}  // namespace

namespace {
asio::awaitable<void> run_endpoint(api_request& r, endpoint_config const& e, built_call& call, session_hold* held);
}  // namespace

asio::awaitable<void> call_endpoint(api_request& r) {
    // Held for the whole call: an endpoint deleted meanwhile finishes the calls it began.
    std::shared_ptr<endpoint_config const> held_endpoint = r.app.endpoints->config_endpoint(r.param("slug"));
    if (!held_endpoint) {
        auto found = co_await r.app.endpoints->find(std::string(r.param("slug")));
        if (found.store_error || !found.invalid.empty()) {
            co_await reply_error(r, unavailable(r.param("slug"), found.store_error));
            co_return;
        }
        held_endpoint = std::move(found.endpoint);
    }
    auto const* e = held_endpoint.get();
    if (!e) {
        co_await reply_error(r, api_error::not_found("no endpoint '" + std::string(r.param("slug")) + "'", "endpoint_not_found"));
        co_return;
    }
    r.rec.endpoint = e->slug;
    if (auto err = check_caller(*e, r)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto in = co_await parse_body(r);
    if (!in) co_return;
    auto built = build_call(*e, *in, r.req.header("x-session-id"));
    if (auto* err = std::get_if<api_error>(&built)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto& call = std::get<built_call>(built);
    r.req.body.clear();  // what goes on is the endpoint's request, not the client's bytes
    r.rec.stream = call.stream;
    r.access_scope.endpoint = &e->policy;

    session_hold hold;
    session_hold* held = nullptr;
    if (!call.session_id.empty()) {
        // The system prompt is the session's first message, stored once, not one per call.
        bool system = drop_system_prompt(*e, call.body);
        auto err = co_await open_session(r, call.session_id, call.body, hold, &e->session_limits);
        if (err) {
            co_await reply_error(r, *err);
            co_return;
        }
        held = &hold;
        if (system) put_system_prompt(*e, call.body, hold);
    }
    std::exception_ptr failed;
    try {
        co_await run_endpoint(r, *e, call, held);
    } catch (...) {
        failed = std::current_exception();  // (no co_await in a handler: the lease goes back below)
    }
    if (held) co_await hold.svc->release(hold.t);
    if (failed) std::rethrow_exception(failed);
}

namespace {

asio::awaitable<void> run_endpoint(api_request& r, endpoint_config const& ep, built_call& call, session_hold* held) {
    auto const* e = &ep;
    // The rules read the whole conversation, a session's history included.
    auto now = policy::unix_now_ms();
    auto facts = facts_of(call.body, now);
    if (uses_spend(*e) && e->policy.budget.monthly_usd > 0 && r.app.access) {
        auto spent = co_await r.app.access->ledger().spent("endpoint:" + e->slug, state::utc_month(now));
        if (spent) facts.monthly_spend_pct = double(*spent) / 1e6 / e->policy.budget.monthly_usd * 100.0;
    }
    auto const& model = choose_model(*e, facts);
    call.body["model"] = model;
    r.rec.model = model;
    std::vector<std::string> no_servers;
    chat_run how;
    how.hold = held;
    how.mcp_servers = e->mcp_servers ? &*e->mcp_servers : &no_servers;
    bool capture = !call.stream || e->output_schema || !e->failover.empty();
    if (!capture) {
        how.stream = true;
        co_await run_chat(r, call.body, how);
        co_return;
    }

    providers::chat_outcome result;
    how.capture = &result;
    std::vector<std::string> models;
    models.push_back(model);
    for (auto const& f : e->failover) models.push_back(f);
    std::string answered_by = model;
    for (auto const& m : models) {
        answered_by = m;
        r.rec.model = m;
        result = providers::chat_outcome{};
        if (held) held->added.clear();
        auto body = with_model(call.body, m);
        auto attempts = r.rec.attempts;
        co_await run_chat(r, body, how);
        if (!result.error || r.cancel.cancelled() || !retriable(*result.error)) break;
        // Only a provider's failure moves on: not the gateway's own refusal (a limit, a budget:
        // no provider was called), and not once tools ran (they would run again).
        if (r.rec.attempts == attempts || r.rec.tool_calls > 0) break;
        if (&m != &models.back())
            r.app.log->info("{} endpoint {}: model {} failed ({}); trying {}", r.rec.request_id, e->slug, m,
                            result.error->status, *(&m + 1));
    }
    if (!result.error && e->output_schema) {
        auto errors = output_errors(*e, result.response);
        if (!errors.empty()) {
            // One repair turn with the errors, to the model that answered.
            auto body = repair_body(with_model(call.body, answered_by), result.response, errors);
            auto first = std::move(result);
            result = providers::chat_outcome{};
            if (held) held->added.clear();
            co_await run_chat(r, body, how);
            if (!result.error) {
                result.tokens.add(first.tokens);
                errors = output_errors(*e, result.response);
                if (!errors.empty()) {
                    api_error err(422, "invalid_request_error", "output_validation_failed",
                                  "the model's answer does not match the endpoint's output_schema, also after one "
                                  "repair: " + joined(errors));
                    result.error = failure(std::move(err));
                }
            }
        }
    }
    r.rec.tokens = result.tokens;
    if (call.stream && !result.error && !r.cancel.cancelled()) {
        co_await store_turn(r, held);
        co_await send_as_stream(r, result, false);
    } else {
        co_await finish_answer(r, result, held);
    }
}

}  // namespace

}  // namespace toolgate::gateway::api
