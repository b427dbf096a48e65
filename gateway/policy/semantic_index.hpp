#pragma once
// The semantic cache's vectors, in memory: one group per exact context (scope, route, everything
// but the last user message), each a flat array of unit vectors scanned for the best cosine.
// Bounded in entries (the oldest go first) and in age. Thread-safe: lookups share a lock, changes
// take it alone.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace toolgate::gateway::policy {

class semantic_index {
public:
    explicit semantic_index(std::size_t max_entries) : max_entries_(max_entries) {}

    // Remembers that `key` answers `vector` in `group` until `expires_ms` (replacing what `key`
    // had). A vector of another length than the group's, or all zeros, is not kept.
    void add(std::string const& group, std::string const& key, std::vector<float> vector, std::int64_t expires_ms);

    struct match {
        std::string key;
        float score = 0;
    };
    // The most similar live entry of `group` at or above `threshold`.
    std::optional<match> best(std::string const& group, std::vector<float> const& vector, float threshold,
                              std::int64_t now_ms) const;

    // Drops the entries whose key matches (state::cache_key_matches).
    void erase(std::string_view scope_part, std::string_view model_part);
    std::size_t size() const;

private:
    struct group_data {
        std::size_t dims = 0;
        std::vector<float> data;  // dims floats per entry
        std::vector<std::string> keys;
        std::vector<std::int64_t> expires;
        std::unordered_map<std::string, std::size_t> slot;
        void remove(std::size_t i);
    };
    void drop(std::string const& group, std::string const& key);

    std::size_t max_entries_;
    mutable std::shared_mutex mu_;
    std::unordered_map<std::string, group_data> groups_;
    std::deque<std::pair<std::string, std::string>> order_;  // (group, key), oldest first; may name dropped ones
    std::size_t count_ = 0;
};

}  // namespace toolgate::gateway::policy
