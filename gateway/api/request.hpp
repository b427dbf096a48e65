#pragma once
// What every route handler receives: one request value (services, the request, the response
// channel, the cancel token, the request record and the response headers), and the small helpers
// all handlers share (error replies, JSON bodies, the cancelled-request status). Handlers run on
// the worker thread that read the request.
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/api_error.hpp"
#include "common/cancel.hpp"
#include "gateway/pipeline.hpp"
#include "gateway/policy/access.hpp"
#include "gateway/server.hpp"
#include "providers/provider.hpp"

namespace toolgate::guardrails {
struct scope;
}

namespace toolgate::gateway {

struct app_state;

inline constexpr int status_client_closed = 499;  // nginx's convention, for logs and metrics only

// Per-request facts gathered for the access log line and the metrics.
struct request_record {
    using clock_type = std::chrono::steady_clock;
    std::string request_id;
    std::string route;     // the route's pattern, e.g. /v1/chat/completions
    std::string method;
    std::string model;     // the model the client asked for
    std::string tool;      // /v1/mcp/tools/call: the tool called
    std::string provider;  // the provider that answered (the last one tried)
    std::string upstream_model;
    std::string variant;   // ab-test label
    unsigned attempts = 0; // upstream attempts over all turns (retries and fallbacks included)
    int status = 0;
    bool stream = false;
    std::string_view cache;  // the response cache's verdict of the last turn: hit, miss, bypass
    std::string endpoint;    // an AI endpoint's slug
    bool counted = true;   // false: kept out of the request metrics (health, metrics)
    providers::usage tokens;
    std::string error_code;
    std::string error_detail;
    clock_type::time_point start = clock_type::now();
    // agent loop
    bool loop = false;
    unsigned iterations = 0;
    std::size_t tool_calls = 0;
    std::size_t tool_errors = 0;
    std::string_view stopped;
    std::vector<std::string> guardrails;  // verdicts other than pass: "plugin:outcome:rule"
    // keys and budgets
    std::string key;   // the key's name
    std::string team;
    double cost_usd = 0;
};

// Path parameters of the matched route ("/v1/models/{id*}" gives {"id": ...}).
using route_params = std::map<std::string, std::string, std::less<>>;

// Does `path` match a route pattern? `{name}` matches one non-empty path segment, `{name*}` the
// (non-empty) rest of the path; the values land in `params`.
bool match_route(std::string_view pattern, std::string_view path, route_params& params);

struct api_request {
    app_state& app;
    worker_services& services;
    inbound_request& req;
    response_channel& out;
    cancel_token& cancel;
    request_record& rec;
    header_list& headers;  // sent with every answer (x-request-id, routing headers)
    route_params params;
    // What the guardrails carry across this request's model turns (pii placeholders); made on
    // the first turn.
    std::shared_ptr<guardrails::scope> guard_scope;
    // The caller's key and what the policies hold for this request (concurrency leases).
    policy::request_scope access_scope;

    std::string_view param(std::string_view name) const;
};

// A model turn for this request: ids, headers, the request's deadline (plain function: the
// caller is a coroutine, CONTRIBUTING.md).
turn_context make_turn(api_request& r, providers::call_context& call);

// Sends `err` in OpenAI's shape (with Retry-After when it has one) and records it.
asio::awaitable<void> reply_error(api_request& r, api_error const& err);
// Sends a 200 JSON body and records it.
asio::awaitable<void> reply_json(api_request& r, std::string_view body);

// The JSON object body of a POST; answers 400 itself and returns nullopt when it is not one.
asio::awaitable<std::optional<boost::json::object>> parse_body(api_request& r);
// A JSON body with a non-empty string "model" (recorded in rec.model); answers 400 itself otherwise.
asio::awaitable<std::optional<boost::json::object>> parse_model_body(api_request& r);

// The admin routes' check of `Authorization: Bearer <admin.token>`: the error to answer, if any.
std::optional<api_error> admin_check(api_request& r);
// One parameter of the request's query string, decoded.
std::optional<std::string> query_param(inbound_request const& req, std::string_view name);

// Plain function forms, for code that is not a coroutine.
std::optional<boost::json::object> parse_json_object(std::string_view text, api_error& err);

// A request whose token fired: the status it is recorded with (504 on the gateway's timeout, 499
// when the client left), or 0 when it was not cancelled.
int cancelled_status(cancel_token const& cancel);
// After a cancelled turn: true (recorded as 499) when the client left, so there is nobody to
// answer; on the gateway's own timeout `error` becomes the 504 to answer.
bool client_left(api_request& r, std::optional<failure>& error);
// The client-facing error for the gateway's own request timeout.
api_error request_timed_out(std::chrono::milliseconds limit);

}  // namespace toolgate::gateway
