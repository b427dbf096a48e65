#pragma once
// Internal to state/: the SQLite file behind sqlite.hpp's stores. One write connection owned by
// the writer thread, fed by a bounded queue and committing everything queued in one transaction;
// one read connection owned by the reader thread. Completions go to the caller's executor.
//
// Thread safety: write(), append() and read() may be called from any thread; sqlite_conn and
// sqlite_stmt belong to the one thread that owns their connection.
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "state/errors.hpp"
#include "state/log_store.hpp"
#include "state/sqlite.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace toolgate::state {

namespace detail {

// What SQLite said, with its result code (extended codes reduced to the primary one).
class sqlite_error : public std::runtime_error {
public:
    sqlite_error(int code, std::string const& what) : std::runtime_error(what), code_(code) {}
    int code() const { return code_; }

private:
    int code_;
};

// The store error a failed SQLite call is reported as.
errc to_errc(sqlite_error const& e);

// A cached prepared statement, in use until the handle goes (then reset and unbound).
class sqlite_stmt {
public:
    sqlite_stmt(sqlite3_stmt* s, sqlite3* db) : s_(s), db_(db) {}
    sqlite_stmt(sqlite_stmt const&) = delete;
    sqlite_stmt& operator=(sqlite_stmt const&) = delete;
    ~sqlite_stmt();

    // Parameters count from 1.
    sqlite_stmt& bind(int i, std::string_view v);
    sqlite_stmt& bind(int i, std::int64_t v);
    // True when a row is ready; false when done.
    bool step();
    // Steps to the end (a statement without rows).
    void run();
    std::int64_t int64(int col) const;
    std::string text(int col) const;

private:
    sqlite3_stmt* s_;
    sqlite3* db_;
};

class sqlite_conn {
public:
    sqlite_conn(std::string const& path, bool create, std::chrono::milliseconds busy_timeout);
    sqlite_conn(sqlite_conn const&) = delete;
    sqlite_conn& operator=(sqlite_conn const&) = delete;
    ~sqlite_conn();

    void exec(char const* sql);
    // Prepared once per connection and SQL text.
    sqlite_stmt prepare(std::string const& sql);
    std::int64_t changes() const;
    bool in_transaction() const;

private:
    sqlite3* db_ = nullptr;
    std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// A waiter for a durable write, completed once with the commit's outcome.
class write_waiter {
public:
    virtual ~write_waiter() = default;
    virtual void complete(boost::system::error_code ec, std::int64_t value) = 0;
};

template <class Handler>
class write_waiter_for final : public write_waiter {
public:
    explicit write_waiter_for(Handler h)
        : handler_(std::move(h)), work_(boost::asio::get_associated_executor(handler_)) {}

    void complete(boost::system::error_code ec, std::int64_t value) override {
        auto ex = work_.get_executor();
        boost::asio::post(ex, [h = std::move(handler_), ec, value]() mutable { std::move(h)(ec, value); });
        work_.reset();
    }

private:
    Handler handler_;
    boost::asio::executor_work_guard<boost::asio::associated_executor_t<Handler>> work_;
};

// A unit of work for the writer: a durable operation (run, returning a value for its waiter), a
// log record, or neither (a marker that flush() waits on).
using write_fn = std::function<std::int64_t(sqlite_conn&)>;

// What a settle adds to one ledger line; the writer sums a batch's additions per line and
// writes each line once, in the batch's transaction.
struct ledger_delta {
    std::string scope;
    std::string period;
    std::int64_t micros = 0;
};

struct write_item {
    write_fn run;
    std::optional<log_record> log;
    std::unique_ptr<write_waiter> waiter;
    std::vector<ledger_delta> ledger;  // applied with the batch (run then cannot fail alone)
};

}  // namespace detail

class sqlite_db {
public:
    // Throws std::runtime_error("sqlite <path>: <message>").
    explicit sqlite_db(sqlite_options const& opts);
    sqlite_db(sqlite_db const&) = delete;
    sqlite_db& operator=(sqlite_db const&) = delete;
    // Drains the queue (bounded), then joins both threads.
    ~sqlite_db();

