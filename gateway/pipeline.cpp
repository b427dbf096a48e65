#include "gateway/pipeline.hpp"

#include <boost/json/value.hpp>

namespace toolgate::gateway {

asio::awaitable<turn_result> turn_pipeline::step(turn_context& ctx, std::size_t index) const {
    if (index == filters_.size()) {
        if (ctx.provider == nullptr) {
            turn_result r;
            r.error = api_error::model_not_found(ctx.requested_model);
            co_return r;
        }
        if (ctx.kind == turn_kind::embeddings) {
            auto e = co_await ctx.provider->embeddings(*ctx.call, ctx.request.body);
            turn_result r;
            r.response = std::move(e.response);
            r.tokens = e.tokens;
            r.error = std::move(e.error);
            r.error_detail = std::move(e.error_detail);
            co_return r;
        }
        co_return co_await ctx.provider->chat(*ctx.call, ctx.request, ctx.sink);
    }
    next_fn next = [this, index](turn_context& c) { return step(c, index + 1); };
    co_return co_await filters_[index]->on_turn(ctx, next);
}

std::optional<model_router::route> model_router::resolve(std::string_view model) const {
    if (model.empty()) return std::nullopt;
    if (auto slash = model.find('/'); slash != std::string_view::npos) {
        auto prefix = model.substr(0, slash);
        auto rest = model.substr(slash + 1);
        for (auto* p : providers_) {
            if (p->name() != prefix) continue;
            if (rest.empty()) return std::nullopt;
            if (p->catch_all() || p->lists_model(rest)) return route{p, std::string(rest)};
            return std::nullopt;
        }
    }
    for (auto* p : providers_)
        if (p->name() == model && !p->config().default_model.empty()) return route{p, p->config().default_model};
    for (auto* p : providers_)
        if (p->lists_model(model)) return route{p, std::string(model)};
    // The model catalog knows which provider a well-known model belongs to.
    for (auto* p : providers_)
        if (p->catch_all() && p->catalog_lists(model)) return route{p, std::string(model)};
    for (auto* p : providers_)
        if (p->catch_all()) return route{p, std::string(model)};
    return std::nullopt;
}

namespace {

class routing_filter final : public turn_filter {
public:
    explicit routing_filter(model_router const& router) : router_(router) {}
    std::string_view name() const override { return "router"; }

    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const& next) override {
        if (ctx.provider == nullptr) {
            auto r = router_.resolve(ctx.requested_model);
            if (!r) {
                turn_result out;
                out.error = api_error::model_not_found(ctx.requested_model);
                co_return out;
            }
            ctx.provider = r->provider;
            ctx.upstream_model = r->upstream_model;
            ctx.attempts = 1;
            if (r->upstream_model != ctx.requested_model) {
                ctx.request.body["model"] = r->upstream_model;
                ctx.request.raw_body.clear();
            }
        }
        co_return co_await next(ctx);
    }

private:
    model_router const& router_;
};

}  // namespace

std::shared_ptr<turn_filter> make_routing_filter(model_router const& router) {
    return std::make_shared<routing_filter>(router);
}

}  // namespace toolgate::gateway
