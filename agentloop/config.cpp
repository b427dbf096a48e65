#include "agentloop/config.hpp"

#include "common/config_reader.hpp"

namespace toolgate::agentloop {

namespace {

using unit = limit_descriptor::unit;
using ms = std::chrono::milliseconds;

constexpr limit_descriptor descriptors[] = {
    {"max_iterations", "x-toolgate-max-iterations", unit::count, 1, 1000,
     [](limits const& l) { return double(l.max_iterations); }, [](limits& l, double v) { l.max_iterations = unsigned(v); }},
    {"max_tool_calls_per_turn", "x-toolgate-max-tool-calls", unit::count, 1, 1000,
     [](limits const& l) { return double(l.max_tool_calls_per_turn); },
     [](limits& l, double v) { l.max_tool_calls_per_turn = unsigned(v); }},
    {"max_parallel_tools", "", unit::count, 1, 256, [](limits const& l) { return double(l.max_parallel_tools); },
     [](limits& l, double v) { l.max_parallel_tools = unsigned(v); }},
    {"max_tool_result_bytes", "x-toolgate-max-tool-result-bytes", unit::bytes, 256, double(64u << 20),
     [](limits const& l) { return double(l.max_tool_result_bytes); },
     [](limits& l, double v) { l.max_tool_result_bytes = std::size_t(v); }},
    {"max_total_tokens", "x-toolgate-max-total-tokens", unit::tokens, 0, double(1ull << 40),
     [](limits const& l) { return double(l.max_total_tokens); },
     [](limits& l, double v) { l.max_total_tokens = std::int64_t(v); }},
    {"max_cost_usd", "x-toolgate-max-cost", unit::usd, 0, 1e6, [](limits const& l) { return l.max_cost_usd; },
     [](limits& l, double v) { l.max_cost_usd = v; }},
    {"tool_timeout", "x-toolgate-tool-timeout", unit::duration, 1, 86'400'000,
     [](limits const& l) { return double(l.tool_timeout.count()); }, [](limits& l, double v) { l.tool_timeout = ms(std::int64_t(v)); }},
    {"loop_timeout", "x-toolgate-loop-timeout", unit::duration, 1, 86'400'000,
     [](limits const& l) { return double(l.loop_timeout.count()); }, [](limits& l, double v) { l.loop_timeout = ms(std::int64_t(v)); }},
    {"keepalive_interval", "", unit::duration, 100, 86'400'000,
     [](limits const& l) { return double(l.keepalive_interval.count()); },
     [](limits& l, double v) { l.keepalive_interval = ms(std::int64_t(v)); }},
};

}  // namespace

std::span<limit_descriptor const> limit_descriptors() { return descriptors; }

void parse_agent_loop(reader const& r, YAML::Node const& al, agent_loop_config& cfg) {
    r.check_keys(al, "agent_loop",
                 {"inject_tools", "max_iterations", "tool_timeout", "loop_timeout", "max_tool_calls_per_turn",
                  "max_parallel_tools", "max_tool_result_bytes", "max_total_tokens", "max_cost_usd",
                  "keepalive_interval", "tool_turn_model", "max_concurrent"});
    auto& l = cfg.limits;
    if (auto n = al["inject_tools"]) cfg.inject_tools = r.boolean(n, "agent_loop.inject_tools");
    if (auto n = al["tool_turn_model"]) cfg.tool_turn_model = r.str(n, "agent_loop.tool_turn_model");
    if (auto n = al["max_concurrent"])
        cfg.max_concurrent = static_cast<std::size_t>(r.integer(n, "agent_loop.max_concurrent", 1, 1'000'000));
    for (auto const& d : descriptors) {
        auto n = al[std::string(d.key)];
        if (!n) continue;
        auto path = "agent_loop." + std::string(d.key);
        if (d.kind == unit::usd) {
            d.set(l, r.number(n, path, d.min, d.max));
        } else if (d.kind == unit::duration) {
            auto v = r.duration(n, path);
            if (double(v.count()) < d.min || double(v.count()) > d.max)
                r.fail(n, path, "must be at least " + std::to_string(std::int64_t(d.min)) + "ms and at most 24h");
            d.set(l, double(v.count()));
        } else {
            d.set(l, double(r.integer(n, path, std::uint64_t(d.min), std::uint64_t(d.max))));
        }
    }
    if (al["loop_timeout"]) cfg.loop_timeout = l.loop_timeout;
}

}  // namespace toolgate::agentloop
