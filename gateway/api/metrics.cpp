// GET /metrics: Prometheus text for requests, routing targets and MCP servers.
#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/policy/access.hpp"
#include "gateway/policy/cache.hpp"
#include "gateway/policy/guardrails.hpp"
#include "gateway/mcp_front.hpp"
#include "gateway/mcp_runtime.hpp"
#include "sessions/hybrid.hpp"
#include "sessions/service.hpp"

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

std::string session_metrics(sessions::service& svc) {
    auto& st = svc.stats();
    auto load = [](std::atomic<std::uint64_t> const& a) { return a.load(std::memory_order_relaxed); };
    prometheus::writer w;
    w.family("toolgate_sessions_created_total", "counter", "Server-side sessions started (POST /v1/sessions or x-session-id).");
    w.sample("toolgate_sessions_created_total", {}, load(st.created));
    w.family("toolgate_session_turns_total", "counter", "Requests whose messages and answer were stored in a session.");
    w.sample("toolgate_session_turns_total", {}, load(st.turns));
    w.family("toolgate_session_events_total", "counter",
             "Session events: busy (409, another request held it), trimmed (old turns dropped), rejected (429 "
             "session_limit), save_failed (an answer not stored), store_error.");
    w.sample("toolgate_session_events_total", {{"event", "busy"}}, load(st.busy));
    w.sample("toolgate_session_events_total", {{"event", "trimmed"}}, load(st.trimmed));
    w.sample("toolgate_session_events_total", {{"event", "rejected"}}, load(st.rejected));
    w.sample("toolgate_session_events_total", {{"event", "save_failed"}}, load(st.save_failures));
    w.sample("toolgate_session_events_total", {{"event", "store_error"}}, load(st.store_errors));
    return w.take();
}

std::string hybrid_metrics(sessions::hybrid_turns const& h) {
    auto& st = h.stats();
    auto load = [](std::atomic<std::uint64_t> const& a) { return a.load(std::memory_order_relaxed); };
    prometheus::writer w;
    w.family("toolgate_hybrid_turns_total", "counter",
             "Hybrid turns without a session: remembered (the loop's own tool turns kept when it handed client "
             "calls back), expanded (put back into a follow-up), shared_hit (found only in Redis, kept by another "
             "replica), store_error (Redis did not answer).");
    w.sample("toolgate_hybrid_turns_total", {{"event", "remembered"}}, load(st.remembered));
    w.sample("toolgate_hybrid_turns_total", {{"event", "expanded"}}, load(st.expanded));
    w.sample("toolgate_hybrid_turns_total", {{"event", "shared_hit"}}, load(st.shared_hits));
    w.sample("toolgate_hybrid_turns_total", {{"event", "store_error"}}, load(st.store_errors));
    return w.take();
}

}  // namespace

asio::awaitable<void> metrics(api_request& r) {
    auto text = r.app.stats.render() + r.app.routing_metrics() + mcp_metrics(r.app);
    if (r.app.cfg.guardrail_settings) text += policy::guardrail_metrics(*r.app.cfg.guardrail_settings);
    if (r.app.access) text += r.app.access->metrics_text();
    if (r.app.cache) text += r.app.cache->metrics_text();
    if (r.app.sessions) text += session_metrics(*r.app.sessions);
    if (!r.app.cfg.mcp_servers.empty()) text += hybrid_metrics(*r.app.hybrid);
    r.rec.status = 200;
    co_await r.out.send(200, "text/plain; version=0.0.4; charset=utf-8", text, r.headers);
}

}  // namespace toolgate::gateway::api
