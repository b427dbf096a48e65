#pragma once
// The Redis connection pool behind state/redis.hpp (internal to state/ and its tests): one
// pipelined connection per executor, found by comparing the caller's executor, created on first
// use under a short mutex and from then on used only on that executor's thread.
//
// A connection connects (AUTH, SELECT) on its first command, writes commands in order and matches
// replies first in, first out. Each command is bounded by `timeout`, connecting included; on any
// failure every command in flight fails (errc::unavailable, or errc::timeout when it was the
// deadline), the socket is closed, and the next command connects again, but at most one connect
// attempt per `reconnect_backoff`: commands in between fail at once with errc::unavailable.
//
// Lifetime: sockets and timers are owned by the coroutines that use them, never by the pool, so
// the pool may be destroyed before or after the io_contexts it served. An open connection keeps a
// read pending on its executor (it notices a server that went away while idle), so a worker's
// io_context::run() does not return on its own while it has one: stop it, as the gateway does.
//
// Thread safety: every member may be called from any thread; a call runs on, and completes on,
// the caller's executor (which must run on one thread, as every executor here does).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "state/errors.hpp"
#include "state/redis.hpp"
#include "state/redis_proto.hpp"

namespace toolgate::state {

namespace detail {
class redis_connection;
struct redis_shared;
}  // namespace detail

class redis_pool {
public:
    explicit redis_pool(redis_options const& opts);  // throws std::invalid_argument (the URL)
    ~redis_pool();
    redis_pool(redis_pool const&) = delete;
    redis_pool& operator=(redis_pool const&) = delete;

    // One command. An error reply (ERR, WRONGTYPE, a script's error) is a reply, not an error.
    asio::awaitable<result<detail::redis_reply>> command(std::vector<std::string> args);
    // Several commands written at once; their replies in the same order.
    asio::awaitable<result<std::vector<detail::redis_reply>>> pipeline(std::vector<std::vector<std::string>> commands);
    // EVALSHA, falling back to EVAL when the server does not know the script (NOSCRIPT).
    asio::awaitable<result<detail::redis_reply>> eval(detail::redis_script const& script, std::vector<std::string> keys,
                                                      std::vector<std::string> args);

    std::string const& prefix() const;
    redis_stats const& stats() const;
    std::size_t connections() const;  // executors that have a connection

private:
    std::shared_ptr<detail::redis_connection> connection_for(asio::any_io_executor const& ex);

    std::shared_ptr<detail::redis_shared> shared_;
    mutable std::mutex mu_;
    std::vector<std::pair<asio::any_io_executor, std::shared_ptr<detail::redis_connection>>> conns_;
};

}  // namespace toolgate::state
