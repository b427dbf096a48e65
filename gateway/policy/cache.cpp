// The response cache filter and its runtime (cache.hpp). What to look up and what to store are
// decided by plain functions (cache_parts.cpp and below); the coroutines only sequence the store,
// the embedding call and the replay. Coroutine bodies follow the GCC 12 rules in CONTRIBUTING.md.
#include "gateway/policy/cache.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cstdio>
#include <tuple>

#include "common/cancel_scope.hpp"
#include "common/prometheus.hpp"
#include "common/time_source.hpp"
#include "gateway/policy/access.hpp"
#include "gateway/policy/cache_parts.hpp"
#include "gateway/policy/semantic_index.hpp"
#include "state/key_store.hpp"
#include "state/redis.hpp"

namespace toolgate::gateway::policy {

namespace json = boost::json;
using namespace cache_detail;

namespace {

// Distinct scope labels counted for /metrics; later ones are counted as "other".
constexpr std::size_t max_scope_labels = 200;

// Whose answers may answer whom: the label /metrics shows (key and team names) and the identity the
// entries are bound to (a key's id, so that a renamed key keeps its answers and a new key that
// takes an old name does not get them).
std::pair<std::string, std::string> scope_of(cache_settings const& s, turn_context const& ctx) {
    auto const* key = ctx.access ? ctx.access->key.get() : nullptr;
    switch (s.whose) {
        case cache_settings::scope::global: return {"global", "global"};
        case cache_settings::scope::team:
            if (key && !key->team.empty()) return {"team:" + key->team, "team:" + key->team};
            [[fallthrough]];
        case cache_settings::scope::key: break;
    }
    if (!key) return {"anonymous", "anonymous"};
    return {"key:" + key->name, cache_runtime::key_scope(key->id)};
}

// What one turn looks up and, on a miss, stores.
struct lookup_plan {
    bool bypass = false;    // cache-control: no-store
    bool no_cache = false;  // cache-control: no-cache
    std::string label;      // the scope, as /metrics names it
    std::string scope;      // the scope the entries are bound to
    std::string key;        // the exact entry
    std::optional<std::string> text;  // semantic: the last user message
    std::string group;      // semantic: everything else
};

lookup_plan plan_lookup(cache_runtime const& rt, turn_context const& ctx) {
    lookup_plan p;
    auto const& s = rt.settings();
    std::tie(p.label, p.scope) = scope_of(s, ctx);
    auto d = parse_cache_control(header_of(ctx.headers, "cache-control"));
    p.bypass = d.no_store;
    p.no_cache = d.no_cache;
    if (p.bypass) return p;
    auto route = rt.route() ? rt.route()(ctx) : ctx.requested_model;
    p.key = entry_key(p.scope, ctx.requested_model, route, request_fingerprint(ctx.request.body, false));
    if (s.how == cache_settings::mode::semantic) {
        p.text = semantic_text(ctx.request.body, s.semantic.max_messages);
        if (p.text) {
            std::string ctx_text = p.scope + "\n" + route + "\n" + request_fingerprint(ctx.request.body, true);
            p.group = state::sha256_hex(ctx_text);
        }
    }
    return p;
}

std::string format_score(float score) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.4f", double(score));
    return buf;
}

// A streamed turn's sink, recording the chunks that pass (usage-only chunks aside: replays make
// their own) up to a size.
class recording_sink final : public providers::chat_sink {
public:
    recording_sink(providers::chat_sink& inner, std::size_t max_bytes) : inner_(inner), max_bytes_(max_bytes) {}

    asio::awaitable<bool> on_chunk(json::object& chunk, std::string_view raw) override {
        record(chunk, raw);
        bool more = co_await inner_.on_chunk(chunk, raw);
        if (!more) stopped_ = true;  // what follows never came: not a whole answer
        co_return more;
    }
    asio::awaitable<bool> flush() override { co_return co_await inner_.flush(); }
    asio::awaitable<bool> on_comment(std::string_view text) override { co_return co_await inner_.on_comment(text); }

    bool complete() const { return !overflow_ && !stopped_ && !chunks_.empty(); }
    std::vector<std::string> take() { return std::move(chunks_); }

private:
    void record(json::object const& chunk, std::string_view raw) {
        if (overflow_ || usage_only(chunk)) return;
        std::string text = raw.empty() ? json::serialize(chunk) : std::string(raw);
        bytes_ += text.size();
        if (bytes_ > max_bytes_) {
            overflow_ = true;
            chunks_.clear();
            return;
        }
        chunks_.push_back(std::move(text));
    }

