#pragma once
// The one place that builds a turn filter chain from config, in DESIGN.md's order (outermost
// first): request log, keys, rate limit, budget, guardrails in, cache, router. Each filter kind is
// one row of the table in registry.cpp: its name, the turn kinds it applies to, and a factory that
// reads its validated, immutable settings. Built once at start-up.
#include <memory>
#include <string_view>
#include <vector>

#include "gateway/config.hpp"
#include "gateway/pipeline.hpp"
#include "gateway/policy/filters.hpp"

namespace toolgate::gateway::policy {
class cache_runtime;
}

namespace toolgate::gateway {

// What the filters are built from. `innermost` is the router (gateway/routing), and `price` its
// price quote, handed in so that policies need not know routing; `access` is null when no key,
// limit, budget or request log is configured.
struct filter_inputs {
    gateway_config const& cfg;
    std::shared_ptr<turn_filter> innermost;
    policy::access_runtime* access = nullptr;
    policy::price_fn price;
    policy::cache_runtime* cache = nullptr;  // null: no response cache
};

std::vector<std::shared_ptr<turn_filter>> build_filters(filter_inputs const& in, turn_kind kind);

}  // namespace toolgate::gateway
