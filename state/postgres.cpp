// The PostgreSQL request and audit logs: the writer thread (connection, schema, batches of
// multi-row INSERTs, reconnects with backoff, retention), the reader thread (queries) and the
// URL checks (parsed by libpq; its password never shown).
#include "state/postgres.hpp"

#include <libpq-fe.h>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace toolgate::state {

namespace {

using steady = std::chrono::steady_clock;

// How long the destructor keeps writing what is still queued.
constexpr auto drain_bound = std::chrono::seconds(5);
// How long flush() waits for the records queued before it (a server that is down).
constexpr auto flush_bound = std::chrono::seconds(5);
// Retention runs at (re)connect and at most this often.
constexpr auto expiry_interval = std::chrono::seconds(10);
constexpr std::size_t max_query_rows = 1000;
constexpr std::size_t columns = 8;
constexpr std::size_t max_batch = 65'535 / columns;  // the protocol's limit on parameters

// Built-in type OIDs (catalog/pg_type_d.h).
constexpr Oid text_oid = 25;
constexpr Oid int8_oid = 20;
constexpr Oid int4_oid = 23;
constexpr Oid jsonb_oid = 3802;

// Both tables and their indexes; an advisory lock keeps two gateways starting at once from racing
// on CREATE ... IF NOT EXISTS.
constexpr char const* schema_sql = R"sql(
SET client_min_messages = warning;
BEGIN;
SELECT pg_advisory_xact_lock(7310566323);
CREATE TABLE IF NOT EXISTS request_log(
    id BIGSERIAL PRIMARY KEY, kind TEXT, ts_ms BIGINT, request_id TEXT, key TEXT, team TEXT,
    model TEXT, status INT, record JSONB);
CREATE INDEX IF NOT EXISTS request_log_ts ON request_log(ts_ms);
CREATE INDEX IF NOT EXISTS request_log_key ON request_log(key);
CREATE INDEX IF NOT EXISTS request_log_request_id ON request_log(request_id);
CREATE TABLE IF NOT EXISTS audit_log(
    id BIGSERIAL PRIMARY KEY, kind TEXT, ts_ms BIGINT, request_id TEXT, key TEXT, team TEXT,
    model TEXT, status INT, record JSONB);
CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log(ts_ms);
CREATE INDEX IF NOT EXISTS audit_log_key ON audit_log(key);
CREATE INDEX IF NOT EXISTS audit_log_request_id ON audit_log(request_id);
COMMIT;
)sql";

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

struct result_deleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using pg_result = std::unique_ptr<PGresult, result_deleter>;
struct conn_deleter {
    void operator()(PGconn* c) const { PQfinish(c); }
};
using pg_conn = std::unique_ptr<PGconn, conn_deleter>;

// ---- the URL and what may be shown of it ----

// The password as written in the URL (userinfo of a URI, or a password= parameter): every message
// that could quote it has it replaced.
std::vector<std::string> secrets_of(std::string const& url) {
    std::vector<std::string> out;
    if (auto scheme = url.find("://"); scheme != std::string::npos) {
        auto start = scheme + 3;
        auto end = url.find_first_of("@/", start);
        if (end != std::string::npos && url[end] == '@') {
            auto colon = url.find(':', start);
            if (colon != std::string::npos && colon < end && colon + 1 < end)
                out.push_back(url.substr(colon + 1, end - colon - 1));
        }
    }
    for (auto at = url.find("password"); at != std::string::npos; at = url.find("password", at + 1)) {
        auto p = at + 8;
        while (p < url.size() && (url[p] == ' ' || url[p] == '=')) ++p;
        if (p < url.size() && url[p] == '\'') ++p;
        auto end = url.find_first_of(" &'", p);
        auto value = url.substr(p, end == std::string::npos ? std::string::npos : end - p);
        if (!value.empty()) out.push_back(value);
    }
    return out;
}

std::string scrub(std::string msg, std::vector<std::string> const& secrets) {
    for (auto const& s : secrets) {
        for (auto at = msg.find(s); at != std::string::npos; at = msg.find(s, at + 3)) msg.replace(at, s.size(), "***");
    }
    // libpq's messages end in a newline and continue on tab-indented lines.
    for (auto& c : msg)
        if (c == '\n' || c == '\t') c = ' ';
    while (!msg.empty() && msg.back() == ' ') msg.pop_back();
    return msg;
}

