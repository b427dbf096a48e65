// GET /metrics: Prometheus text for requests, routing targets and MCP servers.
#include <fmt/format.h>

#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/mcp_front.hpp"
#include "gateway/mcp_runtime.hpp"

namespace toolgate::gateway::api {

namespace {

std::string mcp_metrics(app_state& app) {
    auto& agg = app.aggregator();
    std::string out;
    out += "# HELP toolgate_mcp_server_up Whether the MCP server is connected (1) or not (0).\n";
    out += "# TYPE toolgate_mcp_server_up gauge\n";
    for (auto const& s : agg.servers_status())
        out += fmt::format("toolgate_mcp_server_up{{server=\"{}\"}} {}\n", std::string(s.at("name").get_string()),
                           s.at("status") == "up" ? 1 : 0);
    if (app.front) {
        out += "# HELP toolgate_mcp_front_sessions Open sessions of the /mcp front.\n";
        out += "# TYPE toolgate_mcp_front_sessions gauge\n";
        out += fmt::format("toolgate_mcp_front_sessions {}\n", app.front->session_count());
    }
    auto stats = agg.stats();
    out += "# HELP toolgate_mcp_tool_calls_total Tool calls, by MCP server and tool.\n";
    out += "# TYPE toolgate_mcp_tool_calls_total counter\n";
    for (auto const& [server, tool, st] : stats)
        out += fmt::format("toolgate_mcp_tool_calls_total{{server=\"{}\",tool=\"{}\"}} {}\n", server,
                           prometheus_label(tool), st.calls);
    out += "# HELP toolgate_mcp_tool_errors_total Tool calls that failed or returned isError.\n";
    out += "# TYPE toolgate_mcp_tool_errors_total counter\n";
    for (auto const& [server, tool, st] : stats)
        out += fmt::format("toolgate_mcp_tool_errors_total{{server=\"{}\",tool=\"{}\"}} {}\n", server,
                           prometheus_label(tool), st.errors);
    out += "# HELP toolgate_mcp_tool_call_duration_seconds Tool call latency.\n";
    out += "# TYPE toolgate_mcp_tool_call_duration_seconds histogram\n";
    for (auto const& [server, tool, st] : stats) {
        auto labels = fmt::format("server=\"{}\",tool=\"{}\"", server, prometheus_label(tool));
        for (std::size_t i = 0; i < mcp::aggregator::latency_buckets.size(); ++i)
            out += fmt::format("toolgate_mcp_tool_call_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels,
                               mcp::aggregator::latency_buckets[i], st.buckets[i]);
        out += fmt::format("toolgate_mcp_tool_call_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels, st.calls);
        out += fmt::format("toolgate_mcp_tool_call_duration_seconds_sum{{{}}} {}\n", labels, st.seconds_sum);
        out += fmt::format("toolgate_mcp_tool_call_duration_seconds_count{{{}}} {}\n", labels, st.calls);
    }
    return out;
}

}  // namespace

asio::awaitable<void> metrics(api_request& r) {
    auto text = r.app.stats.render() + r.app.routing_metrics() + mcp_metrics(r.app);
    r.rec.status = 200;
    co_await r.out.send(200, "text/plain; version=0.0.4; charset=utf-8", text, r.headers);
}

}  // namespace toolgate::gateway::api
