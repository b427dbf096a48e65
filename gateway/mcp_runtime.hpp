#pragma once
// The MCP side of the gateway: its own io_context thread (MCP traffic is light next to chat
// traffic) running the aggregator. Destroying it stops every MCP server, bounded in time.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include "gateway/config.hpp"
#include "mcp/aggregator.hpp"

namespace toolgate::gateway {

namespace json = boost::json;

class mcp_runtime {
public:
    // `start`: start the servers now (else the owner calls aggregator().start(...) itself).
    explicit mcp_runtime(gateway_config const& cfg, bool start = true) : guard_(ioc_.get_executor()) {
        mcp::aggregator_options opts;
        opts.names = cfg.tool_prefix_mode;
        opts.session.client_version = TOOLGATE_VERSION;
        auto base = spdlog::default_logger();
        aggregator_ = std::make_unique<mcp::aggregator>(
            ioc_.get_executor(), cfg.mcp_servers, opts, [base](std::string const& server) -> mcp::log_sink {
                return [base, server](mcp::log_level lvl, std::string const& text) {
                    auto level = lvl == mcp::log_level::error  ? spdlog::level::err
                                 : lvl == mcp::log_level::warn ? spdlog::level::warn
                                 : lvl == mcp::log_level::info ? spdlog::level::info
                                                                : spdlog::level::debug;
                    base->log(level, "[mcp:{}] {}", server, text);
                };
            });
        thread_ = std::thread([this] { ioc_.run(); });
        if (start) aggregator_->start();
    }

    ~mcp_runtime() {
        auto done = std::make_shared<std::promise<void>>();
        auto fut = done->get_future();
        asio::co_spawn(ioc_, aggregator_->stop(), [done](std::exception_ptr) { done->set_value(); });
        fut.wait_for(std::chrono::seconds(10));
        guard_.reset();
        ioc_.stop();
        thread_.join();
    }

    mcp::aggregator& aggregator() { return *aggregator_; }

private:
    asio::io_context ioc_{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::unique_ptr<mcp::aggregator> aggregator_;
    std::thread thread_;
};

}  // namespace toolgate::gateway
