// The Redis response-cache store (redis.hpp): one GET per lookup, one SET with PX per store, and
// erasing by SCAN MATCH + UNLINK in bounded batches. Commands are built in plain functions;
// coroutine bodies follow the GCC 12 rules in CONTRIBUTING.md.
#include <spdlog/spdlog.h>

#include "state/redis.hpp"
#include "state/redis_pool.hpp"

namespace toolgate::state {

namespace {

using detail::redis_reply;

std::vector<std::string> get_command(std::string const& prefix, std::string const& key) {
    std::vector<std::string> c;
    c.reserve(2);
    c.emplace_back("GET");
    c.push_back(prefix + key);
    return c;
}

std::vector<std::string> set_command(std::string const& prefix, std::string const& key, std::string value,
                                     std::int64_t ttl_ms) {
    std::vector<std::string> c;
    c.reserve(5);
    c.emplace_back("SET");
    c.push_back(prefix + key);
    c.push_back(std::move(value));
    c.emplace_back("PX");
    c.push_back(std::to_string(ttl_ms));
    return c;
}

std::string escape_glob(std::string const& text) {
    std::string out;
    for (char ch : text) {
        if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out.push_back('\\');
        out.push_back(ch);
    }
    return out;
}

std::string part_or_any(std::string const& part) { return part.empty() ? std::string("*") : part; }

std::vector<std::string> scan_command(std::string const& cursor, std::string const& pattern) {
    std::vector<std::string> c;
    c.reserve(6);
    c.emplace_back("SCAN");
    c.push_back(cursor);
    c.emplace_back("MATCH");
    c.push_back(pattern);
    c.emplace_back("COUNT");
    c.emplace_back("1000");
    return c;
}

// SCAN's reply: the next cursor and the keys of this batch (as UNLINK's arguments).
bool read_scan(redis_reply const& r, std::string& cursor, std::vector<std::string>& unlink) {
    if (r.type != redis_reply::kind::array || r.elements.size() != 2) return false;
    auto const& c = r.elements[0];
    auto const& keys = r.elements[1];
    if (c.type != redis_reply::kind::string || keys.type != redis_reply::kind::array) return false;
    cursor = c.str;
    unlink.clear();
    if (keys.elements.empty()) return true;
    unlink.reserve(keys.elements.size() + 1);
    unlink.emplace_back("UNLINK");
    for (auto const& k : keys.elements)
        if (k.type == redis_reply::kind::string) unlink.push_back(k.str);
    if (unlink.size() == 1) unlink.clear();
    return true;
}

class redis_cache final : public cache_store {
public:
    redis_cache(std::shared_ptr<redis_pool> pool, std::string const& space)
        : pool_(std::move(pool)), prefix_(pool_->prefix() + space) {}

    std::string_view kind() const override { return "redis"; }

    asio::awaitable<result<cache_value>> get(std::string const& key, std::int64_t) override {
        auto r = co_await pool_->command(get_command(prefix_, key));
        if (!r) co_return r.error();
        if (r->is_nil()) co_return cache_value{};
        if (r->type != redis_reply::kind::string) co_return make_error_code(errc::protocol);
        co_return std::make_shared<std::string const>(std::move(r->str));
    }

    asio::awaitable<result<void>> put(std::string const& key, std::string value, std::string const&, std::int64_t ttl_ms,
                                      std::int64_t) override {
        if (ttl_ms <= 0) co_return result<void>{};
        auto r = co_await pool_->command(set_command(prefix_, key, std::move(value), ttl_ms));
        if (!r) co_return r.error();
        if (r->is_error()) {
            spdlog::warn("redis: cache SET refused: {}", r->str);
            co_return make_error_code(errc::storage);
        }
        co_return result<void>{};
    }

    asio::awaitable<result<std::uint64_t>> erase(std::string const& scope_part, std::string const& model_part) override {
        // The parts are hex digests: nothing in them needs escaping in a MATCH pattern.
        auto pattern = escape_glob(prefix_) + part_or_any(scope_part) + ":" + part_or_any(model_part) + ":*";
        std::string cursor = "0";
        std::vector<std::string> unlink;
        std::uint64_t removed = 0;
        // Bounded: a keyspace of millions is walked in at most this many batches per call.
        for (int round = 0; round < 100'000; ++round) {
            auto r = co_await pool_->command(scan_command(cursor, pattern));
            if (!r) co_return r.error();
            if (!read_scan(*r, cursor, unlink)) co_return make_error_code(errc::protocol);
            if (!unlink.empty()) {
                auto u = co_await pool_->command(std::move(unlink));
                if (!u) co_return u.error();
                if (u->type == redis_reply::kind::integer) removed += static_cast<std::uint64_t>(u->integer);
                unlink.clear();
            }
            if (cursor == "0") co_return removed;
        }
        co_return make_error_code(errc::overloaded);  // a keyspace too large to walk in one call
    }

private:
    std::shared_ptr<redis_pool> pool_;
    std::string prefix_;
};

}  // namespace

std::shared_ptr<cache_store> make_redis_cache(std::shared_ptr<redis_pool> pool, std::string const& space) {
    return std::make_shared<redis_cache>(std::move(pool), space);
}

}  // namespace toolgate::state