// "postgres tg@127.0.0.1:5432/postgres": the target for log lines, without the password.
std::string describe(PQconninfoOption const* opts) {
    std::string user, host, port, db;
    for (auto const* o = opts; o->keyword != nullptr; ++o) {
        if (o->val == nullptr) continue;
        std::string_view k(o->keyword);
        if (k == "user") user = o->val;
        else if (k == "host" || (k == "hostaddr" && host.empty())) host = o->val;
        else if (k == "port") port = o->val;
        else if (k == "dbname") db = o->val;
    }
    std::string out = "postgres ";
    if (!user.empty()) out += user + "@";
    out += host.empty() ? "localhost" : host;
    if (!port.empty()) out += ":" + port;
    if (!db.empty()) out += "/" + db;
    return out;
}

// Connects (blocking, bounded by connect_timeout unless the URL sets its own); the result may be
// a connection in CONNECTION_BAD.
pg_conn connect(std::string const& url) {
    // Entries before dbname (the expanded URL) are defaults the URL may override.
    std::array<char const*, 5> keys{"connect_timeout", "tcp_user_timeout", "application_name", "dbname", nullptr};
    std::array<char const*, 5> values{"5", "10000", "toolgate", url.c_str(), nullptr};
    pg_conn c(PQconnectdbParams(keys.data(), values.data(), 1));
    if (c) PQsetNoticeProcessor(c.get(), [](void*, char const*) {}, nullptr);  // no NOTICE lines on stderr
    return c;
}

// ---- outcomes ----

enum class outcome { ok, lost, refused };

// A failed command: the connection (lost: keep the records and reconnect) or the statement
// (refused: the batch is dropped).
outcome classify(PGconn* c, PGresult const* r) {
    if (PQstatus(c) == CONNECTION_BAD || r == nullptr) return outcome::lost;
    char const* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state == nullptr) return outcome::lost;  // libpq's own failure: the connection
    std::string_view s(state);
    if (s.substr(0, 2) == "08" || s == "57P01" || s == "57P02" || s == "57P03") return outcome::lost;
    return outcome::refused;
}

struct pg_status {
    outcome what = outcome::ok;
    std::string message;  // when not ok
    std::string sqlstate;
};

pg_status check(PGconn* c, pg_result const& r, ExecStatusType want) {
    if (r && PQresultStatus(r.get()) == want) return {};
    pg_status s;
    s.what = classify(c, r.get());
    // The server's primary message and code only: its DETAIL and CONTEXT quote the records.
    char const* primary = r ? PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    if (char const* st = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr) s.sqlstate = st;
    if (primary != nullptr)
        s.message = std::string(primary) + (s.sqlstate.empty() ? "" : " (SQLSTATE " + s.sqlstate + ")");
    else
        s.message = PQerrorMessage(c);
    return s;
}

pg_status exec(PGconn* c, char const* sql, ExecStatusType want = PGRES_COMMAND_OK) {
    pg_result r(PQexec(c, sql));
    return check(c, r, want);
}

// Text parameters, typed; the strings must outlive the call.
struct params {
    std::vector<char const*> values;
    std::vector<Oid> types;
    void add(char const* v, Oid t) {
        values.push_back(v);
        types.push_back(t);
    }
};

pg_result exec_params(PGconn* c, std::string const& sql, params const& p) {
    return pg_result(PQexecParams(c, sql.c_str(), static_cast<int>(p.values.size()), p.types.data(), p.values.data(),
                                  nullptr, nullptr, 0));
}

void append_placeholder(std::string& sql, std::size_t n) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
    (void)ec;
    sql += '$';
    sql.append(buf, end);
}

