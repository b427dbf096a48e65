#include "gateway/routing/limiter.hpp"

#include "common/asio_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace toolgate::gateway::routing {

struct slot_limiter::waiter {
    asio::any_io_executor ex;
    asio::steady_timer timer;
    bool granted = false;  // guarded by slot_limiter::mu_
    explicit waiter(asio::any_io_executor e) : ex(e), timer(e) {}
};

asio::awaitable<bool> slot_limiter::acquire(std::chrono::milliseconds timeout, cancel_token& cancel) {
    if (max_ == 0) co_return true;
    auto ex = co_await asio::this_coro::executor;
    std::shared_ptr<waiter> w;
    {
        std::lock_guard lock(mu_);
        if (in_use_ < max_) {
            ++in_use_;
            co_return true;
        }
        if (waiters_.size() >= max_queue_) co_return false;
        w = std::make_shared<waiter>(ex);
        w->timer.expires_after(timeout);
        waiters_.push_back(w);
    }
    // The token and the timer both belong to this thread.
    auto sub = cancel.subscribe([w] { w->timer.cancel(); });
    // An already cancelled token ran the callback before there was a wait to cancel.
    if (!cancel.cancelled()) co_await w->timer.async_wait(nothrow_awaitable);
    std::lock_guard lock(mu_);
    if (w->granted) co_return true;
    waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), w), waiters_.end());
    co_return false;
}

void slot_limiter::release() {
    if (max_ == 0) return;
    std::shared_ptr<waiter> next;
    {
        std::lock_guard lock(mu_);
        if (waiters_.empty()) {
            if (in_use_ > 0) --in_use_;
            return;
        }
        next = std::move(waiters_.front());
        waiters_.pop_front();
        next->granted = true;  // the slot passes on; in_use_ stays
    }
    asio::post(next->ex, [next] { next->timer.cancel(); });
}

}  // namespace toolgate::gateway::routing
