// The PostgreSQL request log against a real PostgreSQL 15 cluster: initdb'd into a temporary
// directory for the suite (as the postgres user when the tests run as root), started on a free
// 127.0.0.1 port, stopped and restarted mid-run by the tests, and always stopped and removed at the
// end; a watchdog process does that too if this process dies first. Each test has a database of
// its own; the real psql CLI reads what the store wrote. Assertions run outside coroutine bodies
// (GCC 12, CONTRIBUTING.md).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/value.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/state/free_port.hpp"
#include "state/postgres.hpp"

using namespace toolgate;
using namespace toolgate::state;
using namespace std::chrono_literals;

namespace {

using toolgate::testing::free_port;

constexpr char const* pg_bin = "/usr/lib/postgresql/15/bin";

// A shell command's exit code and output (stdout and stderr, trailing newlines removed).
std::pair<int, std::string> shell(std::string const& cmd) {
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    if (p == nullptr) return {-1, "popen failed"};
    std::string out;
    char buf[4096];
    while (auto n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    int status = ::pclose(p);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string tail_of(std::filesystem::path const& file) {
    std::ifstream in(file);
    std::stringstream ss;
    ss << in.rdbuf();
    auto text = ss.str();
    return text.size() > 3000 ? text.substr(text.size() - 3000) : text;
}

// A throwaway PostgreSQL 15 cluster. Throws std::runtime_error saying what is missing (binaries,
// the postgres user) or what failed, with the server's log.
class pg_cluster {
public:
    pg_cluster() {
        if (::access((std::string(pg_bin) + "/initdb").c_str(), X_OK) != 0)
            throw std::runtime_error(std::string("no PostgreSQL 15 binaries in ") + pg_bin +
                                     " (Debian package postgresql-15; scripts/setup.sh installs it)");
        as_root_ = ::geteuid() == 0;
        passwd const* pw = ::getpwnam("postgres");
        if (as_root_ && pw == nullptr)
            throw std::runtime_error("running as root, but there is no 'postgres' user to run initdb as (initdb refuses root)");
        char tmpl[] = "/tmp/toolgate-pg-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        if (as_root_ && ::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
            std::filesystem::remove_all(dir_);
            throw std::runtime_error("cannot chown " + dir_.string() + " to postgres");
        }
        start_watchdog();
        port_ = free_port();
        auto [rc, out] = shell(as_postgres(std::string(pg_bin) + "/initdb -D " + data() +
                                           " -A trust -U tg -E UTF8 --no-sync --no-instructions >" +
                                           (dir_ / "initdb.log").string() + " 2>&1"));
        if (rc != 0) {
            auto log = tail_of(dir_ / "initdb.log");
            cleanup();
            throw std::runtime_error("initdb failed (" + std::to_string(rc) + "): " + out + "\n" + log);
        }
        start();
    }
    pg_cluster(pg_cluster const&) = delete;
    pg_cluster& operator=(pg_cluster const&) = delete;
    ~pg_cluster() { cleanup(); }

    // pg_ctl -w start on the same port (after a stop).
    void start() {
        auto [rc, out] = shell(pg_ctl("-w -t 30 -l " + (dir_ / "server.log").string() + " -o \"-p " +
                                      std::to_string(port_) + " -k " + dir_.string() +
                                      " -c listen_addresses=127.0.0.1\" start"));
        if (rc != 0) throw std::runtime_error("pg_ctl start failed: " + out + "\n" + tail_of(dir_ / "server.log"));
    }

    // pg_ctl stop -m fast: returns once the server is gone.
    void stop_fast() {
        auto [rc, out] = shell(pg_ctl("-w -m fast stop"));
        if (rc != 0) throw std::runtime_error("pg_ctl stop failed: " + out);
    }

    int port() const { return port_; }
    std::string url(std::string const& db) const {
        return "postgresql://tg@127.0.0.1:" + std::to_string(port_) + "/" + db;
    }

    // What the real psql CLI prints (-At: unaligned, tuples only).
    std::string psql(std::string const& db, std::string const& sql) const {
        return shell(std::string(pg_bin) + "/psql -X -h 127.0.0.1 -p " + std::to_string(port_) + " -U tg -d " + db +
                     " -Atc \"" + sql + "\"")
            .second;
    }

    void create_db(std::string const& db) const {
        auto out = psql("postgres", "CREATE DATABASE " + db);
        if (out != "CREATE DATABASE") throw std::runtime_error("CREATE DATABASE " + db + ": " + out);
    }

private:
    std::string data() const { return (dir_ / "data").string(); }
    std::string pg_ctl(std::string const& args) const {
        return as_postgres(std::string(pg_bin) + "/pg_ctl -D " + data() + " " + args);
    }
    // The inner command must not contain single quotes.
    std::string as_postgres(std::string const& cmd) const {
        return as_root_ ? "su postgres -s /bin/sh -c '" + cmd + "'" : cmd;
    }

    // A shell that waits on a pipe only this process writes: EOF without "done" (this process died)
    // makes it stop the cluster and remove the directory.
    void start_watchdog() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
        std::string script = "read x; [ \"$x\" = done ] || { " + pg_ctl("-m immediate stop") +
                             " >/dev/null 2>&1; rm -rf " + dir_.string() + "; }";
        watchdog_ = ::fork();
        if (watchdog_ < 0) throw std::runtime_error("fork");
        if (watchdog_ == 0) {
            ::dup2(fds[0], 0);
            ::close_range(3, ~0U, 0);
            ::setsid();  // not killed with the test's process group
            ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(fds[0]);
        watchdog_pipe_ = fds[1];
    }

    void cleanup() {
        if (std::filesystem::exists(dir_ / "data" / "postmaster.pid")) shell(pg_ctl("-w -m immediate stop"));
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
        if (watchdog_pipe_ >= 0) {
            auto n = ::write(watchdog_pipe_, "done\n", 5);
            (void)n;
            ::close(watchdog_pipe_);
            watchdog_pipe_ = -1;
        }
        if (watchdog_ > 0) {
            int status = 0;
            ::waitpid(watchdog_, &status, 0);
            watchdog_ = -1;
        }
    }

    bool as_root_ = false;
    std::filesystem::path dir_;
    int port_ = 0;
    pid_t watchdog_ = -1;
    int watchdog_pipe_ = -1;
};

// The store's log lines, for waiting on what it reports (a lost connection).
class capture_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    bool wait_for(std::string const& a, std::string const& b, std::chrono::milliseconds within) {
        std::unique_lock lock(mu_);
        return cv_.wait_for(lock, within, [&] {
            return std::any_of(lines_.begin(), lines_.end(), [&](std::string const& l) {
                return l.find(a) != std::string::npos && l.find(b) != std::string::npos;
            });
        });
    }
    std::vector<std::string> lines() {
        std::lock_guard lock(mu_);
        return lines_;
    }

protected:
    void sink_it_(spdlog::details::log_msg const& msg) override {
        {
            std::lock_guard lock(mu_);
            lines_.emplace_back(msg.payload.data(), msg.payload.size());
        }
        cv_.notify_all();
    }
    void flush_() override {}

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::string> lines_;
};

template <class T>
asio::awaitable<void> store_into(asio::awaitable<T> op, std::optional<T>& out) {
    out.emplace(co_await std::move(op));
}

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

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
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
    r.record["tool"] = "demo__echo";
    r.record["quote"] = "it's \"quoted\", a $dollar and a \\backslash";
    return r;
}

