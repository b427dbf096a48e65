// The MCP admin API: /v1/mcp/servers, /v1/mcp/tools, and /v1/mcp/tools/call (one aggregated tool,
// called as the agent loop calls it; streamed with progress events on request).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <deque>
#include <functional>
#include <map>

#include "common/task_group.hpp"
#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/policy/filters.hpp"
#include "gateway/mcp_runtime.hpp"
#include "gateway/mcp_front_auth.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

// JSON is built in plain functions, not in coroutines (braced lists: CONTRIBUTING.md).
// A key limited to some MCP tools sees the servers that serve one of them, with those counted.
std::string servers_json(app_state& app, policy::virtual_key const* key) {
    auto all = app.aggregator().servers_status();
    json::array shown;
    if (!key || !key->mcp_tools) {
        shown = std::move(all);
    } else {
        std::map<std::string, std::size_t, std::less<>> allowed;
        for (auto const& t : app.aggregator().snapshot()->tools)
            if (key->allows_tool(t.exposed)) ++allowed[t.server];
        for (auto& v : all) {
            auto& s = v.as_object();
            auto const* name = s.if_contains("name");
            auto it = name && name->is_string() ? allowed.find(std::string_view(name->get_string())) : allowed.end();
            if (it == allowed.end()) continue;
            s["tools"] = it->second;
            shown.push_back(std::move(v));
        }
    }
    json::object o;
    o["object"] = "list";
    o["data"] = std::move(shown);
    return json::serialize(o);
}

std::string tools_json(app_state& app, policy::virtual_key const* key) {
    auto cat = app.aggregator().snapshot();
    json::array tools;
    for (auto const& t : cat->tools) {
        if (key && !key->allows_tool(t.exposed)) continue;
        json::object o{{"name", t.exposed}, {"server", t.server}, {"original_name", t.name}};
        for (char const* k : {"title", "description", "inputSchema", "outputSchema", "annotations"})
            if (auto const* v = t.definition.if_contains(k)) o[k] = *v;
        tools.push_back(std::move(o));
    }
    json::array problems;
    for (auto const& p : cat->problems) problems.push_back(json::string(p));
    json::object o{{"object", "list"}, {"data", std::move(tools)}, {"problems", std::move(problems)},
                   {"resources", cat->resources.size()}, {"resource_templates", cat->resource_templates.size()},
                   {"prompts", cat->prompts.size()}};
    return json::serialize(o);
}

std::string tool_result_json(mcp::tool_outcome& r, bool with_status) {
    json::object o;
    if (with_status) o["ok"] = r.ok;
    if (r.ok) {
        o["result"] = std::move(r.result);
        o["truncated"] = r.truncated;
    } else {
        json::object e;
        e["code"] = r.error_code();
        e["message"] = r.error;
        o["error"] = std::move(e);
    }
    o["duration_ms"] = double(r.duration.count()) / 1000.0;
    return json::serialize(o);
}

// The one place a tool failure becomes an HTTP status (-Wswitch checks that every kind has one).
int tool_failure_status(mcp::tool_errc e) {
    switch (e) {
        case mcp::tool_errc::unknown_tool: return 404;
        case mcp::tool_errc::invalid_arguments: return 400;
        case mcp::tool_errc::timeout: return 504;
        case mcp::tool_errc::server_error: return 502;
        case mcp::tool_errc::cancelled:  // the call was cancelled upstream, not by this client
        case mcp::tool_errc::failed:
        case mcp::tool_errc::unavailable:
        case mcp::tool_errc::busy:
        case mcp::tool_errc::circuit_open: return 503;
    }
    return 503;
}

api_error tool_failure(mcp::tool_outcome const& r) {
    return {tool_failure_status(r.code), "tool_error", std::string(r.error_code()), r.error};
}