// One multi-row INSERT of `rows` into `table`.
pg_status insert_rows(PGconn* c, char const* table, std::vector<log_record const*> const& rows) {
    if (rows.empty()) return {};
    std::string sql = "INSERT INTO ";
    sql += table;
    sql += "(kind, ts_ms, request_id, key, team, model, status, record) VALUES ";
    sql.reserve(sql.size() + rows.size() * 48);
    std::vector<std::string> owned(rows.size() * 3);  // ts, status, record: sized once, pointers stay valid
    params p;
    p.values.reserve(rows.size() * columns);
    p.types.reserve(rows.size() * columns);
    std::size_t n = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        auto const& r = *rows[i];
        owned[3 * i] = std::to_string(r.ts_ms);
        owned[3 * i + 1] = std::to_string(r.status);
        owned[3 * i + 2] = boost::json::serialize(r.record);
        p.add(to_string(r.kind).data(), text_oid);  // the names are literals: NUL-terminated
        p.add(owned[3 * i].c_str(), int8_oid);
        p.add(r.request_id.c_str(), text_oid);
        p.add(r.key.c_str(), text_oid);
        p.add(r.team.c_str(), text_oid);
        p.add(r.model.c_str(), text_oid);
        p.add(owned[3 * i + 1].c_str(), int4_oid);
        p.add(owned[3 * i + 2].c_str(), jsonb_oid);
        sql += i == 0 ? "(" : ",(";
        for (std::size_t col = 0; col < columns; ++col) {
            if (col) sql += ',';
            append_placeholder(sql, ++n);
        }
        sql += ')';
    }
    auto r = exec_params(c, sql, p);
    return check(c, r, PGRES_COMMAND_OK);
}

// Deletes rows older than the retention's age and beyond its row count (0 or less: no bound).
// Ids grow by one per row (gaps only from rolled-back batches), so the newest max_rows rows are
// those above max(id) - max_rows.
pg_status expire(PGconn* c, log_retention const& ret) {
    if (ret.max_age_ms <= 0 && ret.max_rows <= 0) return {};
    auto cutoff = std::to_string(now_ms() - ret.max_age_ms);
    auto rows = std::to_string(ret.max_rows);
    for (std::string table : {"request_log", "audit_log"}) {
        if (ret.max_age_ms > 0) {
            params p;
            p.add(cutoff.c_str(), int8_oid);
            auto r = exec_params(c, "DELETE FROM " + table + " WHERE ts_ms < $1", p);
            if (auto s = check(c, r, PGRES_COMMAND_OK); s.what != outcome::ok) return s;
        }
        if (ret.max_rows > 0) {
            params p;
            p.add(rows.c_str(), int8_oid);
            auto r = exec_params(c, "DELETE FROM " + table + " WHERE id <= (SELECT max(id) FROM " + table + ") - $1", p);
            if (auto s = check(c, r, PGRES_COMMAND_OK); s.what != outcome::ok) return s;
        }
    }
    return {};
}

// ---- queries ----

// A log_query as SQL on the indexed columns, with the sqlite store's semantics: kind nullopt is
// request, turn and tool (audit records live in their own table); newest first; before_id pages.
struct query_sql {
    std::string sql;
    std::vector<std::string> values;
    std::vector<Oid> types;
};

query_sql sql_of(log_query const& q) {
    query_sql out;
    bool audit = q.kind && *q.kind == log_kind::audit;
    out.sql = "SELECT id, kind, ts_ms, request_id, key, team, model, status, record::text FROM ";
    out.sql += audit ? "audit_log" : "request_log";
    auto add = [&](char const* condition, std::string v, Oid type) {
        out.sql += out.values.empty() ? " WHERE " : " AND ";
        out.sql += condition;
        append_placeholder(out.sql, out.values.size() + 1);
        out.values.push_back(std::move(v));
        out.types.push_back(type);
    };
    if (q.kind && !audit) add("kind = ", std::string(to_string(*q.kind)), text_oid);
    if (!q.request_id.empty()) add("request_id = ", q.request_id, text_oid);
    if (!q.key.empty()) add("key = ", q.key, text_oid);
    if (!q.team.empty()) add("team = ", q.team, text_oid);
    if (!q.model.empty()) add("model = ", q.model, text_oid);
    if (q.status) add("status = ", std::to_string(*q.status), int4_oid);
    if (q.since_ms > 0) add("ts_ms >= ", std::to_string(q.since_ms), int8_oid);
    if (q.until_ms > 0) add("ts_ms <= ", std::to_string(q.until_ms), int8_oid);
    if (q.before_id > 0) add("id < ", std::to_string(q.before_id), int8_oid);
    out.sql += " ORDER BY id DESC LIMIT ";
    out.sql += std::to_string(std::clamp<std::size_t>(q.limit, 1, max_query_rows));
    return out;
}

