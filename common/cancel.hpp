#pragma once
// A cancellation source for one client request. Fired when the client goes away; whoever started
// work on the request's behalf (an upstream HTTP exchange, later MCP tool calls) subscribes and tears
// its work down. Not thread-safe by design: a request lives on one io_context thread, and the token,
// its subscribers and cancel() are all used from that thread only.
#include <functional>
#include <list>
#include <utility>

namespace toolgate {

enum class cancel_reason { none, client_gone, timeout };

class cancel_token {
public:
    using callback = std::function<void()>;

    class subscription {
    public:
        subscription() = default;
        subscription(cancel_token* token, std::list<callback>::iterator it) : token_(token), it_(it) {}
        subscription(subscription&& o) noexcept : token_(std::exchange(o.token_, nullptr)), it_(o.it_) {}
        subscription& operator=(subscription&& o) noexcept {
            if (this != &o) {
                reset();
                token_ = std::exchange(o.token_, nullptr);
                it_ = o.it_;
            }
            return *this;
        }
        subscription(subscription const&) = delete;
        subscription& operator=(subscription const&) = delete;
        ~subscription() { reset(); }
        void reset() {
            if (token_ != nullptr && !token_->cancelled_) token_->callbacks_.erase(it_);
            token_ = nullptr;
        }

    private:
        cancel_token* token_ = nullptr;
        std::list<callback>::iterator it_{};
    };

    cancel_token() = default;
    cancel_token(cancel_token const&) = delete;
    cancel_token& operator=(cancel_token const&) = delete;

    bool cancelled() const noexcept { return cancelled_; }
    cancel_reason reason() const noexcept { return reason_; }

    void cancel(cancel_reason why = cancel_reason::client_gone) {
        if (cancelled_) return;
        cancelled_ = true;
        reason_ = why;
        auto callbacks = std::move(callbacks_);
        for (auto& cb : callbacks)
            if (cb) cb();
    }

    // The callback runs at most once, on cancel(); if already cancelled it runs right away.
    [[nodiscard]] subscription subscribe(callback cb) {
        if (cancelled_) {
            cb();
            return {};
        }
        return subscription(this, callbacks_.insert(callbacks_.end(), std::move(cb)));
    }

private:
    bool cancelled_ = false;
    cancel_reason reason_ = cancel_reason::none;
    std::list<callback> callbacks_;
};

}  // namespace toolgate
