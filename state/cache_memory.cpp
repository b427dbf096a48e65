// The memory response-cache store (cache_store.hpp): 16 stripes, each an LRU list bounded by its
// share of the bytes, with expiry checked on read and on eviction. Everything answers at once: the
// coroutine versions only wrap the _now ones.
#include <algorithm>
#include <array>
#include <functional>
#include <list>
#include <mutex>
#include <unordered_map>

#include "state/cache_store.hpp"

namespace toolgate::state {

namespace {

constexpr std::size_t stripes = 16;
// A rough price of an entry beyond its key and value: list and map nodes, the shared string.
constexpr std::size_t entry_overhead = 160;

struct entry {
    std::string key;
    cache_value value;
    std::string scope;
    std::int64_t expires_ms = 0;
    std::size_t bytes = 0;
};

struct stripe {
    std::mutex mu;
    std::list<entry> lru;  // most recently used first
    std::unordered_map<std::string, std::list<entry>::iterator> index;
    std::unordered_map<std::string, cache_counts> scopes;
    std::size_t bytes = 0;

    void drop(std::list<entry>::iterator it, bool evicted) {
        auto& c = scopes[it->scope];
        c.entries -= 1;
        c.bytes -= it->bytes;
        if (evicted) c.evictions += 1;
        bytes -= it->bytes;
        index.erase(it->key);
        lru.erase(it);
    }
};

class memory_cache final : public cache_store {
public:
    explicit memory_cache(std::size_t max_bytes) : capacity_(max_bytes / stripes) {}

    std::string_view kind() const override { return "memory"; }

    std::optional<cache_value> get_now(std::string const& key, std::int64_t now_ms) override {
        auto& s = stripe_of(key);
        std::lock_guard lock(s.mu);
        auto it = s.index.find(key);
        if (it == s.index.end()) return cache_value{};
        if (it->second->expires_ms <= now_ms) {
            s.drop(it->second, false);
            return cache_value{};
        }
        s.lru.splice(s.lru.begin(), s.lru, it->second);
        return it->second->value;
    }

    bool put_now(std::string const& key, std::string& value, std::string const& scope, std::int64_t ttl_ms,
                 std::int64_t now_ms) override {
        std::size_t bytes = key.size() + value.size() + scope.size() + entry_overhead;
        if (bytes > capacity_ || ttl_ms <= 0) return true;  // never fits: not stored
        auto& s = stripe_of(key);
        auto shared = std::make_shared<std::string const>(std::move(value));
        std::lock_guard lock(s.mu);
        if (auto it = s.index.find(key); it != s.index.end()) s.drop(it->second, false);
        while (s.bytes + bytes > capacity_ && !s.lru.empty()) {
            auto last = std::prev(s.lru.end());
            s.drop(last, last->expires_ms > now_ms);
        }
        s.lru.push_front(entry{key, std::move(shared), scope, now_ms + ttl_ms, bytes});
        s.index.emplace(key, s.lru.begin());
        s.bytes += bytes;
        auto& c = s.scopes[scope];
        c.entries += 1;
        c.bytes += bytes;
        return true;
    }

    asio::awaitable<result<cache_value>> get(std::string const& key, std::int64_t now_ms) override {
        co_return *get_now(key, now_ms);
    }

    asio::awaitable<result<void>> put(std::string const& key, std::string value, std::string const& scope,
                                      std::int64_t ttl_ms, std::int64_t now_ms) override {
        put_now(key, value, scope, ttl_ms, now_ms);
        co_return result<void>{};
    }

    asio::awaitable<result<std::uint64_t>> erase(std::string const& scope_part, std::string const& model_part) override {
        co_return erase_now(scope_part, model_part);
    }

    std::vector<std::pair<std::string, cache_counts>> counts() const override {
        std::unordered_map<std::string, cache_counts> sum;
        for (auto& s : stripes_) {
            std::lock_guard lock(s.mu);
            for (auto const& [scope, c] : s.scopes) {
                auto& t = sum[scope];
                t.entries += c.entries;
                t.bytes += c.bytes;
                t.evictions += c.evictions;
            }
        }
        std::vector<std::pair<std::string, cache_counts>> out(sum.begin(), sum.end());
        std::sort(out.begin(), out.end(), [](auto const& a, auto const& b) { return a.first < b.first; });
        return out;
    }

private:
    std::uint64_t erase_now(std::string const& scope_part, std::string const& model_part) {
        std::uint64_t n = 0;
        for (auto& s : stripes_) {
            std::lock_guard lock(s.mu);
            for (auto it = s.lru.begin(); it != s.lru.end();) {
                auto next = std::next(it);
                if (cache_key_matches(it->key, scope_part, model_part)) {
                    s.drop(it, false);
                    ++n;
                }
                it = next;
            }
        }
        return n;
    }

    stripe& stripe_of(std::string const& key) { return stripes_[std::hash<std::string>{}(key) % stripes]; }

    std::size_t capacity_;
    mutable std::array<stripe, stripes> stripes_;
};

}  // namespace

std::shared_ptr<cache_store> make_memory_cache(std::size_t max_bytes) { return std::make_shared<memory_cache>(max_bytes); }

}  // namespace toolgate::state
