#include "gateway/mcp_front_config.hpp"

namespace toolgate::gateway {

void parse_mcp_front(reader const& r, YAML::Node const& mf, mcp_front_config& f) {
    r.check_keys(mf, "mcp_front",
                 {"enabled", "path", "allowed_origins", "allowed_hosts", "session_idle_timeout", "max_sessions",
                  "page_size", "bearer_token", "keys"});
    auto strings = [&](YAML::Node const& n, std::string const& path) {
        std::vector<std::string> out;
        if (!n.IsSequence()) r.fail(n, path, "must be a list of strings");
        for (auto const& x : n) out.push_back(r.str(x, path));
        return out;
    };
    if (auto n = mf["enabled"]) f.enabled = r.boolean(n, "mcp_front.enabled");
    if (auto n = mf["path"]) {
        f.path = r.str(n, "mcp_front.path");
        if (f.path.empty() || f.path[0] != '/' || f.path.starts_with("/v1/") || f.path == "/health" ||
            f.path == "/metrics")
            r.fail(n, "mcp_front.path", "must start with / and not clash with the gateway's own routes");
    }
    if (auto n = mf["allowed_origins"]) f.allowed_origins = strings(n, "mcp_front.allowed_origins");
    if (auto n = mf["allowed_hosts"]) f.allowed_hosts = strings(n, "mcp_front.allowed_hosts");
    if (auto n = mf["session_idle_timeout"]) f.session_idle_timeout = r.duration(n, "mcp_front.session_idle_timeout");
    if (auto n = mf["max_sessions"]) f.max_sessions = r.integer(n, "mcp_front.max_sessions", 1, 1'000'000);
    if (auto n = mf["page_size"]) f.page_size = r.integer(n, "mcp_front.page_size", 1, 10'000);
    if (auto n = mf["bearer_token"]) {
        auto token = r.str(n, "mcp_front.bearer_token");
        if (token.size() < 16) r.fail(n, "mcp_front.bearer_token", "must be at least 16 characters");
        f.keys.push_back({"default", token, std::nullopt});
    }
    if (auto ks = mf["keys"]) {
        if (!ks.IsSequence()) r.fail(ks, "mcp_front.keys", "must be a list");
        std::size_t i = 0;
        for (auto const& k : ks) {
            std::string path = "mcp_front.keys[" + std::to_string(i++) + "]";
            r.check_keys(k, path, {"name", "key", "tools"});
            mcp_front_key key;
            if (!k["name"] || !k["key"]) r.fail(k, path, "needs a name and a key");
            key.name = r.str(k["name"], path + ".name");
            key.key = r.str(k["key"], path + ".key");
            if (key.key.size() < 16) r.fail(k["key"], path + ".key", "must be at least 16 characters");
            if (auto t = k["tools"]) key.tools = strings(t, path + ".tools");
            f.keys.push_back(std::move(key));
        }
    }
}

}  // namespace toolgate::gateway