    providers::chat_sink& inner_;
    std::size_t max_bytes_;
    std::size_t bytes_ = 0;
    bool overflow_ = false;
    bool stopped_ = false;
    std::vector<std::string> chunks_;
};

// The entry to store for a finished turn, or nullopt when it must not be cached.
std::optional<std::string> entry_of(cache_settings const& s, turn_context const& ctx, turn_result const& r,
                                    recording_sink* rec) {
    if (r.error || (ctx.call && ctx.call->cancel.cancelled())) return std::nullopt;
    cached_answer a;
    if (ctx.provider) a.provider = ctx.provider->name();
    a.model = ctx.upstream_model;
    a.tokens = r.tokens;
    if (rec) {
        if (!rec->complete()) return std::nullopt;
        a.chunks = rec->take();
        if (!storable(replay_response(a), choices_asked(ctx.request.body))) return std::nullopt;
    } else {
        if (!storable(r.response, choices_asked(ctx.request.body))) return std::nullopt;
        a.response = r.raw_response.empty() ? json::serialize(r.response) : r.raw_response;
    }
    auto text = encode(a);
    if (text.size() > s.max_entry_bytes) return std::nullopt;
    return text;
}

// What a hit sends: the chunks as objects (each with its text while unchanged), or the answer.
// Built whole before anything is sent, so that an entry that does not read back is a miss and
// never half a stream. Tool calls get fresh ids (one cached answer may be replayed to many).
struct replay_data {
    std::vector<std::pair<json::object, std::string>> chunks;
    json::object response;
    std::string raw;  // the answer's text when unchanged
};

std::optional<replay_data> prepare_replay(cached_answer const& a, bool stream, bool include_usage) {
    replay_data out;
    std::vector<std::pair<std::string, std::string>> renamed;
    if (!stream) {
        out.response = replay_response(a);
        if (out.response.empty()) return std::nullopt;
        bool changed = refresh_call_ids(out.response, renamed);
        if (a.chunks.empty() && !changed) out.raw = a.response;
        return out;
    }
    auto texts = replay_chunks(a, include_usage);
    if (texts.empty()) return std::nullopt;
    out.chunks.reserve(texts.size());
    for (auto& text : texts) {
        boost::system::error_code ec;
        auto v = json::parse(text, ec);
        if (ec || !v.is_object()) return std::nullopt;
        auto& chunk = v.get_object();
        bool changed = refresh_call_ids(chunk, renamed);
        out.chunks.emplace_back(std::move(chunk), changed ? std::string() : std::move(text));
    }
    return out;
}

// The parts of the store key DELETE /admin/cache names (empty: any).
std::pair<std::string, std::string> erase_parts(std::string const& scope_label, std::string const& model) {
    std::pair<std::string, std::string> out;
    if (!scope_label.empty()) out.first = cache_runtime::scope_part(scope_label);
    if (!model.empty()) out.second = cache_runtime::model_part(model);
    return out;
}

// A store that must be awaited (Redis) writes after the answer, off the request's path.
asio::awaitable<void> put_later(std::shared_ptr<state::cache_store> store, std::string key, std::string value,
                                std::string label, std::int64_t ttl_ms, std::int64_t now_ms,
                                std::shared_ptr<std::atomic<std::uint64_t>> errors) {
    auto r = co_await store->put(key, std::move(value), label, ttl_ms, now_ms);
    if (!r) errors->fetch_add(1, std::memory_order_relaxed);
}

class cache_filter final : public turn_filter {
public:
    explicit cache_filter(cache_runtime& rt) : rt_(rt) {}
    std::string_view name() const override { return "response_cache"; }

    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const& next) override {
        if (ctx.kind != turn_kind::chat) co_return co_await next(ctx);
        auto plan = plan_lookup(rt_, ctx);
        if (plan.bypass) {
            ctx.cache_status = "bypass";
            set_header(ctx.response_headers, "x-toolgate-cache", "bypass");
            rt_.note(plan.label, &cache_scope_stats::bypasses);
            co_return co_await next(ctx);
        }
        auto now = unix_now_ms();
        std::optional<std::vector<float>> vector;
        if (!plan.no_cache) {
            auto found = co_await fetch(ctx, plan.key, now);
            if (found) {
                rt_.note(plan.label, &cache_scope_stats::hits);
                co_return co_await replay(ctx, found->first, found->second, nullptr);
            }
            if (plan.text) {
                vector = co_await embed(ctx, *plan.text);
                auto* index = rt_.index();
                std::optional<semantic_index::match> near;
                if (vector && index) near = index->best(plan.group, *vector, float(rt_.settings().semantic.threshold), now);
                if (near) {
                    auto similar = co_await fetch(ctx, near->key, now);
                    if (similar) {
                        rt_.note(plan.label, &cache_scope_stats::semantic_hits);
                        co_return co_await replay(ctx, similar->first, similar->second, &near->score);
                    }
                }
            }
        }
        rt_.note(plan.label, &cache_scope_stats::misses);
        ctx.cache_status = "miss";
        set_header(ctx.response_headers, "x-toolgate-cache", "miss");
        std::optional<recording_sink> rec;
        sink_restorer restore(ctx);
        if (ctx.sink) {
            rec.emplace(*ctx.sink, rt_.settings().max_entry_bytes);
            ctx.sink = &*rec;
        }
        auto result = co_await next(ctx);
        restore.now();
        auto entry = entry_of(rt_.settings(), ctx, result, rec ? &*rec : nullptr);
        auto ex = co_await asio::this_coro::executor;
        if (entry) store(plan, std::move(*entry), std::move(vector), ex);
        co_return result;
    }

private:
    // The cached answer under `key` ready to replay, if there is a readable one (a store that
    // cannot answer, or an entry that does not read back, is a miss).
    asio::awaitable<std::optional<std::pair<cached_answer, replay_data>>> fetch(turn_context& ctx, std::string const& key,
                                                                                 std::int64_t now) {
        auto& store = rt_.store();
        state::cache_value v;
        if (auto got = store.get_now(key, now)) {
            v = std::move(*got);
        } else {
            auto r = co_await store.get(key, now);
            if (r) v = std::move(*r);
            else rt_.store_errors.fetch_add(1, std::memory_order_relaxed);
        }
        if (!v) co_return std::nullopt;
        auto a = decode(*v);
        if (!a) co_return std::nullopt;
        auto data = prepare_replay(*a, ctx.sink != nullptr, providers::wants_usage(ctx.request.body));
        if (!data) co_return std::nullopt;
        co_return std::make_pair(std::move(*a), std::move(*data));
    }

