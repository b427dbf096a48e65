#include "gateway/routing/router.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>

#include "common/asio_util.hpp"
#include "common/ids.hpp"
#include "common/json_util.hpp"
#include "common/multipart.hpp"
#include "common/resilience.hpp"
#include "common/prometheus.hpp"
#include "gateway/routing/credentials.hpp"
#include "gateway/routing/limiter.hpp"
#include "gateway/routing/stream_guard.hpp"
#include "providers/catalog.hpp"
#include "providers/wire.hpp"

namespace toolgate::gateway::routing {

namespace json = boost::json;
using resilience::circuit_breaker;

namespace {

constexpr auto key_refused_cooldown = std::chrono::minutes(5);
constexpr auto key_rate_limited_cooldown = std::chrono::seconds(1);  // at least, also after "Retry-After: 0"
// The latency a failed attempt counts as for least-latency (it ages out with the window).
constexpr milliseconds failure_penalty{60'000};



// --- shared runtime state ----------------------------------------------------------------------

struct target_rt {
    target_config cfg;
    providers::provider* provider = nullptr;
    std::string label;  // provider, or provider/model
    credential_pool* credentials = nullptr;

    mutable std::mutex mu;  // breaker and budget
    std::optional<circuit_breaker> breaker;
    resilience::retry_budget budget;
    slot_limiter slots;

    std::atomic<std::uint64_t> requests{0}, failures{0}, retries{0}, latency_us_sum{0}, latency_count{0};

    target_rt(target_config c, providers::provider* p, credential_pool* creds)
        : cfg(std::move(c)), provider(p), credentials(creds), slots(cfg.max_concurrency, cfg.max_queue) {
        label = cfg.model.empty() ? cfg.provider : cfg.provider + "/" + cfg.model;
        if (cfg.breaker) breaker.emplace(cfg.breaker->failure_threshold, cfg.breaker->timeout, cfg.breaker->success_threshold);
    }
};

struct pool_rt {
    pool_config cfg;
    std::vector<std::unique_ptr<target_rt>> targets;
    mutable pool_state state;
    std::vector<std::unique_ptr<std::atomic<std::uint64_t>>> variant_requests;

    explicit pool_rt(pool_config c) : cfg(std::move(c)), state(cfg.targets.size()) {
        for (std::size_t i = 0; i < cfg.strategy.variants.size(); ++i)
            variant_requests.push_back(std::make_unique<std::atomic<std::uint64_t>>(0));
    }
};


unsigned header_count(header_list const* headers, std::string_view name) {
    if (headers == nullptr) return 0;
    for (auto const& [k, v] : *headers)
        if (k == name) return static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
    return 0;
}

// A routing request: which targets to try and what to send them.
struct route_plan {
    pool_rt const* pool = nullptr;
    std::vector<std::size_t> order;
    std::string variant;
    std::string requested;  // the model after aliases
    // Without a pool: one provider, as resolved today.
    providers::provider* direct = nullptr;
    std::string direct_model;
    std::optional<api_error> error;
    clock::time_point retry_at{};  // all breakers open: when the first half-opens
};

// Joined system and user text, for content-based routing.
std::string prompt_text(json::object const& body) {
    std::string out;
    auto const* messages = body.if_contains("messages");
    if (messages == nullptr || !messages->is_array()) return out;
    for (auto const& m : messages->get_array()) {
        auto const* mo = m.if_object();
        if (mo == nullptr) continue;
        auto const* role = mo->if_contains("role");
        if (role == nullptr || !role->is_string()) continue;
        if (role->get_string() != "user" && role->get_string() != "system" && role->get_string() != "developer") continue;
        if (!out.empty()) out.push_back('\n');
        out += providers::wire::text_of(mo->if_contains("content"));
        if (out.size() > (1u << 20)) break;  // routing looks at the first MiB at most
    }
    return out;
}

std::int64_t input_estimate(turn_context const& ctx) {
    if (!ctx.request.raw_body.empty()) return estimate_tokens(ctx.request.raw_body.size());
    std::size_t bytes = 0;
    if (auto const* messages = ctx.request.body.if_contains("messages"); messages && messages->is_array())
        for (auto const& m : messages->get_array())
            if (auto const* mo = m.if_object())
                bytes += providers::wire::text_of(mo->if_contains("content")).size() + 16;
    return estimate_tokens(bytes);
}

int minute_of_day_utc() {
    auto now = std::chrono::system_clock::now();
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    return static_cast<int>((secs % 86400) / 60);
}

}  // namespace

// --- the router --------------------------------------------------------------------------------

struct router::impl {
    routing_config cfg;
    std::vector<providers::provider*> providers;
    model_router plain;
    std::vector<std::unique_ptr<credential_pool>> credentials;  // one per provider with several keys
    std::vector<std::pair<providers::provider*, credential_pool*>> credentials_by_provider;
    std::optional<pool_rt> default_pool;
    std::vector<std::unique_ptr<pool_rt>> pools;

