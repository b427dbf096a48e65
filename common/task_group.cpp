#include "common/task_group.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstdint>
#include <list>
#include <mutex>
#include <vector>

namespace toolgate {

struct task_group::state {
    struct member {
        std::uint64_t id;
        asio::any_io_executor ex;
        asio::cancellation_signal signal;  // touched only on ex's thread
    };
    struct waiter {
        asio::any_io_executor ex;
        std::shared_ptr<alarm_timer> wake;  // cancelled on ex's thread when the group empties
    };

    mutable std::mutex mu;
    std::list<member> members;
    std::vector<waiter> waiters;
    std::uint64_t next_id = 0;

    // A member ended (on its executor's thread).
    void remove(std::list<member>::iterator it) {
        std::vector<waiter> wake;
        {
            std::lock_guard lock(mu);
            members.erase(it);
            if (members.empty()) wake.swap(waiters);
        }
        // Moved into the posted function: the alarm's last reference must drop on its own thread.
        for (auto& w : wake) asio::post(w.ex, [a = std::move(w.wake)] { a->cancel(); });
    }
};

task_group::task_group() : state_(std::make_shared<state>()) {}

task_group::~task_group() = default;

void task_group::spawn(asio::any_io_executor ex, asio::awaitable<void> task, exit_handler on_exit) {
    std::list<state::member>::iterator it;
    {
        std::lock_guard lock(state_->mu);
        it = state_->members.emplace(state_->members.end());
        it->id = state_->next_id++;
        it->ex = ex;
    }
    auto slot = it->signal.slot();
    asio::co_spawn(ex, std::move(task),
                   asio::bind_cancellation_slot(slot, [st = state_, it, on_exit = std::move(on_exit)](std::exception_ptr e) {
                       if (on_exit) on_exit(e);
                       st->remove(it);
                   }));
}

void task_group::emit(asio::cancellation_type type) {
    std::lock_guard lock(state_->mu);
    for (auto& m : state_->members) {
        // On the member's own thread: its signal is not thread-safe, and it may have ended by then
        // (it is looked up again; members end on that same thread, so it cannot end meanwhile).
        asio::post(m.ex, [st = state_, id = m.id, type] {
            asio::cancellation_signal* sig = nullptr;
            {
                std::lock_guard lock(st->mu);
                for (auto& mm : st->members)
                    if (mm.id == id) sig = &mm.signal;
            }
            if (sig) sig->emit(type);
        });
    }
}

asio::awaitable<bool> task_group::wait_for(time_source::duration bound, time_source& c) {
    auto ex = co_await asio::this_coro::executor;
    auto wake = std::make_shared<alarm_timer>(c, ex);
    wake->expires_after(bound);
    {
        std::lock_guard lock(state_->mu);
        if (state_->members.empty()) co_return true;
        state::waiter w;
        w.ex = ex;
        w.wake = wake;
        state_->waiters.push_back(std::move(w));
    }
    co_await wake->wait();
    std::lock_guard lock(state_->mu);
    std::erase_if(state_->waiters, [&](state::waiter const& w) { return w.wake == wake; });
    co_return state_->members.empty();
}

std::size_t task_group::size() const {
    std::lock_guard lock(state_->mu);
    return state_->members.size();
}

}  // namespace toolgate
