// The SQLite stores: the ledger (a ledger_book in front of the journal and the totals), the keys,
// and the request and audit logs. The SQL for each operation is built in a plain function that
// returns what the writer or the reader thread runs; the coroutines only await it.
#include "state/sqlite.hpp"
#include "state/secret_store.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <mutex>

#include <sys/stat.h>
#include <utility>

#include "common/asio_util.hpp"
#include "state/memory.hpp"
#include "state/sqlite_db.hpp"

namespace toolgate::state {

std::shared_ptr<sqlite_db> open_sqlite(sqlite_options const& opts) { return std::make_shared<sqlite_db>(opts); }

namespace {

using detail::sqlite_conn;
using detail::sqlite_stmt;

// ---- ledger ----

constexpr std::int64_t day_ms = 86'400'000;

// "2026-01" -> "2025-12".
std::string previous_month(std::string const& month) {
    int y = 0, m = 0;
    std::from_chars(month.data(), month.data() + 4, y);
    std::from_chars(month.data() + 5, month.data() + 7, m);
    if (--m == 0) {
        m = 12;
        --y;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d-%02d", y, m);
    return buf;
}

struct ledger_row {
    std::string scope, period;
    std::int64_t micros = 0;
};

result<std::vector<ledger_row>> load_ledger(sqlite_conn& c, std::array<std::string, 4> const& periods) {
    auto s = c.prepare("SELECT scope, period, micros FROM ledger WHERE period IN (?1, ?2, ?3, ?4)");
    for (int i = 0; i < 4; ++i) s.bind(i + 1, periods[static_cast<std::size_t>(i)]);
    std::vector<ledger_row> rows;
    while (s.step()) rows.push_back(ledger_row{s.text(0), s.text(1), s.int64(2)});
    return rows;
}

// One journal row for the settle; the lines' totals are added by the writer, once per batch.
detail::write_fn journal(std::int64_t micros, spend_entry who) {
    if (who.ts_ms == 0) who.ts_ms = detail::now_ms();
    return [micros, who = std::move(who)](sqlite_conn& c) -> std::int64_t {
        c.prepare(
             "INSERT INTO spend(ts_ms, request_id, key, team, model, provider, micros) "
             "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .bind(1, who.ts_ms)
            .bind(2, who.request_id)
            .bind(3, who.key)
            .bind(4, who.team)
            .bind(5, who.model)
            .bind(6, who.provider)
            .bind(7, micros)
            .run();
        return 0;
    };
}

std::vector<detail::ledger_delta> deltas(std::vector<budget_line> const& lines, std::int64_t micros) {
    std::vector<detail::ledger_delta> out;
    out.reserve(lines.size());
    for (auto const& l : lines) out.push_back(detail::ledger_delta{l.scope, l.period, micros});
    return out;
}

auto read_spent(std::string scope, std::string period) {
    return [scope = std::move(scope), period = std::move(period)](sqlite_conn& c) -> result<std::int64_t> {
        auto s = c.prepare("SELECT micros FROM ledger WHERE scope = ?1 AND period = ?2");
        s.bind(1, scope).bind(2, period);
        return s.step() ? s.int64(0) : std::int64_t{0};
    };
}

class sqlite_ledger final : public ledger {
public:
    explicit sqlite_ledger(std::shared_ptr<sqlite_db> db) : db_(std::move(db)) {
        auto now = detail::now_ms();
        day_ = utc_day(now);
        month_ = utc_month(now);
        loaded_ = {day_, utc_day(now - day_ms), month_, previous_month(month_)};
        auto rows = db_->read_now<std::vector<ledger_row>>([this](sqlite_conn& c) { return load_ledger(c, loaded_); });
        if (!rows)
            throw std::runtime_error("sqlite " + db_->options().path + ": cannot load the ledger (" +
                                     rows.error().message() + ")");
        for (auto const& r : *rows) book_.load(r.scope, r.period, r.micros);
    }

    std::string_view kind() const override { return "sqlite"; }

    asio::awaitable<result<reserve_result>> reserve(std::vector<budget_line> const& lines,
                                                    std::string const& reservation, std::int64_t micros,
                                                    std::int64_t now_ms, std::int64_t lease_ms) override {
        co_return book_.reserve(lines, reservation, micros, now_ms, lease_ms);
    }

    std::optional<result<reserve_result>> reserve_now(std::vector<budget_line> const& lines, std::string const& reservation,
                                                      std::int64_t micros, std::int64_t now_ms, std::int64_t lease_ms) override {
        return book_.reserve(lines, reservation, micros, now_ms, lease_ms);  // reservations are the process's own
    }
    bool reserves_at_once() const override { return true; }

    asio::awaitable<result<void>> settle(std::vector<budget_line> const& lines, std::string const& reservation,
                                         std::int64_t actual_micros, spend_entry const& who) override {
        book_.settle(lines, reservation, actual_micros);
        auto [ec, unused] = co_await db_->write_spend(journal(actual_micros, who), deltas(lines, actual_micros), nothrow_awaitable);
        (void)unused;
        if (ec) co_return ec;
        co_return result<void>();
    }

    asio::awaitable<result<std::int64_t>> spent(std::string const& scope, std::string const& period) override {
        if (in_book(period)) co_return book_.spent(scope, period);
        co_return co_await db_->read<std::int64_t>(read_spent(scope, period), asio::use_awaitable);
    }

private:
    // The book holds everything for the periods loaded at construction and those since: all their
    // spend went through this process (one process owns the file).
    bool in_book(std::string const& period) const {
        if (std::find(loaded_.begin(), loaded_.end(), period) != loaded_.end()) return true;
        if (period.size() == day_.size()) return period >= day_;
        if (period.size() == month_.size()) return period >= month_;
        return false;
    }

    std::shared_ptr<sqlite_db> db_;
    ledger_book book_;
    std::string day_, month_;
    std::array<std::string, 4> loaded_;
};

// ---- keys ----

constexpr char const* key_columns = "SELECT id, hash, prefix, attrs, created_ms, updated_ms FROM keys";

result<stored_key> key_row(sqlite_stmt const& s) {
    stored_key k;
    k.id = s.text(0);
    k.hash = s.text(1);
    k.prefix = s.text(2);
    boost::system::error_code ec;
    auto attrs = boost::json::parse(s.text(3), ec);
    if (ec || !attrs.is_object()) return make_error_code(errc::protocol);
    k.attrs = std::move(attrs.get_object());
    k.created_ms = s.int64(4);
    k.updated_ms = s.int64(5);
    return k;
}

// `column` is "hash" or "id".
auto find_key(std::string column, std::string value) {
    return [sql = std::string(key_columns) + " WHERE " + column + " = ?1",
            value = std::move(value)](sqlite_conn& c) -> result<std::optional<stored_key>> {
        auto s = c.prepare(sql);
        s.bind(1, value);
        if (!s.step()) return std::optional<stored_key>();
        auto k = key_row(s);
        if (!k) return k.error();
        return std::optional<stored_key>(std::move(*k));
    };
}

result<std::vector<stored_key>> list_keys(sqlite_conn& c) {
    auto s = c.prepare(std::string(key_columns) + " ORDER BY created_ms, id");
    std::vector<stored_key> out;
    while (s.step()) {
        auto k = key_row(s);
        if (!k) return k.error();
        out.push_back(std::move(*k));
    }
    return out;
}

detail::write_fn put_key(stored_key const& key) {
    return [key, attrs = boost::json::serialize(key.attrs)](sqlite_conn& c) -> std::int64_t {
        c.prepare(
             "INSERT OR REPLACE INTO keys(id, hash, prefix, attrs, created_ms, updated_ms) "
             "VALUES(?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(1, key.id)
            .bind(2, key.hash)
            .bind(3, key.prefix)
            .bind(4, attrs)
            .bind(5, key.created_ms)
            .bind(6, key.updated_ms)
            .run();
        return 0;
    };
}

detail::write_fn remove_key(std::string id) {
    return [id = std::move(id)](sqlite_conn& c) -> std::int64_t {
        c.prepare("DELETE FROM keys WHERE id = ?1").bind(1, id).run();
        return c.changes();
    };
}

class sqlite_keys final : public key_store {
public:
    explicit sqlite_keys(std::shared_ptr<sqlite_db> db) : db_(std::move(db)) {}

    std::string_view kind() const override { return "sqlite"; }

    asio::awaitable<result<std::optional<stored_key>>> find_hash(std::string const& hash) override {
        co_return co_await db_->read<std::optional<stored_key>>(find_key("hash", hash), asio::use_awaitable);
    }

    asio::awaitable<result<std::optional<stored_key>>> get(std::string const& id) override {
        co_return co_await db_->read<std::optional<stored_key>>(find_key("id", id), asio::use_awaitable);
    }

    asio::awaitable<result<std::vector<stored_key>>> list() override {
        co_return co_await db_->read<std::vector<stored_key>>(&list_keys, asio::use_awaitable);
    }

    asio::awaitable<result<void>> put(stored_key const& key) override {
        auto [ec, unused] = co_await db_->write(put_key(key), nothrow_awaitable);
        (void)unused;
        if (ec) co_return ec;
        co_return result<void>();
    }

    asio::awaitable<result<bool>> remove(std::string const& id) override {
        auto [ec, removed] = co_await db_->write(remove_key(id), nothrow_awaitable);
        if (ec) co_return result<bool>(boost::system::in_place_error, ec);  // an error_code is also a bool
        co_return removed > 0;
    }

private:
    std::shared_ptr<sqlite_db> db_;
};

// ---- logs ----

constexpr std::size_t max_query_rows = 1000;

// A log_query as SQL on the indexed columns; audit records live in their own table.
struct log_sql {
    std::string sql;
    std::vector<std::string> texts;     // bound first, ?1..?n
    std::vector<std::int64_t> numbers;  // then ?n+1..
};

log_sql query_sql(log_query const& q) {
    log_sql out;
    bool audit = q.kind && *q.kind == log_kind::audit;
    std::vector<std::string> where_text, where_num;
    if (q.kind && !audit) {
        where_text.push_back("kind");
        out.texts.emplace_back(to_string(*q.kind));
    }
    auto text_filter = [&](char const* column, std::string const& v) {
        if (v.empty()) return;
        where_text.push_back(column);
        out.texts.push_back(v);
    };
    text_filter("request_id", q.request_id);
    text_filter("key", q.key);
    text_filter("team", q.team);
    text_filter("model", q.model);
    auto num_filter = [&](char const* condition, std::int64_t v) {
        where_num.push_back(condition);
        out.numbers.push_back(v);
    };
    if (q.status) num_filter("status =", *q.status);
    if (q.since_ms > 0) num_filter("ts_ms >=", q.since_ms);
    if (q.until_ms > 0) num_filter("ts_ms <=", q.until_ms);
    if (q.before_id > 0) num_filter("id <", q.before_id);

    out.sql = "SELECT id, kind, ts_ms, request_id, key, team, model, status, record FROM ";
    out.sql += audit ? "audit_log" : "request_log";
    int n = 0;
    auto add = [&](std::string const& condition) {
        out.sql += n == 0 ? " WHERE " : " AND ";
        out.sql += condition + " ?" + std::to_string(++n);
    };
    for (auto const& c : where_text) add(c + " =");
    for (auto const& c : where_num) add(c);
    out.sql += " ORDER BY id DESC LIMIT ?" + std::to_string(++n);
    out.numbers.push_back(static_cast<std::int64_t>(std::clamp<std::size_t>(q.limit, 1, max_query_rows)));
    return out;
}

log_row log_row_of(sqlite_stmt const& s) {
    log_row row;
    row.id = s.int64(0);
    row.rec.kind = log_kind_from(s.text(1)).value_or(log_kind::request);
    row.rec.ts_ms = s.int64(2);
    row.rec.request_id = s.text(3);
    row.rec.key = s.text(4);
    row.rec.team = s.text(5);
    row.rec.model = s.text(6);
    row.rec.status = static_cast<int>(s.int64(7));
    boost::system::error_code ec;
    auto record = boost::json::parse(s.text(8), ec);
    if (!ec && record.is_object()) row.rec.record = std::move(record.get_object());  // else: an empty record
    return row;
}

auto read_log(log_query const& q) {
    return [sql = query_sql(q)](sqlite_conn& c) -> result<std::vector<log_row>> {
        auto s = c.prepare(sql.sql);
        int i = 0;
        for (auto const& t : sql.texts) s.bind(++i, t);
        for (auto n : sql.numbers) s.bind(++i, n);
        std::vector<log_row> rows;
        while (s.step()) rows.push_back(log_row_of(s));
        return rows;
    };
}

class sqlite_log final : public log_store {
public:
    explicit sqlite_log(std::shared_ptr<sqlite_db> db) : db_(std::move(db)) {}

    std::string_view kind() const override { return "sqlite"; }

    void append(log_record rec) override { db_->append(std::move(rec)); }

    asio::awaitable<result<std::vector<log_row>>> query(log_query q) override {
        co_return co_await db_->read<std::vector<log_row>>(read_log(q), asio::use_awaitable);
    }

    // An empty write: it completes once everything queued before it is committed (or failed).
    asio::awaitable<void> flush() override { co_await db_->write(detail::write_fn(), nothrow_awaitable); }

    log_stats const& stats() const override { return db_->stats(); }

private:
    std::shared_ptr<sqlite_db> db_;
};

}  // namespace

namespace {

class sqlite_secrets final : public secret_store {
public:
    explicit sqlite_secrets(std::shared_ptr<sqlite_db> db) : db_(std::move(db)) {
        // Tokens cannot be hashed: the file (and its WAL) is for the gateway's user alone.
        auto const& path = db_->options().path;
        for (auto const& f : {path, path + "-wal", path + "-shm"}) ::chmod(f.c_str(), S_IRUSR | S_IWUSR);
    }

    std::map<std::string, std::string> load(std::string_view prefix) override {
        using map = std::map<std::string, std::string>;
        auto r = db_->read_now<map>([p = std::string(prefix)](sqlite_conn& c) -> result<map> {
            map out;
            auto s = c.prepare("SELECT name, value FROM secrets WHERE substr(name, 1, length(?1)) = ?1");
            s.bind(1, p);
            while (s.step()) out.emplace(s.text(0), s.text(1));
            return out;
        });
        return r ? std::move(*r) : map();
    }

    void save(std::string name, std::string value) override {
        db_->write(
            [name = std::move(name), value = std::move(value)](sqlite_conn& c) -> std::int64_t {
                if (value.empty()) {
                    c.prepare("DELETE FROM secrets WHERE name = ?1").bind(1, name).run();
                } else {
                    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch()).count();
                    c.prepare("INSERT INTO secrets(name, value, updated_ms) VALUES(?1, ?2, ?3) "
                              "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms")
                        .bind(1, name).bind(2, value).bind(3, static_cast<std::int64_t>(now)).run();
                }
                return 0;
            },
            asio::detached);
    }

private:
    std::shared_ptr<sqlite_db> db_;
};

class memory_secrets final : public secret_store {
public:
    std::map<std::string, std::string> load(std::string_view prefix) override {
        std::lock_guard lock(mu_);
        std::map<std::string, std::string> out;
        for (auto const& [k, v] : values_)
            if (k.starts_with(prefix)) out.emplace(k, v);
        return out;
    }
    void save(std::string name, std::string value) override {
        std::lock_guard lock(mu_);
        if (value.empty()) values_.erase(name);
        else values_[std::move(name)] = std::move(value);
    }

private:
    std::mutex mu_;
    std::map<std::string, std::string> values_;
};

}  // namespace

std::shared_ptr<secret_store> make_sqlite_secrets(std::shared_ptr<sqlite_db> db) {
    return std::make_shared<sqlite_secrets>(std::move(db));
}

std::shared_ptr<secret_store> make_memory_secrets() { return std::make_shared<memory_secrets>(); }

std::shared_ptr<ledger> make_sqlite_ledger(std::shared_ptr<sqlite_db> db) {
    return std::make_shared<sqlite_ledger>(std::move(db));
}

std::shared_ptr<key_store> make_sqlite_keys(std::shared_ptr<sqlite_db> db) {
    return std::make_shared<sqlite_keys>(std::move(db));
}

std::shared_ptr<log_store> make_sqlite_log(std::shared_ptr<sqlite_db> db) {
    return std::make_shared<sqlite_log>(std::move(db));
}

}  // namespace toolgate::state