    // The last user message's embedding, within the semantic timeout; nullopt on any failure.
    asio::awaitable<std::optional<std::vector<float>>> embed(turn_context& ctx, std::string const& text) {
        auto const& sem = rt_.settings().semantic;
        cancel_token none;  // (a turn without a call context cannot reach a provider anyway)
        auto& parent = ctx.call ? ctx.call->cancel : none;
        auto ex = co_await asio::this_coro::executor;
        scoped_deadline deadline(parent, time_source::steady().now() + sem.timeout, ex);
        auto answer = co_await rt_.embed()(ctx, sem.embedding_model, text, deadline.token());
        if (answer.error || answer.vector.empty() || deadline.token().cancelled()) {
            rt_.embed_failures.fetch_add(1, std::memory_order_relaxed);
            co_return std::nullopt;
        }
        co_return std::move(answer.vector);
    }

    asio::awaitable<turn_result> replay(turn_context& ctx, cached_answer const& a, replay_data& data, float const* score) {
        ctx.cache_status = "hit";
        ctx.cache_hit = true;
        set_header(ctx.response_headers, "x-toolgate-cache", "hit");
        if (score) set_header(ctx.response_headers, "x-toolgate-cache-score", format_score(*score));
        if (!a.provider.empty()) set_header(ctx.response_headers, "x-toolgate-provider", a.provider);
        if (!a.model.empty()) set_header(ctx.response_headers, "x-toolgate-model", a.model);
        ctx.upstream_model = a.model;
        turn_result out;
        out.tokens = a.tokens;
        out.upstream_status = 200;
        if (!ctx.sink) {
            out.response = std::move(data.response);
            out.raw_response = std::move(data.raw);
            co_return out;
        }
        for (auto& [chunk, text] : data.chunks) {
            bool more = co_await ctx.sink->on_chunk(chunk, text);
            out.chunks_sent = true;
            if (!more) co_return out;
        }
        co_await ctx.sink->flush();
        co_return out;
    }

    void store(lookup_plan const& plan, std::string entry, std::optional<std::vector<float>> vector,
               asio::any_io_executor ex) {
        auto const& s = rt_.settings();
        auto now = unix_now_ms();
        auto ttl = s.ttl.count();
        if (vector && rt_.index()) rt_.index()->add(plan.group, plan.key, std::move(*vector), now + ttl);
        rt_.note(plan.label, &cache_scope_stats::stores);
        auto& st = rt_.store();
        if (st.put_now(plan.key, entry, plan.label, ttl, now)) return;
        asio::co_spawn(ex, put_later(rt_.shared_store(), plan.key, std::move(entry), plan.label, ttl, now, rt_.put_errors()),
                       asio::detached);
    }

    cache_runtime& rt_;
};

}  // namespace

