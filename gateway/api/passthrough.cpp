// The rest of the OpenAI surface that OpenAI-compatible providers serve, passed through by model:
// POST /v1/images/generations, /v1/completions (legacy), /v1/moderations, /v1/rerank and
// /v1/audio/speech (its answer is audio, passed back as it came). Each is
// one turn of the embeddings pipeline (routing with retries and fallback, keys, limits, budgets,
// the request log) whose provider call goes to the same path upstream; a provider that does not
// serve the path answers 400 unsupported_for_provider.
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <span>
#include <string>
#include <vector>

#include "gateway/api/handlers.hpp"
#include "gateway/policy/guardrails.hpp"
#include "gateway/api/state.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

api_error required(char const* field) {
    auto err = api_error::bad_request(std::string("'") + field + "' is required", "missing_field");
    err.param = field;
    return err;
}

// The string values among `fields` of `body` the guardrails read: a string, the strings of an
// array, or the "text" of an array's objects (rerank documents).
std::vector<json::value*> text_values(json::object& body, std::span<char const* const> fields) {
    std::vector<json::value*> out;
    for (char const* f : fields) {
        auto* v = body.if_contains(f);
        if (!v) continue;
        if (v->is_string()) out.push_back(v);
        if (auto* a = v->if_array())
            for (auto& e : *a) {
                if (e.is_string()) out.push_back(&e);
                else if (auto* o = e.if_object(); o && o->contains("text") && o->at("text").is_string())
                    out.push_back(o->if_contains("text"));
            }
    }
    return out;
}

// The request's texts through the guardrails (a redaction written back); the 400 when one blocks.
std::optional<api_error> screen_request(api_request& r, json::object& body, std::span<char const* const> fields) {
    auto const& g = r.app.cfg.guardrail_settings;
    if (!g) return std::nullopt;
    auto values = text_values(body, fields);
    std::vector<std::string> texts;
    for (auto* v : values) texts.emplace_back(v->get_string());
    std::vector<std::string*> ptrs;
    for (auto& t : texts) ptrs.push_back(&t);
    auto err = policy::screen_texts(*g, policy::plugin_stage::before_request, ptrs, fields.front(), &r.rec.guardrails);
    if (err) return err;
    for (std::size_t i = 0; i < values.size(); ++i)
        if (values[i]->get_string() != texts[i]) *values[i] = texts[i];
    return std::nullopt;
}

// The body with `model` (or a default for the route when the API has one), its texts through the
// guardrails (`texts`: the fields they read); nullopt after an error.
asio::awaitable<std::optional<json::object>> body_with(api_request& r, char const* must, char const* default_model,
                                                       std::span<char const* const> texts = {}) {
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
    if (!texts.empty()) {
        auto refused = screen_request(r, *body, texts);
        if (refused) {
            co_await reply_error(r, *refused);
            co_return std::nullopt;
        }
    }
    co_return body;
}

// The fields of each route the guardrails read.
constexpr char const* prompt_field[] = {"prompt"};
constexpr char const* input_field[] = {"input"};
constexpr char const* rerank_fields[] = {"query", "documents"};

// A completion's texts (choices[].text) through the output guardrails.
std::optional<api_error> screen_completion(api_request& r, json::object& response) {
    auto const& g = r.app.cfg.guardrail_settings;
    auto* choices = response.if_contains("choices");
    if (!g || !choices || !choices->is_array()) return std::nullopt;
    std::vector<json::value*> values;
    for (auto& c : choices->get_array())
        if (auto* co = c.if_object(); co && co->contains("text") && co->at("text").is_string()) values.push_back(co->if_contains("text"));
    std::vector<std::string> texts;
    for (auto* v : values) texts.emplace_back(v->get_string());
    std::vector<std::string*> ptrs;
    for (auto& t : texts) ptrs.push_back(&t);
    if (auto err = policy::screen_texts(*g, policy::plugin_stage::after_request, ptrs, "choices", &r.rec.guardrails)) return err;
    for (std::size_t i = 0; i < values.size(); ++i)
        if (values[i]->get_string() != texts[i]) *values[i] = texts[i];
    return std::nullopt;
}

}  // namespace

asio::awaitable<void> image_generations(api_request& r) {
    auto body = co_await body_with(r, "prompt", nullptr, prompt_field);
    if (body) co_await json_turn(r, "/images/generations", std::move(*body));
}

asio::awaitable<void> audio_speech(api_request& r) {
    auto body = co_await body_with(r, "input", nullptr, input_field);
    if (!body) co_return;
    raw_request raw{"application/json", {}};  // JSON in, audio out
    co_await json_turn(r, "/audio/speech", std::move(*body), &raw);
}

asio::awaitable<void> completions(api_request& r) {
    auto body = co_await body_with(r, "prompt", nullptr, prompt_field);
    if (!body) co_return;
    if (auto const* s = body->if_contains("stream"); s && s->is_bool() && s->get_bool()) {
        co_await reply_error(r, api_error::bad_request("streaming is not supported on /v1/completions here; use "
                                                       "/v1/chat/completions to stream",
                                                       "unsupported_stream"));
        co_return;
    }
    answer_check check = [&r](json::object& response, std::string&, std::string_view) {
        return screen_completion(r, response);
    };
    co_await json_turn(r, "/completions", std::move(*body), nullptr, &check);
}

asio::awaitable<void> moderations(api_request& r) {
    auto body = co_await body_with(r, "input", "omni-moderation-latest");
    if (body) co_await json_turn(r, "/moderations", std::move(*body));
}

asio::awaitable<void> rerank(api_request& r) {
    auto body = co_await body_with(r, "query", nullptr, rerank_fields);
    if (!body) co_return;
    if (!body->contains("documents")) {
        co_await reply_error(r, required("documents"));
        co_return;
    }
    co_await json_turn(r, "/rerank", std::move(*body));
}

}  // namespace toolgate::gateway::api
