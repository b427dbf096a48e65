// The Redis stores against a real redis-server (started per test on a free 127.0.0.1 port and
// always stopped), and the protocol pieces without a socket. The windows are checked against the
// memory arithmetic (state/window.hpp) on the same inputs; times passed to the stores are
// simulated, so lapses and window slides need no sleeping.
#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/state/free_port.hpp"
#include "state/redis.hpp"
#include "state/redis_pool.hpp"
#include "state/redis_proto.hpp"
#include "state/redis_scripts.hpp"
#include "state/session_store.hpp"
#include "state/window.hpp"
#include "tests/state/doc_store_cases.hpp"
#include "tests/state/session_store_cases.hpp"

namespace state = toolgate::state;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using state::detail::redis_reply;
using args = std::vector<std::string>;

namespace {

using toolgate::testing::free_port;

constexpr std::int64_t t0 = 1'764'633'600'000;  // 2025-12-02T00:00:00Z

// redis-server as a child process; ready when it says so on its output (no polling).
class redis_server {
public:
    explicit redis_server(int port) : port_(port) {}
    redis_server(redis_server const&) = delete;
    redis_server& operator=(redis_server const&) = delete;
    ~redis_server() { stop(); }

    void start() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
        auto port = std::to_string(port_);
        std::vector<std::string> argv_s = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no", "--daemonize", "no"};
        std::vector<char*> argv;
        for (auto& a : argv_s) argv.push_back(a.data());
        argv.push_back(nullptr);
        ready_ = ended_ = false;
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork");
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no server behind
            ::dup2(fds[1], 1);
            ::dup2(fds[1], 2);
            ::close_range(3, ~0U, 0);
            ::execv("/usr/bin/redis-server", argv.data());
            ::_exit(127);
        }
        ::close(fds[1]);
        drain_ = std::thread([this, fd = fds[0]] {
            std::string seen;
            char buf[4096];
            for (;;) {
                auto n = ::read(fd, buf, sizeof buf);
                if (n <= 0) break;
                std::lock_guard lock(mu_);
                if (ready_) continue;
                seen.append(buf, static_cast<std::size_t>(n));
                if (seen.find("Ready to accept connections") != std::string::npos) {
                    ready_ = true;
                    cv_.notify_all();
                }
            }
            ::close(fd);
            std::lock_guard lock(mu_);
            ended_ = true;
            cv_.notify_all();
        });
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, 10s, [&] { return ready_ || ended_; });
        if (!ready_) throw std::runtime_error("redis-server did not start on port " + port);
    }

    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
            pid_ = -1;
        }
        if (drain_.joinable()) drain_.join();
    }

    int port() const { return port_; }

private:
    int port_;
    pid_t pid_ = -1;
    std::thread drain_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool ready_ = false;
    bool ended_ = false;
};

// One io_context on its own thread, like a gateway worker.
struct worker {
    asio::io_context ioc{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(ioc);
    std::thread thread{[this] { ioc.run(); }};

    ~worker() {
        guard.reset();
        ioc.stop();
        thread.join();
    }
    template <class T>
    std::future<T> spawn(asio::awaitable<T> a) {
        return asio::co_spawn(ioc, std::move(a), asio::use_future);
    }
    template <class T>
    T run(asio::awaitable<T> a) {
        return spawn(std::move(a)).get();
    }
};

asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
}

// The memory arithmetic on the same inputs: what admit_now in state/memory.cpp does.
struct window_model {
    std::map<std::string, state::window_counts> counts;

    state::admit_result admit(std::vector<state::limit_check> const& checks, std::int64_t now) {
        state::admit_result out;
        out.allowed = true;
        for (std::size_t i = 0; i < checks.size(); ++i) {
            out.verdicts.push_back(state::window_check(counts[checks[i].key], checks[i].spec, now, checks[i].amount));
            if (!out.verdicts.back().allowed && out.allowed) {
                out.allowed = false;
                out.rejected = i;
            }
        }
        if (out.allowed)
            for (auto const& c : checks) state::window_add(counts[c.key], c.spec, now, now, c.amount);
        return out;
    }
    void adjust(state::limit_check const& c, std::int64_t at, std::int64_t delta, std::int64_t now) {
        if (auto it = counts.find(c.key); it != counts.end()) state::window_add(it->second, c.spec, at, now, delta);
    }
};

void expect_same(state::admit_result const& redis, state::admit_result const& model, std::string const& where) {
    ASSERT_EQ(redis.allowed, model.allowed) << where;
    if (!model.allowed) {
        EXPECT_EQ(redis.rejected, model.rejected) << where;
    }
    ASSERT_EQ(redis.verdicts.size(), model.verdicts.size()) << where;
    for (std::size_t i = 0; i < model.verdicts.size(); ++i) {
        auto const& a = redis.verdicts[i];
        auto const& b = model.verdicts[i];
        EXPECT_EQ(a.allowed, b.allowed) << where << " check " << i;
        EXPECT_EQ(a.used, b.used) << where << " check " << i;
        EXPECT_EQ(a.remaining, b.remaining) << where << " check " << i;
        EXPECT_EQ(a.reset_ms, b.reset_ms) << where << " check " << i;
        EXPECT_EQ(a.retry_after_ms, b.retry_after_ms) << where << " check " << i;
    }
}

state::limit_check check(std::string key, std::int64_t span, std::int64_t limit, std::int64_t amount = 1) {
    state::limit_check c;
    c.key = std::move(key);
    c.spec.span_ms = span;
    c.spec.limit = limit;
    c.amount = amount;
    return c;
}

state::budget_line line(std::string scope, std::string period, std::int64_t limit) {
    state::budget_line l;
    l.scope = std::move(scope);
    l.period = std::move(period);
    l.limit_micros = limit;
    return l;
}

class redis_test : public ::testing::Test {
protected:
    void SetUp() override {
        server_ = std::make_unique<redis_server>(free_port());
        server_->start();
    }

    std::shared_ptr<state::redis_pool> pool(std::chrono::milliseconds timeout = 2000ms,
                                            std::chrono::milliseconds backoff = 100ms) {
        state::redis_options o;
        o.url = "redis://127.0.0.1:" + std::to_string(server_->port());
        o.timeout = timeout;
        o.reconnect_backoff = backoff;
        return state::make_redis_pool(o);
    }

    redis_reply cmd(state::redis_pool& p, args a) {
        auto r = w_.run(p.command(std::move(a)));
        if (!r) throw std::runtime_error("redis command failed: " + r.error().message());
        return *r;
    }

    std::unique_ptr<redis_server> server_;
    worker w_;
};

}  // namespace

// ---- protocol, without a socket ----

TEST(redis_protocol, parses_the_urls_it_supports) {
    auto a = state::detail::parse_redis_url("redis://127.0.0.1");
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_EQ(a.port, "6379");
    EXPECT_EQ(a.password, "");
    EXPECT_EQ(a.db, 0);
    auto b = state::detail::parse_redis_url("redis://:p%40ss@cache.internal:6380/2");
    EXPECT_EQ(b.host, "cache.internal");
    EXPECT_EQ(b.port, "6380");
    EXPECT_EQ(b.password, "p@ss");
    EXPECT_EQ(b.db, 2);
    EXPECT_EQ(state::detail::parse_redis_url("redis://[::1]:7000/").host, "::1");
    EXPECT_EQ(state::detail::parse_redis_url("redis://localhost/15").db, 15);
}

