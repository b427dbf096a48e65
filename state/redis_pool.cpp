// The pipelined Redis connection and the pool of them (redis_pool.hpp). Coroutine bodies follow
// the GCC 12 rules in CONTRIBUTING.md ("Coroutines on GCC 12").
#include "state/redis_pool.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/system_error.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <optional>
#include <tuple>

#include "common/asio_util.hpp"

namespace toolgate::state {

namespace detail {

using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

// What the pool and its connections share (the connections may outlive the pool).
struct redis_shared {
    redis_options opts;
    redis_endpoint ep;
    redis_stats stats;
    std::atomic<bool> down{false};  // a connection failed and none has succeeded since

    explicit redis_shared(redis_options const& o) : opts(o), ep(parse_redis_url(o.url)) {}
};

class redis_connection : public std::enable_shared_from_this<redis_connection> {
public:
    redis_connection(asio::any_io_executor ex, std::shared_ptr<redis_shared> sh) : ex_(std::move(ex)), sh_(std::move(sh)) {}

    // Writes `bytes` (`count` commands) and waits for their `count` replies. Only on ex_.
    static asio::awaitable<result<std::vector<redis_reply>>> run(std::shared_ptr<redis_connection> self, std::string bytes,
                                                                 std::size_t count);

private:
    // One caller waiting for its replies; owned by the caller's coroutine (so its timer goes
    // away with the io_context if that is destroyed first), seen weakly from the queue.
    struct pending {
        asio::steady_timer timer;
        std::vector<redis_reply> replies;
        std::optional<errc> error;
        bool done = false;
        explicit pending(asio::any_io_executor const& ex) : timer(ex) {}
    };
    struct slot {
        std::weak_ptr<pending> waiter;  // expired: the caller gave up; its replies are read and dropped
        std::size_t expected = 0;
        std::size_t got = 0;
    };
    // One socket's life. Owned by the coroutine driving it (connect, then the read loop).
    struct link {
        tcp::socket socket;
        tcp::resolver resolver;
        reply_reader reader;
        bool writing = false;
        explicit link(asio::any_io_executor const& ex) : socket(ex), resolver(ex) {}
    };
    enum class phase { closed, connecting, open };

    static asio::awaitable<void> connect(std::shared_ptr<redis_connection> self, std::shared_ptr<link> l);
    static asio::awaitable<void> read_loop(std::shared_ptr<redis_connection> self, std::shared_ptr<link> l);
    static asio::awaitable<void> write_loop(std::shared_ptr<redis_connection> self, std::shared_ptr<link> l);

    bool current(std::shared_ptr<link> const& l) const { return l.get() == current_; }
    void start_connect();
    void connected();
    void kick_writer(std::shared_ptr<link> const& l);
    void deliver(redis_reply r);
    void fail_all(errc e);
    std::string handshake(std::size_t& count) const;
    // Feeds the reader; false when the stream is not RESP (the link was failed).
    bool drain(link& l, std::size_t& handshake_left);

