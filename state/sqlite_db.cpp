// The SQLite file: connections, the schema, the writer thread and its batches, log retention.
#include "state/sqlite_db.hpp"

#include <sqlite3.h>

#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

namespace toolgate::state {

namespace detail {

namespace {

constexpr int schema_version = 1;

// Everything the stores read and write; a real sqlite3 CLI reads it as it is (JSON as text).
constexpr char const* schema_v1 = R"sql(
CREATE TABLE IF NOT EXISTS keys(
    id TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL, prefix TEXT, attrs TEXT,
    created_ms INTEGER, updated_ms INTEGER);
CREATE TABLE IF NOT EXISTS spend(
    id INTEGER PRIMARY KEY, ts_ms INTEGER, request_id TEXT, key TEXT, team TEXT, model TEXT,
    provider TEXT, micros INTEGER);
CREATE INDEX IF NOT EXISTS spend_ts ON spend(ts_ms);
CREATE TABLE IF NOT EXISTS ledger(
    scope TEXT NOT NULL, period TEXT NOT NULL, micros INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(scope, period));
CREATE TABLE IF NOT EXISTS request_log(
    id INTEGER PRIMARY KEY, kind TEXT, ts_ms INTEGER, request_id TEXT, key TEXT, team TEXT,
    model TEXT, status INTEGER, record TEXT);
CREATE INDEX IF NOT EXISTS request_log_ts ON request_log(ts_ms);
CREATE INDEX IF NOT EXISTS request_log_key ON request_log(key);
CREATE INDEX IF NOT EXISTS request_log_request_id ON request_log(request_id);
CREATE TABLE IF NOT EXISTS audit_log(
    id INTEGER PRIMARY KEY, kind TEXT, ts_ms INTEGER, request_id TEXT, key TEXT, team TEXT,
    model TEXT, status INTEGER, record TEXT);
CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log(ts_ms);
CREATE INDEX IF NOT EXISTS audit_log_key ON audit_log(key);
CREATE INDEX IF NOT EXISTS audit_log_request_id ON audit_log(request_id);
CREATE TABLE IF NOT EXISTS secrets(name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ms INTEGER);
CREATE TABLE IF NOT EXISTS sessions(
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL, gone_ms INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL,
    meta TEXT, messages TEXT);
CREATE INDEX IF NOT EXISTS sessions_owner ON sessions(owner, created_ms, id);
CREATE TABLE IF NOT EXISTS documents(
    collection TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, updated_ms INTEGER NOT NULL,
    PRIMARY KEY(collection, id));
)sql";

// How long the destructor keeps committing what is still queued.
constexpr auto drain_bound = std::chrono::seconds(5);
// Group commit: a commit writes its pages and takes its locks once, for one row or fifty. Under
// load (the last batch had company) the writer waits this long for a batch to fill; a lone
// request never waits.
constexpr auto linger = std::chrono::microseconds(200);
constexpr std::size_t linger_items = 32;
// Retention runs at most this often (and at open).
constexpr auto expiry_interval = std::chrono::seconds(10);
constexpr std::size_t expiry_batches = 1000;

[[noreturn]] void fail(sqlite3* db, int rc) {
    throw sqlite_error(rc & 0xff, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

}  // namespace

errc to_errc(sqlite_error const& e) {
    return e.code() == SQLITE_BUSY || e.code() == SQLITE_LOCKED ? errc::timeout : errc::storage;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// ---- statements and connections ----

sqlite_stmt::~sqlite_stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
}

sqlite_stmt& sqlite_stmt::bind(int i, std::string_view v) {
    auto rc = sqlite3_bind_text64(s_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    if (rc != SQLITE_OK) fail(db_, rc);
    return *this;
}

sqlite_stmt& sqlite_stmt::bind(int i, std::int64_t v) {
    auto rc = sqlite3_bind_int64(s_, i, v);
    if (rc != SQLITE_OK) fail(db_, rc);
    return *this;
}

bool sqlite_stmt::step() {
    auto rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, rc);
}

void sqlite_stmt::run() {
    while (step()) {
    }
}

std::int64_t sqlite_stmt::int64(int col) const { return sqlite3_column_int64(s_, col); }

std::string sqlite_stmt::text(int col) const {
    auto const* p = sqlite3_column_text(s_, col);
    auto n = sqlite3_column_bytes(s_, col);
    return p != nullptr ? std::string(reinterpret_cast<char const*>(p), static_cast<std::size_t>(n)) : std::string();
}

sqlite_conn::sqlite_conn(std::string const& path, bool create, std::chrono::milliseconds busy_timeout) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    auto rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw sqlite_error(rc & 0xff, msg);
    }
    sqlite3_extended_result_codes(db_, 0);
    sqlite3_busy_timeout(db_, static_cast<int>(std::clamp<std::int64_t>(busy_timeout.count(), 0, 1'000'000'000)));
}

sqlite_conn::~sqlite_conn() {
    for (auto& [sql, s] : cache_) sqlite3_finalize(s);
    sqlite3_close_v2(db_);
}

void sqlite_conn::exec(char const* sql) {
    char* err = nullptr;
    auto rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string msg = err != nullptr ? err : sqlite3_errmsg(db_);
        sqlite3_free(err);
        throw sqlite_error(rc & 0xff, msg);
    }
}

sqlite_stmt sqlite_conn::prepare(std::string const& sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
        sqlite3_stmt* s = nullptr;
        auto rc =
            sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s, nullptr);
        if (rc != SQLITE_OK) fail(db_, rc);
        it = cache_.emplace(sql, s).first;
    }
    return sqlite_stmt(it->second, db_);
}

std::int64_t sqlite_conn::changes() const { return sqlite3_changes64(db_); }

bool sqlite_conn::in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

// ---- retention ----

void expire_logs(sqlite_conn& c, log_retention const& r, std::int64_t now) {
    if (r.max_age_ms <= 0 && r.max_rows <= 0) return;
    c.exec("BEGIN IMMEDIATE");
    try {
        for (std::string table : {"request_log", "audit_log"}) {
            if (r.max_age_ms > 0)
                c.prepare("DELETE FROM " + table + " WHERE ts_ms < ?1").bind(1, now - r.max_age_ms).run();
            if (r.max_rows > 0) {
                // Ids grow by one per row and only the oldest are deleted, so the newest max_rows rows are
                // those above max(id) - max_rows (an O(log n) bound instead of an OFFSET scan).
                c.prepare("DELETE FROM " + table + " WHERE id <= (SELECT max(id) FROM " + table + ") - ?1")
                    .bind(1, r.max_rows)
                    .run();
            }
        }
        c.exec("COMMIT");
    } catch (...) {
        if (c.in_transaction()) c.exec("ROLLBACK");
        throw;
    }
}

}  // namespace detail