TEST(redis_protocol, rejects_other_urls_naming_the_problem_without_the_password) {
    for (auto const* url : {"http://127.0.0.1", "rediss://h:6379", "redis://", "redis://user:secret@h", "redis://:@h",
                            "redis://h:0", "redis://h:99999", "redis://h:port", "redis://h/abc", "redis://h/1/2",
                            "redis://h/-1", "redis://h?db=1", "redis://h#x", "not a url"}) {
        try {
            state::detail::parse_redis_url(url);
            ADD_FAILURE() << url << " was accepted";
        } catch (std::invalid_argument const& e) {
            std::string what = e.what();
            EXPECT_NE(what.find("state.redis.url"), std::string::npos) << what;
            EXPECT_EQ(what.find("secret"), std::string::npos) << what;
        }
    }
    EXPECT_THROW(state::make_redis_pool(state::redis_options{"redis://h:1/x", "tg:", 50ms, 250ms}), std::invalid_argument);
}

// Found by tests/fuzz/fuzz_redis_url.cpp: text that is no URL at all used to be shown whole.
TEST(redis_protocol, never_repeats_a_password_of_text_that_is_no_url) {
    for (auto const* url : {"reids>\xffredi\xff\xff\xff//:s1cretp@hs://ost:1", "reissd:/o:s1cretp@breissd://:s1cretp@bss",
                            "re dis://:s1cretp@h", ":s1cretp@h", "redis:/:s1cretp@h:1"}) {
        try {
            state::detail::parse_redis_url(url);
            ADD_FAILURE() << url << " was accepted";
        } catch (std::invalid_argument const& e) {
            EXPECT_EQ(std::string(e.what()).find("s1cretp"), std::string::npos) << e.what();
        }
    }
}

TEST(redis_protocol, writes_commands_as_binary_safe_arrays) {
    EXPECT_EQ(state::detail::encode_command(args{"SET", "a\r\nb", ""}), "*3\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n$0\r\n\r\n");
    std::string zero("x\0y", 3);
    EXPECT_EQ(state::detail::encode_command(args{zero}), std::string("*1\r\n$3\r\nx\0y\r\n", 13));
}

TEST(redis_protocol, reads_replies_fed_one_byte_at_a_time) {
    std::string wire = "+OK\r\n:-42\r\n$-1\r\n*3\r\n$3\r\nfoo\r\n*1\r\n-ERR bad\r\n$0\r\n\r\n$5\r\na\r\nbc\r\n";
    state::detail::reply_reader reader;
    std::vector<redis_reply> got;
    for (char c : wire) {
        reader.feed(&c, 1);
        redis_reply r;
        while (reader.next(r) == state::detail::reply_reader::status::reply) got.push_back(r);
    }
    ASSERT_EQ(got.size(), 5u);
    EXPECT_EQ(got[0].type, redis_reply::kind::status);
    EXPECT_EQ(got[0].str, "OK");
    EXPECT_EQ(got[1].integer, -42);
    EXPECT_TRUE(got[2].is_nil());
    ASSERT_EQ(got[3].elements.size(), 3u);
    EXPECT_EQ(got[3].elements[0].str, "foo");
    ASSERT_EQ(got[3].elements[1].elements.size(), 1u);
    EXPECT_TRUE(got[3].elements[1].elements[0].is_error());
    EXPECT_EQ(got[3].elements[1].elements[0].str, "ERR bad");
    EXPECT_EQ(got[3].elements[2].type, redis_reply::kind::string);
    EXPECT_EQ(got[3].elements[2].str, "");
    EXPECT_EQ(got[4].str, "a\r\nbc");

    state::detail::reply_reader bad;
    bad.feed("?what\r\n", 7);
    redis_reply r;
    EXPECT_EQ(bad.next(r), state::detail::reply_reader::status::error);
}

TEST(redis_protocol, names_scripts_by_their_sha1) {
    EXPECT_EQ(state::detail::sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    EXPECT_EQ(state::detail::sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

// ---- the connection ----

TEST_F(redis_test, round_trips_commands_and_replies) {
    auto p = pool();
    std::string binary("a\r\n\0b", 5);
    EXPECT_EQ(cmd(*p, args{"SET", "k", binary}).str, "OK");
    auto got = cmd(*p, args{"GET", "k"});
    EXPECT_EQ(got.type, redis_reply::kind::string);
    EXPECT_EQ(got.str, binary);
    EXPECT_TRUE(cmd(*p, args{"GET", "missing"}).is_nil());
    EXPECT_EQ(cmd(*p, args{"INCRBY", "n", "-5"}).integer, -5);
    auto err = cmd(*p, args{"INCR", "k"});
    EXPECT_TRUE(err.is_error());
    EXPECT_NE(err.str.find("ERR"), std::string::npos);
    cmd(*p, args{"RPUSH", "l", "x", "y"});
    auto l = cmd(*p, args{"LRANGE", "l", "0", "-1"});
    ASSERT_EQ(l.elements.size(), 2u);
    EXPECT_EQ(l.elements[1].str, "y");
    // A large reply arrives in several reads.
    std::string big(300'000, 'z');
    cmd(*p, args{"SET", "big", big});
    EXPECT_EQ(cmd(*p, args{"GET", "big"}).str, big);
    // The script digest is the one Redis computes.
    EXPECT_EQ(cmd(*p, args{"SCRIPT", "LOAD", state::detail::admit_script().text}).str, state::detail::admit_script().sha);
    EXPECT_TRUE(state::stats(*p).up);
}

TEST_F(redis_test, pipelines_a_hundred_concurrent_commands_on_one_connection) {
    auto p = pool();
    std::vector<std::future<state::result<redis_reply>>> echoes;
    std::vector<std::future<state::result<redis_reply>>> incrs;
    for (int i = 0; i < 100; ++i) {
        echoes.push_back(w_.spawn(p->command(args{"ECHO", "msg-" + std::to_string(i)})));
        incrs.push_back(w_.spawn(p->command(args{"INCR", "n"})));
    }
    for (int i = 0; i < 100; ++i) {
        auto e = echoes[i].get();
        ASSERT_TRUE(e) << e.error().message();
        EXPECT_EQ(e->str, "msg-" + std::to_string(i));
        auto n = incrs[i].get();
        ASSERT_TRUE(n);
        EXPECT_EQ(n->integer, i + 1);  // written in order, answered in order
    }
    auto batch = w_.run(p->pipeline(std::vector<args>{{"SET", "a", "1"}, {"GET", "a"}, {"GET", "b"}}));
    ASSERT_TRUE(batch);
    ASSERT_EQ(batch->size(), 3u);
    EXPECT_EQ((*batch)[1].str, "1");
    EXPECT_TRUE((*batch)[2].is_nil());
    EXPECT_EQ(p->connections(), 1u);
    auto clients = cmd(*p, args{"CLIENT", "LIST"}).str;
    EXPECT_EQ(std::count(clients.begin(), clients.end(), '\n'), 1) << clients;
    EXPECT_EQ(state::stats(*p).commands, 204u);
    EXPECT_EQ(state::stats(*p).failures, 0u);
}

TEST_F(redis_test, authenticates_and_selects_the_database_of_the_url) {
    auto plain = pool();
    cmd(*plain, args{"CONFIG", "SET", "requirepass", "s3cret"});  // this connection stays logged in
    state::redis_options o;
    o.url = "redis://:s3cret@127.0.0.1:" + std::to_string(server_->port()) + "/3";
    o.timeout = 2000ms;
    auto authed = state::make_redis_pool(o);
    EXPECT_EQ(cmd(*authed, args{"SET", "x", "1"}).str, "OK");
    EXPECT_TRUE(cmd(*plain, args{"GET", "x"}).is_nil());  // db 0
    cmd(*plain, args{"SELECT", "3"});
    EXPECT_EQ(cmd(*plain, args{"GET", "x"}).str, "1");

    o.url = "redis://:wrong@127.0.0.1:" + std::to_string(server_->port());
    auto refused = state::make_redis_pool(o);
    auto r = w_.run(refused->command(args{"PING"}));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), state::errc::unavailable);
    EXPECT_FALSE(state::stats(*refused).up);
}

TEST_F(redis_test, a_command_without_an_answer_in_time_fails_and_the_next_reconnects) {
    auto p = pool(200ms, 50ms);
    EXPECT_EQ(cmd(*p, args{"PING"}).str, "PONG");
    auto start = std::chrono::steady_clock::now();
    auto blocked = w_.spawn(p->command(args{"BLPOP", "nothing", "5"}));
    auto behind = w_.spawn(p->command(args{"PING"}));
    auto r = blocked.get();
    auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), state::errc::timeout);
    EXPECT_GE(elapsed, 190ms);
    EXPECT_LT(elapsed, 1500ms);
    auto b = behind.get();
    ASSERT_FALSE(b);  // pipelined behind it on the same connection
    EXPECT_EQ(b.error(), state::errc::timeout);
    w_.run(pause(60ms));  // the backoff since the last connect attempt
    EXPECT_EQ(cmd(*p, args{"PING"}).str, "PONG");
    EXPECT_EQ(state::stats(*p).reconnects, 1u);
    EXPECT_EQ(state::stats(*p).failures, 2u);
    EXPECT_TRUE(state::stats(*p).up);
}