    // Queues `run` for the next batch; completes with (error_code, run's value) on the handler's
    // executor once that batch is committed (errc::storage when it was not). An empty `run` is a
    // marker: it completes after everything queued before it.
    template <class Token>
    auto write(detail::write_fn run, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::int64_t)>(
            [this](auto handler, detail::write_fn fn) {
                detail::write_item item;
                item.run = std::move(fn);
                item.waiter = std::make_unique<detail::write_waiter_for<decltype(handler)>>(std::move(handler));
                enqueue(std::move(item));
            },
            token, std::move(run));
    }

    // A spend: `run` (the journal row, which cannot fail alone: no savepoint of its own) and the
    // additions to ledger lines, summed per line over the batch; completes like write().
    template <class Token>
    auto write_spend(detail::write_fn run, std::vector<detail::ledger_delta> deltas, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::int64_t)>(
            [this](auto handler, detail::write_fn fn, std::vector<detail::ledger_delta> d) {
                detail::write_item item;
                item.run = std::move(fn);
                item.ledger = std::move(d);
                item.waiter = std::make_unique<detail::write_waiter_for<decltype(handler)>>(std::move(handler));
                enqueue(std::move(item));
            },
            token, std::move(run), std::move(deltas));
    }

    // Never blocks: when the queue is full the record is dropped and counted.
    void append(log_record rec);

    // Runs f(read connection) -> result<T> on the reader thread; completes with its result on the
    // handler's executor. An exception from f becomes errc::storage (errc::timeout when busy).
    template <class T, class F, class Token>
    auto read(F f, Token&& token) {
        return boost::asio::async_initiate<Token, void(result<T>)>(
            [this](auto handler, F fn) {
                auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
                boost::asio::post(
                    reader_, [this, fn = std::move(fn), h = std::move(handler), work = std::move(work)]() mutable {
                        result<T> r = guarded<T>(fn);
                        auto ex = work.get_executor();
                        boost::asio::post(
                            ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
                        work.reset();
                    });
            },
            token, std::move(f));
    }

    // The same, waiting for it on this thread (start-up only).
    template <class T, class F>
    result<T> read_now(F f) {
        std::packaged_task<result<T>()> task([this, &f] { return guarded<T>(f); });
        auto done = task.get_future();
        boost::asio::post(reader_, std::move(task));
        return done.get();
    }

    log_stats const& stats() const { return stats_; }
    sqlite_options const& options() const { return opts_; }

private:
    template <class T, class F>
    result<T> guarded(F& f) {
        try {
            return f(*read_conn_);
        } catch (detail::sqlite_error const& e) {
            return make_error_code(detail::to_errc(e));
        } catch (std::exception const&) {
            return make_error_code(errc::storage);
        }
    }

    void enqueue(detail::write_item item);
    void writer_loop();
    void run_batch(std::vector<detail::write_item>& batch);
    void abandon(std::vector<detail::write_item>& batch);
    void insert_log(log_record const& rec);
    void maybe_expire();
    void report(std::string_view what, std::size_t items, char const* reason);

    sqlite_options opts_;
    log_stats stats_;
    std::unique_ptr<detail::sqlite_conn> write_conn_;  // the writer thread's
    std::unique_ptr<detail::sqlite_conn> read_conn_;   // the reader thread's

    std::mutex mu_;
    std::condition_variable wake_;
    std::vector<detail::write_item> queue_;
    bool stopping_ = false;
    bool lingering_ = false;       // the writer waits for a batch to fill (wake it only when it has)
    std::size_t last_batch_ = 0;   // writer thread only

    // The writer thread's own bookkeeping.
    std::size_t batches_since_expiry_ = 0;
    std::chrono::steady_clock::time_point last_expiry_;
    std::chrono::steady_clock::time_point last_report_{};
    std::size_t unreported_ = 0;

    boost::asio::thread_pool reader_{1};
    std::thread writer_;
};

namespace detail {
// Deletes log rows older than the retention's age and beyond its row count (0 or less: no bound).
void expire_logs(sqlite_conn& c, log_retention const& r, std::int64_t now_ms);
std::int64_t now_ms();
}  // namespace detail

}  // namespace toolgate::state
