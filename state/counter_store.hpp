#pragma once
// Counters behind the rate limits: sliding windows (window.hpp) and concurrency leases.
// Implementations: memory (one process, lock-striped), redis (shared by replicas; each admit is
// one Lua script). Callable from any worker thread; each call completes on the caller's executor.
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "state/errors.hpp"
#include "state/window.hpp"

namespace toolgate::state {

namespace asio = boost::asio;

struct limit_check {
    std::string key;  // the counter's name, e.g. "rl:key:key_ab12:rpm" (the store adds its prefix)
    window_spec spec;
    std::int64_t amount = 1;
};

struct admit_result {
    bool allowed = false;
    std::size_t rejected = 0;             // when refused: the first check that did not fit
    std::vector<window_verdict> verdicts;  // one per check, same order
};

class counter_store {
public:
    virtual ~counter_store() = default;
    virtual std::string_view kind() const = 0;  // "memory", "redis"

    // All or nothing: counts every check's amount at `now_ms` only if every check fits.
    virtual asio::awaitable<result<admit_result>> admit(std::vector<limit_check> const& checks, std::int64_t now_ms) = 0;
    // Corrects a count made at `at_ms` by `delta` (the real tokens minus the estimate).
    virtual asio::awaitable<result<void>> adjust(limit_check const& check, std::int64_t at_ms, std::int64_t delta,
                                                 std::int64_t now_ms) = 0;
    // A concurrency slot under `key` for `lease` (unique per request); false when `limit` are held.
    // A lease not released within `lease_ms` lapses (a replica that died keeps no slot forever).
    virtual asio::awaitable<result<bool>> acquire(std::string const& key, std::int64_t limit, std::string const& lease,
                                                  std::int64_t now_ms, std::int64_t lease_ms) = 0;
    virtual asio::awaitable<result<void>> release(std::string const& key, std::string const& lease) = 0;

    // The same, answered at once by a store that needs no I/O (memory), which spares the caller a
    // coroutine frame per call on the request path; nullopt / false: await the call above instead.
    virtual std::optional<result<admit_result>> admit_now(std::vector<limit_check> const& checks, std::int64_t now_ms) {
        (void)checks;
        (void)now_ms;
        return std::nullopt;
    }
    virtual bool adjust_now(limit_check const& check, std::int64_t at_ms, std::int64_t delta, std::int64_t now_ms) {
        (void)check;
        (void)at_ms;
        (void)delta;
        (void)now_ms;
        return false;
    }
};

}  // namespace toolgate::state