cache_runtime::cache_runtime(cache_settings s, std::shared_ptr<state::redis_pool> redis, route_fn route, embed_fn embed)
    : s_(std::move(s)), route_(std::move(route)), embed_(std::move(embed)) {
    if (s_.redis) {
        if (!redis) throw std::invalid_argument("response-cache store: redis needs state.redis");
        store_ = state::make_redis_cache(std::move(redis));
    } else {
        store_ = state::make_memory_cache(s_.max_bytes);
    }
    if (s_.how == cache_settings::mode::semantic) index_ = std::make_unique<semantic_index>(s_.semantic.max_entries);
}

cache_runtime::~cache_runtime() = default;

std::string cache_runtime::scope_part(std::string_view scope) { return short_hash(scope); }
std::string cache_runtime::key_scope(std::string_view key_id) { return "key#" + std::string(key_id); }
std::string cache_runtime::model_part(std::string_view requested_model) { return short_hash(requested_model); }

asio::awaitable<state::result<std::uint64_t>> cache_runtime::erase(std::string const& scope_label, std::string const& model) {
    auto parts = erase_parts(scope_label, model);
    if (index_) index_->erase(parts.first, parts.second);
    co_return co_await store_->erase(parts.first, parts.second);
}

void cache_runtime::note(std::string const& scope_label, std::uint64_t cache_scope_stats::*field) {
    std::lock_guard lock(mu_);
    auto it = scopes_.find(scope_label);
    if (it == scopes_.end()) {
        if (scopes_.size() >= max_scope_labels) it = scopes_.try_emplace("other").first;
        else it = scopes_.try_emplace(scope_label).first;
    }
    it->second.*field += 1;
}

std::string cache_runtime::metrics_text() const {
    prometheus::writer w;
    std::vector<std::pair<std::string, cache_scope_stats>> scopes;
    {
        std::lock_guard lock(mu_);
        scopes.assign(scopes_.begin(), scopes_.end());
    }
    w.family("toolgate_cache_lookups_total", "counter", "Response cache lookups by scope and result (hit, semantic_hit, miss, bypass).");
    for (auto const& [scope, st] : scopes) {
        w.sample("toolgate_cache_lookups_total", {{"scope", scope}, {"result", "hit"}}, st.hits);
        w.sample("toolgate_cache_lookups_total", {{"scope", scope}, {"result", "semantic_hit"}}, st.semantic_hits);
        w.sample("toolgate_cache_lookups_total", {{"scope", scope}, {"result", "miss"}}, st.misses);
        w.sample("toolgate_cache_lookups_total", {{"scope", scope}, {"result", "bypass"}}, st.bypasses);
    }
    w.family("toolgate_cache_stores_total", "counter", "Answers stored in the response cache, by scope.");
    for (auto const& [scope, st] : scopes) w.sample("toolgate_cache_stores_total", {{"scope", scope}}, st.stores);
    auto counts = store_->counts();
    if (counts.size() > max_scope_labels) {  // bounded series: the rest summed as "other"
        state::cache_counts other;
        for (std::size_t i = max_scope_labels - 1; i < counts.size(); ++i) {
            other.entries += counts[i].second.entries;
            other.bytes += counts[i].second.bytes;
            other.evictions += counts[i].second.evictions;
        }
        counts.resize(max_scope_labels - 1);
        counts.emplace_back("other", other);
    }
    if (store_->kind() == "memory") {
        w.family("toolgate_cache_bytes", "gauge", "Bytes held by the memory response cache, by scope.");
        for (auto const& [scope, c] : counts) w.sample("toolgate_cache_bytes", {{"scope", scope}}, c.bytes);
        w.family("toolgate_cache_entries", "gauge", "Entries held by the memory response cache, by scope.");
        for (auto const& [scope, c] : counts) w.sample("toolgate_cache_entries", {{"scope", scope}}, c.entries);
        w.family("toolgate_cache_evictions_total", "counter", "Entries evicted to make room, by scope.");
        for (auto const& [scope, c] : counts) w.sample("toolgate_cache_evictions_total", {{"scope", scope}}, c.evictions);
    }
    w.family("toolgate_cache_store_errors_total", "counter", "Response cache lookups and stores the store could not answer.");
    w.sample("toolgate_cache_store_errors_total", {}, store_errors.load() + put_errors_->load());
    if (index_) {
        w.family("toolgate_cache_semantic_entries", "gauge", "Vectors in the semantic cache's index.");
        w.sample("toolgate_cache_semantic_entries", {}, std::uint64_t(index_->size()));
        w.family("toolgate_cache_embedding_failures_total", "counter", "Semantic lookups whose embedding failed or timed out.");
        w.sample("toolgate_cache_embedding_failures_total", {}, embed_failures.load());
    }
    return w.take();
}

std::shared_ptr<turn_filter> make_cache_filter(cache_runtime& rt) { return std::make_shared<cache_filter>(rt); }

}  // namespace toolgate::gateway::policy