class postgres : public ::testing::Test {
public:
    static void SetUpTestSuite() {
        sink_ = std::make_shared<capture_sink>();
        spdlog::default_logger()->sinks().push_back(sink_);
        try {
            cluster_ = std::make_unique<pg_cluster>();
        } catch (std::exception const& e) {
            failure_ = e.what();
        }
    }
    static void TearDownTestSuite() {
        cluster_.reset();
        auto& sinks = spdlog::default_logger()->sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
        sink_.reset();
    }

protected:
    void SetUp() override {
        ASSERT_TRUE(cluster_) << "cannot start a PostgreSQL cluster for these tests: " << failure_;
        db_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        std::transform(db_.begin(), db_.end(), db_.begin(), [](unsigned char c) { return std::tolower(c); });
        db_ = db_.substr(0, 60);
        cluster_->create_db(db_);
    }

    postgres_options options() const {
        postgres_options o;
        o.url = cluster_->url(db_);
        o.reconnect_backoff = 20ms;
        return o;
    }
    std::string psql(std::string const& sql) const { return cluster_->psql(db_, sql); }
    std::vector<log_row> get(log_store& log, log_query q) {
        auto r = run(log.query(std::move(q)));
        if (!r) throw std::runtime_error(r.error().message());
        return std::move(*r);
    }

    static inline std::unique_ptr<pg_cluster> cluster_;
    static inline std::string failure_;
    static inline std::shared_ptr<capture_sink> sink_;
    std::string db_;
};

}  // namespace

