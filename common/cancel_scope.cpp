#include "common/cancel_scope.hpp"

#include <boost/asio/post.hpp>

namespace toolgate {

scoped_deadline::scoped_deadline(cancel_token& parent, time_source::time_point deadline, asio::any_io_executor ex, time_source& c)
    : parent_(parent), target_(std::make_shared<cancel_token*>(&child_)), alarm_(c, std::move(ex)) {
    from_parent_ = parent.subscribe([this] { child_.cancel(parent_.reason()); });
    if (child_.cancelled()) return;
    alarm_.expires_at(deadline);
    // The callback may run after this object is gone (a completion already queued when the
    // destructor cancels the alarm_timer): it only reaches the child through target_, cleared then.
    alarm_.async_wait([t = target_](boost::system::error_code ec) {
        if (!ec && *t != nullptr) (*t)->cancel(cancel_reason::timeout);
    });
}

scoped_deadline::~scoped_deadline() {
    *target_ = nullptr;
    alarm_.cancel();
}

cancel_bridge bridge_cancel(cancel_token* source, asio::any_io_executor remote_ex) {
    cancel_bridge b;
    b.remote = std::make_shared<cancel_token>();
    if (source == nullptr) return b;
    b.follow = source->subscribe([ex = std::move(remote_ex), remote = b.remote, source] {
        asio::post(ex, [remote, why = source->reason()] { remote->cancel(why); });
    });
    return b;
}

}  // namespace toolgate
