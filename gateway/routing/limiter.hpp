#pragma once
// Bounded concurrency toward one target, shared by all worker threads: at most `max` calls in
// flight, at most `max_queue` waiting (each on its own thread's executor, woken by a post there),
// the rest refused at once. A released slot passes straight to the oldest waiter.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>

#include "common/cancel.hpp"

namespace toolgate::gateway::routing {

namespace asio = boost::asio;

class slot_limiter {
public:
    slot_limiter(unsigned max, unsigned max_queue) : max_(max), max_queue_(max_queue) {}
    slot_limiter(slot_limiter const&) = delete;
    slot_limiter& operator=(slot_limiter const&) = delete;

    // True when a slot is held (give it back with release()); false when the queue is full, the
    // wait timed out or the request was cancelled.
    asio::awaitable<bool> acquire(std::chrono::milliseconds timeout, cancel_token& cancel);
    void release();

private:
    struct waiter;
    mutable std::mutex mu_;
    unsigned max_;
    unsigned max_queue_;
    unsigned in_use_ = 0;
    std::deque<std::shared_ptr<waiter>> waiters_;
};

}  // namespace toolgate::gateway::routing