    impl(routing_config const& c, std::vector<providers::provider*> ps) : cfg(c), providers(ps), plain(ps) {
        for (auto* p : providers) {
            if (p->config().api_keys.size() < 2) continue;
            credentials.push_back(std::make_unique<credential_pool>(p->config().api_keys));
            credentials_by_provider.emplace_back(p, credentials.back().get());
        }
        if (cfg.default_pool) {
            default_pool.emplace(*cfg.default_pool);
            add_targets(*default_pool);
        }
        for (auto const& pc : cfg.pools) {
            pools.push_back(std::make_unique<pool_rt>(pc));
            add_targets(*pools.back());
        }
    }

    providers::provider* provider_named(std::string_view name) const {
        for (auto* p : providers)
            if (p->name() == name) return p;
        return nullptr;
    }
    credential_pool* credentials_of(providers::provider const* p) const {
        for (auto const& [prov, pool] : credentials_by_provider)
            if (prov == p) return pool;
        return nullptr;
    }

    void add_targets(pool_rt& pool) {
        for (auto const& t : pool.cfg.targets) {
            auto* p = provider_named(t.provider);
            pool.targets.push_back(std::make_unique<target_rt>(t, p, credentials_of(p)));
        }
    }

    pool_rt const* pool_named(std::string_view name) const {
        for (auto const& p : pools)
            if (p->cfg.name == name) return p.get();
        return nullptr;
    }

    std::string resolve_alias(std::string_view model) const {
        std::string at(model);
        for (std::size_t i = 0; i <= cfg.aliases.size(); ++i) {
            auto it = cfg.aliases.find(at);
            if (it == cfg.aliases.end()) break;
            at = it->second;
        }
        return at;
    }

    // The upstream model a target gets for this request.
    static std::string const& upstream_model(target_rt const& t, std::string const& requested) {
        return t.cfg.model.empty() ? requested : t.cfg.model;
    }

    static bool serves(target_rt const& t, std::string const& model) {
        return t.provider->catch_all() || t.provider->lists_model(model);
    }

