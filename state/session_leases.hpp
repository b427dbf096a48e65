#pragma once
// Internal to state/: the leases of the stores whose sessions live in one process (memory and
// sqlite). Thread-safe; bounded by what is in use (a lapsed lease is replaced or swept).
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "state/session_store.hpp"

namespace toolgate::state::detail {

class lease_table {
public:
    bool lock(std::string const& id, std::string const& holder, std::int64_t lease_ms, std::int64_t now_ms) {
        std::lock_guard lk(mu_);
        if (leases_.size() > 4096) sweep(now_ms);
        auto [it, fresh] = leases_.try_emplace(id, lease{holder, now_ms + lease_ms});
        if (fresh) return true;
        if (it->second.holder != holder && it->second.until_ms > now_ms) return false;
        it->second = lease{holder, now_ms + lease_ms};
        return true;
    }
    void unlock(std::string const& id, std::string const& holder) {
        std::lock_guard lk(mu_);
        if (auto it = leases_.find(id); it != leases_.end() && it->second.holder == holder) leases_.erase(it);
    }

private:
    struct lease {
        std::string holder;
        std::int64_t until_ms = 0;
    };
    void sweep(std::int64_t now_ms) {
        for (auto it = leases_.begin(); it != leases_.end();) {
            if (it->second.until_ms <= now_ms) it = leases_.erase(it);
            else ++it;
        }
    }
    std::mutex mu_;
    std::unordered_map<std::string, lease> leases_;
};

// open() for such stores: the lease first (no I/O), then one read under it; a session that turns
// out not to be `owner`'s is let go at once, so another key holds it only for that one read, and
// only in this process.
asio::awaitable<result<session_open>> open_lease_first(session_store& store, std::string id, std::string owner,
                                                       std::string holder, std::int64_t lease_ms, std::int64_t now_ms);

// The session stores whose leases live in this process: lock, unlock and open for both.
class local_lease_store : public session_store {
public:
    asio::awaitable<result<bool>> lock(std::string id, std::string holder, std::int64_t lease_ms,
                                       std::int64_t now_ms) override {
        co_return leases_.lock(id, holder, lease_ms, now_ms);
    }
    asio::awaitable<result<void>> unlock(std::string id, std::string holder) override {
        leases_.unlock(id, holder);
        co_return result<void>();
    }
    asio::awaitable<result<session_open>> open(std::string id, std::string owner, std::string holder,
                                               std::int64_t lease_ms, std::int64_t now_ms) override {
        co_return co_await open_lease_first(*this, std::move(id), std::move(owner), std::move(holder), lease_ms, now_ms);
    }

private:
    lease_table leases_;
};

}  // namespace toolgate::state::detail
