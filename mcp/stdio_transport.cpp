// The stdio transport: the MCP server is a child process speaking newline-delimited JSON-RPC on
// stdin/stdout; its stderr goes to our log, tagged by the caller's sink.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/writable_pipe.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/detail/throw_error.hpp>  // Process v2 in 1.81 uses it without including it
#include <boost/process/v2/environment.hpp>
#include <boost/process/v2/process.hpp>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <initializer_list>
#include <optional>
#include <spawn.h>
#include <string>
#include <unistd.h>
#include <vector>

#include "mcp/jsonrpc.hpp"
#include "common/asio_util.hpp"
#include "mcp/message_queue.hpp"
#include "mcp/transport.hpp"

namespace toolgate::mcp {

namespace bp = boost::process::v2;
using boost::system::error_code;

namespace {

// A started child: its pid and the gateway's ends of its stdin, stdout and stderr pipes.
struct spawned {
    pid_t pid = -1;
    int in = -1, out = -1, err = -1;
};

// Starts `exe` with its stdio on three new pipes, through posix_spawn. glibc spawns with
// clone(CLONE_VM | CLONE_VFORK) and runs no allocator, lock or Asio code in the child before exec;
// fork() in the threaded gateway cannot promise that (a child forked while another thread holds an
// allocator lock deadlocks before exec, keeps the gateway's own stdout and stderr open, and the
// server never comes up). Every other descriptor is closed in the child; signal masks and
// dispositions (SIGPIPE is ignored here) are reset to the defaults.
error_code spawn_child(std::string const& exe, std::vector<std::string> const& args, std::vector<std::string> const& env,
                       std::string const& cwd, spawned& out) {
    int p_in[2] = {-1, -1}, p_out[2] = {-1, -1}, p_err[2] = {-1, -1};
    auto close_fds = [](std::initializer_list<int> fds) {
        for (int fd : fds)
            if (fd >= 0) ::close(fd);
    };
    if (::pipe2(p_in, O_CLOEXEC) != 0 || ::pipe2(p_out, O_CLOEXEC) != 0 || ::pipe2(p_err, O_CLOEXEC) != 0) {
        int e = errno;
        close_fds({p_in[0], p_in[1], p_out[0], p_out[1], p_err[0], p_err[1]});
        return error_code(e, boost::system::system_category());
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, p_in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, p_out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, p_err[1], STDERR_FILENO);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> argv, envp;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (auto const& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (auto const& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, exe.c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close_fds({p_in[0], p_out[1], p_err[1]});
    if (rc != 0) {
        close_fds({p_in[1], p_out[0], p_err[0]});
        return error_code(rc, boost::system::system_category());
    }
    out = spawned{pid, p_in[1], p_out[0], p_err[0]};
    return {};
}

// What a server prints besides its messages is logged, but at most `burst` lines per window: a
// server that floods its output must not flood the gateway's log (the rest are counted, and the
// count is logged with the first line of a later window).
struct log_budget {
    static constexpr unsigned burst = 20;
    static constexpr std::chrono::seconds window{10};
    std::chrono::steady_clock::time_point opened{};
    unsigned used = 0;
    std::size_t suppressed = 0;

    bool take(std::chrono::steady_clock::time_point now, log_sink const& log, char const* what) {
        if (now - opened >= window) {
            if (suppressed > 0)
                log(log_level::warn, std::to_string(suppressed) + " more line(s) of " + what + " were not logged");
            opened = now;
            used = 0;
            suppressed = 0;
        }
        if (used < burst) {
            ++used;
            return true;
        }
        ++suppressed;
        return false;
    }
};

class stdio_transport final : public transport {
public:
    stdio_transport(asio::any_io_executor ex, stdio_options opts, log_sink log)
        : ex_(ex), opts_(std::move(opts)), log_(std::move(log)), in_(ex), out_(ex), err_(ex), queue_(ex),
          framer_(opts_.max_message_bytes), exited_signal_(ex, asio::steady_timer::time_point::max()) {}

    ~stdio_transport() override {
        if (alive_) *alive_ = false;  // the reader coroutines may still resume once; they must not touch us
        // Last resort: never leave a child behind.
        if (proc_) {
            error_code ec;
            if (proc_->running(ec)) proc_->terminate(ec);
        }
    }

    asio::awaitable<error_code> start() override {
        auto exe = opts_.command.find('/') != std::string::npos ? bp::filesystem::path(opts_.command)
                                                                : bp::environment::find_executable(opts_.command);
        if (exe.empty()) {
            log_(log_level::error, "command not found on PATH: " + opts_.command);
            co_return error_code(ENOENT, boost::system::system_category());
        }
        // Checked first for a clear message (posix_spawn would report it too, as a bare errno).
        if (::access(exe.c_str(), X_OK) != 0) {
            auto err = errno;
            log_(log_level::error, "cannot run " + exe.string() + ": " + std::strerror(err));
            co_return error_code(err, boost::system::system_category());
        }
        // A clean environment: only what a tool server needs, plus what the config gives it.
        std::vector<std::string> env;
        static constexpr std::array<char const*, 4> inherited{"PATH", "HOME", "LANG", "TMPDIR"};
        for (char const* name : inherited)
            if (char const* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
        for (auto const& [k, v] : opts_.env) env.push_back(k + "=" + v);
        spawned child;
        if (auto ec = spawn_child(exe.string(), opts_.args, env, opts_.cwd, child)) {
            log_(log_level::error, "cannot start " + opts_.command + ": " + ec.message());
            co_return ec;
        }
        try {
            in_.assign(child.in);
            out_.assign(child.out);
            err_.assign(child.err);
            proc_.emplace(ex_, child.pid);
        } catch (boost::system::system_error const& e) {
            log_(log_level::error, "cannot watch " + opts_.command + ": " + e.code().message());
            ::kill(child.pid, SIGKILL);
            co_return e.code();
        }
        auto alive = std::make_shared<bool>(true);
        alive_ = alive;
        asio::co_spawn(ex_, read_stdout(alive), asio::detached);
        asio::co_spawn(ex_, read_stderr(alive), asio::detached);
        asio::co_spawn(ex_, watch_exit(alive), asio::detached);
        co_return error_code{};
    }

    asio::awaitable<error_code> send(std::string message) override {
        if (queue_.is_closed() || !in_.is_open()) co_return asio::error::not_connected;
        message.push_back('\n');
        auto [ec, n] = co_await asio::async_write(in_, asio::buffer(message), nothrow_awaitable);
        co_return ec;
    }

    asio::awaitable<boost::system::result<std::string>> receive() override { co_return co_await queue_.pop(); }

    asio::awaitable<void> close() override {
        if (!proc_) co_return;
        error_code ec;
        in_.close(ec);  // a well-behaved server exits when its stdin closes
        if (co_await wait_exit(opts_.shutdown_grace)) co_return;
        proc_->request_exit(ec);  // SIGTERM
        if (co_await wait_exit(opts_.shutdown_grace)) co_return;
        log_(log_level::warn, "server ignored SIGTERM; killing it");
        proc_->terminate(ec);  // SIGKILL
        co_await wait_exit(std::chrono::milliseconds(1000));
    }

    std::string describe() const override { return "stdio:" + opts_.command; }

private:
    asio::awaitable<bool> wait_exit(std::chrono::milliseconds limit) {
        if (exited_) co_return true;
        exited_signal_.expires_after(limit);
        co_await exited_signal_.async_wait(nothrow_awaitable);
        co_return exited_;
    }

    asio::awaitable<void> watch_exit(std::shared_ptr<bool> alive) {
        auto [ec, code] = co_await proc_->async_wait(nothrow_awaitable);
        if (!*alive) co_return;
        exited_ = true;
        exited_signal_.cancel();
        log_(code == 0 ? log_level::info : log_level::warn, "process exited with status " + std::to_string(code));
        queue_.close(asio::error::eof);
    }

    asio::awaitable<void> read_stdout(std::shared_ptr<bool> alive) {
        std::array<char, 64 * 1024> buf;
        std::vector<std::string> lines;
        std::vector<std::int64_t> dropped_ids;
        for (;;) {
            auto [ec, n] = co_await out_.async_read_some(asio::buffer(buf), nothrow_awaitable);
            if (!*alive) co_return;
            if (ec) {
                queue_.close(ec == asio::error::eof ? asio::error::eof : ec);
                co_return;
            }
            lines.clear();
            dropped_ids.clear();
            std::size_t oversized = 0;
            framer_.feed(std::string_view(buf.data(), n), lines, oversized, &dropped_ids);
            if (oversized)
                log_(log_level::warn, "dropped a message larger than " + std::to_string(opts_.max_message_bytes) + " bytes");
            for (auto& l : lines) {
                // Servers sometimes print banners on stdout: anything not JSON is logged, not fatal,
                // and at most 20 lines per 10 s, so that a chatty server cannot flood the log.
                if (l.front() != '{' && l.front() != '[') {
                    if (noise_lines_.take(std::chrono::steady_clock::now(), log_, "non-JSON stdout"))
                        log_(log_level::warn, "non-JSON output on stdout: " + l.substr(0, 200));
                    continue;
                }
                queue_.push(std::move(l));
            }
            // The caller of an answer that was too large learns it now, not at its timeout.
            for (auto id : dropped_ids)
                queue_.push(make_error(json::value(id), errc::internal_error,
                                       "the MCP server's answer was larger than the limit of " +
                                           std::to_string(opts_.max_message_bytes) + " bytes"));
        }
    }

    asio::awaitable<void> read_stderr(std::shared_ptr<bool> alive) {
        std::array<char, 8 * 1024> buf;
        std::string partial;
        for (;;) {
            auto [ec, n] = co_await err_.async_read_some(asio::buffer(buf), nothrow_awaitable);
            if (!*alive || ec) co_return;
            partial.append(buf.data(), n);
            std::size_t pos;
            while ((pos = partial.find('\n')) != std::string::npos) {
                if (pos > 0 && stderr_lines_.take(std::chrono::steady_clock::now(), log_, "stderr"))
                    log_(log_level::info, "stderr: " + partial.substr(0, std::min<std::size_t>(pos, 2000)));
                partial.erase(0, pos + 1);
            }
            if (partial.size() > 8192) {
                if (stderr_lines_.take(std::chrono::steady_clock::now(), log_, "stderr")) log_(log_level::info, "stderr: " + partial.substr(0, 2000));
                partial.clear();
            }
        }
    }

    asio::any_io_executor ex_;
    stdio_options opts_;
    log_sink log_;
    asio::writable_pipe in_;
    asio::readable_pipe out_;
    asio::readable_pipe err_;
    detail::message_queue queue_;
    line_framer framer_;
    log_budget noise_lines_, stderr_lines_;
    std::optional<bp::process> proc_;
    std::shared_ptr<bool> alive_;
    bool exited_ = false;
    asio::steady_timer exited_signal_;
};

}  // namespace

std::unique_ptr<transport> make_stdio_transport(asio::any_io_executor ex, stdio_options opts, log_sink log) {
    return std::make_unique<stdio_transport>(std::move(ex), std::move(opts), std::move(log));
}

}  // namespace toolgate::mcp
