// The session store's composed steps, for stores where each call is cheap (memory, sqlite).
#include "state/session_leases.hpp"
#include "state/session_store.hpp"

namespace toolgate::state {

asio::awaitable<result<session_open>> session_store::open(std::string id, std::string owner, std::string holder,
                                                          std::int64_t lease_ms, std::int64_t now_ms) {
    session_open out;
    auto first = co_await get(id, now_ms);
    if (!first) co_return first.error();
    out.found = std::move(*first);
    bool mine = out.found.state == session_state::live && out.found.row.owner == owner;
    if (out.found.state != session_state::missing && !mine) co_return out;
    auto locked = co_await lock(id, holder, lease_ms, now_ms);
    if (!locked) co_return locked.error();
    if (!*locked) co_return out;
    out.locked = true;
    // Read again under the lease: a request that ended just before may have saved meanwhile.
    auto again = co_await get(id, now_ms);
    if (!again) {
        co_await unlock(id, holder);
        co_return again.error();
    }
    out.found = std::move(*again);
    co_return out;
}

asio::awaitable<result<bool>> session_store::save_and_unlock(session_row row, std::string holder, std::int64_t now_ms) {
    auto id = row.id;
    auto saved = co_await save(std::move(row), now_ms);
    co_await unlock(std::move(id), std::move(holder));
    co_return saved;
}

namespace detail {

asio::awaitable<result<session_open>> open_lease_first(session_store& store, std::string id, std::string owner,
                                                       std::string holder, std::int64_t lease_ms, std::int64_t now_ms) {
    session_open out;
    auto locked = co_await store.lock(id, holder, lease_ms, now_ms);
    if (!locked) co_return locked.error();
    auto found = co_await store.get(id, now_ms);
    if (!found) {
        if (*locked) co_await store.unlock(id, holder);
        co_return found.error();
    }
    out.found = std::move(*found);
    bool mine = out.found.state == session_state::live && out.found.row.owner == owner;
    out.locked = *locked && (mine || out.found.state == session_state::missing);
    if (*locked && !out.locked) co_await store.unlock(id, holder);
    co_return out;
}

}  // namespace detail

}  // namespace toolgate::state
