#pragma once
// The semantic cache's vectors, in memory: one group per exact context (scope, route, everything
// but the last user message). A small group is a flat array of unit vectors scanned for the best
// cosine; a group that outgrows `flat_limit` moves into an HNSW graph (hnswlib, inner product on
// unit vectors), searched approximately in a few milliseconds at 100,000 entries. Bounded in
// entries (the oldest go first) and in age. Thread-safe: lookups share a lock, changes take it
// alone. Adding to a flat group costs microseconds and happens at once; adding to a graph costs
// about a millisecond (moving a group into one, seconds) and is left to one indexing thread (a
// bounded queue: past it, entries are not indexed). No request waits for the indexing thread: a
// lookup that finds the index locked is a miss.
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace toolgate::gateway::policy {

class semantic_index {
public:
    explicit semantic_index(std::size_t max_entries, std::size_t flat_limit = 2048);
    ~semantic_index();
    semantic_index(semantic_index const&) = delete;
    semantic_index& operator=(semantic_index const&) = delete;

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
    // Groups searched through a graph rather than a scan (for tests and /metrics).
    std::size_t graph_groups() const;
    // Waits until the indexing thread has applied every queued add (tests, benchmarks).
    void wait_idle();

    struct group;

private:
    struct pending {
        std::string group;
        std::string key;
        std::vector<float> vector;
        std::int64_t expires_ms = 0;
    };
    // Under mu_ held alone.
    void apply(std::string const& group, std::string const& key, std::vector<float>& vector, std::int64_t expires_ms);
    void drop(std::string const& group, std::string const& key);
    void compact_order();
    void indexer();

    std::mutex queue_mu_;
    std::condition_variable queue_cv_;
    std::deque<pending> queue_;
    bool busy_ = false;
    bool stop_ = false;
    std::thread thread_;  // started on the first add that needs it

    std::size_t max_entries_;
    std::size_t flat_limit_;
    mutable std::shared_mutex mu_;
    std::unordered_map<std::string, std::unique_ptr<group>> groups_;
    std::deque<std::pair<std::string, std::string>> order_;  // (group, key), oldest first; may name dropped ones
    std::size_t count_ = 0;
    std::atomic<std::size_t> published_count_{0};  // count_ for readers that take no lock
};

}  // namespace toolgate::gateway::policy
