#pragma once
// Where a call finds its AI endpoint: the config's endpoints (immutable, found at once), then the
// ones made through /admin/endpoints, kept in the state store (SQLite, or Redis shared by the
// replicas) and cached here for `cache_ttl`, so an endpoint made, changed or deleted on another
// replica takes effect within that time (at once on this one). A stored definition is parsed again
// only when it changed. Built once at start-up; callable from any worker thread.
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "gateway/api/endpoint_config.hpp"

namespace toolgate::state {
class doc_store;
}

namespace toolgate::gateway {

namespace asio = boost::asio;

class endpoint_directory {
public:
    // `store` null: no admin API (only the config's endpoints).
    endpoint_directory(endpoint_list config, std::shared_ptr<state::doc_store> store, endpoint_context ctx,
                       std::chrono::milliseconds cache_ttl = std::chrono::seconds(2));
    ~endpoint_directory();

    endpoint_list const& config() const { return config_; }
    std::shared_ptr<endpoint_config const> config_endpoint(std::string_view slug) const;
    state::doc_store* store() const { return store_.get(); }
    endpoint_context const& context() const { return ctx_; }

    struct found {
        std::shared_ptr<endpoint_config const> endpoint;  // null: no such endpoint (or an error below)
        bool store_error = false;                          // the store did not answer
        std::string invalid;  // a stored definition that no longer fits the config (what is wrong)
    };
    asio::awaitable<found> find(std::string slug);

    // After a change made here: the next call reads the store again.
    void invalidate(std::string const& slug);

private:
    struct cached {
        std::shared_ptr<endpoint_config const> endpoint;
        std::int64_t updated_ms = 0;
        std::string invalid;
        std::chrono::steady_clock::time_point fetched;
    };
    endpoint_list config_;
    std::shared_ptr<state::doc_store> store_;
    endpoint_context ctx_;
    std::chrono::milliseconds ttl_;
    std::mutex mu_;
    std::unordered_map<std::string, cached> cache_;
};

}  // namespace toolgate::gateway
