#include "providers/config.hpp"

#include <set>

namespace toolgate::providers {

void parse_providers(reader const& r, YAML::Node const& ps, std::vector<provider_config>& out,
                     std::vector<std::shared_ptr<provider>>& built) {
    std::set<std::string> names;
    if (!ps.IsSequence()) r.fail(ps, "providers", "must be a list");
    std::size_t i = 0;
    for (auto const& p : ps) {
        std::string path = "providers[" + std::to_string(i++) + "]";
        if (!p.IsMap()) r.fail(p, path, "must be a mapping");
        provider_config pc;
        static std::set<std::string> const common{"name",   "type",       "base_url",      "api_key",
                                                  "models", "headers",    "timeout",       "connect_timeout",
                                                  "prices", "max_tokens", "default_model", "api_keys"};
        json::object options;
        std::set<std::string> seen;
        for (auto const& kv : p) {
            auto key = r.key(kv.first, path);
            if (!seen.insert(key).second) r.fail(kv.first, path + "." + key, "duplicate key");
            if (!common.count(key)) {
                // Type-specific keys are checked by the provider itself, below.
                options[key] = r.to_json(kv.second, path + "." + key);
            }
        }
        if (!p["name"]) r.fail(p, path, "'name' is required");
        pc.name = r.str(p["name"], path + ".name");
        if (!valid_name(pc.name)) r.fail(p["name"], path + ".name", "must match [a-z0-9_-]{1,64}");
        if (!names.insert(pc.name).second)
            r.fail(p["name"], path + ".name", "duplicate provider name '" + pc.name + "'");
        if (!p["type"]) r.fail(p, path, "'type' is required (" + known_provider_types() + ")");
        pc.type = r.str(p["type"], path + ".type");
        if (auto n = p["base_url"]) pc.base_url = r.str(n, path + ".base_url");
        if (auto n = p["api_key"]) pc.api_key = r.str(n, path + ".api_key");
        if (auto n = p["api_keys"]) {
            // Secondary credentials: a 401/403 or 429 moves the same target to the next key.
            if (!n.IsSequence() || n.size() == 0) r.fail(n, path + ".api_keys", "must be a non-empty list of keys");
            if (p["api_key"]) r.fail(n, path + ".api_keys", "give either api_key or api_keys, not both");
            for (auto const& k : n) {
                auto key = r.str(k, path + ".api_keys");
                if (key.empty()) r.fail(k, path + ".api_keys", "a key must not be empty (is its variable set?)");
                pc.api_keys.push_back(std::move(key));
            }
            pc.api_key = pc.api_keys.front();
        }
        if (auto n = p["models"]) {
            if (!n.IsSequence()) r.fail(n, path + ".models", "must be a list of model names");
            for (auto const& m : n) {
                auto name = r.str(m, path + ".models");
                if (name.empty()) r.fail(m, path + ".models", "model names must not be empty");
                pc.models.push_back(name);
            }
        }
        if (auto n = p["headers"]) {
            if (!n.IsMap()) r.fail(n, path + ".headers", "must be a mapping of header names to values");
            for (auto const& kv : n) {
                auto k = r.key(kv.first, path + ".headers");
                auto v = r.str(kv.second, path + ".headers." + k);
                if (k.find_first_of(":\r\n ") != std::string::npos || v.find_first_of("\r\n") != std::string::npos)
                    r.fail(kv.first, path + ".headers." + k, "invalid header");
                pc.headers[k] = v;
            }
        }
        if (auto n = p["timeout"]) pc.timeout = r.duration(n, path + ".timeout");
        if (auto n = p["connect_timeout"]) pc.connect_timeout = r.duration(n, path + ".connect_timeout");
        if (auto n = p["max_tokens"])
            pc.max_tokens = static_cast<std::int64_t>(r.integer(n, path + ".max_tokens", 1, 10'000'000));
        if (auto n = p["default_model"]) pc.default_model = r.str(n, path + ".default_model");
        if (auto n = p["prices"]) {
            if (!n.IsMap())
                r.fail(n, path + ".prices", "must map model names to {input, output} USD per million tokens (and per_image USD per image)");
            for (auto const& kv : n) {
                auto model = r.key(kv.first, path + ".prices");
                auto mp = path + ".prices." + model;
                r.check_keys(kv.second, mp, {"input", "output", "per_image"});
                model_price price;
                if (auto x = kv.second["input"]) price.input = r.number(x, mp + ".input", 0, 1e6);
                if (auto x = kv.second["output"]) price.output = r.number(x, mp + ".output", 0, 1e6);
                if (auto x = kv.second["per_image"]) price.per_image = r.number(x, mp + ".per_image", 0, 1e3);
                pc.prices[model] = price;
            }
        }
        pc.options = std::move(options);
        if (pc.type == "scripted" && pc.models.empty()) pc.models.push_back("toolgate-demo");
        try {
            // Validates the type-specific settings now, not at first use; the gateway uses this
            // instance (providers are built once).
            built.push_back(make_provider(pc));
        } catch (std::invalid_argument const& e) {
            r.fail(p, path, e.what());
        }
        out.push_back(std::move(pc));
    }
}

}  // namespace toolgate::providers
