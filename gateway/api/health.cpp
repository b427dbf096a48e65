// GET /health (and /healthz): providers, routing targets and MCP servers at a glance; 503 while a
// required MCP server is down.
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/mcp_runtime.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

std::string health_json(app_state& app, int& status) {
    json::array ps;
    bool all_ok = true;
    for (auto const& p : app.providers) {
        auto& s = p->stats();
        auto lat = s.last_latency_us.load(std::memory_order_relaxed);
        bool ok = s.available();
        all_ok = all_ok && ok;
        json::object o;
        o["name"] = p->name();
        o["type"] = p->type();
        o["available"] = ok;
        o["last_latency_ms"] = lat < 0 ? json::value(nullptr) : json::value(double(lat) / 1000.0);
        o["consecutive_failures"] = s.consecutive_failures.load(std::memory_order_relaxed);
        o["last_success_unix_ms"] = s.last_success_unix_ms.load(std::memory_order_relaxed);
        o["last_failure_unix_ms"] = s.last_failure_unix_ms.load(std::memory_order_relaxed);
        ps.push_back(std::move(o));
    }
    auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - app.started).count();
    for (auto const& s : app.aggregator().servers())
        if (s.status != mcp::server_status::up) all_ok = false;
    auto servers = app.aggregator().servers_status();
    bool required_up = app.aggregator().required_servers_up();
    json::object o;
    o["status"] = !required_up ? "unhealthy" : all_ok ? "ok" : "degraded";
    o["version"] = TOOLGATE_VERSION;
    o["uptime_seconds"] = uptime;
    o["providers"] = std::move(ps);
    if (auto routing = app.routing_health(); !routing.empty()) o["routing"] = std::move(routing);
    o["mcp_servers"] = std::move(servers);
    status = required_up ? 200 : 503;
    return json::serialize(o);
}

}  // namespace

asio::awaitable<void> health(api_request& r) {
    int status = 200;
    auto body = health_json(r.app, status);
    r.rec.status = status;
    co_await r.out.send(status, "application/json", body, r.headers);
}

}  // namespace toolgate::gateway::api
