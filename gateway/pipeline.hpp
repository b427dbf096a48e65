#pragma once
// The turn pipeline: every model turn (a plain chat request, one turn of the agent loop, an
// embeddings call) passes through a chain of filters in "onion" form. A filter may change the
// context and call next, answer locally without calling next (a cache hit, a guardrail block), or
// inspect the result on the way out (budgets, usage accounting). The pipeline is built once from
// config and shared by all threads; filters keep per-request state on their own on_turn frame or
// in the turn_context, never in members. The router (gateway/routing/router.hpp) is the innermost
// filter: it answers and never calls next.
//
// How a filter sees a stream: it wraps the sink. A filter that needs the chunks of a streamed
// turn (output guardrails, the cache recording a stream to replay it) replaces ctx.sink with its
// own chat_sink that forwards to the one it found, calls next, and restores ctx.sink afterwards.
// The router holds chunks back until the first one with content (so that it can still fall back),
// so a wrapping filter sees only the chunks of the target that answered.
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gateway/server.hpp"
#include "providers/provider.hpp"

namespace toolgate::guardrails {
struct scope;
}
namespace toolgate::gateway::policy {
struct request_scope;
}

namespace toolgate::gateway {

namespace asio = boost::asio;

enum class turn_kind { chat, embeddings };

struct turn_context {
    turn_kind kind = turn_kind::chat;
    // An embeddings-kind turn on another JSON route of the OpenAI API ("/images/generations",
    // "/completions", "/moderations", "/rerank"); empty: /embeddings.
    std::string_view api_path;
    // A raw turn on such a route (an upload, an answer that is not JSON): the body as the client
    // sent it and its content type. The router sends a multipart body with its model field naming
    // the upstream model (else the JSON body) and keeps the answer's bytes in raw_response.
    std::string_view raw_content_type;
    std::string_view raw_body;
    std::string request_id;
    std::string requested_model;          // as the client named it
    providers::chat_request request;      // body's "model" is rewritten to the upstream name by routing
    providers::chat_sink* sink = nullptr;  // set for streamed turns
    providers::call_context* call = nullptr;
    header_list const* headers = nullptr;   // the client's request headers (lower-case names)
    header_list* response_headers = nullptr;  // headers of the answer; routing adds x-toolgate-*
    // When the gateway's request_timeout ends the request (cancel fires then): routing does not
    // wait for a retry that could not start before it, it moves on to the next target.
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    // Filled in by routing: who answered, with which model, after how many upstream attempts.
    providers::provider* provider = nullptr;
    std::string upstream_model;
    std::string variant;
    unsigned attempts = 0;
    // A turn of the agent loop (its tool results are the gateway's, not the client's).
    bool loop_turn = false;
    // Guardrail verdicts other than pass ("plugin:outcome:rule"), for the access log; may be null.
    std::vector<std::string>* guardrail_log = nullptr;
    // The guardrails' state shared by all turns of one request (the agent loop's included); may be null.
    guardrails::scope* guardrail_scope = nullptr;
    // The caller's key and the request's policy state (gateway/policy/access.hpp); may be null.
    policy::request_scope* access = nullptr;
    // What the turn cost in USD once the budget filter priced it; negative: not priced yet.
    double cost_usd = -1;
    // The response cache's verdict: "hit", "miss", "bypass", or empty (no cache). A hit called no
    // provider: it costs no budget and its tokens count on no token limit.
    std::string_view cache_status;
    bool cache_hit = false;
};

// For a filter that wraps ctx.sink: puts the sink it found back on every way out (an exception
// included); now() does it early.
struct sink_restorer {
    explicit sink_restorer(turn_context& c) : ctx(c), saved(c.sink) {}
    sink_restorer(sink_restorer const&) = delete;
    sink_restorer& operator=(sink_restorer const&) = delete;
    ~sink_restorer() { now(); }
    void now() { ctx.sink = saved; }
    turn_context& ctx;
    providers::chat_sink* saved;
};

using turn_result = providers::chat_outcome;
using next_fn = std::function<asio::awaitable<turn_result>(turn_context&)>;

// Helpers of the filters: set (or replace) a header of the answer (`headers` may be null), and
// a turn answered locally with `e` (a refusal before the provider is called).
void set_header(header_list* headers, std::string_view name, std::string value);
// The value of a header (lower-case name) in `headers` (may be null); empty when absent.
std::string_view header_of(header_list const* headers, std::string_view name);
turn_result local_error(api_error e);

class turn_filter {
public:
    virtual ~turn_filter() = default;
    virtual std::string_view name() const = 0;
    virtual asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const& next) = 0;
};

class turn_pipeline {
public:
    explicit turn_pipeline(std::vector<std::shared_ptr<turn_filter>> filters) : filters_(std::move(filters)) {}

    // Runs the filters in order; the innermost step calls ctx.provider.
    asio::awaitable<turn_result> run(turn_context& ctx) const { return step(ctx, 0); }

    std::vector<std::shared_ptr<turn_filter>> const& filters() const { return filters_; }

private:
    asio::awaitable<turn_result> step(turn_context& ctx, std::size_t index) const;

    std::vector<std::shared_ptr<turn_filter>> filters_;
};

// Resolves the model a client names to a provider and the model name that provider expects.
class model_router {
public:
    struct route {
        providers::provider* provider = nullptr;
        std::string upstream_model;
    };

    explicit model_router(std::vector<providers::provider*> providers) : providers_(std::move(providers)) {}

    // "provider/model" picks that provider; "provider" alone its default_model; a bare name goes to
    // the first provider that lists it, else to the first provider without a models list that the
    // model catalog says serves it, else to the first provider without a models list. nullopt:
    // nobody serves it.
    std::optional<route> resolve(std::string_view model) const;

private:
    std::vector<providers::provider*> providers_;
};


}  // namespace toolgate::gateway
