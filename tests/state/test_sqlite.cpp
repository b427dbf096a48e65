// The SQLite stores against real files in a temporary directory: the tables as the sqlite3 CLI
// sees them, keys and spend across reopening and across a child killed with SIGKILL, the request
// log under load, with a full queue, with a refused batch, its queries and its retention.
// Assertions run outside coroutine bodies (GCC 12, CONTRIBUTING.md).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/value.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "state/secret_store.hpp"
#include "state/session_store.hpp"
#include "state/sqlite.hpp"
#include "tests/state/doc_store_cases.hpp"
#include "tests/state/session_store_cases.hpp"

using namespace toolgate;
using namespace toolgate::state;

namespace {

struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        char tmpl[] = "/tmp/toolgate-sqlite-XXXXXX";
        char* made = ::mkdtemp(tmpl);
        if (made == nullptr) throw std::runtime_error("mkdtemp failed");
        path = made;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file() const { return (path / "state.db").string(); }
};

template <class T>
asio::awaitable<void> store_into(asio::awaitable<T> op, std::optional<T>& out) {
    out.emplace(co_await std::move(op));
}

// Runs `op` on a fresh io_context on this thread; returns only once the operation completed, so
// an operation that did not keep its io_context busy while it waited would fail here.
template <class T>
T run(asio::awaitable<T> op) {
    asio::io_context ioc;
    std::optional<T> out;
    std::exception_ptr failure;
    asio::co_spawn(ioc, store_into(std::move(op), out), [&](std::exception_ptr e) { failure = e; });
    ioc.run();
    if (failure) std::rethrow_exception(failure);
    if (!out) throw std::runtime_error("the operation never completed");
    return std::move(*out);
}

void run_void(asio::awaitable<void> op) {
    asio::io_context ioc;
    std::exception_ptr failure;
    bool done = false;
    asio::co_spawn(ioc, std::move(op), [&](std::exception_ptr e) {
        failure = e;
        done = true;
    });
    ioc.run();
    if (failure) std::rethrow_exception(failure);
    if (!done) throw std::runtime_error("the operation never completed");
}