// ---- the file ----

namespace {

void check_journal_mode(detail::sqlite_conn& c) {
    auto s = c.prepare("PRAGMA journal_mode=WAL");
    if (!s.step() || s.text(0) != "wal") throw detail::sqlite_error(SQLITE_ERROR, "cannot switch to WAL journal mode");
}

void create_schema(detail::sqlite_conn& c) {
    std::int64_t version = 0;
    {
        auto s = c.prepare("PRAGMA user_version");
        if (s.step()) version = s.int64(0);
    }
    if (version > detail::schema_version) {
        throw detail::sqlite_error(SQLITE_ERROR, "schema version " + std::to_string(version) +
                                                     " is newer than this build's (" +
                                                     std::to_string(detail::schema_version) + ")");
    }
    c.exec("BEGIN IMMEDIATE");
    try {
        c.exec(detail::schema_v1);
        c.exec(("PRAGMA user_version=" + std::to_string(detail::schema_version)).c_str());
        c.exec("COMMIT");
    } catch (...) {
        if (c.in_transaction()) c.exec("ROLLBACK");
        throw;
    }
}

}  // namespace

sqlite_db::sqlite_db(sqlite_options const& opts) : opts_(opts) {
    try {
        write_conn_ = std::make_unique<detail::sqlite_conn>(opts_.path, true, opts_.busy_timeout);
        check_journal_mode(*write_conn_);
        write_conn_->exec("PRAGMA synchronous=NORMAL");
        create_schema(*write_conn_);
        detail::expire_logs(*write_conn_, opts_.retention, detail::now_ms());
        read_conn_ = std::make_unique<detail::sqlite_conn>(opts_.path, false, opts_.busy_timeout);
    } catch (std::exception const& e) {
        throw std::runtime_error("sqlite " + opts_.path + ": " + e.what());
    }
    last_expiry_ = std::chrono::steady_clock::now();
    writer_ = std::thread([this] { writer_loop(); });
}

