#pragma once
// A provider's several api_keys with their cooldowns, shared by all worker threads (a short lock).
#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gateway/routing/strategy.hpp"

namespace toolgate::gateway::routing {

// Only for providers with several api_keys.
struct credential_pool {
    std::vector<std::string> keys;
    mutable std::mutex mu;
    std::vector<clock::time_point> cooling_until;

    explicit credential_pool(std::vector<std::string> k) : keys(std::move(k)), cooling_until(keys.size()) {}

    // The first key not cooling down; nullopt when all are.
    std::optional<std::size_t> pick(clock::time_point now) const {
        std::lock_guard lock(mu);
        for (std::size_t i = 0; i < keys.size(); ++i)
            if (cooling_until[i] <= now) return i;
        return std::nullopt;
    }
    void cool(std::size_t i, clock::time_point until) {
        std::lock_guard lock(mu);
        cooling_until[i] = std::max(cooling_until[i], until);
    }
    clock::time_point next_ready() const {
        std::lock_guard lock(mu);
        return *std::min_element(cooling_until.begin(), cooling_until.end());
    }
};

}  // namespace toolgate::gateway::routing