// What the real sqlite3 command line tool prints for `sql` (trailing newline removed).
std::string cli(std::string const& db, std::string const& sql) {
    std::string cmd = "/usr/bin/sqlite3 '" + db + "' \"" + sql + "\" 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return "popen failed";
    std::string out;
    char buf[4096];
    while (auto n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    ::pclose(p);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

sqlite_options options_for(temp_dir const& dir) {
    sqlite_options o;
    o.path = dir.file();
    return o;
}

stored_key make_key(std::string id, std::string text, std::int64_t at) {
    stored_key k;
    k.id = std::move(id);
    k.hash = sha256_hex(text);
    k.prefix = text.substr(0, 6);
    k.attrs["name"] = "ci";
    k.attrs["team"] = "support";
    k.attrs["models"] = boost::json::array{"gpt-4o", "claude"};
    k.created_ms = at;
    k.updated_ms = at;
    return k;
}

log_record make_record(log_kind kind, std::string key, int status, std::int64_t ts, int n) {
    log_record r;
    r.kind = kind;
    r.ts_ms = ts;
    r.request_id = "req_" + std::to_string(n);
    r.key = std::move(key);
    r.team = n % 3 == 0 ? "support" : "research";
    r.model = n % 2 == 0 ? "gpt-4o" : "claude";
    r.status = status;
    r.record["n"] = n;
    r.record["path"] = "/v1/chat/completions";
    return r;
}

std::vector<budget_line> lines_for(std::string const& key, std::int64_t at, std::int64_t limit) {
    return {budget_line{"key:" + key, utc_day(at), limit}, budget_line{"key:" + key, utc_month(at), limit}};
}

spend_entry who(std::string request_id) {
    spend_entry w;
    w.request_id = std::move(request_id);
    w.key = "key_ab12";
    w.team = "support";
    w.model = "gpt-4o";
    w.provider = "openai";
    return w;
}

// Another connection that holds the write lock until release() (or its destruction).
struct write_lock {
    sqlite3* db = nullptr;
    explicit write_lock(std::string const& path) {
        sqlite3_open(path.c_str(), &db);
        sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    }
    void release() {
        if (db != nullptr) sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
        sqlite3_close(db);
        db = nullptr;
    }
    ~write_lock() { release(); }
};

asio::awaitable<std::thread::id> settle_then_thread(ledger& l, std::vector<budget_line> lines, std::string id,
                                                    std::int64_t micros) {
    auto r = co_await l.settle(lines, id, micros, who(id));
    if (!r) throw std::runtime_error("settle failed: " + r.error().message());
    co_return std::this_thread::get_id();
}

asio::awaitable<void> settle_one(ledger& l, std::vector<budget_line> lines, std::string id, std::atomic<int>& ok,
                                 std::atomic<int>& elsewhere) {
    auto me = std::this_thread::get_id();
    auto r = co_await l.settle(lines, id, 10, who(id));
    if (r) ++ok;
    if (std::this_thread::get_id() != me) ++elsewhere;
}

}  // namespace

TEST(sqlite, secrets_are_replaced_removed_and_survive_reopening) {
    temp_dir dir;
    {
        auto db = open_sqlite(options_for(dir));
        auto secrets = make_sqlite_secrets(db);
        secrets->save("mcp_oauth:a http://a", "one");
        secrets->save("mcp_oauth:a http://a", "two");  // replaced
        secrets->save("mcp_oauth:b http://b", "three");
        secrets->save("mcp_oauth:c http://c", "four");
        secrets->save("mcp_oauth:c http://c", "");  // removed
        secrets->save("other", "five");
    }
    auto db = open_sqlite(options_for(dir));  // the writes above were drained when the store closed
    auto got = make_sqlite_secrets(db)->load("mcp_oauth:");
    EXPECT_EQ(got.size(), 2u);
    EXPECT_EQ(got["mcp_oauth:a http://a"], "two");
    EXPECT_EQ(got["mcp_oauth:b http://b"], "three");
    EXPECT_EQ(make_sqlite_secrets(db)->load("oth").at("other"), "five");
    EXPECT_TRUE(make_sqlite_secrets(db)->load("%").empty()) << "the prefix is not a LIKE pattern";
    auto mem = make_memory_secrets();
    mem->save("x:1", "a");
    mem->save("y:1", "b");
    mem->save("x:1", "");
    EXPECT_TRUE(mem->load("x:").empty());
    EXPECT_EQ(mem->load("y:").at("y:1"), "b");
}

TEST(sqlite, creates_tables_that_the_sqlite3_cli_reads) {
    temp_dir dir;
    auto at = now_ms();
    {
        auto db = open_sqlite(options_for(dir));
        auto keys = make_sqlite_keys(db);
        auto book = make_sqlite_ledger(db);
        auto log = make_sqlite_log(db);
        ASSERT_TRUE(run(keys->put(make_key("key_1", "sk-abcdef123", at))));
        ASSERT_TRUE(run(book->settle(lines_for("key_1", at, 1'000'000), "r1", 1234, who("req_1"))));
        log->append(make_record(log_kind::request, "ci", 200, at, 1));
        log->append(make_record(log_kind::audit, "admin", 201, at, 2));
        run_void(log->flush());

        // While the store is open (WAL: readers beside the writer).
        EXPECT_EQ(cli(dir.file(), "select name from sqlite_master where type='table' order by name"),
                  "audit_log\ndocuments\nkeys\nledger\nrequest_log\nsecrets\nsessions\nspend");
        EXPECT_EQ(cli(dir.file(), "pragma journal_mode"), "wal");
        EXPECT_EQ(cli(dir.file(), "pragma user_version"), "1");
        EXPECT_EQ(cli(dir.file(), "select id, prefix, json_extract(attrs, '$.team') from keys"),
                  "key_1|sk-abc|support");
        EXPECT_EQ(cli(dir.file(), "select request_id, key, provider, micros from spend"), "req_1|key_ab12|openai|1234");
        EXPECT_EQ(cli(dir.file(), "select count(*), sum(micros) from ledger"), "2|2468");
        EXPECT_EQ(cli(dir.file(), "select kind, key, status, json_extract(record, '$.n') from request_log"),
                  "request|ci|200|1");
        EXPECT_EQ(cli(dir.file(), "select kind, key, status from audit_log"), "audit|admin|201");
    }
    // And after it is closed.
    EXPECT_EQ(cli(dir.file(), "select count(*) from request_log"), "1");
    EXPECT_EQ(cli(dir.file(),
                  "select name from sqlite_master where type='index' and tbl_name='request_log' "
                  "order by name"),
              "request_log_key\nrequest_log_request_id\nrequest_log_ts");
}

TEST(sqlite, open_names_the_path_when_the_file_cannot_be_opened) {
    sqlite_options o;
    o.path = "/nonexistent-dir/toolgate.db";
    try {
        open_sqlite(o);
        FAIL() << "opened";
    } catch (std::runtime_error const& e) {
        EXPECT_EQ(std::string(e.what()).rfind("sqlite /nonexistent-dir/toolgate.db: ", 0), 0u) << e.what();
    }
}

TEST(sqlite, refuses_a_file_whose_schema_is_newer) {
    temp_dir dir;
    cli(dir.file(), "pragma user_version=7");
    try {
        open_sqlite(options_for(dir));
        FAIL() << "opened";
    } catch (std::runtime_error const& e) {
        EXPECT_NE(std::string(e.what()).find("schema version 7"), std::string::npos) << e.what();
    }
}

TEST(sqlite, keys_put_find_rotate_and_remove_survive_reopening) {
    temp_dir dir;
    auto at = now_ms();
    {
        auto keys = make_sqlite_keys(open_sqlite(options_for(dir)));
        EXPECT_EQ(keys->kind(), "sqlite");
        ASSERT_TRUE(run(keys->put(make_key("key_1", "sk-first-secret", at))));
        ASSERT_TRUE(run(keys->put(make_key("key_2", "sk-second-secret", at + 1))));
        ASSERT_TRUE(run(keys->put(make_key("key_3", "sk-third-secret", at + 2))));

        auto found = run(keys->find_hash(sha256_hex("sk-first-secret")));
        ASSERT_TRUE(found);
        ASSERT_TRUE(found->has_value());
        EXPECT_EQ((*found)->id, "key_1");
        EXPECT_EQ((*found)->prefix, "sk-fir");
        EXPECT_EQ((*found)->attrs, make_key("key_1", "sk-first-secret", at).attrs);
        EXPECT_EQ((*found)->created_ms, at);
        EXPECT_FALSE(run(keys->find_hash(sha256_hex("sk-unknown")))->has_value());

        // A rotation: the same id, a new hash and prefix; the old text no longer finds it.
        auto rotated = make_key("key_1", "sk-rotated-secret", at);
        rotated.updated_ms = at + 10;
        ASSERT_TRUE(run(keys->put(rotated)));
        EXPECT_FALSE(run(keys->find_hash(sha256_hex("sk-first-secret")))->has_value());
        auto again = run(keys->find_hash(sha256_hex("sk-rotated-secret")));
        ASSERT_TRUE(again && again->has_value());
        EXPECT_EQ((*again)->id, "key_1");
        EXPECT_EQ((*again)->updated_ms, at + 10);

        auto removed = run(keys->remove("key_2"));
        ASSERT_TRUE(removed);
        EXPECT_TRUE(*removed);
        auto removed_again = run(keys->remove("key_2"));
        ASSERT_TRUE(removed_again);
        EXPECT_FALSE(*removed_again);
    }
    auto keys = make_sqlite_keys(open_sqlite(options_for(dir)));
    auto all = run(keys->list());
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[0].id, "key_1");
    EXPECT_EQ((*all)[0].hash, sha256_hex("sk-rotated-secret"));
    EXPECT_EQ((*all)[1].id, "key_3");
    auto k3 = run(keys->get("key_3"));
    ASSERT_TRUE(k3 && k3->has_value());
    EXPECT_EQ((*k3)->prefix, "sk-thi");
    EXPECT_FALSE(run(keys->get("key_2"))->has_value());
    EXPECT_FALSE(run(keys->find_hash(sha256_hex("sk-second-secret")))->has_value());
}

