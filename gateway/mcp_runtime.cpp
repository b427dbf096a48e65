#include "gateway/mcp_runtime.hpp"

#include "gateway/mcp_tokens.hpp"
#include "state/secret_store.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <thread>

namespace toolgate::gateway {

namespace asio = boost::asio;

struct mcp_runtime::impl {
    asio::io_context ioc{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard{ioc.get_executor()};
    std::unique_ptr<mcp::aggregator> aggregator;
    std::thread thread;
};

mcp_runtime::mcp_runtime(gateway_config const& cfg, bool start, std::shared_ptr<state::secret_store> secrets)
    : impl_(std::make_unique<impl>()) {
    mcp::aggregator_options opts;
    bool oauth = std::any_of(cfg.mcp_servers.begin(), cfg.mcp_servers.end(), [](auto const& s) { return s.oauth.has_value(); });
    if (oauth && !secrets) secrets = open_secrets(cfg);
    if (oauth) {
        opts.restore_auth = [secrets](mcp::server_config const& sc, mcp::upstream_auth& auth) { keep_tokens(secrets, sc, auth); };
    }
    opts.names = cfg.tool_prefix_mode;
    opts.session.client_version = TOOLGATE_VERSION;
    auto base = spdlog::default_logger();
    auto servers = cfg.mcp_servers;
    for (auto& sc : servers)
        if (sc.oauth && sc.oauth->redirect_uri.empty()) sc.oauth->redirect_uri = default_redirect_uri(cfg.server.listen);
    impl_->aggregator = std::make_unique<mcp::aggregator>(
        impl_->ioc.get_executor(), std::move(servers), opts, [base](std::string const& server) -> mcp::log_sink {
            return [base, server](mcp::log_level lvl, std::string const& text) {
                auto level = lvl == mcp::log_level::error  ? spdlog::level::err
                             : lvl == mcp::log_level::warn ? spdlog::level::warn
                             : lvl == mcp::log_level::info ? spdlog::level::info
                                                            : spdlog::level::debug;
                base->log(level, "[mcp:{}] {}", server, text);
            };
        });
    impl_->thread = std::thread([this] { impl_->ioc.run(); });
    if (start) impl_->aggregator->start();
}

mcp_runtime::~mcp_runtime() {
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    asio::co_spawn(impl_->ioc, impl_->aggregator->stop(), [done](std::exception_ptr) { done->set_value(); });
    fut.wait_for(std::chrono::seconds(10));
    impl_->guard.reset();
    impl_->ioc.stop();
    impl_->thread.join();
}

mcp::aggregator& mcp_runtime::aggregator() { return *impl_->aggregator; }

}  // namespace toolgate::gateway