TEST_F(postgres, ten_thousand_appends_from_two_threads_land_and_psql_reads_them_as_jsonb) {
    auto log = make_postgres_log(options());
    EXPECT_EQ(log->kind(), "postgres");
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
    EXPECT_EQ(psql("select count(*) from request_log"), std::to_string(2 * per_thread));
    EXPECT_EQ(psql("select count(*) from request_log where key = 'b'"), std::to_string(per_thread));
    EXPECT_EQ(psql("select record->>'tool', record->>'quote', jsonb_typeof(record) from request_log "
                   "where key = 'a' and request_id = 'req_7'"),
              "demo__echo|it's \"quoted\", a $dollar and a \\backslash|object");
    EXPECT_EQ(psql("select sum((record->>'n')::int) from request_log where key = 'a'"),
              std::to_string(per_thread * (per_thread - 1) / 2));
    EXPECT_EQ(psql("select count(*) from request_log where ts_ms > 0 and kind = 'request' and status = 200"),
              std::to_string(2 * per_thread));

    // A query's limit is capped.
    log_query q;
    q.limit = 5'000;
    auto rows = get(*log, q);
    ASSERT_EQ(rows.size(), 1000u);
    EXPECT_EQ(rows[0].rec.record.at("tool").as_string(), "demo__echo");

    auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
    std::printf("[ measure  ] %d appends into postgres: append() %.0f/s; committed %.0f/s (%.1f ms until flushed)\n",
                2 * per_thread, 2 * per_thread / secs(appended - start), 2 * per_thread / secs(written - start),
                1000 * secs(written - start));
}

TEST_F(postgres, query_filters_on_the_indexed_columns_pages_newest_first_and_keeps_audit_apart) {
    auto log = make_postgres_log(options());
    auto base = now_ms() - 60'000;
    std::vector<log_kind> kinds{log_kind::request, log_kind::turn, log_kind::tool};
    for (int i = 0; i < 30; ++i)
        log->append(make_record(kinds[static_cast<std::size_t>(i % 3)], i % 2 == 0 ? "a" : "b", i % 5 == 0 ? 500 : 200,
                                base + i, i));
    log->append(make_record(log_kind::audit, "admin", 200, base, 100));
    log->append(make_record(log_kind::audit, "admin", 403, base + 1, 101));
    run_void(log->flush());

    EXPECT_EQ(psql("select count(*) from audit_log"), "2");
    EXPECT_EQ(psql("select count(*) from request_log where kind = 'audit'"), "0");
    EXPECT_EQ(psql("select kind, key, status from audit_log order by id"), "audit|admin|200\naudit|admin|403");

    auto all = get(*log, log_query{});
    ASSERT_EQ(all.size(), 30u);  // no audit records unless asked
    for (std::size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i - 1].id, all[i].id);
    EXPECT_EQ(all[0].rec.record.at("n").as_int64(), 29);
    EXPECT_EQ(all[0].rec.request_id, "req_29");
    EXPECT_EQ(all[0].rec.kind, log_kind::tool);
    EXPECT_EQ(all[0].rec.ts_ms, base + 29);
    EXPECT_EQ(all[0].rec.key, "b");
    EXPECT_EQ(all[0].rec.team, "research");
    EXPECT_EQ(all[0].rec.model, "claude");

    log_query by_key;
    by_key.key = "a";
    EXPECT_EQ(get(*log, by_key).size(), 15u);
    log_query by_kind;
    by_kind.kind = log_kind::turn;
    auto turns = get(*log, by_kind);
    ASSERT_EQ(turns.size(), 10u);
    for (auto const& r : turns) EXPECT_EQ(r.rec.kind, log_kind::turn);
    log_query by_status;
    by_status.status = 500;
    by_status.key = "a";
    auto errors = get(*log, by_status);  // i in {0, 10, 20}
    ASSERT_EQ(errors.size(), 3u);
    EXPECT_EQ(errors[0].rec.request_id, "req_20");
    EXPECT_EQ(errors[0].rec.status, 500);
    log_query by_request;
    by_request.request_id = "req_7";
    ASSERT_EQ(get(*log, by_request).size(), 1u);
    log_query by_model_team;
    by_model_team.model = "gpt-4o";
    by_model_team.team = "support";  // even i divisible by 3: 0, 6, 12, 18, 24
    EXPECT_EQ(get(*log, by_model_team).size(), 5u);
    log_query by_time;
    by_time.since_ms = base + 10;
    by_time.until_ms = base + 19;
    auto window = get(*log, by_time);
    ASSERT_EQ(window.size(), 10u);
    EXPECT_EQ(window.front().rec.ts_ms, base + 19);
    EXPECT_EQ(window.back().rec.ts_ms, base + 10);
    log_query injected;
    injected.key = "a' OR '1'='1";  // a parameter, never SQL
    EXPECT_EQ(get(*log, injected).size(), 0u);
    log_query audit;
    audit.kind = log_kind::audit;
    auto audits = get(*log, audit);
    ASSERT_EQ(audits.size(), 2u);
    EXPECT_EQ(audits[0].rec.status, 403);
    EXPECT_EQ(audits[0].rec.kind, log_kind::audit);

    // Paging: pages of 7 by before_id cover everything once.
    std::set<std::int64_t> seen;
    log_query page;
    page.limit = 7;
    int pages = 0;
    for (;;) {
        auto rows = get(*log, page);
        if (rows.empty()) break;
        ++pages;
        for (auto const& r : rows) EXPECT_TRUE(seen.insert(r.id).second);
        page.before_id = rows.back().id;
    }
    EXPECT_EQ(pages, 5);
    EXPECT_EQ(seen.size(), 30u);
}