TEST_F(redis_test, a_cancelled_caller_leaves_the_pipeline_in_step) {
    auto p = pool();
    EXPECT_EQ(cmd(*p, args{"PING"}).str, "PONG");
    asio::cancellation_signal cancel;
    auto blocked = asio::co_spawn(w_.ioc, p->command(args{"BLPOP", "nothing", "0.3"}),
                                  asio::bind_cancellation_slot(cancel.slot(), asio::use_future));
    auto behind = w_.spawn(p->command(args{"ECHO", "after"}));
    asio::post(w_.ioc, [&] { cancel.emit(asio::cancellation_type::terminal); });
    auto r = blocked.get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), state::errc::timeout);
    // BLPOP's reply still comes first on the connection and goes nowhere; ECHO gets its own.
    auto e = behind.get();
    ASSERT_TRUE(e) << e.error().message();
    EXPECT_EQ(e->str, "after");
    EXPECT_EQ(cmd(*p, args{"ECHO", "again"}).str, "again");
    EXPECT_EQ(state::stats(*p).reconnects, 0u);
}

TEST_F(redis_test, survives_redis_being_killed_and_restarted_on_the_same_port) {
    auto timeout = 1500ms;
    auto backoff = 200ms;
    auto p = pool(timeout, backoff);
    auto counters = state::make_redis_counters(p);
    std::vector<state::limit_check> checks{check("rl:k", 60'000, 100)};
    ASSERT_TRUE(w_.run(counters->admit(checks, t0)));
    EXPECT_TRUE(state::stats(*p).up);

    // In flight when the server dies: fails with unavailable, well before its own deadline.
    auto start = std::chrono::steady_clock::now();
    auto blocked = w_.spawn(p->command(args{"BLPOP", "nothing", "10"}));
    server_->stop();
    auto r = blocked.get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), state::errc::unavailable);
    EXPECT_LT(std::chrono::steady_clock::now() - start, timeout);
    EXPECT_FALSE(state::stats(*p).up);

    // While it is down: unavailable, fast (refused, or failing fast within the backoff).
    for (int i = 0; i < 3; ++i) {
        auto t = std::chrono::steady_clock::now();
        auto a = w_.run(counters->admit(checks, t0 + 1));
        ASSERT_FALSE(a);
        EXPECT_EQ(a.error(), state::errc::unavailable);
        EXPECT_LT(std::chrono::steady_clock::now() - t, timeout);
    }

    server_->start();
    w_.run(pause(backoff + 20ms));
    auto a = w_.run(counters->admit(checks, t0 + 2));
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_TRUE(a->allowed);
    EXPECT_EQ(a->verdicts[0].used, 0);  // a fresh server: the script is loaded again (NOSCRIPT -> EVAL)
    EXPECT_TRUE(w_.run(counters->admit(checks, t0 + 3)));
    auto const& st = state::stats(*p);
    EXPECT_TRUE(st.up);
    EXPECT_EQ(st.recoveries, 1u);
    EXPECT_GE(st.reconnects, 1u);
    EXPECT_GE(st.failures, 4u);
}

TEST_F(redis_test, a_redis_that_is_down_at_start_is_unavailable_not_an_error) {
    server_->stop();
    auto p = pool(500ms, 10s);
    auto counters = state::make_redis_counters(p);
    std::vector<state::limit_check> checks{check("rl:k", 60'000, 100)};
    auto a = w_.run(counters->admit(checks, t0));
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error(), state::errc::unavailable);
    auto b = w_.run(counters->admit(checks, t0));  // within the backoff: no new attempt
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error(), state::errc::unavailable);
    EXPECT_EQ(state::stats(*p).failures, 2u);
    EXPECT_EQ(state::stats(*p).reconnects, 0u);
}

