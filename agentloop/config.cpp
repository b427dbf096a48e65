#include "agentloop/config.hpp"

#include "common/config_reader.hpp"

namespace toolgate::agentloop {

void parse_agent_loop(reader const& r, YAML::Node const& al, agent_loop_config& cfg) {
    r.check_keys(al, "agent_loop",
                 {"inject_tools", "max_iterations", "tool_timeout", "loop_timeout", "max_tool_calls_per_turn",
                  "max_parallel_tools", "max_tool_result_bytes", "max_total_tokens", "max_cost_usd",
                  "keepalive_interval", "tool_turn_model"});
    auto& l = cfg.limits;
    if (auto n = al["inject_tools"]) cfg.inject_tools = r.boolean(n, "agent_loop.inject_tools");
    if (auto n = al["max_iterations"])
        l.max_iterations = static_cast<unsigned>(r.integer(n, "agent_loop.max_iterations", 1, 1000));
    if (auto n = al["tool_timeout"]) l.tool_timeout = r.duration(n, "agent_loop.tool_timeout");
    if (auto n = al["loop_timeout"]) cfg.loop_timeout = r.duration(n, "agent_loop.loop_timeout");
    if (auto n = al["max_tool_calls_per_turn"])
        l.max_tool_calls_per_turn = static_cast<unsigned>(r.integer(n, "agent_loop.max_tool_calls_per_turn", 1, 1000));
    if (auto n = al["max_parallel_tools"])
        l.max_parallel_tools = static_cast<unsigned>(r.integer(n, "agent_loop.max_parallel_tools", 1, 256));
    if (auto n = al["max_tool_result_bytes"])
        l.max_tool_result_bytes = r.integer(n, "agent_loop.max_tool_result_bytes", 256, 64u << 20);
    if (auto n = al["max_total_tokens"])
        l.max_total_tokens = static_cast<std::int64_t>(r.integer(n, "agent_loop.max_total_tokens", 0, 1ull << 40));
    if (auto n = al["max_cost_usd"]) l.max_cost_usd = r.number(n, "agent_loop.max_cost_usd", 0, 1e6);
    if (auto n = al["tool_turn_model"]) cfg.tool_turn_model = r.str(n, "agent_loop.tool_turn_model");
    if (auto n = al["keepalive_interval"]) l.keepalive_interval = r.duration(n, "agent_loop.keepalive_interval");
    if (l.keepalive_interval.count() < 100) r.fail(al, "agent_loop.keepalive_interval", "must be at least 100ms");
}

}  // namespace toolgate::agentloop
