// The rest of the OpenAI surface that OpenAI-compatible providers serve, passed through by model:
// POST /v1/images/generations, /v1/completions (legacy), /v1/moderations, /v1/rerank and
// /v1/audio/speech (its answer is audio, passed back as it came). Each is
// one turn of the embeddings pipeline (routing with retries and fallback, keys, limits, budgets,
// the request log) whose provider call goes to the same path upstream; a provider that does not
// serve the path answers 400 unsupported_for_provider.
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

api_error required(char const* field) {
    auto err = api_error::bad_request(std::string("'") + field + "' is required", "missing_field");
    err.param = field;
    return err;
}

api_error not_guarded(std::string_view path) {
    return api_error::bad_request("this gateway runs guardrails, which do not cover /v1" + std::string(path) +
                                      " yet; the request was not sent (use /v1/chat/completions)",
                                  "unsupported_with_guardrails");
}

// The body with `model` (or a default for the route when the API has one); nullopt after an error.
// `guarded`: a route whose text the guardrails would have to read (refused while they cannot).
asio::awaitable<std::optional<json::object>> body_with(api_request& r, char const* must, char const* default_model,
                                                       std::string_view guarded = {}) {
    if (!guarded.empty() && r.app.cfg.guardrail_settings) {
        co_await reply_error(r, not_guarded(guarded));
        co_return std::nullopt;
    }
    auto body = co_await parse_body(r);
    if (!body) co_return std::nullopt;
    auto const* m = body->if_contains("model");
    if ((!m || !m->is_string() || m->get_string().empty()) && default_model) (*body)["model"] = default_model;
    m = body->if_contains("model");
    if (!m || !m->is_string() || m->get_string().empty()) {
        co_await reply_error(r, required("model"));
        co_return std::nullopt;
    }
    r.rec.model = std::string(m->get_string());
    if (must && !body->contains(must)) {
        co_await reply_error(r, required(must));
        co_return std::nullopt;
    }
    co_return body;
}

}  // namespace

asio::awaitable<void> image_generations(api_request& r) {
    auto body = co_await body_with(r, "prompt", nullptr, "/images/generations");
    if (body) co_await json_turn(r, "/images/generations", std::move(*body));
}

asio::awaitable<void> audio_speech(api_request& r) {
    auto body = co_await body_with(r, "input", nullptr, "/audio/speech");
    if (!body) co_return;
    raw_request raw{"application/json", {}};  // JSON in, audio out
    co_await json_turn(r, "/audio/speech", std::move(*body), &raw);
}

asio::awaitable<void> completions(api_request& r) {
    auto body = co_await body_with(r, "prompt", nullptr, "/completions");
    if (!body) co_return;
    if (auto const* s = body->if_contains("stream"); s && s->is_bool() && s->get_bool()) {
        co_await reply_error(r, api_error::bad_request("streaming is not supported on /v1/completions here; use "
                                                       "/v1/chat/completions to stream",
                                                       "unsupported_stream"));
        co_return;
    }
    co_await json_turn(r, "/completions", std::move(*body));
}

asio::awaitable<void> moderations(api_request& r) {
    auto body = co_await body_with(r, "input", "omni-moderation-latest");
    if (body) co_await json_turn(r, "/moderations", std::move(*body));
}

asio::awaitable<void> rerank(api_request& r) {
    auto body = co_await body_with(r, "query", nullptr, "/rerank");
    if (!body) co_return;
    if (!body->contains("documents")) {
        co_await reply_error(r, required("documents"));
        co_return;
    }
    co_await json_turn(r, "/rerank", std::move(*body));
}

}  // namespace toolgate::gateway::api
