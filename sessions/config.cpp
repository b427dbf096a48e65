// The `sessions` config section.
#include "sessions/config.hpp"

#include <yaml-cpp/yaml.h>

#include "common/config_reader.hpp"

namespace toolgate::sessions {

void parse_sessions(reader const& r, YAML::Node const& n, settings& out) {
    if (n.IsNull()) return;  // `sessions:` alone: on, with the defaults
    r.check_keys(n, "sessions",
                 {"store", "ttl", "max_messages", "max_tokens", "on_limit", "tombstone", "create_on_use",
                  "max_history_bytes"});
    if (auto s = n["store"]) {
        out.store = r.str(s, "sessions.store");
        if (out.store != "sqlite" && out.store != "redis" && out.store != "memory")
            r.fail(s, "sessions.store", "must be sqlite (the state's file), redis (state.redis, shared by replicas) or memory");
    }
    if (auto t = n["ttl"]) {
        out.lim.ttl = r.duration(t, "sessions.ttl");
        if (out.lim.ttl < std::chrono::seconds(1) || out.lim.ttl > std::chrono::hours(24 * 365))
            r.fail(t, "sessions.ttl", "must be between 1s and 365 days");
    }
    if (auto m = n["max_messages"]) out.lim.max_messages = r.integer(m, "sessions.max_messages", 0, 1'000'000);
    if (auto m = n["max_tokens"])
        out.lim.max_tokens = static_cast<std::int64_t>(r.integer(m, "sessions.max_tokens", 0, 1'000'000'000));
    if (auto o = n["on_limit"]) {
        auto v = r.str(o, "sessions.on_limit");
        if (v != "trim" && v != "reject")
            r.fail(o, "sessions.on_limit", "must be trim (drop the oldest turns) or reject (429 session_limit)");
        out.lim.when_full = v == "reject" ? on_limit::reject : on_limit::trim;
    }
    if (auto t = n["tombstone"]) {
        out.tombstone = r.duration(t, "sessions.tombstone");
        if (out.tombstone > std::chrono::hours(24 * 365)) r.fail(t, "sessions.tombstone", "must be at most 365 days");
    }
    if (auto c = n["create_on_use"]) out.create_on_use = r.boolean(c, "sessions.create_on_use");
    if (auto b = n["max_history_bytes"])
        out.max_history_bytes = r.integer(b, "sessions.max_history_bytes", 1024, 256u << 20);
}

}  // namespace toolgate::sessions
