#pragma once
// A spdlog sink that batches lines and writes them to a file descriptor in few write(2) calls:
// access logs at tens of thousands of lines per second would otherwise cost one syscall per line.
// Lines reach the descriptor when 32 KiB have gathered or when flush() runs (main calls it every
// 100 ms and at exit), so at most that much is delayed.
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <mutex>
#include <string>

namespace toolgate::gateway {

class buffered_fd_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit buffered_fd_sink(int fd) : fd_(fd) { buffer_.reserve(64 * 1024); }
    ~buffered_fd_sink() override { write_out(); }

protected:
    void sink_it_(spdlog::details::log_msg const& msg) override {
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        buffer_.append(formatted.data(), formatted.size());
        if (buffer_.size() >= 32 * 1024) write_out();
    }
    void flush_() override { write_out(); }

private:
    void write_out() {
        std::size_t off = 0;
        while (off < buffer_.size()) {
            auto n = ::write(fd_, buffer_.data() + off, buffer_.size() - off);
            if (n <= 0) break;  // nowhere to log to: drop rather than block the gateway
            off += static_cast<std::size_t>(n);
        }
        buffer_.clear();
    }

    int fd_;
    std::string buffer_;
};

}  // namespace toolgate::gateway
