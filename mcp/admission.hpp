#pragma once
// Whether a tool call may go to its server now, sans I/O: the server's circuit breaker first, then
// its concurrency limit with a bounded queue. The caller passes the time and does what the answer
// says (send the call, wait in the queue, or answer an error); the aggregator keeps only the
// waiting itself. A slot freed while calls wait is handed to the first of them, so a call that
// arrives later cannot take it first. Not thread-safe: one per server, on the MCP thread.
#include "mcp/resilience.hpp"

namespace toolgate::mcp {

class call_admission {
public:
    using clock = resilience::clock;
    enum class verdict { run, queue, busy, circuit_open };
    // How an admitted call ended, for the breaker.
    enum class ending { success, failure, abandoned };

    struct ticket {
        verdict what = verdict::busy;
        circuit_breaker::decision breaker = circuit_breaker::decision::reject;
    };

    call_admission(unsigned max_concurrency, unsigned max_queue, circuit_breaker& breaker)
        : max_concurrency_(max_concurrency), max_queue_(max_queue), breaker_(breaker) {}

    // run: the call holds a slot. queue: it waits for one (granted() or left_queue() follows).
    ticket admit(clock::time_point now) {
        ticket t;
        t.breaker = breaker_.admit(now);
        if (t.breaker == circuit_breaker::decision::reject) {
            t.what = verdict::circuit_open;
            return t;
        }
        if (in_flight_ < max_concurrency_) {
            ++in_flight_;
            t.what = verdict::run;
            return t;
        }
        if (queued_ >= max_queue_) {
            breaker_.abandon(t.breaker);
            t.what = verdict::busy;
            return t;
        }
        ++queued_;
        t.what = verdict::queue;
        return t;
    }

    // A queued call gives up (its wait timed out or it was cancelled) without a slot.
    void left_queue(ticket const& t) {
        --queued_;
        breaker_.abandon(t.breaker);
    }

    // A call that held a slot ended. Returns true when the slot passes to the first queued call
    // (the caller wakes it; it then runs with the slot), false when the slot is free again.
    // `changed` is set when the breaker opened or closed.
    bool finish(ticket const& t, ending how, clock::time_point now, bool* changed = nullptr) {
        bool c = false;
        if (how == ending::abandoned) breaker_.abandon(t.breaker);
        else c = breaker_.record(t.breaker, how == ending::failure, now);
        if (changed) *changed = c;
        if (queued_ > 0) {
            --queued_;
            return true;
        }
        --in_flight_;
        return false;
    }

    unsigned in_flight() const noexcept { return in_flight_; }
    unsigned queued() const noexcept { return queued_; }

private:
    unsigned max_concurrency_;
    unsigned max_queue_;
    circuit_breaker& breaker_;
    unsigned in_flight_ = 0;
    unsigned queued_ = 0;
};

}  // namespace toolgate::mcp
