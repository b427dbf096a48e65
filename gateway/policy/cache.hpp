#pragma once
// The response cache (plugin `response-cache`): every chat model turn, agent-loop turns included,
// looked up before routing and stored after a complete answer. Exact mode keys on a canonical hash
// of everything that decides the answer; semantic mode also compares the last user message by
// embedding, with everything else matching exactly. A hit replays as a stream or as one JSON
// object, whichever the client asked for, costs no budget and calls no provider.
//
// Built once at start-up (cache_runtime), shared by all worker threads: the store and the semantic
// index keep their own locks, the counters are atomics or behind a short mutex.
#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/api_error.hpp"
#include "common/cancel.hpp"
#include "gateway/pipeline.hpp"
#include "state/cache_store.hpp"

namespace YAML {
class Node;
}
namespace toolgate {
class reader;
}
namespace toolgate::state {
class redis_pool;
}

namespace toolgate::gateway::policy {

class semantic_index;

struct semantic_settings {
    std::string embedding_model;  // any embeddings model the gateway routes
    double threshold = 0;         // cosine similarity a hit needs (required)
    std::size_t max_messages = 3;  // conversations longer than this (system messages aside) are cached exactly
    std::chrono::milliseconds timeout{500};  // embedding and search; past it the lookup is a miss
    std::size_t max_entries = 100'000;       // vectors kept, oldest dropped first
};

struct cache_settings {
    enum class mode { exact, semantic } how = mode::exact;
    enum class scope { key, team, global } whose = scope::key;
    bool redis = false;  // store: redis (needs state.redis)
    std::chrono::milliseconds ttl{10 * 60 * 1000};
    std::size_t max_bytes = 256u << 20;      // memory store
    std::size_t max_entry_bytes = 1u << 20;  // a larger answer is not cached
    semantic_settings semantic;
};

// The plugin's `config` mapping; errors name `path` and the key.
cache_settings parse_cache_plugin(reader const& r, YAML::Node const& config, std::string const& path);

// One embedding of `text` by `model`, routed like any embeddings request on behalf of the turn
// `parent` (its key, limits and budget); `cancel` ends it early.
struct embedding_answer {
    std::vector<float> vector;
    std::optional<api_error> error;
};
using embed_fn = std::function<asio::awaitable<embedding_answer>(turn_context& parent, std::string const& model,
                                                                 std::string const& text, cancel_token& cancel)>;
// The route a turn's answer is bound to (the router's route_identity).
using route_fn = std::function<std::string(turn_context const&)>;

// Hits, misses and bypasses per scope label, for /metrics.
struct cache_scope_stats {
    std::uint64_t hits = 0, semantic_hits = 0, misses = 0, bypasses = 0, stores = 0;
};

class cache_runtime {
public:
    // `redis`: the state's pool (required by store: redis).
    cache_runtime(cache_settings s, std::shared_ptr<state::redis_pool> redis, route_fn route, embed_fn embed);
    ~cache_runtime();
    cache_runtime(cache_runtime const&) = delete;
    cache_runtime& operator=(cache_runtime const&) = delete;

    cache_settings const& settings() const { return s_; }
    state::cache_store& store() { return *store_; }
    std::shared_ptr<state::cache_store> const& shared_store() const { return store_; }
    semantic_index* index() { return index_.get(); }
    route_fn const& route() const { return route_; }
    embed_fn const& embed() const { return embed_; }

    // The store key's leading parts, so that DELETE /admin/cache can name a scope and a model.
    // A scope is "global", "anonymous", "team:NAME", or key_scope(the key's id).
    static std::string scope_part(std::string_view scope);
    static std::string key_scope(std::string_view key_id);
    static std::string model_part(std::string_view requested_model);

    // Removes cached answers: all, one scope's, one model's (as clients name it), or both.
    // Returns how many went (store entries).
    asio::awaitable<state::result<std::uint64_t>> erase(std::string const& scope, std::string const& model);

    void note(std::string const& scope_label, std::uint64_t cache_scope_stats::*field);
    std::atomic<std::uint64_t> store_errors{0};
    std::atomic<std::uint64_t> embed_failures{0};   // semantic lookups whose embedding failed or timed out
    // Stores written after the answer that failed (shared with those writes, which may outlive this).
    std::shared_ptr<std::atomic<std::uint64_t>> const& put_errors() const { return put_errors_; }
    std::string metrics_text() const;

private:
    cache_settings s_;
    std::shared_ptr<state::cache_store> store_;
    std::unique_ptr<semantic_index> index_;
    route_fn route_;
    embed_fn embed_;
    mutable std::mutex mu_;
    std::map<std::string, cache_scope_stats, std::less<>> scopes_;
    std::shared_ptr<std::atomic<std::uint64_t>> put_errors_ = std::make_shared<std::atomic<std::uint64_t>>(0);
};

std::shared_ptr<turn_filter> make_cache_filter(cache_runtime& rt);

}  // namespace toolgate::gateway::policy
