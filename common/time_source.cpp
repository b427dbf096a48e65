#include "common/time_source.hpp"

#include "common/asio_util.hpp"

namespace toolgate {

namespace {

class steady_source final : public time_source {
public:
    time_point now() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace

time_source& time_source::steady() noexcept {
    static steady_source s;
    return s;
}

alarm_timer::alarm_timer(time_source& c, asio::any_io_executor ex) : clock_(c) {
    if (c.manual()) state_ = std::make_shared<time_source::alarm_state>(std::move(ex));
    else timer_.emplace(std::move(ex), time_source::time_point::max());
}

alarm_timer::~alarm_timer() {
    if (state_) {
        state_->expiry = time_source::time_point::max();
        state_->fired = false;
        state_->timer.cancel();
    }
}

void alarm_timer::expires_at(time_source::time_point t) {
    if (!state_) {
        timer_->expires_at(t);
        return;
    }
    state_->expiry = t;
    state_->fired = false;
    state_->timer.cancel();
    clock_.armed(state_);
}

void alarm_timer::cancel() {
    if (!state_) {
        timer_->cancel();
        return;
    }
    state_->fired = false;
    state_->timer.cancel();
}

asio::awaitable<boost::system::error_code> alarm_timer::wait() {
    if (!state_) {
        auto [ec] = co_await timer_->async_wait(nothrow_awaitable);
        co_return ec;
    }
    auto st = state_;
    if (st->expiry <= clock_.now()) co_return boost::system::error_code{};
    ++st->waiting;
    auto [ec] = co_await st->timer.async_wait(nothrow_awaitable);
    --st->waiting;
    if (ec == asio::error::operation_aborted && st->fired) ec = {};  // fired stays set until re-armed or cancelled
    co_return ec;
}

}  // namespace toolgate