    route_plan plan(turn_context const& ctx) const {
        route_plan out;
        out.requested = resolve_alias(ctx.requested_model);
        pool_rt const* pool = pool_named(out.requested);
        bool pinned = false;
        if (!pool) {
            auto slash = out.requested.find('/');
            pinned = (slash != std::string::npos && provider_named(std::string_view(out.requested).substr(0, slash))) ||
                     provider_named(out.requested) != nullptr;
            if (!pinned && default_pool) pool = &*default_pool;
        }
        if (pool) {
            auto now = clock::now();
            std::vector<target_view> views(pool->targets.size());
            bool any_serves = false;
            clock::time_point retry_at = clock::time_point::max();
            for (std::size_t i = 0; i < pool->targets.size(); ++i) {
                auto const& t = *pool->targets[i];
                auto const& model = upstream_model(t, out.requested);
                bool ok = serves(t, model);
                // The default pool's targets that pin a model name a chat model: embeddings (any
                // model) only go to the targets that take the requested one.
                if (ctx.kind == turn_kind::embeddings && default_pool && pool == &*default_pool && !t.cfg.model.empty()) ok = false;
                any_serves = any_serves || ok;
                if (ok && t.breaker) {
                    std::lock_guard lock(t.mu);
                    if (!t.breaker->would_admit(now)) {
                        ok = false;
                        retry_at = std::min(retry_at, t.breaker->open_until());
                    }
                }
                if (ok && t.credentials && !t.credentials->pick(now)) {
                    ok = false;
                    retry_at = std::min(retry_at, t.credentials->next_ready());
                }
                views[i].eligible = ok;
                if (pool->cfg.strategy.how == mode::cost_optimized) {
                    if (auto const* e = providers::catalog_find(t.provider->config(), model)) {
                        views[i].input_price = e->price.input;
                        views[i].context_window = e->context_window;
                    }
                    if (auto it = t.provider->config().prices.find(model); it != t.provider->config().prices.end())
                        views[i].input_price = it->second.input;
                }
            }
            // The default pool takes every model; one that none of its targets serves is resolved
            // as without routing config (a demo model, a local one).
            if (!any_serves && default_pool && pool == &*default_pool) {
                pool = nullptr;
            } else {
                route_input in;
                in.model = out.requested;
                auto const* tools = ctx.request.body.if_contains("tools");
                in.has_tools = tools && tools->is_array() && !tools->get_array().empty();
                auto how = pool->cfg.strategy.how;
                if (how == mode::cost_optimized || how == mode::conditional) in.input_tokens = input_estimate(ctx);
                in.headers = ctx.headers;
                std::string prompt;
                if (how == mode::content_based) {
                    prompt = prompt_text(ctx.request.body);
                    in.prompt = prompt;
                }
                std::string sticky;
                if (how == mode::ab_test) {
                    auto auth = header_of(ctx.headers, "authorization");
                    if (!auth.empty()) sticky = "key:" + std::string(auth);
                    else if (auto const* u = ctx.request.body.if_contains("user"); u && u->is_string())
                        sticky = "user:" + std::string(u->get_string());
                    in.sticky_key = sticky;
                }
                in.minute_of_day = minute_of_day_utc();
                auto c = choose(pool->cfg.strategy, pool->state, in, views, now, random_unit());
                out.pool = pool;
                out.order = std::move(c.order);
                out.variant = std::move(c.variant);
                if (!out.variant.empty())
                    for (std::size_t v = 0; v < pool->cfg.strategy.variants.size(); ++v)
                        if (pool->cfg.strategy.variants[v].label == out.variant)
                            pool->variant_requests[v]->fetch_add(1, std::memory_order_relaxed);
                if (out.order.empty()) {
                    if (!any_serves) {
                        out.error = api_error::model_not_found(ctx.requested_model);
                    } else {
                        out.error = api_error{503, "server_error", "targets_unavailable",
                                              "every target of pool '" + pool->cfg.name +
                                                  "' is failing or out of credentials; retry later"};
                        out.retry_at = retry_at;
                    }
                }
                return out;
            }
        }
        auto r = plain.resolve(out.requested);
        if (!r) {
            out.error = api_error::model_not_found(ctx.requested_model);
            return out;
        }
        out.direct = r->provider;
        out.direct_model = r->upstream_model;
        return out;
    }

    // The pool a (de-aliased) model name goes to: a named pool, else the default pool unless the
    // name pins a provider; null: resolved without routing config.
    pool_rt const* pool_for(std::string const& requested) const {
        if (auto const* pool = pool_named(requested)) return pool;
        auto slash = requested.find('/');
        bool pinned = (slash != std::string::npos && provider_named(std::string_view(requested).substr(0, slash))) ||
                      provider_named(requested) != nullptr;
        return !pinned && default_pool ? &*default_pool : nullptr;
    }

    // The dearest price among the targets that may serve this turn (for budget reservations).
    price_quote quote(turn_context const& ctx) const {
        price_quote q;
        q.known = true;
        auto take = [&q](providers::provider const& p, std::string const& model) {
            providers::model_price const* price = nullptr;
            if (auto it = p.config().prices.find(model); it != p.config().prices.end()) price = &it->second;
            else if (auto const* e = providers::catalog_find(p.config(), model)) price = &e->price;
            if (!price) {
                if (q.known) q.model = model;
                q.known = false;
                return;
            }
            q.input = std::max(q.input, price->input);
            q.output = std::max(q.output, price->output);
            q.per_image = std::max(q.per_image, price->per_image);
        };
        auto who = servers(ctx);
        for (auto const& [provider, model] : who.targets) take(*provider, model);
        if (who.targets.empty()) q.model = ctx.requested_model;  // nobody serves it: routing answers 404 before any cost
        return q;
    }

