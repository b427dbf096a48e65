// GET /metrics: Prometheus text for requests, routing targets and MCP servers.
#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/policy/access.hpp"
#include "gateway/policy/cache.hpp"
#include "gateway/policy/guardrails.hpp"
#include "gateway/mcp_front.hpp"
#include "gateway/mcp_runtime.hpp"

namespace toolgate::gateway::api {

namespace {

std::string mcp_metrics(app_state& app) {
    auto& agg = app.aggregator();
    prometheus::writer w;
    w.family("toolgate_mcp_server_up", "gauge", "Whether the MCP server is connected (1) or not (0).");
    for (auto const& s : agg.servers())
        w.sample("toolgate_mcp_server_up", {{"server", s.name}}, std::uint64_t(s.status == mcp::server_status::up ? 1 : 0));
    if (app.front) {
        w.family("toolgate_mcp_front_sessions", "gauge", "Open sessions of the /mcp front.");
        w.sample("toolgate_mcp_front_sessions", {}, std::uint64_t(app.front->session_count()));
    }
    auto stats = agg.stats();
    w.family("toolgate_mcp_tool_calls_total", "counter", "Tool calls, by MCP server and tool.");
    for (auto const& [server, tool, st] : stats) w.sample("toolgate_mcp_tool_calls_total", {{"server", server}, {"tool", tool}}, st.calls);
    w.family("toolgate_mcp_tool_errors_total", "counter", "Tool calls that failed or returned isError.");
    for (auto const& [server, tool, st] : stats)
        w.sample("toolgate_mcp_tool_errors_total", {{"server", server}, {"tool", tool}}, st.errors);
    w.family("toolgate_mcp_tool_call_duration_seconds", "histogram", "Tool call latency.");
    for (auto const& [server, tool, st] : stats)
        w.histogram("toolgate_mcp_tool_call_duration_seconds", {{"server", server}, {"tool", tool}}, st.buckets, st.calls,
                    st.seconds_sum);
    return w.take();
}

}  // namespace

asio::awaitable<void> metrics(api_request& r) {
    auto text = r.app.stats.render() + r.app.routing_metrics() + mcp_metrics(r.app);
    if (r.app.cfg.guardrail_settings) text += policy::guardrail_metrics(*r.app.cfg.guardrail_settings);
    if (r.app.access) text += r.app.access->metrics_text();
    if (r.app.cache) text += r.app.cache->metrics_text();
    r.rec.status = 200;
    co_await r.out.send(200, "text/plain; version=0.0.4; charset=utf-8", text, r.headers);
}

}  // namespace toolgate::gateway::api
