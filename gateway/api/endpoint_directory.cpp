// The endpoint directory (endpoint_directory.hpp): config first, then the store behind a short cache.
#include "gateway/api/endpoint_directory.hpp"

#include <spdlog/spdlog.h>

#include "common/json_util.hpp"
#include "state/doc_store.hpp"

namespace toolgate::gateway {

namespace json = boost::json;

namespace {

// Bounds the cache (misses included): unknown slugs sent in a loop cannot grow it without end.
constexpr std::size_t max_cached = 4096;

// A stored definition back as an endpoint, or what is wrong with it.
void parse_stored(state::stored_doc const& doc, endpoint_context const& ctx, std::shared_ptr<endpoint_config const>& out,
                  std::string& invalid) {
    boost::system::error_code ec;
    auto v = parse_bounded(doc.body, ec);
    if (ec || !v.is_object()) {
        invalid = "the stored definition is not a JSON object";
        return;
    }
    auto parsed = parse_endpoint_json(v.get_object(), ctx);
    if (auto* e = std::get_if<std::shared_ptr<endpoint_config const>>(&parsed)) out = std::move(*e);
    else invalid = std::get<std::string>(parsed);
}

}  // namespace

endpoint_directory::endpoint_directory(endpoint_list config, std::shared_ptr<state::doc_store> store, endpoint_context ctx,
                                       std::chrono::milliseconds cache_ttl)
    : config_(std::move(config)), store_(std::move(store)), ctx_(std::move(ctx)), ttl_(cache_ttl) {}

endpoint_directory::~endpoint_directory() = default;

std::shared_ptr<endpoint_config const> endpoint_directory::config_endpoint(std::string_view slug) const {
    for (auto const& e : config_)
        if (e->slug == slug) return e;
    return nullptr;
}

void endpoint_directory::invalidate(std::string const& slug) {
    std::lock_guard lock(mu_);
    cache_.erase(slug);
}

asio::awaitable<endpoint_directory::found> endpoint_directory::find(std::string slug) {
    found out;
    out.endpoint = config_endpoint(slug);
    if (out.endpoint || !store_) co_return out;
    auto now = std::chrono::steady_clock::now();
    std::int64_t known_ms = -1;
    {
        std::lock_guard lock(mu_);
        if (auto it = cache_.find(slug); it != cache_.end()) {
            if (now - it->second.fetched < ttl_) {
                out.endpoint = it->second.endpoint;
                out.invalid = it->second.invalid;
                co_return out;
            }
            known_ms = it->second.updated_ms;
        }
    }
    auto got = co_await store_->get(slug);
    if (!got) {
        out.store_error = true;
        co_return out;
    }
    cached c;
    c.fetched = now;
    if (*got) {
        c.updated_ms = (*got)->updated_ms;
        bool same = false;
        if (known_ms == c.updated_ms) {
            std::lock_guard lock(mu_);
            if (auto it = cache_.find(slug); it != cache_.end() && it->second.updated_ms == c.updated_ms) {
                c.endpoint = it->second.endpoint;
                c.invalid = it->second.invalid;
                same = true;
            }
        }
        if (!same) {
            parse_stored(**got, ctx_, c.endpoint, c.invalid);
            if (!c.invalid.empty()) spdlog::warn("endpoint '{}' (made through the admin API): {}", slug, c.invalid);
        }
    }
    out.endpoint = c.endpoint;
    out.invalid = c.invalid;
    {
        std::lock_guard lock(mu_);
        if (cache_.size() >= max_cached) cache_.clear();
        cache_[slug] = std::move(c);
    }
    co_return out;
}

}  // namespace toolgate::gateway