    // Who may serve a turn: the targets of its pool that serve the model (pool set), else the
    // plain resolution; none when nobody does. (Without breaker or strategy: what could answer.)
    struct serving {
        pool_rt const* pool = nullptr;
        std::vector<std::pair<providers::provider const*, std::string>> targets;
    };
    serving servers(turn_context const& ctx) const {
        serving out;
        auto requested = resolve_alias(ctx.requested_model);
        if (auto const* pool = pool_for(requested)) {
            for (auto const& t : pool->targets) {
                auto const& model = upstream_model(*t, requested);
                if (serves(*t, model)) out.targets.emplace_back(t->provider, model);
            }
            if (!out.targets.empty()) {
                out.pool = pool;
                return out;
            }
        }
        if (auto r = plain.resolve(requested)) out.targets.emplace_back(r->provider, r->upstream_model);
        return out;
    }

    // What a cached answer of this turn is bound to: the pool and every target that may serve it,
    // or the one provider and model (the same on every replica with the same config).
    std::string route_identity(turn_context const& ctx) const {
        auto who = servers(ctx);
        if (who.targets.empty()) return "unrouted:" + resolve_alias(ctx.requested_model);
        std::string out = who.pool ? "pool:" + who.pool->cfg.name + "[" : std::string();
        for (std::size_t i = 0; i < who.targets.size(); ++i)
            out += (i ? "," : "") + who.targets[i].first->name() + "/" + who.targets[i].second;
        return who.pool ? out + "]" : out;
    }

    static asio::awaitable<bool> pause(std::chrono::milliseconds d, cancel_token& cancel) {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        timer.expires_after(d);
        auto sub = cancel.subscribe([&timer] { timer.cancel(); });
        if (cancel.cancelled()) co_return false;  // (subscribe ran the callback before there was a wait)
        co_await timer.async_wait(nothrow_awaitable);
        co_return !cancel.cancelled();
    }

    // A raw turn's body for one target: a multipart upload with its model field naming `model`
    // (every other byte as the client sent it), or the JSON body (its model set already).
    static std::string raw_body_for(turn_context const& ctx, std::string const& model) {
        if (auto b = multipart::boundary_of(ctx.raw_content_type)) {
            auto parts = multipart::parse(ctx.raw_body, *b);
            if (parts) return multipart::with_field(ctx.raw_body, *parts, "model", model);
            return std::string(ctx.raw_body);
        }
        return json::serialize(ctx.request.body);
    }

    // One call of one provider with one model; the body's model is set for it.
    static asio::awaitable<turn_result> call(turn_context& ctx, providers::provider& p, std::string const& model,
                                             std::string_view credential, guard_sink* guard) {
        auto* m = ctx.request.body.if_contains("model");
        if (m == nullptr || !m->is_string() || m->get_string() != model) {
            ctx.request.body["model"] = model;
            ctx.request.raw_body.clear();
        }
        providers::call_context call = *ctx.call;
        call.credential = credential;
        if (ctx.kind == turn_kind::embeddings && !ctx.raw_content_type.empty()) {
            auto e = co_await p.raw_call(call, ctx.api_path, model, ctx.raw_content_type, raw_body_for(ctx, model));
            turn_result r;
            // A JSON answer may say what it used (gpt-image-1, token-priced audio models).
            if (e.content_type.starts_with("application/json")) {
                boost::system::error_code ec;
                auto v = parse_bounded(e.body, ec);
                if (auto const* o = ec ? nullptr : v.if_object(); o && o->contains("usage"))
                    r.tokens = providers::usage_from_json(o->if_contains("usage"));
            }
            r.raw_response = std::move(e.body);
            r.content_type = std::move(e.content_type);
            r.error = std::move(e.error);
            r.upstream_status = e.upstream_status;
            r.retry_after = e.retry_after;
            co_return r;
        }
        if (ctx.kind == turn_kind::embeddings) {
            providers::provider::embeddings_outcome e;
            if (ctx.api_path.empty()) e = co_await p.embeddings(call, ctx.request.body);
            else e = co_await p.json_call(call, ctx.api_path, ctx.request.body);
            turn_result r;
            r.response = std::move(e.response);
            r.tokens = e.tokens;
            r.error = std::move(e.error);
            r.upstream_status = e.upstream_status;
            r.retry_after = e.retry_after;
            co_return r;
        }
        co_return co_await p.chat(call, ctx.request, guard);
    }

