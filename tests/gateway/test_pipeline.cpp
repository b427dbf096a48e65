// The turn pipeline's onion order, the registry's chain (the router innermost), and the route
// table's 404 / 405 + Allow answers, without a server. Coroutine bodies avoid braced lists
// (CONTRIBUTING.md); assertions run outside them.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <string>
#include <vector>

#include "gateway/app.hpp"
#include "gateway/pipeline.hpp"
#include "gateway/policy/registry.hpp"

using namespace toolgate;
using namespace toolgate::gateway;

namespace {

using log_t = std::vector<std::string>;

// Records the turn on the way in and on the way out; answers itself when `answers` is set.
class recording_filter final : public turn_filter {
public:
    recording_filter(std::string name, log_t& log, bool answers = false)
        : name_(std::move(name)), log_(log), answers_(answers) {}
    std::string_view name() const override { return name_; }
    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const& next) override {
        log_.push_back(name_ + " in");
        if (answers_) {
            turn_result local;
            local.response["answered_by"] = name_;
            log_.push_back(name_ + " answers");
            co_return local;
        }
        auto r = co_await next(ctx);
        log_.push_back(name_ + " out");
        co_return r;
    }

private:
    std::string name_;
    log_t& log_;
    bool answers_;
};

turn_result run_pipeline(turn_pipeline const& p) {
    asio::io_context ioc;
    turn_result out;
    turn_context ctx;
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> { out = co_await p.run(ctx); }, asio::detached);
    ioc.run();
    return out;
}

std::shared_ptr<turn_filter> filter(std::string name, log_t& log, bool answers = false) {
    return std::make_shared<recording_filter>(std::move(name), log, answers);
}

}  // namespace

TEST(turn_pipeline, runs_filters_outermost_first_and_sees_the_answer_on_the_way_out) {
    log_t log;
    turn_pipeline p({filter("auth", log), filter("guard", log), filter("router", log, true)});
    auto r = run_pipeline(p);
    EXPECT_EQ(r.response.at("answered_by"), "router");
    EXPECT_EQ(log, (log_t{"auth in", "guard in", "router in", "router answers", "guard out", "auth out"}));
}

TEST(turn_pipeline, a_filter_that_answers_stops_the_chain_before_the_router) {
    log_t log;
    turn_pipeline p({filter("auth", log), filter("cache", log, true), filter("router", log, true)});
    auto r = run_pipeline(p);
    EXPECT_EQ(r.response.at("answered_by"), "cache");
    EXPECT_EQ(log, (log_t{"auth in", "cache in", "cache answers", "auth out"}));
}

TEST(turn_pipeline, a_chain_without_a_router_is_an_internal_error_not_a_hang) {
    log_t log;
    turn_pipeline p({filter("auth", log)});
    auto r = run_pipeline(p);
    ASSERT_TRUE(r.error);
    EXPECT_EQ(r.error->status, 500);
    EXPECT_EQ(log, (log_t{"auth in", "auth out"}));
}

TEST(build_filters, puts_the_router_innermost_for_chat_and_embeddings) {
    log_t log;
    gateway_config cfg;
    auto router = filter("router", log, true);
    for (auto kind : {turn_kind::chat, turn_kind::embeddings}) {
        filter_inputs in{cfg, router, nullptr, {}};
        auto chain = build_filters(in, kind);
        ASSERT_FALSE(chain.empty());
        EXPECT_EQ(chain.back(), router) << "the router answers last";
        std::vector<std::string> names;
        for (auto const& f : chain) names.emplace_back(f->name());
        EXPECT_EQ(std::count(names.begin(), names.end(), "router"), 1);
    }
}

TEST(route_table, tells_a_wrong_method_405_with_allow_from_an_unknown_path_404) {
    EXPECT_TRUE(match_route_table("/v1/chat/completions", "POST").found);
    EXPECT_TRUE(match_route_table("/chat/completions", "POST").found) << "served without /v1 too";
    EXPECT_TRUE(match_route_table("/v1/models/openai/gpt-4o", "GET").found);
    EXPECT_TRUE(match_route_table("/health", "GET").found);

    auto wrong = match_route_table("/v1/chat/completions", "GET");
    EXPECT_FALSE(wrong.found);
    EXPECT_EQ(wrong.allow, "POST");
    auto wrong_models = match_route_table("/v1/models", "DELETE");
    EXPECT_EQ(wrong_models.allow, "GET");

    auto missing = match_route_table("/v1/nothing", "GET");
    EXPECT_FALSE(missing.found);
    EXPECT_EQ(missing.allow, "") << "404: no route has the path";
    EXPECT_FALSE(match_route_table("/health/x", "GET").found);
    EXPECT_EQ(match_route_table("/v1/health", "GET").allow, "") << "/health is not a /v1 route";
}