sqlite_db::~sqlite_db() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
    reader_.join();
}

void sqlite_db::enqueue(detail::write_item item) {
    bool wake = false;
    {
        std::lock_guard lock(mu_);
        queue_.push_back(std::move(item));
        wake = !lingering_ || queue_.size() >= detail::linger_items;
    }
    if (wake) wake_.notify_one();
}

void sqlite_db::append(log_record rec) {
    if (rec.ts_ms == 0) rec.ts_ms = detail::now_ms();
    bool wake = false;
    {
        std::lock_guard lock(mu_);
        if (queue_.size() >= opts_.queue || stopping_) {
            stats_.dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        detail::write_item item;
        item.log.emplace(std::move(rec));
        queue_.push_back(std::move(item));
        wake = !lingering_ || queue_.size() >= detail::linger_items;
    }
    if (wake) wake_.notify_one();
}

void sqlite_db::writer_loop() {
    std::vector<detail::write_item> batch;
    std::optional<std::chrono::steady_clock::time_point> drain_until;
    for (;;) {
        bool late = false;
        bool stopping = false;
        {
            std::unique_lock lock(mu_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (!stopping_ && last_batch_ > 1 && queue_.size() < detail::linger_items) {
                lingering_ = true;
                wake_.wait_for(lock, detail::linger, [this] { return stopping_ || queue_.size() >= detail::linger_items; });
                lingering_ = false;
            }
            if (queue_.empty()) break;  // stopping, and everything is written
            stopping = stopping_;
            if (stopping) {
                auto now = std::chrono::steady_clock::now();
                if (!drain_until) drain_until = now + detail::drain_bound;
                late = now > *drain_until;
            }
            batch.swap(queue_);
        }
        last_batch_ = batch.size();
        if (late)
            abandon(batch);
        else
            run_batch(batch);
        batch.clear();
        if (!stopping) maybe_expire();
    }
}

void sqlite_db::insert_log(log_record const& rec) {
    auto& c = *write_conn_;
    auto s = c.prepare(rec.kind == log_kind::audit
                           ? "INSERT INTO audit_log(kind, ts_ms, request_id, key, team, model, status, record) "
                             "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                           : "INSERT INTO request_log(kind, ts_ms, request_id, key, team, model, status, record) "
                             "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    s.bind(1, to_string(rec.kind))
        .bind(2, rec.ts_ms)
        .bind(3, rec.request_id)
        .bind(4, rec.key)
        .bind(5, rec.team)
        .bind(6, rec.model)
        .bind(7, static_cast<std::int64_t>(rec.status))
        .bind(8, boost::json::serialize(rec.record));
    s.run();
}

void sqlite_db::run_batch(std::vector<detail::write_item>& batch) {
    auto& c = *write_conn_;
    std::vector<std::pair<boost::system::error_code, std::int64_t>> outcome(batch.size());
    std::uint64_t logs = 0;
    for (auto const& item : batch) logs += item.log ? 1 : 0;
    bool committed = false;
    char const* reason = "";
    std::string what;
    try {
        c.prepare("BEGIN IMMEDIATE").run();
        std::map<std::pair<std::string, std::string>, std::int64_t> totals;  // ledger lines of the batch
        for (std::size_t i = 0; i < batch.size(); ++i) {
            auto& item = batch[i];
            if (item.log) {
                insert_log(*item.log);
            } else if (!item.ledger.empty()) {
                // A spend: its journal row cannot fail alone, and its lines are written once per batch.
                if (item.run) outcome[i].second = item.run(c);
                for (auto const& d : item.ledger) totals[{d.scope, d.period}] += d.micros;
            } else if (item.run) {
                // A durable write in a savepoint of its own: one refused (a constraint) fails alone.
                c.prepare("SAVEPOINT item").run();
                try {
                    outcome[i].second = item.run(c);
                    c.prepare("RELEASE item").run();
                } catch (detail::sqlite_error const&) {
                    if (!c.in_transaction()) throw;  // SQLite rolled the whole batch back
                    c.prepare("ROLLBACK TO item").run();
                    c.prepare("RELEASE item").run();
                    outcome[i].first = make_error_code(errc::storage);
                }
            }
        }
        for (auto const& [line, micros] : totals)
            c.prepare("INSERT INTO ledger(scope, period, micros) VALUES(?1, ?2, ?3) "
                      "ON CONFLICT(scope, period) DO UPDATE SET micros = micros + excluded.micros")
                .bind(1, line.first)
                .bind(2, line.second)
                .bind(3, micros)
                .run();
        c.prepare("COMMIT").run();
        committed = true;
    } catch (std::exception const& e) {
        what = e.what();
        reason = what.c_str();
        if (c.in_transaction()) {
            try {
                c.exec("ROLLBACK");
            } catch (std::exception const&) {
            }
        }
    }
    if (committed) {
        stats_.written.fetch_add(logs, std::memory_order_relaxed);
    } else {
        stats_.failed.fetch_add(logs, std::memory_order_relaxed);
        report("batch", batch.size(), reason);
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
        auto& item = batch[i];
        if (!item.waiter) continue;
        if (committed)
            item.waiter->complete(outcome[i].first, outcome[i].second);
        else
            item.waiter->complete(make_error_code(errc::storage), 0);
    }
    ++batches_since_expiry_;
}

void sqlite_db::abandon(std::vector<detail::write_item>& batch) {
    std::uint64_t logs = 0;
    for (auto& item : batch) {
        if (item.log) ++logs;
        if (item.waiter) item.waiter->complete(make_error_code(errc::unavailable), 0);
    }
    stats_.failed.fetch_add(logs, std::memory_order_relaxed);
    report("shutdown", batch.size(), "not written before the drain bound");
}

void sqlite_db::maybe_expire() {
    auto now = std::chrono::steady_clock::now();
    if (batches_since_expiry_ < detail::expiry_batches && now - last_expiry_ < detail::expiry_interval) return;
    batches_since_expiry_ = 0;
    last_expiry_ = now;
    try {
        detail::expire_logs(*write_conn_, opts_.retention, detail::now_ms());
    } catch (std::exception const& e) {
        report("retention", 0, e.what());
    }
}

// Throttled: a full disk fails every batch, the log gets one line per interval with the count.
void sqlite_db::report(std::string_view what, std::size_t items, char const* reason) {
    unreported_ += items;
    auto now = std::chrono::steady_clock::now();
    if (last_report_ != std::chrono::steady_clock::time_point{} && now - last_report_ < std::chrono::seconds(10))
        return;
    last_report_ = now;
    spdlog::warn("sqlite {}: {} failed ({} writes lost since the last report): {}", opts_.path, what, unreported_,
                 reason);
    unreported_ = 0;
}

}  // namespace toolgate::state