    static void note_attempt(turn_context& ctx, providers::provider& p, std::string const& model) {
        ++ctx.attempts;
        ctx.provider = &p;
        ctx.upstream_model = model;
        // Streamed answers send their headers with the first content: set them before each attempt.
        set_header(ctx.response_headers, "x-toolgate-provider", p.name());
        set_header(ctx.response_headers, "x-toolgate-model", model);
        set_header(ctx.response_headers, "x-toolgate-attempts",
                   std::to_string(header_count(ctx.response_headers, "x-toolgate-attempts") + 1));
        if (!ctx.variant.empty()) set_header(ctx.response_headers, "x-toolgate-variant", ctx.variant);
    }

    // What one admitted attempt holds: the concurrency slot and the breaker's decision. Released on
    // every way out, exceptions included, so that no slot or half-open probe is ever lost.
    struct attempt_hold {
        target_rt& t;
        circuit_breaker::decision admitted;
        bool slot = false;
        bool settled = false;

        attempt_hold(target_rt& target, circuit_breaker::decision d) : t(target), admitted(d) {}
        attempt_hold(attempt_hold const&) = delete;
        attempt_hold& operator=(attempt_hold const&) = delete;
        ~attempt_hold() {
            release_slot();
            if (!settled) abandon(t, admitted);
        }
        void release_slot() {
            if (slot) t.slots.release();
            slot = false;
        }
        // The attempt's outcome for the breaker: a success, a failure, or nothing said about the
        // target (a 400, a request this adapter could not send, a client that left).
        void settle(bool success, bool failure, clock::time_point now) {
            settled = true;
            if (success || failure) record(t, admitted, failure, now);
            else abandon(t, admitted);
        }
    };

    // A 401/403 or 429 on one key: cool it down; true when another key is ready.
    static bool cool_key(credential_pool& creds, std::size_t key, turn_result const& r, clock::time_point now) {
        auto s = r.upstream_status;
        if (s != 401 && s != 403 && s != 429) return false;
        auto rate_wait = std::max(std::chrono::duration_cast<milliseconds>(key_rate_limited_cooldown),
                                  r.retry_after.value_or(milliseconds(0)));
        creds.cool(key, s == 429 ? now + rate_wait : now + key_refused_cooldown);
        return creds.pick(now).has_value();
    }

