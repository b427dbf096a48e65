#pragma once
// The one place that builds a turn filter chain from config, in DESIGN.md's order (outermost
// first): auth/key, rate limit, budget, guardrails in, cache, router. Each filter kind is one row
// of the table in registry.cpp: its name, the turn kinds it applies to, and a factory that reads
// its validated, immutable settings from the config. Built once at start-up.
#include <memory>
#include <string_view>
#include <vector>

#include "gateway/config.hpp"
#include "gateway/pipeline.hpp"

namespace toolgate::gateway {

// `innermost` is the router (gateway/routing), handed in so that policies need not know routing.
std::vector<std::shared_ptr<turn_filter>> build_filters(gateway_config const& cfg, std::shared_ptr<turn_filter> innermost,
                                                        turn_kind kind);

}  // namespace toolgate::gateway
