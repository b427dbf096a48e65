// The session API's logic: the store's answers turned into sessions and errors. Values are built in
// plain functions; coroutine bodies follow the GCC 12 rules in CONTRIBUTING.md.
#include "sessions/service.hpp"

#include "common/ids.hpp"

namespace toolgate::sessions {

namespace json = boost::json;

namespace {

session make_session(std::string owner, create_request req, std::int64_t now) {
    session s;
    s.id = req.id.empty() ? new_id() : std::move(req.id);
    s.owner = std::move(owner);
    s.created_ms = s.updated_ms = now;
    s.lim = req.lim;
    s.expires_ms = now + s.lim.ttl.count();
    s.version = 1;
    s.metadata = std::move(req.metadata);
    s.system = std::move(req.system);
    if (!s.system.empty()) {
        json::object m;
        m["role"] = "system";
        m["content"] = s.system;
        s.messages.push_back(std::move(m));
    }
    return s;
}

create_request implicit_request(std::string id, settings const& cfg, limits const* lim) {
    create_request r;
    r.id = std::move(id);
    r.lim = lim ? *lim : cfg.lim;
    return r;
}

api_error exists_error(std::string const& id) {
    return api_error(409, "invalid_request_error", "session_exists", "a session '" + id + "' exists already");
}

page to_page(state::session_page const& p) {
    page out;
    out.more = p.more;
    for (auto const& row : p.rows)
        if (auto s = from_row(row)) out.items.push_back(std::move(*s));
    return out;
}

}  // namespace

service::service(settings s, std::shared_ptr<state::session_store> store, token_counter count)
    : s_(std::move(s)), store_(std::move(store)), count_(std::move(count)) {}

asio::awaitable<answer<session>> service::create(std::string owner, create_request req, std::int64_t now_ms) {
    auto s = make_session(std::move(owner), std::move(req), now_ms);
    auto made = co_await store_->create(to_row(s));
    if (!made) {
        stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
        co_return store_error();
    }
    if (!*made) co_return exists_error(s.id);
    stats_.created.fetch_add(1, std::memory_order_relaxed);
    co_return s;
}

asio::awaitable<answer<session>> service::get(std::string id, std::string owner, std::int64_t now_ms) {
    if (!valid_id(id)) co_return invalid_id_error();
    auto found = co_await store_->get(id, now_ms);
    if (!found) {
        stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
        co_return store_error();
    }
    auto v = decide(found->state, found->row.owner, owner, false);
    if (v == verdict::gone) co_return gone_error(id);
    if (v != verdict::use) co_return not_found_error(id);
    auto s = from_row(found->row);
    if (!s) co_return not_found_error(id);  // a damaged row is no session
    co_return std::move(*s);
}

asio::awaitable<answer<page>> service::list(std::string owner, std::string after, std::size_t limit, std::int64_t now_ms) {
    if (!after.empty() && !valid_id(after)) co_return invalid_id_error();
    auto p = co_await store_->list(std::move(owner), std::move(after), limit, now_ms);
    if (!p) {
        stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
        co_return store_error();
    }
    co_return to_page(*p);
}

asio::awaitable<std::optional<api_error>> service::erase(std::string id, std::string owner, std::int64_t now_ms) {
    if (!valid_id(id)) co_return invalid_id_error();
    auto found = co_await store_->get(id, now_ms);
    if (!found) {
        stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
        co_return store_error();
    }
    auto v = decide(found->state, found->row.owner, owner, false);
    if (v == verdict::gone) co_return gone_error(id);
    if (v != verdict::use) co_return not_found_error(id);
    auto done = co_await store_->erase(id, owner, now_ms);
    if (!done) {
        stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
        co_return store_error();
    }
    if (!*done) co_return gone_error(id);  // it ended between the two calls
    co_return std::nullopt;
}

asio::awaitable<answer<turn>> service::begin(std::string id, std::string owner, std::int64_t now_ms, limits const* lim) {
    if (!valid_id(id)) co_return invalid_id_error();
    turn t;
    t.s.id = id;
    t.holder = fast_hex(16);
    // Whose it is is read before its lease is touched: another key neither learns that it exists
    // (409) nor holds it even for a moment (state::session_store::open).
    auto opened = co_await store_->open(id, owner, t.holder, s_.lease.count(), now_ms);
    if (!opened) {
        stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
        co_return store_error();
    }
    t.open = opened->locked;
    auto const& found = opened->found;
    auto v = decide(found.state, found.row.owner, owner, s_.create_on_use);
    if (v != verdict::use && v != verdict::create) {
        co_await release(t);
        if (v == verdict::gone) co_return gone_error(id);
        co_return not_found_error(id);
    }
    if (!t.open) {
        stats_.busy.fetch_add(1, std::memory_order_relaxed);
        co_return busy_error(id);
    }
    if (v == verdict::create) {
        auto fresh = make_session(owner, implicit_request(id, s_, lim), now_ms);
        auto made = co_await store_->create(to_row(fresh));
        if (!made || !*made) {
            // Made meanwhile through POST /v1/sessions on another replica, or the store failed.
            co_await release(t);
            if (!made) co_return store_error();
            co_return busy_error(id);
        }
        stats_.created.fetch_add(1, std::memory_order_relaxed);
        t.s = std::move(fresh);
        t.created = true;
    } else {
        auto s = from_row(found.row);
        if (!s) {
            co_await release(t);
            co_return not_found_error(id);  // a damaged row is no session
        }
        t.s = std::move(*s);
    }
    t.history = t.s.messages.size();
    co_return std::move(t);
}

std::optional<api_error> service::prepare(turn& t, json::array const& incoming, json::array& out) const {
    out = t.s.messages;
    for (auto const& m : incoming) out.push_back(m);
    auto fit = fit_history(out, t.s.messages.size(), t.s.lim, s_.max_history_bytes, count_);
    if (!fit.fits) {
        stats_.rejected.fetch_add(1, std::memory_order_relaxed);
        return limit_error(fit.over);
    }
    if (fit.dropped > 0) {
        stats_.trimmed.fetch_add(1, std::memory_order_relaxed);
        // The history loses what was dropped from the front of `out`.
        json::array kept;
        auto history_end = out.size() - incoming.size();
        for (std::size_t i = 0; i < history_end; ++i) kept.push_back(out[i]);
        t.s.messages = std::move(kept);
        t.history = t.s.messages.size();
    }
    return std::nullopt;
}

asio::awaitable<bool> service::commit(turn& t, json::array added, std::int64_t now_ms) {
    for (auto& m : added) t.s.messages.push_back(std::move(m));
    auto fit = fit_history(t.s.messages, t.history, t.s.lim, s_.max_history_bytes, count_);
    if (fit.dropped > 0) stats_.trimmed.fetch_add(1, std::memory_order_relaxed);
    t.s.version += 1;
    t.s.updated_ms = now_ms;
    t.s.expires_ms = now_ms + t.s.lim.ttl.count();
    t.s.message_count = t.s.messages.size();
    // Saved and the lease given back in one step (one script on Redis).
    t.open = false;
    auto saved = co_await store_->save_and_unlock(to_row(t.s), t.holder, now_ms);
    bool ok = saved && *saved;
    if (ok) stats_.turns.fetch_add(1, std::memory_order_relaxed);
    else stats_.save_failures.fetch_add(1, std::memory_order_relaxed);
    co_return ok;
}

asio::awaitable<void> service::release(turn& t) {
    if (!t.open) co_return;
    t.open = false;
    auto r = co_await store_->unlock(t.s.id, t.holder);
    if (!r) stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace toolgate::sessions
