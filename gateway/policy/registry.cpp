#include "gateway/policy/registry.hpp"

#include <array>

#include "gateway/policy/guardrails.hpp"


namespace toolgate::gateway {

namespace {

struct filter_row {
    std::string_view name;
    bool chat = true;
    bool embeddings = true;
    // nullptr when the config does not enable it; `innermost` is the router.
    std::shared_ptr<turn_filter> (*make)(gateway_config const&, std::shared_ptr<turn_filter> const& innermost);
};

// Outermost first. Policies (keys, rate limits, budgets, guardrails, cache) take their rows above
// the router as they land.
constexpr std::array<filter_row, 2> rows{{
    {"guardrails", true, false,
     [](gateway_config const& cfg, std::shared_ptr<turn_filter> const&) {
         return policy::make_guardrail_filter(cfg.guardrail_settings);
     }},
    {"router", true, true,
     [](gateway_config const&, std::shared_ptr<turn_filter> const& innermost) { return innermost; }},
}};

}  // namespace

std::vector<std::shared_ptr<turn_filter>> build_filters(gateway_config const& cfg, std::shared_ptr<turn_filter> innermost,
                                                        turn_kind kind) {
    std::vector<std::shared_ptr<turn_filter>> out;
    for (auto const& row : rows) {
        if (kind == turn_kind::chat ? !row.chat : !row.embeddings) continue;
        if (auto f = row.make(cfg, innermost)) out.push_back(std::move(f));
    }
    return out;
}

}  // namespace toolgate::gateway