    // All attempts on one target: returns the last result and whether the router should go on to
    // the next target.
    asio::awaitable<turn_result> on_target(turn_context& ctx, pool_rt const& pool, std::size_t index,
                                           std::string const& requested, guard_sink* guard, bool& go_on) const {
        auto& t = *pool.targets[index];
        auto const& model = upstream_model(t, requested);
        auto& cancel = ctx.call->cancel;
        turn_result last;
        go_on = true;
        bool first = true;
        std::size_t rotations = 0;  // each key at most once per attempt
        for (unsigned attempt = 0;;) {
            auto now = clock::now();
            auto admitted = circuit_breaker::decision::allow;
            if (t.breaker) {
                std::lock_guard lock(t.mu);
                admitted = t.breaker->admit(now);
            }
            if (admitted == circuit_breaker::decision::reject) {
                if (!last.error) last.error = api_error::unavailable("target '" + t.label + "' is failing (circuit breaker open)");
                co_return last;
            }
            attempt_hold hold(t, admitted);
            std::optional<std::size_t> key;
            if (t.credentials) {
                key = t.credentials->pick(now);
                if (!key) {
                    if (!last.error)
                        last.error = api_error::unavailable("every credential of provider '" + t.provider->name() +
                                                            "' is cooling down");
                    co_return last;
                }
            }
            hold.slot = co_await t.slots.acquire(t.cfg.queue_timeout, cancel);
            if (!hold.slot) {
                if (cancel.cancelled()) {
                    go_on = false;
                    co_return last;
                }
                if (!last.error) {
                    last = turn_result();
                    last.error = api_error::unavailable("target '" + t.label + "' is at its max_concurrency and its queue is full");
                }
                co_return last;
            }
            if (first) {
                std::lock_guard lock(t.mu);
                t.budget.record_request(now);
            }
            first = false;
            note_attempt(ctx, *t.provider, model);
            t.requests.fetch_add(1, std::memory_order_relaxed);
            std::string_view credential = key ? std::string_view(t.credentials->keys[*key]) : std::string_view();
            auto started = clock::now();
            last = co_await call(ctx, *t.provider, model, credential, guard);
            hold.release_slot();
            auto ended = clock::now();
            bool delivered = guard && guard->delivered();
            bool more_keys = false;
            if (t.credentials && key && last.error) {
                more_keys = cool_key(*t.credentials, *key, last, ended) && ++rotations < t.credentials->keys.size();
            }
            auto v = classify(last, cancel.cancelled(), delivered, t.cfg.retry, more_keys);
            bool failure = v != verdict::cancelled && counts_as_failure(last);
            hold.settle(v == verdict::success, failure, ended);
            if (v == verdict::cancelled) {
                go_on = false;
                co_return last;
            }
            bool is_chat = ctx.kind == turn_kind::chat;
            if (v == verdict::success) {
                // Streams are judged by their time to first content, whole answers by their duration.
                auto until = guard && guard->delivered() ? guard->first_content() : ended;
                if (is_chat) pool.state.record_latency(index, std::chrono::duration_cast<milliseconds>(until - started), ended);
                t.latency_us_sum.fetch_add(std::chrono::duration_cast<std::chrono::microseconds>(until - started).count(),
                                           std::memory_order_relaxed);
                t.latency_count.fetch_add(1, std::memory_order_relaxed);
                go_on = false;
                co_return last;
            }
            t.failures.fetch_add(1, std::memory_order_relaxed);
            // A failing target must not look "untried" to least-latency, which tries those first.
            if (failure && is_chat) pool.state.record_latency(index, failure_penalty, ended);
            if (v == verdict::give_up) {
                go_on = false;
                co_return last;
            }
            if (v == verdict::next_target) co_return last;
            if (v == verdict::rotate_key) {
                if (guard) guard->reset();
                continue;  // same target, next key, no wait
            }
            rotations = 0;
            // retry: within the attempts, the budget and the wait the upstream allows
            if (++attempt >= t.cfg.retry.attempts) co_return last;
            std::chrono::milliseconds wait = resilience::full_jitter(t.cfg.retry.backoff, t.cfg.retry.max_backoff, attempt - 1, random_unit());
            if (last.retry_after) {
                if (*last.retry_after > t.cfg.retry.max_retry_after) co_return last;  // too long: next target
                wait = std::max(wait, *last.retry_after);
            }
            // A retry that could only start after the request's deadline: the next target instead.
            if (ctx.deadline != clock::time_point::max() && clock::now() + wait >= ctx.deadline) co_return last;
            {
                std::lock_guard lock(t.mu);
                if (!t.budget.try_retry(clock::now())) co_return last;
            }
            t.retries.fetch_add(1, std::memory_order_relaxed);
            if (guard) guard->reset();
            bool awake = co_await pause(wait, cancel);
            if (!awake) {
                go_on = false;
                co_return last;
            }
        }
    }

    static void abandon(target_rt& t, circuit_breaker::decision d) {
        if (!t.breaker) return;
        std::lock_guard lock(t.mu);
        t.breaker->abandon(d);
    }
    static void record(target_rt& t, circuit_breaker::decision d, bool failure, clock::time_point now) {
        if (!t.breaker) return;
        std::lock_guard lock(t.mu);
        t.breaker->record(d, failure, now);
    }

    // Planning saw an eligible target, but every one refused at admission (a breaker opened, the
    // keys cooled down, the queues filled in the meantime): the same answer as when planning sees it.
    static failure all_unavailable(pool_rt const& pool) {
        api_error e{503, "server_error", "targets_unavailable",
                    "every target of pool '" + pool.cfg.name + "' is failing or out of credentials; retry later"};
        e.retry_after = "1";
        return failure(std::move(e));
    }

