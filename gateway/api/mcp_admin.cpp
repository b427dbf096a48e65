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

}  // namespace toolgate::gateway::api
