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
#include <boost/process/v2/start_dir.hpp>
#include <boost/process/v2/stdio.hpp>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <optional>

#include "mcp/jsonrpc.hpp"
#include "common/asio_util.hpp"
#include "mcp/message_queue.hpp"
#include "mcp/transport.hpp"

namespace toolgate::mcp {

namespace bp = boost::process::v2;
using boost::system::error_code;

namespace {

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
        // Check before forking: when exec fails, the forked copy of the gateway runs its exit
        // handlers instead of vanishing quietly.
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
        error_code ec;
        try {
            if (opts_.cwd.empty())
                proc_.emplace(ex_, exe, opts_.args, bp::process_stdio{in_, out_, err_}, bp::process_environment{env});
            else
                proc_.emplace(ex_, exe, opts_.args, bp::process_stdio{in_, out_, err_}, bp::process_environment{env},
                              bp::process_start_dir{opts_.cwd});
        } catch (boost::system::system_error const& e) {
            log_(log_level::error, "cannot start " + opts_.command + ": " + e.code().message());
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
