// POST /v1/embeddings: one turn of kind embeddings through the embeddings pipeline (routing,
// retries and fallback as for chat); the passthrough routes (passthrough.cpp) run the same turn on
// another path.
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

json::object embedding_body(std::string const& model, std::string const& text) {
    json::object body;
    body["model"] = model;
    body["input"] = text;
    body["encoding_format"] = "float";
    return body;
}

policy::embedding_answer read_embedding(turn_result const& r) {
    policy::embedding_answer out;
    if (r.error) {
        out.error = *r.error;
        return out;
    }
    auto const* data = r.response.if_contains("data");
    auto const* first = data && data->is_array() && !data->get_array().empty() ? data->get_array()[0].if_object() : nullptr;
    auto const* vec = first ? first->if_contains("embedding") : nullptr;
    if (!vec || !vec->is_array() || vec->get_array().empty() || vec->get_array().size() > 65536) {
        out.error = api_error::upstream(502, "the embeddings answer had no vector");
        return out;
    }
    out.vector.reserve(vec->get_array().size());
    for (auto const& x : vec->get_array()) {
        if (!x.is_number()) {
            out.vector.clear();
            out.error = api_error::upstream(502, "the embeddings answer had a vector of non-numbers");
            return out;
        }
        out.vector.push_back(static_cast<float>(x.to_number<double>()));
    }
    return out;
}

}  // namespace

asio::awaitable<policy::embedding_answer> embed_text(app_state& app, turn_context& parent, std::string const& model,
                                                     std::string const& text, cancel_token& cancel) {
    if (!parent.call) {
        policy::embedding_answer none;
        none.error = api_error::upstream(502, "no upstream context for the embedding");
        co_return none;
    }
    providers::call_context call{parent.call->http, cancel, parent.request_id};
    turn_context ctx;
    ctx.kind = turn_kind::embeddings;
    ctx.request_id = parent.request_id;
    ctx.requested_model = model;
    ctx.call = &call;
    ctx.headers = parent.headers;
    ctx.deadline = parent.deadline;
    ctx.access = parent.access;
    ctx.loop_turn = true;  // the gateway chose this model: the key's model list is not asked
    ctx.request.body = embedding_body(model, text);
    auto result = co_await app.embeddings_pipeline->run(ctx);
    co_return read_embedding(result);
}

asio::awaitable<void> embeddings(api_request& r) {
    auto body = co_await parse_model_body(r);
    if (!body) co_return;
    if (!body->contains("input")) {
        co_await reply_error(r, api_error::bad_request("'input' is required", "invalid_input"));
        co_return;
    }
    co_await json_turn(r, std::string_view(), std::move(*body));
}

asio::awaitable<void> json_turn(api_request& r, std::string_view path, json::object body, raw_request const* raw,
                                answer_check const* check) {
    providers::call_context call{r.services.http, r.cancel, r.rec.request_id};
    auto ctx = make_turn(r, call);
    ctx.kind = turn_kind::embeddings;
    ctx.api_path = path;
    ctx.request.body = std::move(body);
    if (raw) {
        ctx.raw_content_type = raw->content_type;
        ctx.raw_body = raw->body;
    }
    auto result = co_await r.app.embeddings_pipeline->run(ctx);
    if (ctx.provider) r.rec.provider = ctx.provider->name();
    r.rec.upstream_model = ctx.upstream_model;
    r.rec.attempts += ctx.attempts;
    r.rec.tokens = result.tokens;
    if (client_left(r, result.error)) co_return;
    if (result.error) {
        r.rec.error_detail = result.error->detail;
        co_await reply_error(r, *result.error);
        co_return;
    }
    if (check) {
        if (auto err = (*check)(result.response, result.raw_response, result.content_type)) {
            co_await reply_error(r, *err);
            co_return;
        }
    }
    if (raw) {
        r.rec.status = 200;
        co_await r.out.send(200, result.content_type, result.raw_response, r.headers);
        co_return;
    }
    co_await reply_json(r, json::serialize(result.response));
}

}  // namespace toolgate::gateway::api