TEST_F(postgres, a_server_stopped_mid_run_keeps_the_records_queued_and_writes_them_after_it_restarts) {
    auto log = make_postgres_log(options());
    for (int i = 0; i < 100; ++i) log->append(make_record(log_kind::request, "before", 200, 0, i));
    run_void(log->flush());
    ASSERT_EQ(psql("select count(*) from request_log"), "100");

    cluster_->stop_fast();
    for (int i = 0; i < 500; ++i) log->append(make_record(log_kind::turn, "during", 200, 0, i));
    // The writer finds the connection gone and cannot reconnect: the records stay queued.
    EXPECT_TRUE(sink_->wait_for(db_, "cannot connect", 5s));
    EXPECT_EQ(log->stats().written.load(), 100u);
    EXPECT_EQ(log->stats().dropped.load(), 0u);
    EXPECT_EQ(log->stats().failed.load(), 0u);
    auto down = run(log->query(log_query{}));
    ASSERT_FALSE(down);
    EXPECT_EQ(down.error(), make_error_code(errc::unavailable));

    cluster_->start();
    for (int i = 0; i < 50; ++i) log->append(make_record(log_kind::tool, "after", 200, 0, i));
    run_void(log->flush());
    EXPECT_EQ(log->stats().written.load(), 650u);
    EXPECT_EQ(log->stats().failed.load(), 0u);
    EXPECT_EQ(psql("select key, count(*) from request_log group by key order by min(id)"),
              "before|100\nduring|500\nafter|50");
    // In the order appended.
    EXPECT_EQ(psql("select count(*) from (select id, (record->>'n')::int - lag((record->>'n')::int) over (order by id) "
                   "as step from request_log where key = 'during') s where step <> 1"),
              "0");
    log_query q;
    q.key = "after";
    EXPECT_EQ(get(*log, q).size(), 50u);  // the reader reconnected too
}

TEST_F(postgres, a_full_queue_while_the_server_is_down_drops_and_counts_without_blocking) {
    auto o = options();
    o.queue = 100;
    auto log = make_postgres_log(o);
    log->append(make_record(log_kind::request, "first", 200, 0, 0));
    run_void(log->flush());
    ASSERT_EQ(log->stats().written.load(), 1u);

    cluster_->stop_fast();
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) log->append(make_record(log_kind::request, "down", 200, 0, i));
    auto took = std::chrono::steady_clock::now() - start;
    EXPECT_LT(took, 1s);
    EXPECT_EQ(log->stats().dropped.load(), 900u);  // the bound counts what the writer holds too
    EXPECT_TRUE(sink_->wait_for(db_, "cannot connect", 5s));

    cluster_->start();
    run_void(log->flush());
    EXPECT_EQ(log->stats().written.load(), 101u);
    EXPECT_EQ(log->stats().dropped.load(), 900u);
    EXPECT_EQ(psql("select count(*), min((record->>'n')::int), max((record->>'n')::int) from request_log where key = 'down'"),
              "100|0|99");
}

