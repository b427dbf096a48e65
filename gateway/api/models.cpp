// GET /v1/models and /v1/models/{id}: the configured providers' models with catalog prices.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/routing/config.hpp"
#include "providers/catalog.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

json::object pricing_of(providers::model_price const& p) {
    json::object o{{"input_per_million", p.input}, {"output_per_million", p.output}};
    if (p.per_image > 0) o["per_image"] = p.per_image;
    return o;
}

}  // namespace

void build_models_cache(app_state& app) {
    json::array data;
    for (auto const& p : app.providers) {
        for (auto const& m : p->listed_models()) {
            json::object o{{"id", m}, {"object", "model"}, {"created", 0}, {"owned_by", p->owned_by()}};
            if (auto d = p->description(); !d.empty()) o["description"] = d;
            o["provider"] = p->name();
            if (auto const* e = providers::catalog_find(p->config(), m)) {
                if (e->context_window > 0) o["context_window"] = e->context_window;
                o["pricing"] = pricing_of(e->price);
            }
            if (auto it = p->config().prices.find(m); it != p->config().prices.end()) o["pricing"] = pricing_of(it->second);
            app.models_by_id.emplace(m, json::serialize(o));
            app.models_by_id.emplace(p->name() + "/" + m, json::serialize(o));
            data.push_back(std::move(o));
        }
    }
    // Pools and aliases are model names too.
    auto add_name = [&](std::string const& id, std::string const& description) {
        json::object o{{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "toolgate"}};
        o["description"] = description;
        app.models_by_id.emplace(id, json::serialize(o));
        data.push_back(std::move(o));
    };
    for (auto const& p : app.cfg.routing().pools)
        add_name(p.name, "routing pool (" + std::string(routing::to_string(p.strategy.how)) + ")");
    for (auto const& [alias, to] : app.cfg.routing().aliases) add_name(alias, "alias of " + to);
    app.models_json = json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

namespace {

// The list as a key with a `models` list sees it: only what it may call.
std::string models_of_key(app_state const& app, policy::virtual_key const& key) {
    auto all = json::parse(app.models_json).as_object();
    json::array data;
    if (auto const* d = all.if_contains("data"); d && d->is_array())
        for (auto const& m : d->get_array()) {
            auto const* id = m.is_object() ? m.get_object().if_contains("id") : nullptr;
            if (id && id->is_string() && key.allows_model(id->get_string())) data.push_back(m);
        }
    json::object out;
    out["object"] = "list";
    out["data"] = std::move(data);
    return json::serialize(out);
}

}  // namespace

asio::awaitable<void> list_models(api_request& r) {
    auto const& key = r.access_scope.key;
    if (key && key->models) {
        co_await reply_json(r, models_of_key(r.app, *key));
        co_return;
    }
    co_await reply_json(r, r.app.models_json);
}

asio::awaitable<void> get_model(api_request& r) {
    std::string id(r.param("id"));
    auto const& key = r.access_scope.key;
    bool hidden = key && !key->allows_model(id);  // a model the key may not use does not exist for it
    if (auto it = r.app.models_by_id.find(id); !hidden && it != r.app.models_by_id.end()) {
        co_await reply_json(r, it->second);
        co_return;
    }
    co_await reply_error(r, api_error::model_not_found(id));
}

}  // namespace toolgate::gateway::api