// The streamed form of the call: progress notifications as SSE events while the tool runs, then
// the result; a client that leaves cancels the call upstream.
struct streamed_call {
    std::deque<json::value> progress;
    asio::steady_timer signal;
    bool done = false;
    mcp::tool_outcome result;
    explicit streamed_call(asio::any_io_executor ex) : signal(ex, asio::steady_timer::time_point::max()) {}
};

asio::awaitable<void> run_streamed_call(app_state& app, std::shared_ptr<streamed_call> st, std::string name,
                                        json::object args, cancel_token* cancel) {
    std::function<void(json::value const&)> on_progress = [st](json::value const& v) {
        st->progress.push_back(v);
        st->signal.cancel();
    };
    st->result = co_await app.aggregator().call_tool(std::move(name), std::move(args), cancel, std::move(on_progress));
    st->done = true;
    st->signal.cancel();
}

asio::awaitable<void> call_streamed(api_request& r, json::object args) {
    auto ex = co_await asio::this_coro::executor;
    auto st = std::make_shared<streamed_call>(ex);
    task_group call;  // the call refers to this request's token: it ends before the request does
    call.spawn(ex, run_streamed_call(r.app, st, r.rec.tool, std::move(args), &r.cancel));
    bool ok = co_await r.out.begin_stream(200, "text/event-stream", r.headers);
    // The head goes out now (with an SSE comment), not with the first progress event: a client
    // sees the 200 at once even for a tool that reports no progress.
    if (ok) ok = co_await r.out.write(": call started\n\n");
    for (;;) {
        while (!st->progress.empty()) {
            std::string ev = "event: progress\ndata: " + json::serialize(st->progress.front()) + "\n\n";
            st->progress.pop_front();
            if (ok) ok = co_await r.out.write(ev);
            if (!ok) r.cancel.cancel();  // the client left: the tool call is cancelled upstream
        }
        if (st->done) break;
        st->signal.expires_at(asio::steady_timer::time_point::max());
        co_await st->signal.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    while (!co_await call.wait_for(std::chrono::seconds(1))) call.emit(asio::cancellation_type::terminal);
    r.rec.status = r.cancel.cancelled() ? status_client_closed : 200;
    std::string last = "event: result\ndata: " + tool_result_json(st->result, true) + "\n\n";
    if (ok) co_await r.out.end_stream(last);
}

}  // namespace

asio::awaitable<void> mcp_servers(api_request& r) {
    co_await reply_json(r, servers_json(r.app, r.access_scope.key.get()));
}

asio::awaitable<void> mcp_tools(api_request& r) { co_await reply_json(r, tools_json(r.app, r.access_scope.key.get())); }

asio::awaitable<void> mcp_call(api_request& r) {
    auto body = co_await parse_body(r);
    if (!body) co_return;
    auto* name = body->if_contains("name");
    if (!name || !name->is_string()) {
        co_await reply_error(r, api_error::bad_request("'name' (the tool's exposed name) is required", "missing_name"));
        co_return;
    }
    json::object args;
    if (auto* a = body->if_contains("arguments"); a && !a->is_null()) {
        if (!a->is_object()) {
            co_await reply_error(r, api_error::bad_request("'arguments' must be an object", "invalid_arguments"));
            co_return;
        }
        args = a->get_object();
    }
    r.rec.tool = std::string(name->get_string());
    if (auto const& key = r.access_scope.key; key && !key->allows_tool(r.rec.tool)) {
        if (r.app.access) r.app.access->stats().forbidden.fetch_add(1, std::memory_order_relaxed);
        co_await reply_error(r, policy::tool_not_allowed(r.rec.tool));
        co_return;
    }
    if (auto* st = body->if_contains("stream"); st && st->is_bool() && st->get_bool()) {
        co_await call_streamed(r, std::move(args));
        co_return;
    }
    auto result = co_await r.app.aggregator().call_tool(r.rec.tool, std::move(args), &r.cancel);
    if (r.cancel.cancelled()) {
        r.rec.status = cancelled_status(r.cancel);
        co_return;
    }
    if (!result.ok) {
        auto err = tool_failure(result);
        co_await reply_error(r, err);
        co_return;
    }
    co_await reply_json(r, tool_result_json(result, false));
}