TEST_F(postgres, a_batch_the_server_refuses_is_counted_as_failed_and_dropped) {
    auto log = make_postgres_log(options());
    auto bad = make_record(log_kind::request, "bad", 200, 0, 1);
    bad.record["text"] = std::string("a\0b", 3);  // JSON "\u0000": jsonb refuses it
    log->append(std::move(bad));
    run_void(log->flush());
    EXPECT_EQ(log->stats().failed.load(), 1u);
    EXPECT_EQ(log->stats().written.load(), 0u);
    log->append(make_record(log_kind::request, "good", 200, 0, 2));
    log->append(make_record(log_kind::audit, "good", 200, 0, 3));
    run_void(log->flush());
    EXPECT_EQ(log->stats().written.load(), 2u);
    EXPECT_EQ(log->stats().failed.load(), 1u);
    EXPECT_EQ(psql("select key from request_log"), "good");
    EXPECT_EQ(psql("select key from audit_log"), "good");
    // The warning names the server's message, never the records' contents.
    EXPECT_TRUE(sink_->wait_for(db_, "unsupported Unicode escape sequence", 1s));
    for (auto const& line : sink_->lines()) EXPECT_EQ(line.find("$dollar"), std::string::npos) << line;
}

TEST_F(postgres, closing_writes_what_is_still_queued) {
    {
        auto log = make_postgres_log(options());
        for (int i = 0; i < 2'000; ++i) log->append(make_record(log_kind::tool, "k", 200, 0, i));
    }
    EXPECT_EQ(psql("select count(*) from request_log where kind = 'tool'"), "2000");
}

TEST_F(postgres, retention_deletes_by_age_and_by_rows_when_connecting) {
    auto now = now_ms();
    {
        auto log = make_postgres_log(options());
        for (int i = 0; i < 5; ++i) log->append(make_record(log_kind::request, "old", 200, now - 7'200'000, i));
        for (int i = 0; i < 10; ++i) log->append(make_record(log_kind::request, "new", 200, now - 1000 + i, i));
        for (int i = 0; i < 3; ++i) log->append(make_record(log_kind::audit, "old", 200, now - 7'200'000, i));
        run_void(log->flush());
    }
    ASSERT_EQ(psql("select count(*) from request_log"), "15");
    auto o = options();
    o.retention.max_age_ms = 3'600'000;
    o.retention.max_rows = 0;  // no bound
    {
        auto log = make_postgres_log(o);
        log->append(make_record(log_kind::request, "new", 200, now, 10));
        run_void(log->flush());  // written after the connect, which ran the retention first
    }
    EXPECT_EQ(psql("select count(*), min(key) from request_log"), "11|new");
    EXPECT_EQ(psql("select count(*) from audit_log"), "0");
    o.retention.max_rows = 4;
    {
        auto log = make_postgres_log(o);
        log->append(make_record(log_kind::request, "new", 200, now, 11));
        run_void(log->flush());
    }
    EXPECT_EQ(psql("select string_agg(record->>'n', ',' order by id) from request_log"), "7,8,9,10,11");
}

TEST_F(postgres, an_unreachable_server_does_not_throw_and_queries_answer_unavailable) {
    auto o = options();
    o.url = "postgresql://tg@127.0.0.1:" + std::to_string(free_port()) + "/nothing";
    auto log = make_postgres_log(o);
    auto r = run(log->query(log_query{}));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::unavailable));
}

TEST_F(postgres, a_url_libpq_cannot_parse_throws_invalid_argument_without_the_password) {
    auto make = [](std::string url) {
        postgres_options o;
        o.url = std::move(url);
        return make_postgres_log(o);
    };
    EXPECT_THROW(make("not a url"), std::invalid_argument);
    EXPECT_THROW(make("postgresql://tg@127.0.0.1/db?no_such_option=1"), std::invalid_argument);
    EXPECT_THROW(make(""), std::invalid_argument);
    try {
        make("postgresql://tg:s3cret%zz@127.0.0.1:5432/db");
        ADD_FAILURE() << "a bad percent-encoding was accepted";
    } catch (std::invalid_argument const& e) {
        EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("postgres url"), std::string::npos) << e.what();
    }
    // A password in a URL that parses never reaches a log line either.
    {
        auto o = options();
        o.url = "postgresql://tg:pw-not-for-logs@127.0.0.1:" + std::to_string(free_port()) + "/nothing";
        auto log = make_postgres_log(o);
        EXPECT_FALSE(run(log->query(log_query{})));
        EXPECT_TRUE(sink_->wait_for("/nothing", "cannot connect", 5s));
    }
    for (auto const& line : sink_->lines()) EXPECT_EQ(line.find("pw-not-for-logs"), std::string::npos) << line;
}
