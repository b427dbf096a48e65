#pragma once
// The store behind server-side sessions (sessions/): one row per session with its settings and its
// history as JSON texts, a version for compare-and-set, an idle expiry and a tombstone, an index
// per owner for listing, and a lease per session so that one request at a time runs on it.
// Implementations: memory (tests, one process), sqlite (the embedded default: rows in the state's
// file; leases in the process, which owns the file) and redis (shared by replicas: a hash per
// session, a sorted set per owner, leases as SET NX PX keys).
//
// Callable from any worker thread; each call completes on the caller's executor.
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "state/errors.hpp"

namespace toolgate::state {

namespace asio = boost::asio;

struct session_row {
    std::string id;
    std::string owner;  // who may use it (a key's id)
    std::int64_t created_ms = 0;
    std::int64_t updated_ms = 0;
    std::int64_t expires_ms = 0;  // idle expiry: live while now < expires_ms
    std::int64_t version = 0;     // 1 at creation, +1 per save
    std::string meta;             // JSON text: settings and metadata (sessions/ reads it)
    std::string messages;         // JSON text: the history (empty in list pages)
};

// live: usable; gone: deleted or expired, and its tombstone still lasts (the row keeps its id and
// owner only); missing: never was, or its tombstone lapsed.
enum class session_state { missing, live, gone };

struct session_lookup {
    session_state state = session_state::missing;
    session_row row;
};

struct session_open {
    session_lookup found;
    bool locked = false;  // the lease is taken under the holder
};

struct session_page {
    std::vector<session_row> rows;  // newest created first, messages left empty
    bool more = false;
};

class session_store {
public:
    virtual ~session_store() = default;
    virtual std::string_view kind() const = 0;  // "memory", "sqlite", "redis"

    // Stores a new session (version 1); false when the id is live or tombstoned.
    virtual asio::awaitable<result<bool>> create(session_row row) = 0;
    virtual asio::awaitable<result<session_lookup>> get(std::string id, std::int64_t now_ms) = 0;
    // Replaces meta, messages, updated_ms and expires_ms when the stored row is live and at
    // row.version - 1; false otherwise (another writer won, or it expired meanwhile).
    virtual asio::awaitable<result<bool>> save(session_row row, std::int64_t now_ms) = 0;
    // Ends a live session owned by `owner`, leaving its tombstone; false when there is none.
    virtual asio::awaitable<result<bool>> erase(std::string id, std::string owner, std::int64_t now_ms) = 0;
    // `owner`'s live sessions, newest created first, after the session `after_id` (empty: from the
    // newest); an `after_id` that is not the owner's live session gives an empty page.
    virtual asio::awaitable<result<session_page>> list(std::string owner, std::string after_id, std::size_t limit,
                                                       std::int64_t now_ms) = 0;
    // Takes the session's lease for `lease_ms` under `holder`; false when another holder has it
    // (redis: also when this holder has it already; the callers take a lease once).
    virtual asio::awaitable<result<bool>> lock(std::string id, std::string holder, std::int64_t lease_ms,
                                               std::int64_t now_ms) = 0;
    // Gives the lease back if `holder` still has it.
    virtual asio::awaitable<result<void>> unlock(std::string id, std::string holder) = 0;

    // A request's start: looks the session up and, only when it is missing or live and `owner`'s,
    // takes its lease (another owner's session is never held, not even for a moment). Redis does it
    // in one script; the default is get, lock and get again.
    virtual asio::awaitable<result<session_open>> open(std::string id, std::string owner, std::string holder,
                                                       std::int64_t lease_ms, std::int64_t now_ms);
    // A request's end: save(), then the lease given back whether it saved or not. One script on
    // Redis; the default is the two calls.
    virtual asio::awaitable<result<bool>> save_and_unlock(session_row row, std::string holder, std::int64_t now_ms);
};

// `tombstone_ms`: how long a deleted or expired session is `gone` before it is `missing`.
// `max_sessions`: the memory store's bound (expired ones are dropped first; past it, create fails
// with errc::overloaded).
// Bounded in rows and in bytes (ids, owners, meta and messages): a create or save beyond either,
// after lapsed rows are swept, fails with errc::overloaded.
std::shared_ptr<session_store> make_memory_sessions(std::int64_t tombstone_ms, std::size_t max_sessions = 100'000,
                                                   std::size_t max_bytes = std::size_t(512) << 20);

class sqlite_db;
class redis_pool;
std::shared_ptr<session_store> make_sqlite_sessions(std::shared_ptr<sqlite_db> db, std::int64_t tombstone_ms);
std::shared_ptr<session_store> make_redis_sessions(std::shared_ptr<redis_pool> pool, std::int64_t tombstone_ms);

}  // namespace toolgate::state