namespace {

std::string authorize_json(std::string const& server, std::string const& url) {
    json::object o;
    o["server"] = server;
    o["authorization_url"] = url;
    o["note"] = "open authorization_url in a browser; the authorization server sends it back to /oauth/callback";
    return json::serialize(o);
}

std::string html_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string callback_page(std::string const& title, std::string const& text) {
    return "<!doctype html><html><head><meta charset=\"utf-8\"><title>toolgate: " + html_escape(title) +
           "</title></head><body><h1>" + html_escape(title) + "</h1><p>" + html_escape(text) + "</p></body></html>\n";
}

api_error authorize_failure(mcp::aggregator::authorization_start const& b) {
    if (b.status == 404) return api_error::not_found(b.error, "mcp_server_not_found");
    if (b.status == 409) return api_error{409, "invalid_request_error", "not_oauth", b.error};
    return api_error{502, "server_error", "authorization_server_failed", b.error};
}

// The callback's page and status (a plain function: conditional strings, CONTRIBUTING.md).
std::pair<int, std::string> callback_result(inbound_request const& req, mcp::aggregator::authorization_end const& end) {
    if (end.server.empty())
        return {400, callback_page("Authorization failed", "This authorization is unknown, expired or already used. Start it again.")};
    if (auto refused = query_param(req, "error")) {
        auto why = *refused;
        if (auto d = query_param(req, "error_description")) why += ": " + *d;
        return {400, callback_page("Authorization refused",
                                   "The authorization server refused access to MCP server '" + end.server + "' (" + why + ").")};
    }
    if (!end.error.empty()) return {502, callback_page("Authorization failed", "MCP server '" + end.server + "': " + end.error)};
    return {200, callback_page("Authorized", "toolgate may now use MCP server '" + end.server + "'. You can close this window.")};
}

}  // namespace

// GET /admin/mcp/servers/{name}/authorize: the URL where a person authorizes toolgate at the
// server's authorization server (OAuth authorization code flow with PKCE).
asio::awaitable<void> mcp_authorize(api_request& r) {
    if (auto err = admin_check(r)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto name = std::string(r.param("name"));
    auto b = co_await r.app.aggregator().begin_authorization(name);
    if (b.status == 200) {
        co_await reply_json(r, authorize_json(name, b.url));
        co_return;
    }
    r.rec.error_detail = b.error;
    auto err = authorize_failure(b);
    co_await reply_error(r, err);
}

// GET /oauth/callback?code=&state=: where the authorization server sends the person back. The state
// (one use, ten minutes) ties it to the authorization begun above; nothing else is trusted.
asio::awaitable<void> oauth_callback(api_request& r) {
    auto state = query_param(r.req, "state").value_or("");
    std::string code;
    if (!query_param(r.req, "error")) code = query_param(r.req, "code").value_or("");
    auto iss = query_param(r.req, "iss").value_or("");
    auto end = co_await r.app.aggregator().complete_authorization(state, code, iss);
    auto [status, page] = callback_result(r.req, end);
    if (status == 502) r.rec.error_detail = end.error;
    r.rec.status = status;
    co_await r.out.send(status, "text/html; charset=utf-8", page, r.headers);
}

// GET /.well-known/oauth-protected-resource[/mcp]: what an MCP client needs to find the issuer of
// /mcp's access tokens (only when mcp_front.auth is configured).
asio::awaitable<void> protected_resource(api_request& r) {
    if (!r.app.mcp_oauth) {
        co_await reply_error(r, api_error::not_found("/mcp is not an OAuth-protected resource here", "unknown_route"));
        co_return;
    }
    co_await reply_json(r, r.app.mcp_oauth->metadata_json());
}

}  // namespace toolgate::gateway::api
