// Sessions in this process only (tests, state.persist: false): a map under one mutex, an ordered
// index per owner, expired and deleted rows kept as tombstones until they lapse.
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "state/session_leases.hpp"
#include "state/session_store.hpp"

namespace toolgate::state {

namespace {

class memory_sessions final : public detail::local_lease_store {
public:
    memory_sessions(std::int64_t tombstone_ms, std::size_t max_sessions, std::size_t max_bytes)
        : tombstone_ms_(tombstone_ms), max_sessions_(max_sessions), max_bytes_(max_bytes) {}

    std::string_view kind() const override { return "memory"; }

    asio::awaitable<result<bool>> create(session_row row) override {
        std::lock_guard lk(mu_);
        auto now = row.created_ms;
        if (auto it = rows_.find(row.id); it != rows_.end()) {
            if (state_of(it->second, now) != session_state::missing) co_return false;
            drop(it);
        }
        auto size = size_of(row);
        if (rows_.size() >= max_sessions_ || bytes_ + size > max_bytes_) sweep(now);
        if (rows_.size() >= max_sessions_ || bytes_ + size > max_bytes_)
            co_return result<bool>(boost::system::in_place_error, errc::overloaded);
        bytes_ += size;
        row.version = 1;
        index_[row.owner].emplace(row.created_ms, row.id);
        auto id = row.id;
        rows_.emplace(std::move(id), entry{std::move(row), 0});
        co_return true;
    }

    asio::awaitable<result<session_lookup>> get(std::string id, std::int64_t now_ms) override {
        std::lock_guard lk(mu_);
        session_lookup out;
        auto it = rows_.find(id);
        if (it == rows_.end()) co_return out;
        out.state = state_of(it->second, now_ms);
        if (out.state == session_state::live) out.row = it->second.row;
        else if (out.state == session_state::gone) {
            out.row.id = it->second.row.id;
            out.row.owner = it->second.row.owner;
        }
        co_return out;
    }

    asio::awaitable<result<bool>> save(session_row row, std::int64_t now_ms) override {
        std::lock_guard lk(mu_);
        auto it = rows_.find(row.id);
        if (it == rows_.end() || state_of(it->second, now_ms) != session_state::live) co_return false;
        auto& cur = it->second.row;
        if (cur.version != row.version - 1 || cur.owner != row.owner) co_return false;
        auto before = size_of(cur);
        auto after = row.meta.size() + row.messages.size() + cur.id.size() + cur.owner.size();
        if (after > before && bytes_ - before + after > max_bytes_) {
            sweep(now_ms);
            if (bytes_ - before + after > max_bytes_) co_return result<bool>(boost::system::in_place_error, errc::overloaded);
        }
        bytes_ = bytes_ - before + after;
        cur.version = row.version;
        cur.meta = std::move(row.meta);
        cur.messages = std::move(row.messages);
        cur.updated_ms = row.updated_ms;
        cur.expires_ms = row.expires_ms;
        co_return true;
    }

    asio::awaitable<result<bool>> erase(std::string id, std::string owner, std::int64_t now_ms) override {
        std::lock_guard lk(mu_);
        auto it = rows_.find(id);
        if (it == rows_.end() || it->second.row.owner != owner || state_of(it->second, now_ms) != session_state::live)
            co_return false;
        unindex(it->second.row);
        it->second.gone_until_ms = now_ms + tombstone_ms_;
        bytes_ -= it->second.row.meta.size() + it->second.row.messages.size();
        it->second.row.meta.clear();
        it->second.row.messages.clear();
        co_return true;
    }

    asio::awaitable<result<session_page>> list(std::string owner, std::string after_id, std::size_t limit,
                                               std::int64_t now_ms) override {
        std::lock_guard lk(mu_);
        session_page page;
        auto ix = index_.find(owner);
        if (ix == index_.end()) co_return page;
        auto& order = ix->second;
        auto end = order.end();
        if (!after_id.empty()) {
            auto it = rows_.find(after_id);
            if (it == rows_.end() || it->second.row.owner != owner || state_of(it->second, now_ms) != session_state::live)
                co_return page;
            end = order.find({it->second.row.created_ms, after_id});
        }
        for (auto pos = std::make_reverse_iterator(end); pos != order.rend(); ++pos) {
            auto it = rows_.find(pos->second);
            if (it == rows_.end() || state_of(it->second, now_ms) != session_state::live) continue;
            if (page.rows.size() == limit) {
                page.more = true;
                break;
            }
            auto r = it->second.row;
            r.messages.clear();
            page.rows.push_back(std::move(r));
        }
        co_return page;
    }


private:
    struct entry {
        session_row row;
        std::int64_t gone_until_ms = 0;  // deleted: the tombstone's end
    };
    using rows_map = std::unordered_map<std::string, entry>;

    session_state state_of(entry const& e, std::int64_t now) const {
        if (e.gone_until_ms > 0) return now < e.gone_until_ms ? session_state::gone : session_state::missing;
        if (now < e.row.expires_ms) return session_state::live;
        return now < e.row.expires_ms + tombstone_ms_ ? session_state::gone : session_state::missing;
    }
    void unindex(session_row const& r) {
        if (auto ix = index_.find(r.owner); ix != index_.end()) {
            ix->second.erase({r.created_ms, r.id});
            if (ix->second.empty()) index_.erase(ix);
        }
    }
    void drop(rows_map::iterator it) {
        unindex(it->second.row);
        bytes_ -= size_of(it->second.row);
        rows_.erase(it);
    }
    static std::size_t size_of(session_row const& r) { return r.id.size() + r.owner.size() + r.meta.size() + r.messages.size(); }
    void sweep(std::int64_t now) {
        for (auto it = rows_.begin(); it != rows_.end();) {
            auto next = std::next(it);
            if (state_of(it->second, now) == session_state::missing) drop(it);
            it = next;
        }
    }

    std::int64_t tombstone_ms_;
    std::size_t max_sessions_;
    std::size_t max_bytes_;
    std::size_t bytes_ = 0;  // ids, owners, meta and messages of every row held
    std::mutex mu_;
    rows_map rows_;
    std::map<std::string, std::set<std::pair<std::int64_t, std::string>>> index_;
};

}  // namespace

std::shared_ptr<session_store> make_memory_sessions(std::int64_t tombstone_ms, std::size_t max_sessions,
                                                   std::size_t max_bytes) {
    return std::make_shared<memory_sessions>(tombstone_ms, max_sessions, max_bytes);
}

}  // namespace toolgate::state