TEST_F(redis_test, two_executors_share_one_pool_each_with_its_own_connection) {
    auto p = pool();
    auto counters = state::make_redis_counters(p);
    worker other;
    std::vector<state::limit_check> checks{check("rl:shared", 60'000, 60)};
    std::vector<std::future<state::result<state::admit_result>>> results;
    for (int i = 0; i < 50; ++i) {
        results.push_back(w_.spawn(counters->admit(checks, t0 + i)));
        results.push_back(other.spawn(counters->admit(checks, t0 + i)));
    }
    int allowed = 0;
    for (auto& f : results) {
        auto r = f.get();
        ASSERT_TRUE(r) << r.error().message();
        allowed += r->allowed ? 1 : 0;
    }
    EXPECT_EQ(allowed, 60);  // one atomic script per admit, whichever connection sent it
    EXPECT_EQ(p->connections(), 2u);
    auto clients = cmd(*p, args{"CLIENT", "LIST"}).str;
    EXPECT_EQ(std::count(clients.begin(), clients.end(), '\n'), 2) << clients;
}

// ---- counters ----

TEST_F(redis_test, admit_agrees_with_the_window_arithmetic_on_a_table_of_cases) {
    auto p = pool();
    auto counters = state::make_redis_counters(p);
    window_model model;
    struct step {
        std::int64_t at;
        std::vector<state::limit_check> checks;
    };
    auto m = 60'000;
    std::vector<step> table = {
        // limit 5 per minute: fill, refuse with retry-after, slide out bucket by bucket
        {t0, {check("a", m, 5, 2)}},
        {t0 + 999, {check("a", m, 5, 2)}},
        {t0 + 1000, {check("a", m, 5, 1)}},
        {t0 + 1500, {check("a", m, 5, 1)}},
        {t0 + 30'000, {check("a", m, 5, 3)}},
        {t0 + 60'999, {check("a", m, 5, 1)}},
        {t0 + 61'000, {check("a", m, 5, 3)}},
        {t0 + 61'000, {check("a", m, 5, 1)}},
        {t0 + 62'000, {check("a", m, 5, 2)}},
        {t0 + 62'000, {check("a", m, 5, 6)}},  // more than the limit: never fits
        {t0 + 200'000, {check("a", m, 5, 5)}},
        // two checks: the second refuses, so neither counts
        {t0, {check("b", m, 10, 4), check("c", m, 3, 4)}},
        {t0 + 1, {check("b", m, 10, 4), check("c", m, 3, 3)}},
        {t0 + 2, {check("b", m, 10, 7), check("c", m, 3, 0)}},
        {t0 + 3, {check("b", m, 10, 6), check("c", m, 3, 0)}},
        // a span that does not divide into 60 buckets, and one shorter than 60 ms
        {t0 + 5, {check("d", 7'000, 3, 1), check("e", 30, 2, 1)}},
        {t0 + 40, {check("d", 7'000, 3, 1), check("e", 30, 2, 1)}},
        {t0 + 64, {check("d", 7'000, 3, 1), check("e", 30, 2, 1)}},
        {t0 + 65, {check("d", 7'000, 3, 1), check("e", 30, 2, 1)}},
        {t0 + 7'070, {check("d", 7'000, 3, 1), check("e", 30, 2, 2)}},
        {t0 + 7'200, {check("d", 7'000, 3, 1)}},
        // times before the epoch (negative bucket indexes)
        {-61'500, {check("f", m, 2, 1)}},
        {-1, {check("f", m, 2, 1)}},
        {0, {check("f", m, 2, 1)}},
        {500, {check("f", m, 2, 1)}},
    };
    for (std::size_t i = 0; i < table.size(); ++i) {
        auto r = w_.run(counters->admit(table[i].checks, table[i].at));
        ASSERT_TRUE(r) << r.error().message();
        expect_same(*r, model.admit(table[i].checks, table[i].at), "step " + std::to_string(i));
    }
    auto empty = w_.run(counters->admit(std::vector<state::limit_check>{}, t0));
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->allowed);
}

TEST_F(redis_test, admit_and_adjust_agree_with_the_window_arithmetic_on_random_runs) {
    auto p = pool();
    auto counters = state::make_redis_counters(p);
    std::uint64_t seed = 0x5eed;
    auto rnd = [&](std::int64_t n) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<std::int64_t>((seed >> 33) % static_cast<std::uint64_t>(n));
    };
    struct run_spec {
        std::int64_t start, small_step, big_step;
        std::int64_t back = 0;  // replicas whose clocks differ: now sometimes steps back this far (at most
                                // 60 buckets of the finest check, as far as the memory ring can follow)
    };
    int refused = 0, admitted = 0, adjusted = 0;
    for (auto const& rs : {run_spec{t0 + 7, 1'500, 70'000}, run_spec{-100'000, 400, 9'000}, run_spec{t0, 3, 50},
                           run_spec{t0 + 11, 300, 5'000, 60}}) {
        window_model model;
        std::vector<std::pair<state::limit_check, std::int64_t>> counted;
        auto t = rs.start;
        for (int s = 0; s < 150; ++s) {
            t += rnd(5) == 0 ? rnd(rs.big_step) : rnd(rs.small_step);
            if (rs.back && rnd(4) == 0) t -= rnd(rs.back);
            std::vector<state::limit_check> checks;
            if (rnd(3) != 0) checks.push_back(check("rpm", 60'000, 20, rnd(8) == 0 ? 25 : rnd(5) + 1));
            if (rnd(2) == 0) checks.push_back(check("tps", 7'000, 50, rnd(20)));
            if (rnd(3) == 0) checks.push_back(check("fast", 30, 3, rnd(2) + 1));
            auto r = w_.run(counters->admit(checks, t));
            ASSERT_TRUE(r) << r.error().message();
            auto want = model.admit(checks, t);
            expect_same(*r, want, "start " + std::to_string(rs.start) + " step " + std::to_string(s));
            (want.allowed ? admitted : refused) += 1;
            if (want.allowed)
                for (auto const& c : checks) counted.emplace_back(c, t);
            if (!counted.empty() && rnd(4) == 0) {
                auto const& [c, at] = counted[static_cast<std::size_t>(rnd(static_cast<std::int64_t>(counted.size())))];
                auto delta = rnd(9) - 5;
                ASSERT_TRUE(w_.run(counters->adjust(c, at, delta, t)));
                model.adjust(c, at, delta, t);
                ++adjusted;
            }
        }
        // Stale buckets are dropped as the window moves: a counter never holds much more than it counts.
        EXPECT_LE(cmd(*p, args{"HLEN", "tg:rpm"}).integer, 62);
        cmd(*p, args{"FLUSHDB"});
    }
    // The runs went through both outcomes, not only one.
    EXPECT_GT(refused, 50);
    EXPECT_GT(admitted, 50);
    EXPECT_GT(adjusted, 50);
}

TEST_F(redis_test, adjust_corrects_a_count_never_below_zero_and_only_inside_the_window) {
    auto p = pool();
    auto counters = state::make_redis_counters(p);
    auto c = check("tpm", 60'000, 100, 40);
    std::vector<state::limit_check> checks{c};
    ASSERT_TRUE(w_.run(counters->admit(checks, t0)));
    ASSERT_TRUE(w_.run(counters->adjust(c, t0, -15, t0 + 10)));  // the real tokens were 25
    auto probe = check("tpm", 60'000, 100, 0);
    std::vector<state::limit_check> probes{probe};
    EXPECT_EQ(w_.run(counters->admit(probes, t0 + 20))->verdicts[0].used, 25);
    ASSERT_TRUE(w_.run(counters->adjust(c, t0, -1000, t0 + 30)));
    EXPECT_EQ(w_.run(counters->admit(probes, t0 + 40))->verdicts[0].used, 0);
    ASSERT_TRUE(w_.run(counters->adjust(c, t0, 30, t0 + 50)));
    EXPECT_EQ(w_.run(counters->admit(probes, t0 + 60))->verdicts[0].used, 30);
    // A bucket that has left the window is not touched.
    ASSERT_TRUE(w_.run(counters->adjust(c, t0, 500, t0 + 61'000)));
    EXPECT_EQ(w_.run(counters->admit(probes, t0 + 61'000))->verdicts[0].used, 0);
    // Nor is a counter nobody counted on.
    ASSERT_TRUE(w_.run(counters->adjust(check("other", 60'000, 10), t0, 5, t0)));
    EXPECT_EQ(cmd(*p, args{"EXISTS", "tg:other"}).integer, 0);
}

TEST_F(redis_test, scripts_are_sent_again_after_the_server_forgot_them) {
    auto p = pool();
    auto counters = state::make_redis_counters(p);
    std::vector<state::limit_check> checks{check("rl:x", 60'000, 10)};
    ASSERT_TRUE(w_.run(counters->admit(checks, t0)));
    cmd(*p, args{"SCRIPT", "FLUSH"});
    auto before = state::stats(*p).commands.load();
    auto r = w_.run(counters->admit(checks, t0 + 1));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->verdicts[0].used, 1);
    EXPECT_EQ(state::stats(*p).commands - before, 2u);  // EVALSHA, NOSCRIPT, EVAL
    before = state::stats(*p).commands.load();
    ASSERT_TRUE(w_.run(counters->admit(checks, t0 + 2)));
    EXPECT_EQ(state::stats(*p).commands - before, 1u);
}

TEST_F(redis_test, leases_are_limited_released_and_lapse) {
    auto p = pool();
    auto counters = state::make_redis_counters(p);
    EXPECT_TRUE(*w_.run(counters->acquire("conc:k", 2, "r1", t0, 10'000)));
    EXPECT_TRUE(*w_.run(counters->acquire("conc:k", 2, "r2", t0 + 1, 10'000)));
    EXPECT_FALSE(*w_.run(counters->acquire("conc:k", 2, "r3", t0 + 2, 10'000)));
    ASSERT_TRUE(w_.run(counters->release("conc:k", "r1")));
    EXPECT_TRUE(*w_.run(counters->acquire("conc:k", 2, "r3", t0 + 3, 10'000)));
    EXPECT_FALSE(*w_.run(counters->acquire("conc:k", 2, "r4", t0 + 4, 10'000)));
    // r2 was never released: it lapses at t0 + 1 + 10 s.
    EXPECT_FALSE(*w_.run(counters->acquire("conc:k", 2, "r4", t0 + 10'000, 10'000)));
    EXPECT_TRUE(*w_.run(counters->acquire("conc:k", 2, "r4", t0 + 10'001, 10'000)));
    EXPECT_EQ(cmd(*p, args{"ZCARD", "tg:conc:k"}).integer, 2);
    ASSERT_TRUE(w_.run(counters->release("conc:k", "never-held")));
    EXPECT_GT(cmd(*p, args{"PTTL", "tg:conc:k"}).integer, 0);
}

// ---- ledger ----

TEST_F(redis_test, budgets_reserve_settle_refuse_and_let_reservations_lapse) {
    auto p = pool();
    auto ledger = state::make_redis_ledger(p);
    std::vector<state::budget_line> lines{line("key:k1", "2025-12-02", 1'000), line("team:t", "2025-12", 5'000)};

    auto a = w_.run(ledger->reserve(lines, "req1", 600, t0, 60'000));
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->allowed);
    EXPECT_EQ(a->spent_micros, (std::vector<std::int64_t>{0, 0}));
    auto b = w_.run(ledger->reserve(lines, "req2", 500, t0 + 1, 60'000));
    ASSERT_TRUE(b);
    EXPECT_FALSE(b->allowed);
    EXPECT_EQ(b->rejected, 0u);
    EXPECT_EQ(b->spent_micros, (std::vector<std::int64_t>{600, 600}));

    state::spend_entry who{"req1", "k1", "t", "gpt-x", "openai", t0 + 5};
    ASSERT_TRUE(w_.run(ledger->settle(lines, "req1", 700, who)));  // more than reserved: still charged
    EXPECT_EQ(*w_.run(ledger->spent("key:k1", "2025-12-02")), 700);
    EXPECT_EQ(*w_.run(ledger->spent("team:t", "2025-12")), 700);
    EXPECT_EQ(*w_.run(ledger->spent("team:t", "2025-11")), 0);

    auto c = w_.run(ledger->reserve(lines, "req3", 300, t0 + 10, 60'000));
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->allowed);  // 700 + 300 <= 1000
    EXPECT_EQ(c->spent_micros, (std::vector<std::int64_t>{700, 700}));
    auto d = w_.run(ledger->reserve(lines, "req4", 1, t0 + 11, 60'000));
    ASSERT_TRUE(d);
    EXPECT_FALSE(d->allowed);
    EXPECT_EQ(d->spent_micros, (std::vector<std::int64_t>{1'000, 1'000}));
    EXPECT_EQ(*w_.run(ledger->spent("key:k1", "2025-12-02")), 700);  // reserved is not spent

    // req3's turn died without settling: its reservation lapses after its lease.
    auto e = w_.run(ledger->reserve(lines, "req5", 300, t0 + 10 + 60'000, 60'000));
    ASSERT_TRUE(e);
    EXPECT_TRUE(e->allowed);
    EXPECT_EQ(e->spent_micros, (std::vector<std::int64_t>{700, 700}));

    // The second line refuses: nothing is reserved on the first either.
    std::vector<state::budget_line> tight{line("key:k2", "2025-12-02", 1'000), line("team:t", "2025-12", 1'100)};
    auto f = w_.run(ledger->reserve(tight, "req6", 200, t0 + 60'020, 60'000));
    ASSERT_TRUE(f);
    EXPECT_FALSE(f->allowed);
    EXPECT_EQ(f->rejected, 1u);
    EXPECT_EQ(f->spent_micros, (std::vector<std::int64_t>{0, 1'000}));
    auto g = w_.run(ledger->reserve(tight, "req7", 100, t0 + 60'030, 60'000));
    ASSERT_TRUE(g);
    EXPECT_TRUE(g->allowed);
    EXPECT_EQ(g->spent_micros, (std::vector<std::int64_t>{0, 1'000}));

    // A reservation made again replaces the first.
    std::vector<state::budget_line> again{line("key:k3", "2025-12-02", 1'000)};
    EXPECT_TRUE(w_.run(ledger->reserve(again, "req8", 400, t0, 60'000))->allowed);
    auto h = w_.run(ledger->reserve(again, "req8", 300, t0 + 1, 60'000));
    ASSERT_TRUE(h);
    EXPECT_TRUE(h->allowed);
    EXPECT_EQ(h->spent_micros, (std::vector<std::int64_t>{400}));
    EXPECT_EQ(w_.run(ledger->reserve(again, "probe", 0, t0 + 2, 60'000))->spent_micros, (std::vector<std::int64_t>{300}));

    EXPECT_GT(cmd(*p, args{"PTTL", "tg:budget:key:k1:2025-12-02"}).integer, 300LL * 24 * 3600 * 1000);
    auto journal = cmd(*p, args{"LRANGE", "tg:spend:journal", "0", "-1"});
    ASSERT_EQ(journal.elements.size(), 1u);
    auto entry = boost::json::parse(journal.elements[0].str).as_object();
    EXPECT_EQ(entry.at("request_id").as_string(), "req1");
    EXPECT_EQ(entry.at("model").as_string(), "gpt-x");
    EXPECT_EQ(entry.at("micros").as_int64(), 700);
    EXPECT_EQ(entry.at("ts_ms").as_int64(), t0 + 5);
    EXPECT_EQ(entry.at("lines").as_array().size(), 2u);
}

// The line keeps the sum of its live reservations ('held'): a check reads it instead of every
// turn in flight, and it follows every way a reservation leaves.
TEST_F(redis_test, budgets_keep_the_held_sum_through_settles_lapses_and_a_lost_set) {
    auto p = pool();
    auto ledger = state::make_redis_ledger(p);
    std::vector<state::budget_line> lines{line("key:h1", "2025-12-02", 10'000)};
    std::string const hash = "tg:budget:key:h1:2025-12-02";
    auto held = [&] {
        auto r = cmd(*p, args{"HGET", hash, "held"});
        return r.str.empty() ? std::int64_t(0) : std::stoll(r.str);
    };
    for (int i = 0; i < 20; ++i)
        ASSERT_TRUE(w_.run(ledger->reserve(lines, "t" + std::to_string(i), 100 + i, t0 + i, 60'000))->allowed);
    EXPECT_EQ(held(), 20 * 100 + 190);
    // A hash that only reservations made still expires (the settle gives it the period's TTL).
    auto ttl = cmd(*p, args{"PTTL", hash}).integer;
    EXPECT_GT(ttl, 0);
    EXPECT_LE(ttl, 120'000);
    state::spend_entry who{"t0", "h1", "", "gpt-x", "openai", t0 + 30};
    ASSERT_TRUE(w_.run(ledger->settle(lines, "t0", 50, who)));
    EXPECT_EQ(held(), 20 * 100 + 190 - 100);
    EXPECT_GT(cmd(*p, args{"PTTL", hash}).integer, 300LL * 24 * 3600 * 1000);
    // 2000 + 190 - 100 held, 50 spent: 7,860 of 10,000 left.
    auto probe = w_.run(ledger->reserve(lines, "probe", 7'860, t0 + 31, 1));
    ASSERT_TRUE(probe);
    EXPECT_TRUE(probe->allowed);
    EXPECT_EQ(probe->spent_micros, (std::vector<std::int64_t>{50 + 2'090}));
    EXPECT_FALSE(w_.run(ledger->reserve(lines, "over", 1, t0 + 31, 60'000))->allowed);
    // The probe lapses 1 ms later; t1..t9 lapse at t0 + i + 60 s.
    auto after = w_.run(ledger->reserve(lines, "late", 0, t0 + 60'009, 60'000));
    ASSERT_TRUE(after);
    EXPECT_EQ(after->spent_micros, (std::vector<std::int64_t>{50 + 2'090 - (9 * 100 + 45 - 0)}));
    EXPECT_EQ(held(), 2'090 - (9 * 100 + 45));
    // The reservations' set is gone (expired, or flushed by hand): nothing is held any more.
    cmd(*p, args{"DEL", hash + ":res"});
    auto healed = w_.run(ledger->reserve(lines, "fresh", 10, t0 + 60'010, 60'000));
    ASSERT_TRUE(healed);
    EXPECT_EQ(healed->spent_micros, (std::vector<std::int64_t>{50}));
    EXPECT_EQ(held(), 10);
    // A gateway of an older version adds a member without the sum: it is counted all the same.
    cmd(*p, args{"ZADD", hash + ":res", std::to_string(t0 + 120'000), "old-turn:250"});
    auto mixed = w_.run(ledger->reserve(lines, "probe2", 0, t0 + 60'011, 1));
    ASSERT_TRUE(mixed);
    EXPECT_EQ(mixed->spent_micros, (std::vector<std::int64_t>{50 + 10 + 250}));
    EXPECT_EQ(held(), 260);
    // ... and one that removes a member without the sum (it settled the old way).
    cmd(*p, args{"ZREM", hash + ":res", "old-turn:250"});
    auto after_old = w_.run(ledger->reserve(lines, "probe3", 0, t0 + 60'012, 1));
    ASSERT_TRUE(after_old);
    EXPECT_EQ(after_old->spent_micros, (std::vector<std::int64_t>{50 + 10}));
}

// ---- keys ----

TEST_F(redis_test, keys_are_put_found_rotated_listed_and_removed) {
    auto p = pool();
    auto keys = state::make_redis_keys(p);
    state::stored_key k;
    k.id = "key_b";
    k.hash = state::sha256_hex("tg-first");
    k.prefix = "tg-fir";
    k.attrs = boost::json::parse(R"({"name":"ci","models":["gpt-x"],"limits":{"rpm":10}})").as_object();
    k.created_ms = t0;
    k.updated_ms = t0;
    ASSERT_TRUE(w_.run(keys->put(k)));

    auto found = w_.run(keys->find_hash(k.hash));
    ASSERT_TRUE(found);
    ASSERT_TRUE(*found);
    EXPECT_EQ((*found)->id, "key_b");
    EXPECT_EQ((*found)->prefix, "tg-fir");
    EXPECT_EQ((*found)->attrs, k.attrs);
    EXPECT_EQ((*found)->created_ms, t0);
    EXPECT_FALSE(*w_.run(keys->find_hash("nope")));
    EXPECT_FALSE(*w_.run(keys->get("key_none")));

    // A rotation: same id, new hash; the old text stops working in the same step.
    auto rotated = k;
    rotated.hash = state::sha256_hex("tg-second");
    rotated.prefix = "tg-sec";
    rotated.updated_ms = t0 + 1000;
    ASSERT_TRUE(w_.run(keys->put(rotated)));
    EXPECT_FALSE(*w_.run(keys->find_hash(k.hash)));
    auto now = w_.run(keys->get("key_b"));
    ASSERT_TRUE(now && *now);
    EXPECT_EQ((*now)->hash, rotated.hash);
    EXPECT_EQ((*now)->updated_ms, t0 + 1000);

    auto other = k;
    other.id = "key_a";
    other.hash = state::sha256_hex("tg-other");
    other.attrs = boost::json::object();
    ASSERT_TRUE(w_.run(keys->put(other)));
    auto all = w_.run(keys->list());
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[0].id, "key_a");
    EXPECT_EQ((*all)[1].id, "key_b");
    EXPECT_TRUE((*all)[0].attrs.empty());

    EXPECT_TRUE(*w_.run(keys->remove("key_b")));
    EXPECT_FALSE(*w_.run(keys->remove("key_b")));
    EXPECT_FALSE(*w_.run(keys->find_hash(rotated.hash)));
    EXPECT_EQ(w_.run(keys->list())->size(), 1u);
    EXPECT_EQ(cmd(*p, args{"HLEN", "tg:keyhash"}).integer, 1);
}

// ---- the turn gate: one script to open a turn, one to close it ----

TEST_F(redis_test, a_turn_opens_and_closes_in_one_script_each_and_a_budget_refusal_counts_nothing) {
    auto p = pool();
    auto gate = state::make_redis_gate(p);
    auto ledger = state::make_redis_ledger(p);
    std::vector<state::limit_check> checks{check("rl:key:k1:rpm", 60'000, 2), check("rl:key:k1:tpm", 60'000, 100, 40)};
    std::vector<state::limit_check> tokens{checks[1]};
    std::vector<state::budget_line> lines{line("key:k1", "2025-12-02", 1'000)};
    auto open = [&](std::string const& id, std::int64_t micros, std::int64_t now) {
        state::turn_open t;
        t.checks = &checks;
        t.lines = &lines;
        t.reservation = &id;
        t.micros = micros;
        t.now_ms = now;
        t.lease_ms = 60'000;
        EXPECT_FALSE(gate->open_now(t));  // Redis is always asked
        return w_.run(gate->open(t));
    };
    // Loaded first: the first EVALSHA of a script the server does not know is followed by an EVAL.
    cmd(*p, args{"SCRIPT", "LOAD", state::detail::open_turn_script().text});
    cmd(*p, args{"SCRIPT", "LOAD", state::detail::close_turn_script().text});
    auto commands = [&] { return state::stats(*p).commands.load(); };
    auto before = commands();
    auto first = open("r1", 600, t0);
    EXPECT_EQ(commands() - before, 1u);  // one round trip for the counts and the reservation
    ASSERT_TRUE(first.admitted && first.admitted->allowed);
    ASSERT_TRUE(first.reserved && *first.reserved && (*first.reserved)->allowed);

    auto second = open("r2", 600, t0 + 1);  // 600 + 600 > 1000
    ASSERT_TRUE(second.admitted && second.admitted->allowed);
    ASSERT_TRUE(second.reserved && *second.reserved);
    EXPECT_FALSE((*second.reserved)->allowed);
    EXPECT_EQ((*second.reserved)->spent_micros, (std::vector<std::int64_t>{600}));

    state::spend_entry who{"r1", "k1", "", "gpt-x", "openai", t0 + 2};
    std::string r1 = "r1";
    state::turn_close close;
    std::string turn = "turn-r1";
    close.id = &turn;
    close.adjust = &tokens;
    close.at_ms = t0;
    close.delta = 10;
    close.now_ms = t0 + 2;
    close.lines = &lines;
    close.reservation = &r1;
    close.micros = 700;
    close.who = &who;
    close.reserved_micros = 600;  // its member is removed without a scan
    EXPECT_FALSE(gate->close_now(close));
    EXPECT_TRUE(gate->close_after_answer());
    before = commands();
    ASSERT_TRUE(w_.run(gate->close(close)));
    EXPECT_EQ(commands() - before, 1u);  // one round trip for the corrections and the settle
    EXPECT_EQ(*w_.run(ledger->spent("key:k1", "2025-12-02")), 700);
    EXPECT_EQ(cmd(*p, args{"LLEN", "tg:spend:journal"}).integer, 1);
    // Tried again (as after a reply that never came): counted once.
    ASSERT_TRUE(w_.run(gate->close(close)));
    EXPECT_EQ(*w_.run(ledger->spent("key:k1", "2025-12-02")), 700);
    EXPECT_EQ(cmd(*p, args{"LLEN", "tg:spend:journal"}).integer, 1);

    // The refused r2 counted nothing: one request and 50 tokens so far; r1's reservation is gone.
    auto third = open("r3", 100, t0 + 3);
    ASSERT_TRUE(third.admitted && third.admitted->allowed);
    EXPECT_EQ(third.admitted->verdicts[0].used, 1);
    EXPECT_EQ(third.admitted->verdicts[1].used, 50);
    ASSERT_TRUE(third.reserved && *third.reserved);
    EXPECT_EQ((*third.reserved)->spent_micros, (std::vector<std::int64_t>{700}));
    // A rate-limit refusal reserves nothing.
    auto fourth = open("r4", 100, t0 + 4);
    ASSERT_TRUE(fourth.admitted);
    EXPECT_FALSE(fourth.admitted->allowed);
    EXPECT_EQ(fourth.admitted->rejected, 0u);
    EXPECT_FALSE(fourth.reserved);
    auto probe = w_.run(ledger->reserve(lines, "probe", 0, t0 + 5, 60'000));
    ASSERT_TRUE(probe);
    EXPECT_EQ(probe->spent_micros, (std::vector<std::int64_t>{800}));  // 700 spent + r3's 100 held

    // A turn without a budget line counts only; without checks and lines nothing is asked.
    std::vector<state::budget_line> none;
    state::turn_open bare;
    bare.checks = &checks;
    bare.lines = &none;
    bare.now_ms = t0 + 61 * 60'000;  // a fresh window
    auto counted = w_.run(gate->open(bare));
    ASSERT_TRUE(counted.admitted && counted.admitted->allowed);
    EXPECT_FALSE(counted.reserved);
    std::vector<state::limit_check> no_checks;
    bare.checks = &no_checks;
    ASSERT_TRUE(gate->open_now(bare));
}

TEST_F(redis_test, a_turn_gate_without_redis_fails_both_parts) {
    auto p = pool(200ms);
    server_->stop();
    auto gate = state::make_redis_gate(p);
    std::vector<state::limit_check> checks{check("rl:x", 60'000, 2)};
    std::vector<state::budget_line> lines{line("key:k1", "2025-12-02", 1'000)};
    std::string id = "r1";
    state::turn_open t;
    t.checks = &checks;
    t.lines = &lines;
    t.reservation = &id;
    t.micros = 1;
    t.now_ms = t0;
    t.lease_ms = 60'000;
    auto r = w_.run(gate->open(t));
    EXPECT_FALSE(r.admitted);
    ASSERT_TRUE(r.reserved);
    EXPECT_FALSE(*r.reserved);
}

// A reply header announcing more elements (or a longer bulk string) than any reply of ours is
// refused before hiredis allocates for it (found by fuzz_redis_reply: "*288888888" made it calloc
// 2.3 GB); the replies before it still arrive.
TEST(redis_protocol, an_absurd_array_or_bulk_header_is_refused_before_allocation) {
    using toolgate::state::detail::redis_reply;
    using toolgate::state::detail::reply_reader;
    for (std::string bad : {std::string("*288888888\r\n"), std::string("$99999999999\r\n")}) {
        reply_reader r;
        std::string bytes = "*2\r\n:1\r\n$3\r\n*9\n\r\n" + bad + ":5\r\n";  // "*9\n" inside a bulk string is no header
        r.feed(bytes.data(), bytes.size());
        redis_reply rep;
        ASSERT_EQ(r.next(rep), reply_reader::status::reply) << bad;
        ASSERT_EQ(rep.elements.size(), 2u);
        EXPECT_EQ(rep.elements[1].str, "*9\n");
        EXPECT_EQ(r.next(rep), reply_reader::status::error) << bad;
    }
    // The largest allowed header still works.
    reply_reader ok;
    std::string big = "*" + std::to_string(reply_reader::max_elements) + "\r\n";
    ok.feed(big.data(), big.size());
    redis_reply rep;
    EXPECT_EQ(ok.next(rep), reply_reader::status::more);
}

// ---- the response cache store ----

TEST_F(redis_test, the_cache_store_keeps_values_with_their_ttl_and_erases_by_scope_and_model) {
    auto p = pool();
    auto cache = state::make_redis_cache(p);
    auto put = [&](std::string key, std::string value, std::int64_t ttl) {
        auto r = w_.run(cache->put(key, std::move(value), "global", ttl, 0));
        ASSERT_TRUE(r);
    };
    put("s1:m1:a", "alpha", 60'000);
    put("s1:m2:b", "beta", 60'000);
    put("s2:m1:c", "gamma", 60'000);
    auto got = w_.run(cache->get("s1:m1:a", 0));
    ASSERT_TRUE(got && *got);
    EXPECT_EQ(**got, "alpha");
    auto missing = w_.run(cache->get("s9:m9:z", 0));
    ASSERT_TRUE(missing);
    EXPECT_FALSE(*missing);
    // The TTL is Redis's own (PX).
    auto ttl = cmd(*p, args{"PTTL", "tg:cache:s1:m1:a"});
    EXPECT_GT(ttl.integer, 0);
    EXPECT_LE(ttl.integer, 60'000);
    auto by_model = w_.run(cache->erase("", "m1"));
    ASSERT_TRUE(by_model);
    EXPECT_EQ(*by_model, 2u);
    EXPECT_TRUE(*w_.run(cache->get("s1:m2:b", 0)));
    auto by_scope = w_.run(cache->erase("s1", ""));
    ASSERT_TRUE(by_scope);
    EXPECT_EQ(*by_scope, 1u);
    EXPECT_FALSE(*w_.run(cache->get("s1:m2:b", 0)));
}

// ---- the session store (the cases shared with memory and sqlite: session_store_cases.hpp) ----

namespace {

namespace session_cases = toolgate::testing::session_cases;

constexpr std::int64_t session_tombstone = 60'000;

// The store sets its keys' expiries (PEXPIREAT) from the times it is given: they must be real ones,
// not t0 (in the past), or a session would be deleted as it is made. Leases are SET NX PX keys:
// they lapse on the server's clock, and SET NX refuses the holder itself too.
session_cases::store_env redis_session_env() {
    session_cases::store_env env;
    env.t0 = session_cases::wall_ms();
    env.tombstone_ms = session_tombstone;
    env.lease_on_caller_clock = false;
    env.holder_relocks = false;
    return env;
}

// Runs an operation to completion on a worker's thread.
struct on_worker {
    worker& w;
    template <class T>
    T operator()(asio::awaitable<T> a) const {
        return w.run(std::move(a));
    }
};

}  // namespace

TEST_F(redis_test, sessions_create_and_get) {
    auto store = state::make_redis_sessions(pool(), session_tombstone);
    EXPECT_EQ(store->kind(), "redis");
    session_cases::create_and_get(*store, on_worker{w_}, redis_session_env());
}

TEST_F(redis_test, sessions_save_is_versioned) {
    auto store = state::make_redis_sessions(pool(), session_tombstone);
    session_cases::save_is_versioned(*store, on_worker{w_}, redis_session_env());
}

TEST_F(redis_test, sessions_erase_leaves_a_tombstone) {
    auto store = state::make_redis_sessions(pool(), session_tombstone);
    session_cases::erase_leaves_a_tombstone(*store, on_worker{w_}, redis_session_env());
}

TEST_F(redis_test, sessions_expiry_then_tombstone) {
    auto store = state::make_redis_sessions(pool(), session_tombstone);
    session_cases::expiry_then_tombstone(*store, on_worker{w_}, redis_session_env());
}

TEST_F(redis_test, sessions_list_pages_newest_first) {
    auto store = state::make_redis_sessions(pool(), session_tombstone);
    session_cases::list_pages_newest_first(*store, on_worker{w_}, redis_session_env());
}

TEST_F(redis_test, sessions_list_reports_more_past_an_expired_session) {
    auto store = state::make_redis_sessions(pool(), session_tombstone);
    session_cases::list_reports_more_past_an_expired_session(*store, on_worker{w_}, redis_session_env());
}

TEST_F(redis_test, sessions_leases) {
    auto store = state::make_redis_sessions(pool(), session_tombstone);
    session_cases::leases(*store, on_worker{w_}, redis_session_env());
}

TEST_F(redis_test, session_stores_on_two_pools_see_each_others_sessions_and_leases) {
    auto t0 = session_cases::wall_ms();
    auto p = pool();
    auto here = state::make_redis_sessions(p, session_tombstone);
    auto there = state::make_redis_sessions(pool(), session_tombstone);
    worker other;  // like a second replica: its own pool, its own thread
    on_worker mine{w_};
    on_worker theirs{other};
    session_cases::driver<on_worker> a{*here, mine};
    session_cases::driver<on_worker> b{*there, theirs};

    auto row = session_cases::make_row("shared", "k1", t0, 600'000);
    ASSERT_TRUE(a.create(row));
    auto seen = b.get("shared", t0 + 1);
    ASSERT_EQ(seen.state, state::session_state::live);
    session_cases::expect_row(seen.row, row, true);
    EXPECT_FALSE(b.create(session_cases::make_row("shared", "k2", t0 + 1, 600'000)));

    auto v2 = session_cases::next_version(row, t0 + 2, 600'000, "from-b");
    EXPECT_TRUE(b.save(v2, t0 + 2));
    EXPECT_FALSE(a.save(v2, t0 + 3)) << "the same version written again through the other loses";
    session_cases::expect_row(a.get("shared", t0 + 3).row, v2, true);
    EXPECT_EQ(session_cases::ids_of(a.list("k1", "", 10, t0 + 3)), std::vector<std::string>{"shared"});

    // One lease, whichever replica asks.
    EXPECT_TRUE(a.lock("shared", "h1", 60'000, t0 + 4));
    EXPECT_FALSE(b.lock("shared", "h2", 60'000, t0 + 4));
    b.unlock("shared", "h2");  // not the holder
    EXPECT_FALSE(b.lock("shared", "h2", 60'000, t0 + 4));
    a.unlock("shared", "h1");
    EXPECT_TRUE(b.lock("shared", "h2", 60'000, t0 + 5));
    EXPECT_FALSE(a.lock("shared", "h1", 60'000, t0 + 5));
    EXPECT_EQ(cmd(*p, args{"GET", "tg:sess:l:shared"}).str, "h2");

    EXPECT_TRUE(b.erase("shared", "k1", t0 + 6));
    auto gone = a.get("shared", t0 + 7);
    EXPECT_EQ(gone.state, state::session_state::gone);
    EXPECT_EQ(gone.row.owner, "k1");
    EXPECT_FALSE(a.erase("shared", "k1", t0 + 7));
    EXPECT_TRUE(a.list("k1", "", 10, t0 + 7).rows.empty());
    // The tombstone is the hash itself, kept until it lapses (a key expiry); the index lost it.
    EXPECT_EQ(cmd(*p, args{"EXISTS", "tg:sess:s:shared"}).integer, 1);
    EXPECT_GT(cmd(*p, args{"PTTL", "tg:sess:s:shared"}).integer, 0);
    EXPECT_EQ(cmd(*p, args{"ZCARD", "tg:sess:o:k1"}).integer, 0);

    // Session ids that look like the store's other keys name no other key: another owner's
    // "o:k1" and "l:mine" leave k1's index and k1's lease on "mine" alone.
    auto own = session_cases::make_row("mine", "k1", t0 + 8, 600'000);
    ASSERT_TRUE(a.create(own));
    EXPECT_TRUE(b.create(session_cases::make_row("o:k1", "k2", t0 + 8, 600'000)));
    EXPECT_TRUE(b.create(session_cases::make_row("l:mine", "k2", t0 + 8, 600'000)));
    EXPECT_EQ(session_cases::ids_of(a.list("k1", "", 10, t0 + 9)), std::vector<std::string>{"mine"});
    EXPECT_TRUE(a.lock("mine", "h3", 60'000, t0 + 9));
}

// ---- the document store (the cases shared with memory and sqlite: doc_store_cases.hpp) ----

TEST_F(redis_test, docs_insert_replace_list_remove) {
    auto p = pool();
    auto store = state::make_redis_docs(p, "endpoints");
    EXPECT_EQ(store->kind(), "redis");
    toolgate::testing::doc_cases::insert_replace_list_remove(*store, on_worker{w_});
    // One hash under the prefix, a field per document.
    auto fields = cmd(*p, args{"HLEN", "tg:docs:endpoints"});
    EXPECT_EQ(fields.integer, 3);
    // A replica with its own pool sees the same documents; a malformed field is left out of a list.
    cmd(*p, args{"HSET", "tg:docs:endpoints", "broken", "not-a-time {}"});
    auto other = state::make_redis_docs(pool(), "endpoints");
    auto all = w_.run(other->list()).value();
    EXPECT_EQ(toolgate::testing::doc_cases::ids(all), (std::vector<std::string>{"a-first", "b-second", "summarize"}));
    EXPECT_FALSE(w_.run(other->get("broken")));  // a protocol error, not a document
}