TEST(sqlite, ledger_reserves_settles_and_refuses_through_the_book_and_recovers_on_reopening) {
    temp_dir dir;
    auto at = now_ms();
    auto lines = lines_for("key_ab12", at, 1000);
    std::vector<budget_line> old_line{budget_line{"key:key_ab12", "2020-01", 1000}};
    {
        auto book = make_sqlite_ledger(open_sqlite(options_for(dir)));
        EXPECT_EQ(book->kind(), "sqlite");
        auto first = run(book->reserve(lines, "r1", 600, at, 60'000));
        ASSERT_TRUE(first);
        EXPECT_TRUE(first->allowed);
        auto second = run(book->reserve(lines, "r2", 600, at, 60'000));
        ASSERT_TRUE(second);
        EXPECT_FALSE(second->allowed);
        EXPECT_EQ(second->rejected, 0u);
        ASSERT_EQ(second->spent_micros.size(), 2u);
        EXPECT_EQ(second->spent_micros[0], 600);  // r1's reservation

        // The settle completes on the caller's executor (this thread), not on the writer's.
        auto thread = run(settle_then_thread(*book, lines, "r1", 500));
        EXPECT_EQ(thread, std::this_thread::get_id());
        EXPECT_EQ(*run(book->spent(lines[0].scope, lines[0].period)), 500);
        EXPECT_EQ(*run(book->spent(lines[1].scope, lines[1].period)), 500);
        EXPECT_FALSE(run(book->reserve(lines, "r3", 600, at, 60'000))->allowed);
        EXPECT_TRUE(run(book->reserve(lines, "r4", 400, at, 60'000))->allowed);
        ASSERT_TRUE(run(book->settle(lines, "r4", 450, who("req_4"))));  // an overrun is charged
        ASSERT_TRUE(run(book->settle(old_line, "r5", 70, who("req_5"))));
    }
    EXPECT_EQ(cli(dir.file(), "select count(*), sum(micros) from spend"), "3|1020");
    auto book = make_sqlite_ledger(open_sqlite(options_for(dir)));
    EXPECT_EQ(*run(book->spent(lines[0].scope, lines[0].period)), 950);
    EXPECT_EQ(*run(book->spent(lines[1].scope, lines[1].period)), 950);
    EXPECT_EQ(*run(book->spent("key:key_ab12", "2020-01")), 70);  // not loaded: read from the table
    EXPECT_EQ(*run(book->spent("key:other", lines[0].period)), 0);
    // Recovered into the book: reserve() sees it.
    auto after = run(book->reserve(lines, "r6", 100, at, 60'000));
    ASSERT_TRUE(after);
    EXPECT_FALSE(after->allowed);
    EXPECT_EQ(after->spent_micros[0], 950);
    EXPECT_TRUE(run(book->reserve(lines, "r7", 50, at, 60'000))->allowed);
}

TEST(sqlite, settled_spend_survives_the_process_being_killed) {
    temp_dir dir;
    constexpr int n = 25;
    constexpr std::int64_t micros = 1'000;
    auto at = now_ms();
    auto lines = lines_for("key_ab12", at, 1'000'000'000);
    std::fflush(nullptr);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        try {
            auto book = make_sqlite_ledger(open_sqlite(options_for(dir)));
            for (int i = 0; i < n; ++i) {
                auto id = "req_" + std::to_string(i);
                if (!run(book->settle(lines, id, micros, who(id)))) ::_exit(2);
            }
            // No destructor, no drain: what is on disk is what settle() promised.
            std::raise(SIGKILL);
        } catch (...) {
            ::_exit(3);
        }
        ::_exit(4);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGKILL);

    auto book = make_sqlite_ledger(open_sqlite(options_for(dir)));
    EXPECT_EQ(*run(book->spent(lines[0].scope, lines[0].period)), n * micros);
    EXPECT_EQ(*run(book->spent(lines[1].scope, lines[1].period)), n * micros);
    EXPECT_EQ(cli(dir.file(), "select count(*) from spend"), std::to_string(n));
}

TEST(sqlite, concurrent_settles_from_two_threads_commit_together_and_complete_on_their_own_threads) {
    temp_dir dir;
    auto book = make_sqlite_ledger(open_sqlite(options_for(dir)));
    auto at = now_ms();
    auto lines = lines_for("key_ab12", at, 1'000'000'000);
    constexpr int per_thread = 500;
    std::atomic<int> ok{0}, elsewhere{0}, ended{0};
    auto worker = [&](int t) {
        asio::io_context ioc;
        for (int i = 0; i < per_thread; ++i) {
            auto id = "req_" + std::to_string(t) + "_" + std::to_string(i);
            asio::co_spawn(ioc, settle_one(*book, lines, id, ok, elsewhere), [&](std::exception_ptr) { ++ended; });
        }
        ioc.run();
    };
    auto start = std::chrono::steady_clock::now();
    std::thread a(worker, 0);
    std::thread b(worker, 1);
    a.join();
    b.join();
    auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(ended.load(), 2 * per_thread);
    EXPECT_EQ(ok.load(), 2 * per_thread);
    EXPECT_EQ(elsewhere.load(), 0);
    EXPECT_EQ(*run(book->spent(lines[0].scope, lines[0].period)), 2 * per_thread * 10);
    EXPECT_EQ(cli(dir.file(), "select count(*), sum(micros) from spend"),
              std::to_string(2 * per_thread) + "|" + std::to_string(2 * per_thread * 10));
    std::printf("[ measure  ] %d concurrent durable settles: %.0f/s\n", 2 * per_thread, 2 * per_thread / took);
}

TEST(sqlite, log_takes_ten_thousand_appends_from_two_threads) {
    temp_dir dir;
    auto log = make_sqlite_log(open_sqlite(options_for(dir)));
    EXPECT_EQ(log->kind(), "sqlite");
    constexpr int per_thread = 5'000;
    auto start = std::chrono::steady_clock::now();
    auto writer = [&](std::string key) {
        for (int i = 0; i < per_thread; ++i) log->append(make_record(log_kind::request, key, 200, 0, i));
    };
    std::thread a(writer, "a");
    std::thread b(writer, "b");
    a.join();
    b.join();
    auto appended = std::chrono::steady_clock::now();
    run_void(log->flush());
    auto written = std::chrono::steady_clock::now();

    EXPECT_EQ(log->stats().written.load(), 2u * per_thread);
    EXPECT_EQ(log->stats().dropped.load(), 0u);
    EXPECT_EQ(log->stats().failed.load(), 0u);
    EXPECT_EQ(cli(dir.file(), "select count(*) from request_log"), std::to_string(2 * per_thread));
    EXPECT_EQ(cli(dir.file(), "select count(*) from request_log where key = 'a'"), std::to_string(per_thread));

    // A query's limit is capped.
    log_query q;
    q.limit = 5'000;
    auto rows = run(log->query(q));
    ASSERT_TRUE(rows);
    EXPECT_EQ(rows->size(), 1000u);

    auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
    std::printf("[ measure  ] %d appends: append() %.0f/s; committed %.0f/s (%.1f ms until flushed)\n", 2 * per_thread,
                2 * per_thread / secs(appended - start), 2 * per_thread / secs(written - start),
                1000 * secs(written - start));
}

TEST(sqlite, a_full_queue_drops_and_counts_instead_of_blocking) {
    temp_dir dir;
    auto o = options_for(dir);
    o.queue = 16;
    o.busy_timeout = std::chrono::seconds(30);
    auto log = make_sqlite_log(open_sqlite(o));
    write_lock lock(o.path);  // the writer's next transaction waits for it
    constexpr int total = 1000;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < total; ++i) log->append(make_record(log_kind::request, "k", 200, 0, i));
    auto took = std::chrono::steady_clock::now() - start;
    // At most the batch the writer holds and a full queue are kept.
    EXPECT_GE(log->stats().dropped.load(), static_cast<std::uint64_t>(total - 2 * 16));
    EXPECT_LT(took, std::chrono::seconds(5));  // far below the 30 s the writer is waiting
    lock.release();
    run_void(log->flush());
    auto written = log->stats().written.load();
    EXPECT_EQ(written + log->stats().dropped.load(), static_cast<std::uint64_t>(total));
    EXPECT_GE(written, 1u);
    EXPECT_EQ(cli(o.path, "select count(*) from request_log"), std::to_string(written));
}

TEST(sqlite, a_refused_batch_fails_its_writers_and_counts_its_records) {
    temp_dir dir;
    auto o = options_for(dir);
    o.busy_timeout = std::chrono::milliseconds(100);
    auto db = open_sqlite(o);
    auto keys = make_sqlite_keys(db);
    auto log = make_sqlite_log(db);
    auto book = make_sqlite_ledger(db);
    auto at = now_ms();
    {
        write_lock lock(o.path);
        auto put = run(keys->put(make_key("key_1", "sk-first-secret", at)));
        ASSERT_FALSE(put);
        EXPECT_EQ(put.error(), make_error_code(errc::storage));
        auto settled = run(book->settle(lines_for("k", at, 1000), "r1", 10, who("req_1")));
        ASSERT_FALSE(settled);
        EXPECT_EQ(settled.error(), make_error_code(errc::storage));
        log->append(make_record(log_kind::request, "k", 200, 0, 1));
        log->append(make_record(log_kind::request, "k", 200, 0, 2));
        run_void(log->flush());
        EXPECT_EQ(log->stats().failed.load(), 2u);
        EXPECT_EQ(log->stats().written.load(), 0u);
    }
    EXPECT_TRUE(run(keys->put(make_key("key_1", "sk-first-secret", at))));
    log->append(make_record(log_kind::request, "k", 200, 0, 3));
    run_void(log->flush());
    EXPECT_EQ(log->stats().written.load(), 1u);
    EXPECT_EQ(cli(o.path, "select count(*) from keys"), "1");
}

TEST(sqlite, closing_writes_what_is_still_queued) {
    temp_dir dir;
    {
        auto log = make_sqlite_log(open_sqlite(options_for(dir)));
        for (int i = 0; i < 2'000; ++i) log->append(make_record(log_kind::tool, "k", 200, 0, i));
    }
    EXPECT_EQ(cli(dir.file(), "select count(*) from request_log where kind = 'tool'"), "2000");
}

TEST(sqlite, log_query_filters_on_the_indexed_columns_and_pages_newest_first) {
    temp_dir dir;
    auto log = make_sqlite_log(open_sqlite(options_for(dir)));
    auto base = now_ms() - 60'000;
    std::vector<log_kind> kinds{log_kind::request, log_kind::turn, log_kind::tool};
    for (int i = 0; i < 30; ++i)
        log->append(make_record(kinds[static_cast<std::size_t>(i % 3)], i % 2 == 0 ? "a" : "b", i % 5 == 0 ? 500 : 200,
                                base + i, i));
    log->append(make_record(log_kind::audit, "admin", 200, base, 100));
    log->append(make_record(log_kind::audit, "admin", 403, base + 1, 101));
    run_void(log->flush());

    auto get = [&](log_query q) {
        auto r = run(log->query(std::move(q)));
        if (!r) throw std::runtime_error(r.error().message());
        return std::move(*r);
    };
    auto all = get(log_query{});
    ASSERT_EQ(all.size(), 30u);  // no audit records unless asked
    for (std::size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i - 1].id, all[i].id);
    EXPECT_EQ(all[0].rec.record.at("n").as_int64(), 29);
    EXPECT_EQ(all[0].rec.request_id, "req_29");
    EXPECT_EQ(all[0].rec.kind, log_kind::tool);
    EXPECT_EQ(all[0].rec.ts_ms, base + 29);

    log_query by_key;
    by_key.key = "a";
    EXPECT_EQ(get(by_key).size(), 15u);
    log_query by_kind;
    by_kind.kind = log_kind::turn;
    auto turns = get(by_kind);
    ASSERT_EQ(turns.size(), 10u);
    for (auto const& r : turns) EXPECT_EQ(r.rec.kind, log_kind::turn);
    log_query by_status;
    by_status.status = 500;
    by_status.key = "a";
    auto errors = get(by_status);  // i in {0, 10, 20}
    ASSERT_EQ(errors.size(), 3u);
    EXPECT_EQ(errors[0].rec.request_id, "req_20");
    log_query by_request;
    by_request.request_id = "req_7";
    ASSERT_EQ(get(by_request).size(), 1u);
    log_query by_model_team;
    by_model_team.model = "gpt-4o";
    by_model_team.team = "support";  // even i divisible by 3: 0, 6, 12, 18, 24
    EXPECT_EQ(get(by_model_team).size(), 5u);
    log_query by_time;
    by_time.since_ms = base + 10;
    by_time.until_ms = base + 19;
    auto window = get(by_time);
    ASSERT_EQ(window.size(), 10u);
    EXPECT_EQ(window.front().rec.ts_ms, base + 19);
    EXPECT_EQ(window.back().rec.ts_ms, base + 10);
    log_query audit;
    audit.kind = log_kind::audit;
    auto audits = get(audit);
    ASSERT_EQ(audits.size(), 2u);
    EXPECT_EQ(audits[0].rec.status, 403);

    // Paging: pages of 7 by before_id cover everything once.
    std::set<std::int64_t> seen;
    log_query page;
    page.limit = 7;
    int pages = 0;
    for (;;) {
        auto rows = get(page);
        if (rows.empty()) break;
        ++pages;
        for (auto const& r : rows) EXPECT_TRUE(seen.insert(r.id).second);
        page.before_id = rows.back().id;
    }
    EXPECT_EQ(pages, 5);
    EXPECT_EQ(seen.size(), 30u);
}

TEST(sqlite, retention_deletes_by_age_and_by_rows_when_opening) {
    temp_dir dir;
    auto now = now_ms();
    {
        auto log = make_sqlite_log(open_sqlite(options_for(dir)));
        for (int i = 0; i < 5; ++i) log->append(make_record(log_kind::request, "old", 200, now - 7'200'000, i));
        for (int i = 0; i < 10; ++i) log->append(make_record(log_kind::request, "new", 200, now - 1000 + i, i));
        for (int i = 0; i < 3; ++i) log->append(make_record(log_kind::audit, "old", 200, now - 7'200'000, i));
        run_void(log->flush());
    }
    auto o = options_for(dir);
    o.retention.max_age_ms = 3'600'000;
    o.retention.max_rows = 0;  // no bound
    open_sqlite(o);
    EXPECT_EQ(cli(dir.file(), "select count(*), min(key) from request_log"), "10|new");
    EXPECT_EQ(cli(dir.file(), "select count(*) from audit_log"), "0");
    o.retention.max_rows = 4;
    open_sqlite(o);
    EXPECT_EQ(cli(dir.file(),
                  "select group_concat(n) from (select json_extract(record, '$.n') as n from request_log order by id)"),
              "6,7,8,9");
}

TEST(sqlite, retention_runs_while_open_after_a_thousand_batches) {
    temp_dir dir;
    auto o = options_for(dir);
    o.retention.max_age_ms = 3'600'000;
    o.retention.max_rows = 1'000;
    auto log = make_sqlite_log(open_sqlite(o));
    auto now = now_ms();
    for (int i = 0; i < 3; ++i) log->append(make_record(log_kind::request, "old", 200, now - 7'200'000, i));
    log->append(make_record(log_kind::request, "new", 200, now, 3));
    run_void(log->flush());
    EXPECT_EQ(cli(o.path, "select count(*) from request_log"), "4");
    for (int i = 0; i < 1'000; ++i) run_void(log->flush());  // one batch each
    EXPECT_EQ(cli(o.path, "select count(*), min(key) from request_log"), "1|new");
}

// ---- the sqlite session store (the cases shared with memory and redis: session_store_cases.hpp) ----

namespace {

namespace session_cases = toolgate::testing::session_cases;

constexpr std::int64_t session_tombstone = 60'000;

session_cases::store_env sqlite_session_env() {
    session_cases::store_env env;
    env.t0 = now_ms();
    env.tombstone_ms = session_tombstone;
    return env;
}

auto const run_here = [](auto op) { return run(std::move(op)); };

// A store on a fresh file; the file goes with the directory.
struct session_file {
    temp_dir dir;
    std::shared_ptr<session_store> store = make_sqlite_sessions(open_sqlite(options_for(dir)), session_tombstone);
};

}  // namespace

TEST(sqlite, sessions_create_and_get) {
    session_file f;
    EXPECT_EQ(f.store->kind(), "sqlite");
    session_cases::create_and_get(*f.store, run_here, sqlite_session_env());
}

TEST(sqlite, sessions_save_is_versioned) {
    session_file f;
    session_cases::save_is_versioned(*f.store, run_here, sqlite_session_env());
}

TEST(sqlite, sessions_erase_leaves_a_tombstone) {
    session_file f;
    session_cases::erase_leaves_a_tombstone(*f.store, run_here, sqlite_session_env());
}

TEST(sqlite, sessions_expiry_then_tombstone) {
    session_file f;
    session_cases::expiry_then_tombstone(*f.store, run_here, sqlite_session_env());
}

TEST(sqlite, sessions_list_pages_newest_first) {
    session_file f;
    session_cases::list_pages_newest_first(*f.store, run_here, sqlite_session_env());
}

TEST(sqlite, sessions_list_reports_more_past_an_expired_session) {
    session_file f;
    session_cases::list_reports_more_past_an_expired_session(*f.store, run_here, sqlite_session_env());
}

TEST(sqlite, sessions_leases) {
    session_file f;
    session_cases::leases(*f.store, run_here, sqlite_session_env());
}

TEST(sqlite, sessions_survive_closing_and_reopening_the_file) {
    temp_dir dir;
    auto t0 = now_ms();
    auto kept = session_cases::make_row("s-kept", "k1", t0, 600'000);
    auto saved = session_cases::next_version(kept, t0 + 1, 600'000, "saved");
    auto erased = session_cases::make_row("s-erased", "k1", t0 + 2, 600'000);
    {
        auto store = make_sqlite_sessions(open_sqlite(options_for(dir)), session_tombstone);
        ASSERT_TRUE(run(store->create(kept)).value());
        ASSERT_TRUE(run(store->save(saved, t0 + 1)).value());
        ASSERT_TRUE(run(store->create(erased)).value());
        ASSERT_TRUE(run(store->erase("s-erased", "k1", t0 + 3)).value());
        ASSERT_TRUE(run(store->lock("s-kept", "h1", 600'000, t0 + 3)).value());
    }
    EXPECT_EQ(cli(dir.file(), "select id, owner, version, gone_ms > 0 from sessions order by id"),
              "s-erased|k1|1|1\ns-kept|k1|2|0");

    auto store = make_sqlite_sessions(open_sqlite(options_for(dir)), session_tombstone);
    auto got = run(store->get("s-kept", t0 + 4)).value();
    ASSERT_EQ(got.state, session_state::live);
    session_cases::expect_row(got.row, saved, true);
    auto gone = run(store->get("s-erased", t0 + 4)).value();
    EXPECT_EQ(gone.state, session_state::gone);
    EXPECT_EQ(gone.row.owner, "k1");
    EXPECT_EQ(run(store->get("s-erased", t0 + 3 + session_tombstone)).value().state, session_state::missing);
    auto page = run(store->list("k1", "", 10, t0 + 4)).value();
    EXPECT_EQ(session_cases::ids_of(page), std::vector<std::string>{"s-kept"});
    // Its version goes on from the stored one.
    EXPECT_FALSE(run(store->save(saved, t0 + 5)).value());
    EXPECT_TRUE(run(store->save(session_cases::next_version(saved, t0 + 5, 600'000, "after"), t0 + 5)).value());
    // Leases are the process's: the closed store's holder is forgotten.
    EXPECT_TRUE(run(store->lock("s-kept", "h2", 600'000, t0 + 5)).value());
}

// ---- the sqlite document store (the cases shared with memory and redis: doc_store_cases.hpp) ----

TEST(sqlite, docs_insert_replace_list_remove) {
    temp_dir dir;
    auto db = open_sqlite(options_for(dir));
    auto store = make_sqlite_docs(db, "endpoints");
    EXPECT_EQ(store->kind(), "sqlite");
    toolgate::testing::doc_cases::insert_replace_list_remove(*store, run_here);
    // Collections do not see each other's documents.
    auto other = make_sqlite_docs(db, "other");
    EXPECT_TRUE(run(other->list()).value().empty());
    EXPECT_FALSE(run(other->get("summarize")).value());
}

TEST(sqlite, docs_survive_closing_and_reopening_the_file) {
    temp_dir dir;
    {
        auto store = make_sqlite_docs(open_sqlite(options_for(dir)), "endpoints");
        EXPECT_TRUE(run(store->insert(toolgate::testing::doc_cases::doc("kept", "{\"model\":\"m\"}", 42))).value());
    }
    auto store = make_sqlite_docs(open_sqlite(options_for(dir)), "endpoints");
    auto got = run(store->get("kept")).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->body, "{\"model\":\"m\"}");
    EXPECT_EQ(got->updated_ms, 42);
}
