#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "common/api_error.hpp"
#include "gateway/pipeline.hpp"
#include "providers/openai.hpp"
#include "providers/wire.hpp"

using namespace toolgate;
namespace json = boost::json;

TEST(api_error, openai_shape) {
    auto v = json::parse(api_error::model_not_found("gpt-x").to_json());
    auto const& e = v.at("error").as_object();
    EXPECT_EQ(e.at("type"), "invalid_request_error");
    EXPECT_EQ(e.at("code"), "model_not_found");
    EXPECT_TRUE(e.at("param").is_null());
    EXPECT_NE(std::string(e.at("message").as_string()).find("gpt-x"), std::string::npos);
}

TEST(api_error, upstream_status_mapping) {
    using providers::map_upstream_status;
    auto e400 = map_upstream_status("p", 400, R"({"error":{"message":"bad temperature"}})");
    EXPECT_EQ(e400.status, 400);
    EXPECT_NE(e400.message.find("bad temperature"), std::string::npos);
    EXPECT_EQ(map_upstream_status("p", 401, "").status, 502);  // our credentials, not the client's
    EXPECT_EQ(map_upstream_status("p", 429, "").status, 429);
    EXPECT_EQ(map_upstream_status("p", 429, "").type, "rate_limit_error");
    auto e500 = map_upstream_status("p", 500, R"({"error":{"message":"internal secret detail"}})");
    EXPECT_EQ(e500.status, 502);
    EXPECT_EQ(e500.message.find("secret"), std::string::npos);  // 5xx bodies stay in the log
    EXPECT_EQ(map_upstream_status("p", 502, "garbage{").status, 502);
    EXPECT_EQ(map_upstream_status("p", 503, "garbage{").status, 503);  // overloaded: the client may retry
    EXPECT_EQ(map_upstream_status("p", 529, "").code, "upstream_unavailable");  // Anthropic's overloaded
    EXPECT_EQ(map_upstream_status("p", 422, "{}").status, 400);
    EXPECT_EQ(map_upstream_status("p", 429, "", "7").retry_after, "7");
    EXPECT_EQ(map_upstream_status("p", 500, "", "7").retry_after, "");
    EXPECT_EQ(map_upstream_status("p", 429, "", "7\r\nx-evil: 1").retry_after, "");
}

namespace {
providers::provider_config pc(std::string name, std::string type, std::vector<std::string> models) {
    providers::provider_config c;
    c.name = std::move(name);
    c.type = std::move(type);
    c.base_url = "http://127.0.0.1:1/v1";
    c.models = std::move(models);
    return c;
}
}  // namespace

TEST(model_router, resolution_order) {
    auto demo = providers::make_provider(pc("demo", "scripted", {"toolgate-demo"}));
    auto local = providers::make_provider(pc("local", "openai", {"mock-1"}));
    auto any = providers::make_provider(pc("any", "openai", {}));
    gateway::model_router r({demo.get(), local.get(), any.get()});
    EXPECT_EQ(r.resolve("toolgate-demo")->provider, demo.get());
    EXPECT_EQ(r.resolve("mock-1")->provider, local.get());
    EXPECT_EQ(r.resolve("gpt-4o")->provider, any.get());
    auto explicit_route = r.resolve("local/mock-1");
    EXPECT_EQ(explicit_route->provider, local.get());
    EXPECT_EQ(explicit_route->upstream_model, "mock-1");
    EXPECT_FALSE(r.resolve("local/not-listed"));
    EXPECT_EQ(r.resolve("any/org/model")->upstream_model, "org/model");
    EXPECT_EQ(r.resolve("meta-llama/Llama-3")->provider, any.get());  // slash but no such provider
    EXPECT_FALSE(r.resolve(""));
    gateway::model_router strict({demo.get(), local.get()});
    EXPECT_FALSE(strict.resolve("gpt-4o"));
}

TEST(model_router, catalog_and_default_model) {
    auto claude_cfg = pc("anthropic", "anthropic", {});
    claude_cfg.default_model = "claude-haiku-4-5";
    auto claude = providers::make_provider(claude_cfg);
    auto gem = providers::make_provider(pc("mygemini", "google", {}));
    auto openai = providers::make_provider(pc("openai", "openai", {}));
    gateway::model_router r({claude.get(), gem.get(), openai.get()});
    // Every one is a catch-all; the catalog says who serves a well-known model.
    EXPECT_EQ(r.resolve("gemini-2.5-flash")->provider, gem.get());  // by type, whatever it is called
    EXPECT_EQ(r.resolve("gpt-4o-mini")->provider, openai.get());     // by name
    EXPECT_EQ(r.resolve("claude-sonnet-4-5")->provider, claude.get());
    EXPECT_EQ(r.resolve("some-new-model")->provider, claude.get());  // unknown: the first catch-all
    auto d = r.resolve("anthropic");
    EXPECT_EQ(d->provider, claude.get());
    EXPECT_EQ(d->upstream_model, "claude-haiku-4-5");
    EXPECT_EQ(openai->listed_models().size(), 15u);  // /v1/models shows the catalog's
    providers::usage u{1'000'000, 1'000'000, true};
    EXPECT_DOUBLE_EQ(openai->config().cost("gpt-4o-mini", u), 0.15 + 0.6);
    // Image models are priced per image (gpt-image-1 by its tokens).
    EXPECT_DOUBLE_EQ(openai->config().cost("dall-e-3", providers::usage{}, 3), 0.12);
    EXPECT_DOUBLE_EQ(openai->config().cost("gpt-image-1", u, 1), 5.0 + 40.0);
}
