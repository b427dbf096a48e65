#pragma once
// The response cache's store: opaque values under string keys, each with a time to live.
// Implementations: memory (one process; LRU by bytes, lock-striped) and redis (shared by replicas;
// Redis itself bounds memory with its own eviction policy). Callable from any worker thread; each
// call completes on the caller's executor.
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "state/errors.hpp"

namespace toolgate::state {

namespace asio = boost::asio;

// What the memory store holds for one scope label (for /metrics).
struct cache_counts {
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;
    std::uint64_t evictions = 0;  // entries pushed out to make room (expired ones not counted)
};

using cache_value = std::shared_ptr<std::string const>;

// Whether a key "<scope part>:<model part>:<rest>" matches the parts (empty: any).
inline bool cache_key_matches(std::string_view key, std::string_view scope_part, std::string_view model_part) {
    auto colon = key.find(':');
    if (colon == std::string_view::npos) return false;
    if (!scope_part.empty() && key.substr(0, colon) != scope_part) return false;
    auto rest = key.substr(colon + 1);
    auto colon2 = rest.find(':');
    if (colon2 == std::string_view::npos) return false;
    return model_part.empty() || rest.substr(0, colon2) == model_part;
}

class cache_store {
public:
    virtual ~cache_store() = default;
    virtual std::string_view kind() const = 0;  // "memory", "redis"

    // The value under `key`, or null when there is none (or it expired).
    virtual asio::awaitable<result<cache_value>> get(std::string const& key, std::int64_t now_ms) = 0;
    // Stores `value` for `ttl_ms`; `scope` labels it for the counts. A value larger than the store
    // can hold is not stored (no error).
    virtual asio::awaitable<result<void>> put(std::string const& key, std::string value, std::string const& scope,
                                              std::int64_t ttl_ms, std::int64_t now_ms) = 0;
    // Removes the entries of keys "<scope part>:<model part>:<rest>" whose parts match (an empty
    // part matches any); returns how many went. Parts are hex digests (no glob characters).
    virtual asio::awaitable<result<std::uint64_t>> erase(std::string const& scope_part, std::string const& model_part) = 0;

    // The same, answered at once by a store that needs no I/O (memory), which spares the caller a
    // coroutine frame on the request path; nullopt / false: await the call above instead.
    virtual std::optional<cache_value> get_now(std::string const& key, std::int64_t now_ms) {
        (void)key;
        (void)now_ms;
        return std::nullopt;
    }
    virtual bool put_now(std::string const& key, std::string& value, std::string const& scope, std::int64_t ttl_ms,
                         std::int64_t now_ms) {
        (void)key;
        (void)value;
        (void)scope;
        (void)ttl_ms;
        (void)now_ms;
        return false;
    }

    // Per scope label (memory only; empty where the store cannot tell).
    virtual std::vector<std::pair<std::string, cache_counts>> counts() const { return {}; }
};

// `max_bytes`: keys, values and bookkeeping together; the least recently used entries go first.
// A value larger than 1/16 of it is never stored (the store is split in 16 stripes).
std::shared_ptr<cache_store> make_memory_cache(std::size_t max_bytes);

}  // namespace toolgate::state