    asio::any_io_executor ex_;
    std::shared_ptr<redis_shared> sh_;
    phase phase_ = phase::closed;
    std::weak_ptr<link> link_;
    link* current_ = nullptr;  // identity of link_, for "is this coroutine's link still the one?"
    std::deque<slot> queue_;   // commands written or waiting to be, in order
    std::string out_;          // bytes not yet handed to the writer
    std::optional<steady::time_point> last_attempt_;
    std::uint64_t attempts_ = 0;
};

asio::awaitable<result<std::vector<redis_reply>>> redis_connection::run(std::shared_ptr<redis_connection> self,
                                                                        std::string bytes, std::size_t count) {
    auto& st = self->sh_->stats;
    st.commands.fetch_add(count, std::memory_order_relaxed);
    if (self->phase_ == phase::closed) {
        auto since = self->last_attempt_ ? steady::now() - *self->last_attempt_ : steady::duration::max();
        if (since < self->sh_->opts.reconnect_backoff) {
            st.failures.fetch_add(count, std::memory_order_relaxed);
            co_return make_error_code(errc::unavailable);
        }
        self->start_connect();
    }
    auto p = std::make_shared<pending>(self->ex_);
    p->timer.expires_after(self->sh_->opts.timeout);
    slot s;
    s.waiter = p;
    s.expected = count;
    self->queue_.push_back(std::move(s));
    self->out_ += bytes;
    if (self->phase_ == phase::open) self->kick_writer(self->link_.lock());

    boost::system::error_code ec;
    try {
        std::tie(ec) = co_await p->timer.async_wait(nothrow_awaitable);
    } catch (boost::system::system_error const&) {
        ec = asio::error::operation_aborted;  // cancelled before it could wait
    }
    if (!p->done) {
        if (ec == asio::error::operation_aborted) {
            // The caller was cancelled: its replies, when they come, are dropped in order.
            st.failures.fetch_add(count, std::memory_order_relaxed);
            co_return make_error_code(errc::timeout);
        }
        self->fail_all(errc::timeout);  // no answer in time: this link is not to be trusted
    }
    if (p->error) co_return make_error_code(*p->error);
    co_return std::move(p->replies);
}

void redis_connection::start_connect() {
    last_attempt_ = steady::now();
    ++attempts_;
    phase_ = phase::connecting;
    auto l = std::make_shared<link>(ex_);
    link_ = l;
    current_ = l.get();
    asio::co_spawn(ex_, connect(shared_from_this(), std::move(l)), asio::detached);
}

std::string redis_connection::handshake(std::size_t& count) const {
    std::string out;
    count = 0;
    if (!sh_->ep.password.empty()) {
        std::vector<std::string> auth;
        auth.emplace_back("AUTH");
        auth.push_back(sh_->ep.password);
        append_command(out, auth);
        ++count;
    }
    if (sh_->ep.db != 0) {
        std::vector<std::string> select;
        select.emplace_back("SELECT");
        select.push_back(std::to_string(sh_->ep.db));
        append_command(out, select);
        ++count;
    }
    return out;
}

asio::awaitable<void> redis_connection::connect(std::shared_ptr<redis_connection> self, std::shared_ptr<link> l) {
    auto const& ep = self->sh_->ep;
    auto [rec, endpoints] = co_await l->resolver.async_resolve(ep.host, ep.port, nothrow_awaitable);
    if (!self->current(l)) co_return;
    if (rec) {
        self->fail_all(errc::unavailable);
        co_return;
    }
    auto [cec, peer] = co_await asio::async_connect(l->socket, endpoints, nothrow_awaitable);
    (void)peer;
    if (!self->current(l)) co_return;
    if (cec) {
        self->fail_all(errc::unavailable);
        co_return;
    }
    boost::system::error_code ignored;
    l->socket.set_option(tcp::no_delay(true), ignored);

    std::size_t left = 0;
    auto hello = self->handshake(left);
    if (left > 0) {
        auto [wec, wn] = co_await asio::async_write(l->socket, asio::buffer(hello), nothrow_awaitable);
        (void)wn;
        if (!self->current(l)) co_return;
        if (wec) {
            self->fail_all(errc::unavailable);
            co_return;
        }
        std::array<char, 1024> buf;
        while (left > 0) {
            auto [ec, n] = co_await l->socket.async_read_some(asio::buffer(buf), nothrow_awaitable);
            if (!self->current(l)) co_return;
            if (ec) {
                self->fail_all(errc::unavailable);
                co_return;
            }
            l->reader.feed(buf.data(), n);
            if (!self->drain(*l, left)) co_return;
        }
    }
    self->connected();
    asio::co_spawn(self->ex_, read_loop(self, l), asio::detached);
    if (!self->out_.empty()) self->kick_writer(l);
}

void redis_connection::connected() {
    phase_ = phase::open;
    auto& st = sh_->stats;
    st.up.store(true);
    if (attempts_ > 1) st.reconnects.fetch_add(1, std::memory_order_relaxed);
    if (sh_->down.exchange(false)) {
        st.recoveries.fetch_add(1, std::memory_order_relaxed);
        spdlog::info("redis {}:{}: connected again", sh_->ep.host, sh_->ep.port);
    }
}

bool redis_connection::drain(link& l, std::size_t& handshake_left) {
    for (;;) {
        redis_reply r;
        auto s = reply_reader::status::error;
        try {
            s = l.reader.next(r);
        } catch (std::exception const&) {  // out of memory for a huge reply: drop the link, not the loop
        }
        if (s == reply_reader::status::more) return true;
        if (s == reply_reader::status::error) {
            spdlog::warn("redis {}:{}: unreadable reply, reconnecting", sh_->ep.host, sh_->ep.port);
            fail_all(errc::protocol);
            return false;
        }
        if (handshake_left > 0) {
            if (r.is_error()) {
                spdlog::error("redis {}:{}: AUTH/SELECT refused: {}", sh_->ep.host, sh_->ep.port, r.str);
                fail_all(errc::unavailable);
                return false;
            }
            --handshake_left;
            continue;
        }
        auto* before = current_;
        deliver(std::move(r));
        if (current_ != before || current_ == nullptr) return false;
    }
}

asio::awaitable<void> redis_connection::read_loop(std::shared_ptr<redis_connection> self, std::shared_ptr<link> l) {
    std::array<char, 16 * 1024> buf;
    std::size_t none = 0;
    for (;;) {
        auto [ec, n] = co_await l->socket.async_read_some(asio::buffer(buf), nothrow_awaitable);
        if (!self->current(l)) co_return;
        if (ec) {
            self->fail_all(errc::unavailable);
            co_return;
        }
        l->reader.feed(buf.data(), n);
        if (!self->drain(*l, none)) co_return;
    }
}

void redis_connection::kick_writer(std::shared_ptr<link> const& l) {
    if (!l || l->writing) return;
    l->writing = true;
    asio::co_spawn(ex_, write_loop(shared_from_this(), l), asio::detached);
}

asio::awaitable<void> redis_connection::write_loop(std::shared_ptr<redis_connection> self, std::shared_ptr<link> l) {
    while (self->current(l) && !self->out_.empty()) {
        std::string buf = std::move(self->out_);
        self->out_.clear();
        auto [ec, n] = co_await asio::async_write(l->socket, asio::buffer(buf), nothrow_awaitable);
        (void)n;
        if (!self->current(l)) co_return;
        if (ec) {
            self->fail_all(errc::unavailable);
            co_return;
        }
    }
    l->writing = false;
}

void redis_connection::deliver(redis_reply r) {
    if (queue_.empty()) {
        spdlog::warn("redis {}:{}: a reply nobody asked for, reconnecting", sh_->ep.host, sh_->ep.port);
        fail_all(errc::protocol);
        return;
    }
    auto& s = queue_.front();
    auto p = s.waiter.lock();
    if (p) p->replies.push_back(std::move(r));
    if (++s.got < s.expected) return;
    queue_.pop_front();
    if (!p) return;
    p->done = true;
    p->timer.cancel();
}

void redis_connection::fail_all(errc e) {
    if (auto l = link_.lock()) {
        boost::system::error_code ignored;
        l->resolver.cancel();
        l->socket.close(ignored);
    }
    link_.reset();
    current_ = nullptr;
    phase_ = phase::closed;
    out_.clear();
    auto failed = std::move(queue_);
    queue_.clear();
    std::uint64_t lost = 0;
    for (auto& s : failed) {
        auto p = s.waiter.lock();
        if (!p || p->done) continue;
        p->error = e;
        p->done = true;
        p->timer.cancel();
        lost += s.expected;
    }
    auto& st = sh_->stats;
    st.failures.fetch_add(lost, std::memory_order_relaxed);
    st.up.store(false);
    if (!sh_->down.exchange(true))  // once per outage, also when it was down from the start
        spdlog::warn("redis {}:{}: unavailable ({}), retrying at most every {} ms", sh_->ep.host, sh_->ep.port,
                     make_error_code(e).message(), sh_->opts.reconnect_backoff.count());
}

}  // namespace detail

redis_pool::redis_pool(redis_options const& opts) : shared_(std::make_shared<detail::redis_shared>(opts)) {}

// Connections still reading hold themselves; they end with their socket or their io_context.
redis_pool::~redis_pool() = default;

std::shared_ptr<detail::redis_connection> redis_pool::connection_for(asio::any_io_executor const& ex) {
    std::lock_guard lock(mu_);
    for (auto const& [e, c] : conns_)
        if (e == ex) return c;
    auto c = std::make_shared<detail::redis_connection>(ex, shared_);
    conns_.emplace_back(ex, c);
    return c;
}

asio::awaitable<result<detail::redis_reply>> redis_pool::command(std::vector<std::string> args) {
    auto ex = co_await asio::this_coro::executor;
    auto conn = connection_for(ex);
    auto bytes = detail::encode_command(args);
    auto r = co_await detail::redis_connection::run(std::move(conn), std::move(bytes), 1);
    if (!r) co_return r.error();
    co_return std::move(r->front());
}

asio::awaitable<result<std::vector<detail::redis_reply>>> redis_pool::pipeline(std::vector<std::vector<std::string>> commands) {
    if (commands.empty()) co_return std::vector<detail::redis_reply>();
    auto ex = co_await asio::this_coro::executor;
    auto conn = connection_for(ex);
    std::string bytes;
    for (auto const& c : commands) detail::append_command(bytes, c);
    co_return co_await detail::redis_connection::run(std::move(conn), std::move(bytes), commands.size());
}

namespace {

bool is_noscript(result<detail::redis_reply> const& r) {
    return r && r->is_error() && r->str.rfind("NOSCRIPT", 0) == 0;
}

std::vector<std::string> eval_command(std::string_view verb, std::string const& body, std::vector<std::string> const& keys,
                                      std::vector<std::string> const& args) {
    std::vector<std::string> cmd;
    cmd.reserve(3 + keys.size() + args.size());
    cmd.emplace_back(verb);
    cmd.push_back(body);
    cmd.push_back(std::to_string(keys.size()));
    cmd.insert(cmd.end(), keys.begin(), keys.end());
    cmd.insert(cmd.end(), args.begin(), args.end());
    return cmd;
}

}  // namespace

asio::awaitable<result<detail::redis_reply>> redis_pool::eval(detail::redis_script const& script,
                                                              std::vector<std::string> keys,
                                                              std::vector<std::string> args) {
    auto r = co_await command(eval_command("EVALSHA", script.sha, keys, args));
    if (!is_noscript(r)) co_return r;
    // A server restarted or flushed since it last saw the script: send it whole (EVAL caches it).
    try {
        co_return co_await command(eval_command("EVAL", script.text, keys, args));
    } catch (boost::system::system_error const&) {
        // The caller was cancelled while the first reply came: Asio throws at the next co_await.
        co_return make_error_code(errc::timeout);
    }
}

std::string const& redis_pool::prefix() const { return shared_->opts.prefix; }
redis_stats const& redis_pool::stats() const { return shared_->stats; }
std::size_t redis_pool::connections() const {
    std::lock_guard lock(mu_);
    return conns_.size();
}

std::shared_ptr<redis_pool> make_redis_pool(redis_options const& opts) { return std::make_shared<redis_pool>(opts); }
redis_stats const& stats(redis_pool const& pool) { return pool.stats(); }

}  // namespace toolgate::state
