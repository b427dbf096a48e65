#include "gateway/pipeline.hpp"

#include <boost/json/value.hpp>

namespace toolgate::gateway {

asio::awaitable<turn_result> turn_pipeline::step(turn_context& ctx, std::size_t index) const {
    if (index == filters_.size()) {
        // The router is the innermost filter and answers; a chain without one is a build error.
        turn_result r;
        r.error = api_error::internal("the turn pipeline has no router");
        co_return r;
    }
    next_fn next = [this, index](turn_context& c) { return step(c, index + 1); };
    co_return co_await filters_[index]->on_turn(ctx, next);
}

std::string_view header_of(header_list const* headers, std::string_view name) {
    if (headers == nullptr) return {};
    for (auto const& [k, v] : *headers)
        if (k == name) return v;
    return {};
}

void set_header(header_list* headers, std::string_view name, std::string value) {
    if (headers == nullptr) return;
    for (auto& [k, v] : *headers)
        if (k == name) {
            v = std::move(value);
            return;
        }
    headers->emplace_back(std::string(name), std::move(value));
}

turn_result local_error(api_error e) {
    turn_result r;
    r.error = failure(std::move(e));
    return r;
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


}  // namespace toolgate::gateway