    asio::awaitable<turn_result> run(turn_context& ctx) const {
        auto p = plan(ctx);
        if (p.error) {
            turn_result r;
            r.error = std::move(p.error);
            if (p.retry_at != clock::time_point{} && p.retry_at != clock::time_point::max()) {
                auto secs = std::chrono::duration_cast<std::chrono::seconds>(p.retry_at - clock::now()).count() + 1;
                r.error->retry_after = std::to_string(std::max<std::int64_t>(1, secs));
            }
            co_return r;
        }
        std::optional<guard_sink> guard;
        if (ctx.sink != nullptr && ctx.kind == turn_kind::chat) guard.emplace(*ctx.sink);
        guard_sink* g = guard ? &*guard : nullptr;
        if (p.direct != nullptr) {
            auto* creds = credentials_of(p.direct);
            turn_result r;
            for (std::size_t rotations = 0;;) {
                auto now = clock::now();
                std::optional<std::size_t> key;
                if (creds) key = creds->pick(now);
                if (creds && !key) {
                    if (!r.error) {
                        r.error = api_error::unavailable("every credential of provider '" + p.direct->name() + "' is cooling down");
                        auto secs = std::chrono::duration_cast<std::chrono::seconds>(creds->next_ready() - now).count() + 1;
                        r.error->retry_after = std::to_string(std::max<std::int64_t>(1, secs));
                    }
                    co_return r;
                }
                note_attempt(ctx, *p.direct, p.direct_model);
                std::string_view credential = key ? std::string_view(creds->keys[*key]) : std::string_view();
                r = co_await call(ctx, *p.direct, p.direct_model, credential, g);
                if (!creds || !r.error || (g && g->delivered()) || ctx.call->cancel.cancelled()) break;
                // Another key of the same provider, each at most once.
                if (!cool_key(*creds, *key, r, clock::now()) || ++rotations >= creds->keys.size()) break;
                if (g) g->reset();
            }
            if (!r.error && g) co_await g->finish();
            co_return r;
        }
        ctx.variant = p.variant;
        turn_result last;
        auto attempts_before = ctx.attempts;
        for (auto index : p.order) {
            bool go_on = true;
            last = co_await on_target(ctx, *p.pool, index, p.requested, g, go_on);
            if (!go_on) break;
            if (g) g->reset();
        }
        if (!last.error && g) co_await g->finish();
        if (last.error && ctx.attempts == attempts_before && !ctx.call->cancel.cancelled())
            last.error = all_unavailable(*p.pool);  // every breaker closed on us after planning
        co_return last;
    }
};

router::router(routing_config const& cfg, std::vector<providers::provider*> providers)
    : impl_(std::make_unique<impl>(cfg, std::move(providers))) {}
router::~router() = default;

asio::awaitable<turn_result> router::run(turn_context& ctx) const { return impl_->run(ctx); }

price_quote router::quote(turn_context const& ctx) const { return impl_->quote(ctx); }
std::string router::route_identity(turn_context const& ctx) const { return impl_->route_identity(ctx); }

json::array router::health() const {
    json::array out;
    auto now = clock::now();
    auto add = [&](pool_rt const& pool) {
        json::array targets;
        for (std::size_t i = 0; i < pool.targets.size(); ++i) {
            auto const& t = *pool.targets[i];
            json::object o;
            o["target"] = t.label;
            o["provider"] = t.cfg.provider;
            if (!t.cfg.model.empty()) o["model"] = t.cfg.model;
            if (t.breaker) {
                std::lock_guard lock(t.mu);
                o["breaker"] = resilience::to_string(t.breaker->state(now));
                o["consecutive_failures"] = t.breaker->failures();
            } else {
                o["breaker"] = "disabled";
            }
            o["requests"] = t.requests.load(std::memory_order_relaxed);
            o["failures"] = t.failures.load(std::memory_order_relaxed);
            o["retries"] = t.retries.load(std::memory_order_relaxed);
            if (auto p50 = pool.state.p50(i, pool.cfg.strategy.latency_window, now)) o["p50_ms"] = p50->count();
            else o["p50_ms"] = nullptr;
            targets.push_back(std::move(o));
        }
        json::object p;
        p["pool"] = pool.cfg.name;
        p["mode"] = to_string(pool.cfg.strategy.how);
        p["targets"] = std::move(targets);
        out.push_back(std::move(p));
    };
    if (impl_->default_pool) add(*impl_->default_pool);
    for (auto const& p : impl_->pools) add(*p);
    return out;
}

std::string router::metrics() const {
    std::vector<pool_rt const*> pools;
    if (impl_->default_pool) pools.push_back(&*impl_->default_pool);
    for (auto const& p : impl_->pools) pools.push_back(p.get());
    if (pools.empty()) return {};
    auto now = clock::now();
    prometheus::writer w;
    // One family per figure, every target of every pool under it.
    auto each = [&](char const* name, char const* type, char const* help, auto value) {
        w.family(name, type, help);
        for (auto const* pool : pools)
            for (std::size_t i = 0; i < pool->targets.size(); ++i)
                w.sample(name, {{"pool", pool->cfg.name}, {"target", pool->targets[i]->label}}, value(*pool, i));
    };
    each("toolgate_route_target_requests_total", "counter", "Upstream attempts sent to a routing target.",
         [](pool_rt const& p, std::size_t i) { return std::uint64_t(p.targets[i]->requests.load()); });
    each("toolgate_route_target_failures_total", "counter", "Attempts on a routing target that failed.",
         [](pool_rt const& p, std::size_t i) { return std::uint64_t(p.targets[i]->failures.load()); });
    each("toolgate_route_target_retries_total", "counter", "Retries on a routing target (after backoff).",
         [](pool_rt const& p, std::size_t i) { return std::uint64_t(p.targets[i]->retries.load()); });
    each("toolgate_route_target_breaker_state", "gauge", "Circuit breaker: 0 closed, 1 open, 2 half-open.",
         [now](pool_rt const& p, std::size_t i) {
             auto const& t = *p.targets[i];
             if (!t.breaker) return std::uint64_t(0);
             std::lock_guard lock(t.mu);
             auto s = t.breaker->state(now);
             return std::uint64_t(s == resilience::breaker_state::closed ? 0 : s == resilience::breaker_state::open ? 1 : 2);
         });
    each("toolgate_route_target_latency_seconds_sum", "counter",
         "Latency of successful attempts (time to first content for streams).",
         [](pool_rt const& p, std::size_t i) { return double(p.targets[i]->latency_us_sum.load()) / 1e6; });
    each("toolgate_route_target_latency_seconds_count", "counter", "Successful attempts with a latency figure.",
         [](pool_rt const& p, std::size_t i) { return std::uint64_t(p.targets[i]->latency_count.load()); });
    each("toolgate_route_target_latency_p50_seconds", "gauge", "Rolling median latency of a routing target (least-latency).",
         [now](pool_rt const& p, std::size_t i) {
             auto v = p.state.p50(i, p.cfg.strategy.latency_window, now);
             return v ? double(v->count()) / 1000.0 : std::nan("");
         });
    bool variants = false;
    for (auto const* pool : pools) variants = variants || !pool->cfg.strategy.variants.empty();
    if (variants) {
        w.family("toolgate_route_variant_requests_total", "counter", "Requests assigned to an ab-test variant.");
        for (auto const* pool : pools)
            for (std::size_t v = 0; v < pool->cfg.strategy.variants.size(); ++v)
                w.sample("toolgate_route_variant_requests_total",
                         {{"pool", pool->cfg.name}, {"variant", pool->cfg.strategy.variants[v].label}},
                         std::uint64_t(pool->variant_requests[v]->load()));
    }
    return w.take();
}

namespace {

class router_filter final : public turn_filter {
public:
    explicit router_filter(router const& r) : router_(r) {}
    std::string_view name() const override { return "router"; }
    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const&) override { return router_.run(ctx); }

private:
    router const& router_;
};

}  // namespace

std::shared_ptr<turn_filter> make_router_filter(router const& r) { return std::make_shared<router_filter>(r); }

}  // namespace toolgate::gateway::routing
