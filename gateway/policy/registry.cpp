#include "gateway/policy/registry.hpp"

#include <array>

#include "gateway/policy/cache.hpp"
#include "gateway/policy/guardrails.hpp"

namespace toolgate::gateway {

namespace {

struct filter_row {
    std::string_view name;
    bool chat = true;
    bool embeddings = true;
    // nullptr when the config does not enable it.
    std::shared_ptr<turn_filter> (*make)(filter_inputs const&);
};

std::chrono::milliseconds lease_of(gateway_config const& cfg) {
    // A request cannot outlive its timeout: a lease or reservation it left behind lapses soon after.
    return cfg.server.request_timeout + std::chrono::minutes(1);
}

// Outermost first.
constexpr std::array<filter_row, 5> rows{{
    {"request_log", true, true,
     [](filter_inputs const& in) {
         return in.access && in.access->log() ? policy::make_turn_log_filter(*in.access) : nullptr;
     }},
    {"admission", true, true,
     [](filter_inputs const& in) {
         return in.access ? policy::make_admission_filter(*in.access, in.price, lease_of(in.cfg)) : nullptr;
     }},
    {"guardrails", true, false,
     [](filter_inputs const& in) { return policy::make_guardrail_filter(in.cfg.guardrail_settings); }},
    {"response_cache", true, false,
     [](filter_inputs const& in) { return in.cache ? policy::make_cache_filter(*in.cache) : nullptr; }},
    {"router", true, true, [](filter_inputs const& in) { return in.innermost; }},
}};

}  // namespace

std::vector<std::shared_ptr<turn_filter>> build_filters(filter_inputs const& in, turn_kind kind) {
    std::vector<std::shared_ptr<turn_filter>> out;
    for (auto const& row : rows) {
        if (kind == turn_kind::chat ? !row.chat : !row.embeddings) continue;
        if (auto f = row.make(in)) out.push_back(std::move(f));
    }
    return out;
}

}  // namespace toolgate::gateway
