// POST /v1/embeddings: one turn of kind embeddings through the embeddings pipeline (routing,
// retries and fallback as for chat).
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

asio::awaitable<void> embeddings(api_request& r) {
    auto body = co_await parse_model_body(r);
    if (!body) co_return;
    if (!body->contains("input")) {
        co_await reply_error(r, api_error::bad_request("'input' is required", "invalid_input"));
        co_return;
    }
    providers::call_context call{r.services.http, r.cancel, r.rec.request_id};
    auto ctx = make_turn(r, call);
    ctx.kind = turn_kind::embeddings;
    ctx.request.body = std::move(*body);
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
    co_await reply_json(r, json::serialize(result.response));
}

}  // namespace toolgate::gateway::api
