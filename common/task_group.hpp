#pragma once
// A task group: coroutines that one owner starts, can signal, and waits for, so that no coroutine
// outlives what it refers to (Boost.Beast's server-flex-awaitable example is the model). Members may
// run on other threads' executors; each member's executor must run on one thread (an io_context
// with one thread, or a strand), which is how every executor here is used.
//
// Shutdown goes graceful first, then terminal, always bounded:
//     if (!co_await group.wait_for(grace)) {        // members finish on their own...
//         group.emit(asio::cancellation_type::terminal);  // ...or their pending operations abort
//         co_await group.wait_for(last_chance);
//     }
// A member coroutine sees emit() through its cancellation state; by default only terminal
// cancellation reaches its pending operations (Asio's default filter).
//
// Thread safety: every function may be called from any thread.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>

#include "common/time_source.hpp"

namespace toolgate {

class task_group {
public:
    using exit_handler = std::function<void(std::exception_ptr)>;

    task_group();
    task_group(task_group const&) = delete;
    task_group& operator=(task_group const&) = delete;
    // Members still running keep the group's state alive; the owner should have waited for them.
    ~task_group();

    // Starts `task` on `ex` as a member. `on_exit` runs on `ex` when it ends (with the exception
    // that ended it, or null); a member's exception goes nowhere else.
    void spawn(asio::any_io_executor ex, asio::awaitable<void> task, exit_handler on_exit = {});

    // Sends `type` to every member now in the group, each on its own executor.
    void emit(asio::cancellation_type type);

    // Completes once the group is empty (true), or when `bound` has passed on `c` (false).
    asio::awaitable<bool> wait_for(time_source::duration bound, time_source& c = time_source::steady());

    std::size_t size() const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace toolgate
