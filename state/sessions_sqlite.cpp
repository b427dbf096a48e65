// Sessions in the state's SQLite file (the embedded default): a row per session, written by the
// writer thread (each write awaited until committed, so a stored turn survives kill -9), read on
// the reader thread. Leases stay in this process: one gateway owns one SQLite file.
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <limits>

#include "common/asio_util.hpp"
#include "state/session_leases.hpp"
#include "state/session_store.hpp"
#include "state/sqlite_db.hpp"

namespace toolgate::state {

namespace {

using detail::sqlite_conn;
using detail::sqlite_stmt;

constexpr char const* columns = "SELECT id, owner, created_ms, updated_ms, expires_ms, version, meta";

// Sweeps lapsed tombstones every this many creates.
constexpr unsigned sweep_every = 256;

session_row read_row(sqlite_stmt& s, bool with_messages) {
    session_row r;
    r.id = s.text(0);
    r.owner = s.text(1);
    r.created_ms = s.int64(2);
    r.updated_ms = s.int64(3);
    r.expires_ms = s.int64(4);
    r.version = s.int64(5);
    r.meta = s.text(6);
    if (with_messages) r.messages = s.text(7);
    return r;
}

detail::write_fn create_fn(session_row row, std::int64_t tomb, bool sweep) {
    return [row = std::move(row), tomb, sweep](sqlite_conn& c) -> std::int64_t {
        auto now = row.created_ms;
        if (sweep) {
            c.prepare("DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE (gone_ms > 0 AND gone_ms <= ?1) "
                      "OR (gone_ms = 0 AND expires_ms + ?2 <= ?1) LIMIT 1000)")
                .bind(1, now)
                .bind(2, tomb)
                .run();
        }
        c.prepare("DELETE FROM sessions WHERE id = ?1 AND ((gone_ms > 0 AND gone_ms <= ?2) OR "
                  "(gone_ms = 0 AND expires_ms + ?3 <= ?2))")
            .bind(1, row.id)
            .bind(2, now)
            .bind(3, tomb)
            .run();
        c.prepare("INSERT OR IGNORE INTO sessions(id, owner, created_ms, updated_ms, expires_ms, gone_ms, version, meta, "
                  "messages) VALUES(?1, ?2, ?3, ?4, ?5, 0, 1, ?6, ?7)")
            .bind(1, row.id)
            .bind(2, row.owner)
            .bind(3, row.created_ms)
            .bind(4, row.updated_ms)
            .bind(5, row.expires_ms)
            .bind(6, row.meta)
            .bind(7, row.messages)
            .run();
        return c.changes();
    };
}

detail::write_fn save_fn(session_row row, std::int64_t now) {
    return [row = std::move(row), now](sqlite_conn& c) -> std::int64_t {
        c.prepare(std::string("UPDATE sessions SET meta = ?1, messages = ?2, updated_ms = ?3, expires_ms = ?4, "
                              "version = ?5 WHERE id = ?6 AND owner = ?7 AND version = ?5 - 1 AND ") +
                  "gone_ms = 0 AND expires_ms > ?8")
            .bind(1, row.meta)
            .bind(2, row.messages)
            .bind(3, row.updated_ms)
            .bind(4, row.expires_ms)
            .bind(5, row.version)
            .bind(6, row.id)
            .bind(7, row.owner)
            .bind(8, now)
            .run();
        return c.changes();
    };
}

detail::write_fn erase_fn(std::string id, std::string owner, std::int64_t now, std::int64_t tomb) {
    return [id = std::move(id), owner = std::move(owner), now, tomb](sqlite_conn& c) -> std::int64_t {
        c.prepare("UPDATE sessions SET gone_ms = ?1, meta = NULL, messages = NULL WHERE id = ?2 AND owner = ?3 AND "
                  "gone_ms = 0 AND expires_ms > ?4")
            .bind(1, now + tomb)
            .bind(2, id)
            .bind(3, owner)
            .bind(4, now)
            .run();
        return c.changes();
    };
}

auto get_fn(std::string id, std::int64_t now, std::int64_t tomb) {
    return [id = std::move(id), now, tomb](sqlite_conn& c) -> result<session_lookup> {
        auto s = c.prepare(std::string(columns) + ", messages, gone_ms FROM sessions WHERE id = ?1");
        s.bind(1, id);
        session_lookup out;
        if (!s.step()) return out;
        auto gone_ms = s.int64(8);
        auto expires = s.int64(4);
        if (gone_ms > 0) out.state = now < gone_ms ? session_state::gone : session_state::missing;
        else if (now < expires) out.state = session_state::live;
        else out.state = now < expires + tomb ? session_state::gone : session_state::missing;
        if (out.state == session_state::live) {
            out.row = read_row(s, true);
        } else if (out.state == session_state::gone) {
            out.row.id = s.text(0);
            out.row.owner = s.text(1);
        }
        return out;
    };
}

auto list_fn(std::string owner, std::string after, std::size_t limit, std::int64_t now) {
    return [owner = std::move(owner), after = std::move(after), limit, now](sqlite_conn& c) -> result<session_page> {
        session_page page;
        std::int64_t created = std::numeric_limits<std::int64_t>::max();
        std::string after_id;
        if (!after.empty()) {
            auto s = c.prepare("SELECT created_ms FROM sessions WHERE id = ?1 AND owner = ?2 AND gone_ms = 0 AND "
                               "expires_ms > ?3");
            s.bind(1, after).bind(2, owner).bind(3, now);
            if (!s.step()) return page;
            created = s.int64(0);
            after_id = after;
        }
        auto s = c.prepare(std::string(columns) +
                           " FROM sessions WHERE owner = ?1 AND gone_ms = 0 AND expires_ms > ?2 AND "
                           "(created_ms < ?3 OR (created_ms = ?3 AND ?4 != '' AND id < ?4)) "
                           "ORDER BY created_ms DESC, id DESC LIMIT ?5");
        s.bind(1, owner).bind(2, now).bind(3, created).bind(4, after_id).bind(5, static_cast<std::int64_t>(limit + 1));
        while (s.step()) {
            if (page.rows.size() == limit) {
                page.more = true;
                break;
            }
            page.rows.push_back(read_row(s, false));
        }
        return page;
    };
}

class sqlite_sessions final : public detail::local_lease_store {
public:
    sqlite_sessions(std::shared_ptr<sqlite_db> db, std::int64_t tombstone_ms) : db_(std::move(db)), tomb_(tombstone_ms) {}

