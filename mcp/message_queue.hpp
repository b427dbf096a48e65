#pragma once
// A single-threaded queue of incoming messages with an awaitable pop, used by the transports.
// A steady_timer parked at "never" is the wake-up signal: push() cancels the wait.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/result.hpp>

#include <deque>
#include <string>

namespace toolgate::mcp::detail {

class message_queue {
public:
    explicit message_queue(boost::asio::any_io_executor ex) : signal_(ex, boost::asio::steady_timer::time_point::max()) {}

    void push(std::string m) {
        items_.push_back(std::move(m));
        signal_.cancel();
    }
    void close(boost::system::error_code why) {
        if (!closed_) closed_ = why ? why : boost::asio::error::eof;
        signal_.cancel();
    }
    bool is_closed() const { return static_cast<bool>(closed_); }

    boost::asio::awaitable<boost::system::result<std::string>> pop() {
        for (;;) {
            if (!items_.empty()) {
                auto m = std::move(items_.front());
                items_.pop_front();
                co_return m;
            }
            if (closed_) co_return closed_;
            signal_.expires_at(boost::asio::steady_timer::time_point::max());
            co_await signal_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        }
    }

private:
    boost::asio::steady_timer signal_;
    std::deque<std::string> items_;
    boost::system::error_code closed_;
};

}  // namespace toolgate::mcp::detail
