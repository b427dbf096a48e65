#include "gateway/api/request.hpp"

#include <boost/url/parse.hpp>
#include <openssl/crypto.h>

#include "guardrails/guardrail.hpp"

#include "common/json_util.hpp"
#include "gateway/api/state.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace toolgate::gateway {

namespace json = boost::json;

std::string_view api_request::param(std::string_view name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string_view() : std::string_view(it->second);
}

asio::awaitable<void> reply_error(api_request& r, api_error const& err) {
    r.rec.status = err.status;
    r.rec.error_code = err.code;
    if (!err.retry_after.empty()) {
        header_list with_retry = r.headers;
        with_retry.emplace_back("retry-after", err.retry_after);
        co_await r.out.send(err.status, "application/json", err.to_json(), with_retry);
        co_return;
    }
    co_await r.out.send(err.status, "application/json", err.to_json(), r.headers);
}

asio::awaitable<void> reply_json(api_request& r, std::string_view body) {
    r.rec.status = 200;
    co_await r.out.send(200, "application/json", body, r.headers);
}

std::optional<json::object> parse_json_object(std::string_view text, api_error& err) {
    if (text.empty()) {
        err = api_error::bad_request("request body is empty; send a JSON object", "invalid_json");
        return std::nullopt;
    }
    boost::system::error_code ec;
    auto v = parse_bounded(text, ec);
    if (ec) {
        err = api_error::bad_request("request body is not valid JSON: " + ec.message(), "invalid_json");
        return std::nullopt;
    }
    if (!v.is_object()) {
        err = api_error::bad_request("request body must be a JSON object", "invalid_json");
        return std::nullopt;
    }
    return std::move(v.get_object());
}

asio::awaitable<std::optional<json::object>> parse_body(api_request& r) {
    api_error err;
    auto body = parse_json_object(r.req.body, err);
    if (!body) co_await reply_error(r, err);
    co_return body;
}

asio::awaitable<std::optional<json::object>> parse_model_body(api_request& r) {
    auto body = co_await parse_body(r);
    if (!body) co_return std::nullopt;
    auto* model = body->if_contains("model");
    if (model == nullptr || !model->is_string() || model->get_string().empty()) {
        auto err = api_error::bad_request("'model' is required and must be a non-empty string", "missing_model");
        co_await reply_error(r, err);
        co_return std::nullopt;
    }
    r.rec.model = std::string(model->get_string());
    co_return body;
}

bool match_route(std::string_view pattern, std::string_view path, route_params& params) {
    params.clear();
    while (!pattern.empty()) {
        auto brace = pattern.find('{');
        if (brace == std::string_view::npos) return pattern == path;
        if (path.substr(0, brace) != pattern.substr(0, brace)) return false;
        path.remove_prefix(brace);
        pattern.remove_prefix(brace + 1);
        auto close = pattern.find('}');
        auto name = pattern.substr(0, close);
        pattern.remove_prefix(close + 1);
        std::string_view value;
        if (name.ends_with('*')) {
            name.remove_suffix(1);
            value = path;
            path = {};
        } else {
            auto slash = path.find('/');
            value = path.substr(0, slash);
            path.remove_prefix(value.size());
        }
        if (value.empty()) return false;
        params.emplace(std::string(name), std::string(value));
    }
    return path.empty();
}

int cancelled_status(cancel_token const& cancel) {
    if (!cancel.cancelled()) return 0;
    return cancel.reason() == cancel_reason::timeout ? 504 : status_client_closed;
}

turn_context make_turn(api_request& r, providers::call_context& call) {
    turn_context ctx;
    ctx.request_id = r.rec.request_id;
    ctx.requested_model = r.rec.model;
    ctx.call = &call;
    ctx.headers = &r.req.headers;
    ctx.response_headers = &r.headers;
    ctx.deadline = r.rec.start + r.app.cfg.server.request_timeout;
    ctx.guardrail_log = &r.rec.guardrails;
    if (!r.guard_scope) r.guard_scope = std::make_shared<guardrails::scope>();
    ctx.guardrail_scope = r.guard_scope.get();
    if (r.app.access) ctx.access = &r.access_scope;
    return ctx;
}

bool client_left(api_request& r, std::optional<failure>& error) {
    if (!r.cancel.cancelled()) return false;
    if (r.cancel.reason() != cancel_reason::timeout) {
        r.rec.status = status_client_closed;
        return true;
    }
    error = request_timed_out(r.app.cfg.server.request_timeout);
    return false;
}

api_error request_timed_out(std::chrono::milliseconds limit) {
    return {504, "timeout_error", "request_timeout",
            "the request took longer than the gateway's request_timeout of " + std::to_string(limit.count()) + " ms"};
}

std::optional<std::string> query_param(inbound_request const& req, std::string_view name) {
    auto u = boost::urls::parse_origin_form(req.target);
    if (!u) return std::nullopt;
    auto params = u->params();
    auto it = params.find(name);
    if (it == params.end()) return std::nullopt;
    return std::string((*it).value);
}

std::optional<api_error> admin_check(api_request& r) {
    auto* rt = r.app.access.get();
    if (!rt || rt->settings().admin_token.empty())
        return api_error::not_found("the admin API is off: set admin.token in the config", "unknown_route");
    auto auth = r.req.header("authorization");
    auto const& token = rt->settings().admin_token;
    bool ok = auth.size() == token.size() + 7 && (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer ") &&
              CRYPTO_memcmp(auth.data() + 7, token.data(), token.size()) == 0;
    if (!ok) {
        r.headers.emplace_back("www-authenticate", "Bearer");
        return api_error{401, "invalid_request_error", "invalid_admin_token", "the admin API needs 'Authorization: Bearer <admin.token>'"};
    }
    return std::nullopt;
}

}  // namespace toolgate::gateway
