// The agent loop's decision after each model turn, without I/O (loop.hpp, next_step).
#include <algorithm>

#include "agentloop/loop.hpp"

namespace toolgate::agentloop {

step next_step(std::vector<call_kind> const& calls, loop_counters const& spent, limits const& lim,
               time_source::time_point now, time_source::time_point deadline) {
    step out;
    if (calls.empty()) return out;  // answer
    std::size_t gateway = 0;
    for (auto k : calls) gateway += k == call_kind::gateway;
    if (gateway > 0) {
        // Running tools would mean another model turn: only if every limit still allows one.
        if (spent.iterations >= lim.max_iterations) out.reason = stop_reason::max_iterations;
        else if (lim.max_total_tokens > 0 && spent.total_tokens > lim.max_total_tokens) out.reason = stop_reason::max_total_tokens;
        else if (lim.max_cost_usd > 0 && spent.cost_usd > lim.max_cost_usd) out.reason = stop_reason::max_cost;
        else if (now >= deadline) out.reason = stop_reason::loop_timeout;
        if (out.reason != stop_reason::none) {
            out.what = step::kind::stop;
            return out;
        }
    }
    out.what = step::kind::act;
    auto per_turn = std::max(1u, lim.max_tool_calls_per_turn);
    for (std::size_t i = 0; i < calls.size(); ++i) {
        if (calls[i] == call_kind::client) out.hand_back.push_back(i);
        else if (out.run.size() < per_turn) out.run.push_back(i);
        else out.refused.push_back(i);
    }
    return out;
}

}  // namespace toolgate::agentloop
