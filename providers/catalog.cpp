#include "providers/catalog.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <stdexcept>

namespace toolgate::providers {

extern std::string_view const model_catalog_json;

namespace {

std::vector<catalog_entry> parse_catalog() {
    namespace json = boost::json;
    auto v = json::parse(model_catalog_json);
    std::vector<catalog_entry> out;
    for (auto const& m : v.at("models").as_array()) {
        auto const& o = m.as_object();
        catalog_entry e;
        e.provider = std::string(o.at("provider").as_string());
        e.model = std::string(o.at("model").as_string());
        e.context_window = o.at("context_window").to_number<std::int64_t>();
        e.price.input = o.at("input").to_number<double>();
        e.price.output = o.at("output").to_number<double>();
        if (auto const* pi = o.if_contains("per_image")) e.price.per_image = pi->to_number<double>();
        out.push_back(std::move(e));
    }
    return out;
}

std::string_view family_of(provider_config const& cfg) {
    if (cfg.type == "anthropic") return "anthropic";
    if (cfg.type == "google") return "gemini";
    if (cfg.type == "bedrock") return "bedrock";
    if (cfg.type == "vertex") return "vertex";
    return {};
}

}  // namespace

std::vector<catalog_entry> const& model_catalog() {
    static std::vector<catalog_entry> const catalog = parse_catalog();
    return catalog;
}

std::vector<catalog_entry const*> catalog_for(provider_config const& cfg) {
    std::vector<catalog_entry const*> out;
    if (cfg.type == "scripted") return out;
    auto family = family_of(cfg);
    for (auto const& e : model_catalog())
        if (e.provider == cfg.name || (!family.empty() && e.provider == family)) out.push_back(&e);
    return out;
}

catalog_entry const* catalog_find(provider_config const& cfg, std::string_view model) {
    for (auto const* e : catalog_for(cfg))
        if (e->model == model) return e;
    return nullptr;
}

}  // namespace toolgate::providers
