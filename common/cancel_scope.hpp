#pragma once
// Two ways one cancel_token follows another.
//
// scoped_deadline: a child of a request's token that also fires (cancel_reason::timeout) at a
// deadline on a clock: one tool call, one model turn. Same thread as the parent, like cancel_token.
//
// bridge_cancel: a token owned by another thread (the MCP thread) that follows a token of the
// caller's thread; the cancel is posted over, so each token is only touched by its own thread.
#include <boost/asio/any_io_executor.hpp>

#include <memory>

#include "common/cancel.hpp"
#include "common/time_source.hpp"

namespace toolgate {

class scoped_deadline {
public:
    scoped_deadline(cancel_token& parent, time_source::time_point deadline, asio::any_io_executor ex,
                    time_source& c = time_source::steady());
    scoped_deadline(scoped_deadline const&) = delete;
    scoped_deadline& operator=(scoped_deadline const&) = delete;
    ~scoped_deadline();

    cancel_token& token() noexcept { return child_; }
    // Cancelled by its own deadline (not by the parent).
    bool expired() const noexcept { return child_.cancelled() && !parent_.cancelled() &&
                                           child_.reason() == cancel_reason::timeout; }

private:
    cancel_token& parent_;
    cancel_token child_;
    cancel_token::subscription from_parent_;
    std::shared_ptr<cancel_token*> target_;  // what the alarm_timer's callback may still cancel
    alarm_timer alarm_;
};

struct cancel_bridge {
    std::shared_ptr<cancel_token> remote;  // use and cancel only on the remote executor's thread
    cancel_token::subscription follow;     // on the caller's thread; ends the link when dropped
};

// `source` may be null (a caller that never cancels): the remote token then never fires.
cancel_bridge bridge_cancel(cancel_token* source, asio::any_io_executor remote_ex);

}  // namespace toolgate
