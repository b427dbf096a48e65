// The `response-cache` plugin's config (cache.hpp); errors name the key and line.
#include <yaml-cpp/yaml.h>

#include "common/config_reader.hpp"
#include "gateway/policy/cache.hpp"

namespace toolgate::gateway::policy {

cache_settings parse_cache_plugin(reader const& r, YAML::Node const& n, std::string const& path) {
    cache_settings s;
    if (!n || n.IsNull()) return s;
    r.check_keys(n, path, {"mode", "ttl", "max_bytes", "max_entry_bytes", "store", "scope", "semantic"});
    if (auto m = n["mode"]) {
        auto v = r.str(m, path + ".mode");
        if (v == "exact") s.how = cache_settings::mode::exact;
        else if (v == "semantic") s.how = cache_settings::mode::semantic;
        else r.fail(m, path + ".mode", "must be exact or semantic");
    }
    if (auto t = n["ttl"]) {
        s.ttl = r.duration(t, path + ".ttl");
        if (s.ttl < std::chrono::seconds(1) || s.ttl > std::chrono::hours(24 * 30))
            r.fail(t, path + ".ttl", "must be between 1s and 30d");
    }
    if (auto b = n["max_bytes"]) s.max_bytes = r.bytes(b, path + ".max_bytes", 1u << 20, 1ull << 40);
    if (auto b = n["max_entry_bytes"]) s.max_entry_bytes = r.bytes(b, path + ".max_entry_bytes", 1024, 64u << 20);
    if (!n["max_entry_bytes"]) s.max_entry_bytes = std::min<std::size_t>(s.max_entry_bytes, s.max_bytes / 16);
    if (auto st = n["store"]) {
        auto v = r.str(st, path + ".store");
        if (v == "redis") s.redis = true;
        else if (v != "memory") r.fail(st, path + ".store", "must be memory or redis");
    }
    if (auto b = n["max_entry_bytes"]; b && !s.redis && s.max_entry_bytes > s.max_bytes / 16)
        r.fail(b, path + ".max_entry_bytes", "must be at most max_bytes / 16 (the memory store is split in 16 stripes)");
    if (auto sc = n["scope"]) {
        auto v = r.str(sc, path + ".scope");
        if (v == "key") s.whose = cache_settings::scope::key;
        else if (v == "team") s.whose = cache_settings::scope::team;
        else if (v == "global") s.whose = cache_settings::scope::global;
        else r.fail(sc, path + ".scope", "must be key, team or global (whose answers may answer whom)");
    }
    auto sem = n["semantic"];
    if (sem && s.how != cache_settings::mode::semantic)
        r.fail(sem, path + ".semantic", "is for mode: semantic");
    if (s.how == cache_settings::mode::semantic) {
        if (!sem) r.fail(n, path + ".semantic", "mode semantic needs semantic: { embedding_model, threshold }");
        auto sp = path + ".semantic";
        r.check_keys(sem, sp, {"embedding_model", "threshold", "max_messages", "timeout", "max_entries"});
        if (!sem["embedding_model"]) r.fail(sem, sp + ".embedding_model", "is required (any embeddings model the gateway routes)");
        s.semantic.embedding_model = r.str(sem["embedding_model"], sp + ".embedding_model");
        if (s.semantic.embedding_model.empty()) r.fail(sem["embedding_model"], sp + ".embedding_model", "must not be empty");
        // No default: a threshold set too low answers a different question, so it is a choice.
        if (!sem["threshold"])
            r.fail(sem, sp + ".threshold", "is required: the cosine similarity a hit needs, e.g. 0.95");
        s.semantic.threshold = r.number(sem["threshold"], sp + ".threshold", 0.5, 1.0);
        if (auto m = sem["max_messages"]) s.semantic.max_messages = r.integer(m, sp + ".max_messages", 1, 100);
        if (auto t = sem["timeout"]) {
            s.semantic.timeout = r.duration(t, sp + ".timeout");
            if (s.semantic.timeout < std::chrono::milliseconds(1) || s.semantic.timeout > std::chrono::seconds(30))
                r.fail(t, sp + ".timeout", "must be between 1ms and 30s");
        }
        if (auto m = sem["max_entries"]) s.semantic.max_entries = r.integer(m, sp + ".max_entries", 1, 10'000'000);
    }
    return s;
}

}  // namespace toolgate::gateway::policy