std::int64_t int64_at(PGresult const* r, int row, int col) {
    char const* v = PQgetvalue(r, row, col);
    std::int64_t out = 0;
    std::from_chars(v, v + std::char_traits<char>::length(v), out);
    return out;
}

std::vector<log_row> rows_of(PGresult const* r) {
    std::vector<log_row> rows;
    int n = PQntuples(r);
    rows.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        log_row row;
        row.id = int64_at(r, i, 0);
        row.rec.kind = log_kind_from(PQgetvalue(r, i, 1)).value_or(log_kind::request);
        row.rec.ts_ms = int64_at(r, i, 2);
        row.rec.request_id = PQgetvalue(r, i, 3);
        row.rec.key = PQgetvalue(r, i, 4);
        row.rec.team = PQgetvalue(r, i, 5);
        row.rec.model = PQgetvalue(r, i, 6);
        row.rec.status = static_cast<int>(int64_at(r, i, 7));
        boost::system::error_code ec;
        auto record = boost::json::parse(PQgetvalue(r, i, 8), ec);
        if (!ec && record.is_object()) row.rec.record = std::move(record.get_object());  // else: an empty record
        rows.push_back(std::move(row));
    }
    return rows;
}

// ---- flush waiters ----

class flush_waiter {
public:
    virtual ~flush_waiter() = default;
    virtual void complete() = 0;
};

template <class Handler>
class flush_waiter_for final : public flush_waiter {
public:
    explicit flush_waiter_for(Handler h)
        : handler_(std::move(h)), work_(boost::asio::get_associated_executor(handler_)) {}

    void complete() override {
        auto ex = work_.get_executor();
        boost::asio::post(ex, [h = std::move(handler_)]() mutable { std::move(h)(); });
        work_.reset();
    }

private:
    Handler handler_;
    boost::asio::executor_work_guard<boost::asio::associated_executor_t<Handler>> work_;
};

struct pending_flush {
    std::uint64_t target = 0;  // done once this many records are resolved
    steady::time_point deadline;
    std::unique_ptr<flush_waiter> waiter;
};

// ---- the store ----

class postgres_log final : public log_store {
public:
    postgres_log(postgres_options const& opts, std::string target, std::vector<std::string> secrets)
        : opts_(opts), target_(std::move(target)), secrets_(std::move(secrets)) {
        opts_.batch = std::clamp<std::size_t>(opts_.batch, 1, max_batch);
        opts_.queue = std::max<std::size_t>(opts_.queue, 1);
        if (opts_.reconnect_backoff.count() <= 0) opts_.reconnect_backoff = std::chrono::milliseconds(1);
        writer_ = std::thread([this] { writer_loop(); });
    }

    postgres_log(postgres_log const&) = delete;
    postgres_log& operator=(postgres_log const&) = delete;

    ~postgres_log() override {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        wake_.notify_one();
        writer_.join();
        reader_.join();
        read_conn_.reset();
    }

    std::string_view kind() const override { return "postgres"; }