    std::string_view kind() const override { return "sqlite"; }

    asio::awaitable<result<bool>> create(session_row row) override {
        bool sweep = creates_.fetch_add(1, std::memory_order_relaxed) % sweep_every == 0;
        auto [ec, n] = co_await db_->write(create_fn(std::move(row), tomb_, sweep), nothrow_awaitable);
        if (ec) co_return result<bool>(boost::system::in_place_error, ec);
        co_return n > 0;
    }

    asio::awaitable<result<session_lookup>> get(std::string id, std::int64_t now_ms) override {
        co_return co_await db_->read<session_lookup>(get_fn(std::move(id), now_ms, tomb_), asio::use_awaitable);
    }

    asio::awaitable<result<bool>> save(session_row row, std::int64_t now_ms) override {
        auto [ec, n] = co_await db_->write(save_fn(std::move(row), now_ms), nothrow_awaitable);
        if (ec) co_return result<bool>(boost::system::in_place_error, ec);
        co_return n > 0;
    }

    asio::awaitable<result<bool>> erase(std::string id, std::string owner, std::int64_t now_ms) override {
        auto [ec, n] = co_await db_->write(erase_fn(std::move(id), std::move(owner), now_ms, tomb_), nothrow_awaitable);
        if (ec) co_return result<bool>(boost::system::in_place_error, ec);
        co_return n > 0;
    }

    asio::awaitable<result<session_page>> list(std::string owner, std::string after_id, std::size_t limit,
                                               std::int64_t now_ms) override {
        co_return co_await db_->read<session_page>(list_fn(std::move(owner), std::move(after_id), limit, now_ms),
                                                   asio::use_awaitable);
    }


private:
    std::shared_ptr<sqlite_db> db_;
    std::int64_t tomb_;
    std::atomic<unsigned> creates_{0};
};

}  // namespace

std::shared_ptr<session_store> make_sqlite_sessions(std::shared_ptr<sqlite_db> db, std::int64_t tombstone_ms) {
    return std::make_shared<sqlite_sessions>(std::move(db), tombstone_ms);
}

}  // namespace toolgate::state