    void append(log_record rec) override {
        if (rec.ts_ms == 0) rec.ts_ms = now_ms();
        {
            std::lock_guard lock(mu_);
            if (stopping_ || queue_.size() + inflight_ >= opts_.queue) {
                stats_.dropped.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            queue_.push_back(std::move(rec));
            ++accepted_;
        }
        wake_.notify_one();
    }

    // Defined below the class (the async operations' return types are deduced).
    asio::awaitable<result<std::vector<log_row>>> query(log_query q) override;
    asio::awaitable<void> flush() override;

    log_stats const& stats() const override { return stats_; }

private:
    // Completes on the handler's executor once every record accepted before the call is written or
    // failed, or after flush_bound.
    template <class Token>
    auto async_flush(Token&& token) {
        return boost::asio::async_initiate<Token, void()>(
            [this](auto handler) {
                auto waiter = std::make_unique<flush_waiter_for<decltype(handler)>>(std::move(handler));
                {
                    std::lock_guard lock(mu_);
                    if (resolved_ < accepted_) {
                        flushes_.push_back(pending_flush{accepted_, steady::now() + flush_bound, std::move(waiter)});
                    }
                }
                if (waiter) {
                    waiter->complete();
                    return;
                }
                wake_.notify_one();
            },
            token);
    }

    template <class Token>
    auto async_query(log_query q, Token&& token) {
        return boost::asio::async_initiate<Token, void(result<std::vector<log_row>>)>(
            [this](auto handler, log_query q) {
                auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
                boost::asio::post(reader_, [this, q = std::move(q), h = std::move(handler),
                                            work = std::move(work)]() mutable {
                    auto r = guarded_query(q);
                    auto ex = work.get_executor();
                    boost::asio::post(ex,
                                      [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
                    work.reset();
                });
            },
            token, std::move(q));
    }

    // ---- the reader thread ----

    result<std::vector<log_row>> guarded_query(log_query const& q) {
        try {
            return run_query(q);
        } catch (std::exception const&) {
            return make_error_code(errc::storage);
        }
    }

    result<std::vector<log_row>> run_query(log_query const& q) {
        auto sql = sql_of(q);
        params p;
        for (std::size_t i = 0; i < sql.values.size(); ++i) p.add(sql.values[i].c_str(), sql.types[i]);
        // A connection from before a server restart fails once: then a new one is tried.
        for (int attempt = 0; attempt < 2; ++attempt) {
            if (!read_conn_ || PQstatus(read_conn_.get()) != CONNECTION_OK) {
                read_conn_ = connect(opts_.url);
                if (!read_conn_ || PQstatus(read_conn_.get()) != CONNECTION_OK) {
                    read_report("cannot connect", read_conn_ ? PQerrorMessage(read_conn_.get()) : "out of memory");
                    read_conn_.reset();
                    return make_error_code(errc::unavailable);
                }
            }
            auto r = exec_params(read_conn_.get(), sql.sql, p);
            auto s = check(read_conn_.get(), r, PGRES_TUPLES_OK);
            if (s.what == outcome::ok) return rows_of(r.get());
            if (s.what == outcome::lost) {
                read_conn_.reset();
                continue;
            }
            if (s.sqlstate == "42P01") return std::vector<log_row>();  // the writer has not created the tables yet
            read_report("query failed", s.message);
            return make_error_code(errc::storage);
        }
        return make_error_code(errc::unavailable);
    }

    void read_report(char const* what, std::string const& why) {
        auto now = steady::now();
        if (last_read_report_ != steady::time_point{} && now - last_read_report_ < std::chrono::seconds(10)) return;
        last_read_report_ = now;
        spdlog::warn("{} (reader): {}: {}", target_, what, scrub(why, secrets_));
    }

    // ---- the writer thread ----

    void writer_loop() {
        std::vector<log_record> batch;
        auto backoff = opts_.reconnect_backoff;
        auto max_backoff = opts_.reconnect_backoff * 16;
        auto next_connect = steady::now();
        std::optional<steady::time_point> drain_until;
        for (;;) {
            std::vector<std::unique_ptr<flush_waiter>> done;
            bool connect_now = false;
            bool exit = false;
            {
                std::unique_lock lock(mu_);
                for (;;) {
                    auto now = steady::now();
                    take_due_flushes(now, done);
                    if (stopping_ && !drain_until) drain_until = now + drain_bound;
                    if (stopping_ && (queue_.empty() || now >= *drain_until)) {
                        abandon_locked();
                        take_due_flushes(steady::time_point::max(), done);
                        exit = true;
                        break;
                    }
                    if (conn_ && !queue_.empty()) break;
                    if (!conn_ && now >= next_connect) {
                        connect_now = true;
                        break;
                    }
                    if (!done.empty()) break;  // completed outside the lock, then back here
                    auto wake = steady::time_point::max();
                    if (!conn_) wake = next_connect;
                    for (auto const& f : flushes_) wake = std::min(wake, f.deadline);
                    if (drain_until) wake = std::min(wake, *drain_until);
                    if (wake == steady::time_point::max())
                        wake_.wait(lock);
                    else
                        wake_.wait_until(lock, wake);
                }
                if (!exit && !connect_now && conn_ && !queue_.empty()) {
                    auto n = std::min(queue_.size(), opts_.batch);
                    batch.reserve(n);
                    for (std::size_t i = 0; i < n; ++i) {
                        batch.push_back(std::move(queue_.front()));
                        queue_.pop_front();
                    }
                    inflight_ = n;
                }
            }
            for (auto& w : done) w->complete();
            if (exit) break;
            if (connect_now) {
                if (open_connection()) {
                    backoff = opts_.reconnect_backoff;
                } else {
                    next_connect = steady::now() + backoff;
                    backoff = std::min(backoff * 2, max_backoff);
                }
                continue;
            }
            if (batch.empty()) continue;
            std::string why;
            auto o = write_batch(batch, why);
            {
                std::lock_guard lock(mu_);
                inflight_ = 0;
                if (o == outcome::lost) {
                    // Kept, in order, at the front: written after the reconnect.
                    for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
                } else {
                    resolved_ += batch.size();
                }
            }
            if (o == outcome::ok) {
                stats_.written.fetch_add(batch.size(), std::memory_order_relaxed);
            } else if (o == outcome::refused) {
                stats_.failed.fetch_add(batch.size(), std::memory_order_relaxed);
                report("a batch was refused", batch.size(), why);
            } else {
                lose_connection(why);
                next_connect = steady::now();  // at once, then with backoff
            }
            batch.clear();
            maybe_expire();
        }
        conn_.reset();
    }

    // Under mu_: the waiters whose records are resolved or whose time is up.
    void take_due_flushes(steady::time_point now, std::vector<std::unique_ptr<flush_waiter>>& out) {
        auto it = std::remove_if(flushes_.begin(), flushes_.end(), [&](pending_flush& f) {
            if (f.target > resolved_ && f.deadline > now) return false;
            out.push_back(std::move(f.waiter));
            return true;
        });
        flushes_.erase(it, flushes_.end());
    }

    // Under mu_, at the end of the drain: what is still queued is lost.
    void abandon_locked() {
        if (queue_.empty()) return;
        auto n = queue_.size();
        queue_.clear();
        resolved_ += n;
        stats_.failed.fetch_add(n, std::memory_order_relaxed);
        report("shutdown", n, "not written before the drain bound");
    }

    bool open_connection() {
        auto c = connect(opts_.url);
        if (!c || PQstatus(c.get()) != CONNECTION_OK) {
            report_connect(c ? PQerrorMessage(c.get()) : "out of memory");
            return false;
        }
        auto s = exec(c.get(), schema_sql);
        if (s.what != outcome::ok) {
            // Whatever the reason, this connection is not used: retried with backoff.
            report_connect("cannot create the tables: " + s.message);
            return false;
        }
        conn_ = std::move(c);
        if (down_since_) {
            spdlog::info("{}: connected again after {} ms", target_,
                         std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - *down_since_).count());
        } else {
            spdlog::info("{}: connected (request log)", target_);
        }
        down_since_.reset();
        connect_failures_ = 0;
        last_expiry_ = steady::time_point{};
        maybe_expire();
        return true;
    }

    void lose_connection(std::string const& why) {
        conn_.reset();
        if (!down_since_) down_since_ = steady::now();
        spdlog::warn("{}: connection lost ({}); reconnecting, records stay queued", target_, scrub(why, secrets_));
    }

    void report_connect(std::string const& why) {
        if (!down_since_) down_since_ = steady::now();
        ++connect_failures_;
        auto now = steady::now();
        if (connect_failures_ > 1 && now - last_connect_report_ < std::chrono::seconds(10)) return;
        last_connect_report_ = now;
        std::size_t queued = 0;
        {
            std::lock_guard lock(mu_);
            queued = queue_.size();
        }
        spdlog::warn("{}: cannot connect ({} attempts, {} records queued): {}", target_, connect_failures_, queued,
                     scrub(why, secrets_));
    }

    // One transaction: the request records in one INSERT, the audit records in another.
    outcome write_batch(std::vector<log_record> const& batch, std::string& why) {
        auto* c = conn_.get();
        std::vector<log_record const*> requests, audits;
        for (auto const& r : batch) (r.kind == log_kind::audit ? audits : requests).push_back(&r);
        bool both = !requests.empty() && !audits.empty();
        pg_status s;
        if (both) s = exec(c, "BEGIN");
        if (s.what == outcome::ok) s = insert_rows(c, "request_log", requests);
        if (s.what == outcome::ok) s = insert_rows(c, "audit_log", audits);
        if (s.what == outcome::ok && both) s = exec(c, "COMMIT");
        if (s.what == outcome::ok) return outcome::ok;
        why = s.message;
        if (s.what == outcome::refused && PQtransactionStatus(c) != PQTRANS_IDLE) {
            if (exec(c, "ROLLBACK").what != outcome::ok) {
                lose_connection(why);  // the next batch gets a fresh connection
            }
        }
        return s.what;
    }

    void maybe_expire() {
        if (!conn_) return;
        auto now = steady::now();
        if (last_expiry_ != steady::time_point{} && now - last_expiry_ < expiry_interval) return;
        last_expiry_ = now;
        auto s = expire(conn_.get(), opts_.retention);
        if (s.what == outcome::lost)
            lose_connection(s.message);
        else if (s.what == outcome::refused)
            report("retention", 0, s.message);
    }

    // Throttled: a server refusing every batch gets one line per interval with the count.
    void report(std::string_view what, std::size_t items, std::string const& reason) {
        unreported_ += items;
        auto now = steady::now();
        if (last_report_ != steady::time_point{} && now - last_report_ < std::chrono::seconds(10)) return;
        last_report_ = now;
        spdlog::warn("{}: {} ({} records lost since the last report): {}", target_, what, unreported_,
                     scrub(reason, secrets_));
        unreported_ = 0;
    }

    postgres_options opts_;
    std::string target_;
    std::vector<std::string> secrets_;
    log_stats stats_;

    std::mutex mu_;
    std::condition_variable wake_;
    std::deque<log_record> queue_;
    std::size_t inflight_ = 0;     // taken by the writer, not yet resolved
    std::uint64_t accepted_ = 0;   // records ever queued
    std::uint64_t resolved_ = 0;   // of those, written or failed
    std::vector<pending_flush> flushes_;
    bool stopping_ = false;

    // The writer thread's own.
    pg_conn conn_;
    std::optional<steady::time_point> down_since_;
    std::size_t connect_failures_ = 0;
    steady::time_point last_connect_report_{};
    steady::time_point last_expiry_{};
    steady::time_point last_report_{};
    std::size_t unreported_ = 0;

    // The reader thread's own.
    pg_conn read_conn_;
    steady::time_point last_read_report_{};

    boost::asio::thread_pool reader_{1};
    std::thread writer_;
};

asio::awaitable<result<std::vector<log_row>>> postgres_log::query(log_query q) {
    co_return co_await async_query(std::move(q), asio::use_awaitable);
}

asio::awaitable<void> postgres_log::flush() { co_await async_flush(asio::use_awaitable); }

}  // namespace

std::shared_ptr<log_store> make_postgres_log(postgres_options const& opts) {
    auto secrets = secrets_of(opts.url);
    if (opts.url.empty()) throw std::invalid_argument("postgres url: empty");
    char* err = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(opts.url.c_str(), &err);
    if (parsed == nullptr) {
        std::string msg = err != nullptr ? err : "out of memory";
        if (err != nullptr) PQfreemem(err);
        throw std::invalid_argument("postgres url: " + scrub(msg, secrets));
    }
    auto target = describe(parsed);
    PQconninfoFree(parsed);
    return std::make_shared<postgres_log>(opts, std::move(target), std::move(secrets));
}

}  // namespace toolgate::state
