// The admin API: virtual keys (create, list, get, update, rotate, disable, enable, delete), spend,
// the request log and the audit log. Every route needs admin.token as a bearer token; without an
// admin.token in the config the routes do not exist (404). Key texts are shown once, at creation
// and rotation; the stores keep only their SHA-256.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse.hpp>
#include <openssl/crypto.h>

#include <chrono>

#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/policy/access.hpp"
#include "gateway/policy/cache.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;
using policy::virtual_key;

namespace {

api_error store_error() { return api_error{503, "server_error", "state_unavailable", "the key store is unavailable; retry later"}; }
api_error no_key(std::string const& id) { return api_error::not_found("no key with id '" + id + "'", "key_not_found"); }
api_error config_key(std::string const& id) {
    return api_error{409, "invalid_request_error", "config_key", "key '" + id + "' comes from the config file; change it there"};
}

void audit(policy::access_runtime& rt, std::string_view action, virtual_key const& k, std::string const& request_id) {
    auto* log = rt.audit();
    if (!log) return;
    state::log_record rec;
    rec.kind = state::log_kind::audit;
    rec.ts_ms = policy::unix_now_ms();
    rec.request_id = request_id;
    rec.key = k.name;
    rec.team = k.team;
    rec.record["action"] = action;
    rec.record["actor"] = "admin";
    rec.record["target"] = k.id;
    rec.record["name"] = k.name;
    log->append(std::move(rec));
}

std::string key_json(virtual_key const& k, std::string const* text) {
    auto o = k.to_json();
    if (text) o["key"] = *text;
    return json::serialize(o);
}

std::string list_json(std::vector<std::shared_ptr<virtual_key const>> const& cfg, std::vector<virtual_key> const& stored) {
    json::array data;
    for (auto const& k : cfg) data.push_back(k->to_json());
    for (auto const& k : stored) data.push_back(k.to_json());
    json::object o;
    o["object"] = "list";
    o["data"] = std::move(data);
    return json::serialize(o);
}

asio::awaitable<bool> admin_gate(api_request& r) {
    if (auto err = admin_check(r)) {
        co_await reply_error(r, *err);
        co_return false;
    }
    co_return true;
}

// The stored key with this id; answers 404/409/503 itself and returns nullopt.
asio::awaitable<std::optional<virtual_key>> load_key(api_request& r, bool for_change) {
    auto& rt = *r.app.access;
    auto id = std::string(r.param("id"));
    if (rt.keys().config_key_by_id(id)) {
        if (for_change) {
            co_await reply_error(r, config_key(id));
            co_return std::nullopt;
        }
    }
    auto* store = rt.key_store();
    auto got = co_await store->get(id);
    if (!got) {
        co_await reply_error(r, store_error());
        co_return std::nullopt;
    }
    std::optional<virtual_key> k;
    if (*got) k = policy::from_stored(**got);
    if (!k) co_await reply_error(r, no_key(id));
    co_return k;
}

asio::awaitable<bool> name_taken(policy::access_runtime& rt, std::string const& name, std::string const& except_id, bool& failed) {
    for (auto const& k : rt.keys().config_keys())
        if (k->name == name) co_return true;
    auto all = co_await rt.key_store()->list();
    if (!all) {
        failed = true;
        co_return false;
    }
    for (auto const& s : *all) {
        auto const* n = s.attrs.if_contains("name");
        if (n && n->is_string() && n->get_string() == name && s.id != except_id) co_return true;
    }
    co_return false;
}

api_error key_exists(std::string const& name) {
    return api_error{409, "invalid_request_error", "key_exists", "a key named '" + name + "' exists already"};
}

// (A plain function: a ?: of two api_error temporaries in a coroutine is what GCC 12 gets wrong.)
api_error rename_error(bool failed, std::string const& name) { return failed ? store_error() : key_exists(name); }

// Saves `k` (a new or changed key) and drops this replica's cached copies.
asio::awaitable<bool> save(api_request& r, virtual_key& k, std::string const& old_hash) {
    auto& rt = *r.app.access;
    k.updated_ms = policy::unix_now_ms();
    auto ok = co_await rt.key_store()->put(policy::to_stored(k));
    if (!ok) {
        co_await reply_error(r, store_error());
        co_return false;
    }
    rt.keys().invalidate(k.hash);
    if (!old_hash.empty()) rt.keys().invalidate(old_hash);
    co_return true;
}

asio::awaitable<void> reply_status(api_request& r, int status, std::string const& body) {
    r.rec.status = status;
    co_await r.out.send(status, "application/json", body, r.headers);
}

asio::awaitable<void> set_disabled(api_request& r, bool disabled) {
    if (!co_await admin_gate(r)) co_return;
    auto k = co_await load_key(r, true);
    if (!k) co_return;
    k->disabled = disabled;
    std::string no_old_hash;
    if (!co_await save(r, *k, no_old_hash)) co_return;
    audit(*r.app.access, disabled ? "key.disable" : "key.enable", *k, r.rec.request_id);
    co_await reply_json(r, key_json(*k, nullptr));
}

std::optional<api_error> spend_request(api_request& r, std::string& scope, std::string& period, std::string& window,
                                       double& budget, std::string& label) {
    auto key = query_param(r.req, "key");
    auto team = query_param(r.req, "team");
    auto p = query_param(r.req, "period").value_or("month");
    if (p != "day" && p != "month") return api_error::bad_request("period must be day or month", "invalid_period");
    if (key.has_value() == team.has_value()) return api_error::bad_request("name exactly one of key= or team=", "invalid_scope");
    period = p;
    auto now = policy::unix_now_ms();
    window = p == "day" ? state::utc_day(now) : state::utc_month(now);
    if (auto w = query_param(r.req, "window")) window = *w;
    if (team) {
        scope = "team:" + *team;
        label = "team:" + *team;
        if (auto const* t = r.app.access->find_team(*team)) budget = p == "day" ? t->budget.daily_usd : t->budget.monthly_usd;
    } else {
        label = "key:" + *key;
        scope = *key;  // resolved by the caller (a name or an id)
    }
    return std::nullopt;
}

std::string spend_json(std::string const& label, std::string const& period, std::string const& window, double spent, double budget) {
    json::object o;
    o["object"] = "spend";
    o["scope"] = label;
    o["period"] = period;
    o["window"] = window;
    o["spent_usd"] = spent;
    if (budget > 0) o["budget_usd"] = budget;
    else o["budget_usd"] = nullptr;
    return json::serialize(o);
}

std::optional<api_error> log_query_of(api_request& r, state::log_query& q, bool audit_only) {
    if (audit_only) q.kind = state::log_kind::audit;
    else if (auto k = query_param(r.req, "kind")) {
        if (*k == "request") q.kind = state::log_kind::request;
        else if (*k == "turn") q.kind = state::log_kind::turn;
        else if (*k == "tool") q.kind = state::log_kind::tool;
        else return api_error::bad_request("kind must be request, turn or tool", "invalid_kind");
    }
    q.request_id = query_param(r.req, "request_id").value_or("");
    q.key = query_param(r.req, "key").value_or("");
    q.team = query_param(r.req, "team").value_or("");
    q.model = query_param(r.req, "model").value_or("");
    auto number = [&](char const* name, std::int64_t& out, std::int64_t max) -> bool {
        auto v = query_param(r.req, name);
        if (!v) return true;
        if (v->empty() || v->size() > 18 || v->find_first_not_of("0123456789") != std::string::npos) return false;
        out = std::stoll(*v);
        return out <= max;
    };
    std::int64_t status = -1, limit = 100;
    if (!number("status", status, 999)) return api_error::bad_request("status must be an HTTP status", "invalid_status");
    if (status >= 0) q.status = static_cast<int>(status);
    if (!number("limit", limit, 1000) || limit == 0) return api_error::bad_request("limit must be 1 to 1000", "invalid_limit");
    q.limit = static_cast<std::size_t>(limit);
    if (!number("before", q.before_id, INT64_MAX)) return api_error::bad_request("before must be a record id", "invalid_cursor");
    if (!number("since", q.since_ms, INT64_MAX)) return api_error::bad_request("since must be ms since the Unix epoch", "invalid_since");
    if (!number("until", q.until_ms, INT64_MAX)) return api_error::bad_request("until must be ms since the Unix epoch", "invalid_until");
    return std::nullopt;
}

std::string rows_json(std::vector<state::log_row> const& rows, std::size_t limit) {
    json::array data;
    for (auto const& row : rows) {
        json::object o = row.rec.record;
        o["id"] = row.id;
        o["kind"] = state::to_string(row.rec.kind);
        o["ts"] = row.rec.ts_ms;
        o["request_id"] = row.rec.request_id;
        if (row.rec.key.empty()) o["key"] = nullptr;
        else o["key"] = row.rec.key;
        if (row.rec.team.empty()) o["team"] = nullptr;
        else o["team"] = row.rec.team;
        if (!row.rec.model.empty()) o["model"] = row.rec.model;
        if (row.rec.status) o["status"] = row.rec.status;
        data.push_back(std::move(o));
    }
    json::object out;
    out["object"] = "list";
    if (rows.size() == limit && !rows.empty()) out["next_before"] = rows.back().id;
    else out["next_before"] = nullptr;
    out["data"] = std::move(data);
    return json::serialize(out);
}

asio::awaitable<void> query_log(api_request& r, bool audit_only) {
    if (!co_await admin_gate(r)) co_return;
    auto* log = audit_only ? r.app.access->audit() : r.app.access->log();
    if (!log) {
        co_await reply_error(r, api_error::not_found("the request log is off: set request_log.enabled", "log_disabled"));
        co_return;
    }
    state::log_query q;
    if (auto err = log_query_of(r, q, audit_only)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto rows = co_await log->query(q);
    if (!rows) {
        co_await reply_error(r, store_error());
        co_return;
    }
    co_await reply_json(r, rows_json(*rows, q.limit));
}

}  // namespace

asio::awaitable<void> admin_list_keys(api_request& r) {
    if (!co_await admin_gate(r)) co_return;
    auto& rt = *r.app.access;
    auto all = co_await rt.key_store()->list();
    if (!all) {
        co_await reply_error(r, store_error());
        co_return;
    }
    std::vector<virtual_key> stored;
    for (auto const& s : *all)
        if (auto k = policy::from_stored(s)) stored.push_back(std::move(*k));
    co_await reply_json(r, list_json(rt.keys().config_keys(), stored));
}

asio::awaitable<void> admin_create_key(api_request& r) {
    if (!co_await admin_gate(r)) co_return;
    auto body = co_await parse_body(r);
    if (!body) co_return;
    virtual_key k;
    if (auto err = policy::parse_key_fields(*body, k, false); !err.empty()) {
        co_await reply_error(r, api_error::bad_request(err, "invalid_key_fields"));
        co_return;
    }
    auto& rt = *r.app.access;
    bool failed = false;
    std::string no_id;
    bool taken = co_await name_taken(rt, k.name, no_id, failed);
    if (failed) {
        co_await reply_error(r, store_error());
        co_return;
    }
    if (taken) {
        co_await reply_error(r, key_exists(k.name));
        co_return;
    }
    auto text = policy::new_key_text();
    k.id = policy::new_key_id();
    k.hash = state::sha256_hex(text);
    k.prefix = policy::display_prefix(text);
    k.created_ms = policy::unix_now_ms();
    std::string no_old_hash;
    if (!co_await save(r, k, no_old_hash)) co_return;
    audit(rt, "key.create", k, r.rec.request_id);
    co_await reply_status(r, 201, key_json(k, &text));
}

asio::awaitable<void> admin_get_key(api_request& r) {
    if (!co_await admin_gate(r)) co_return;
    if (auto k = r.app.access->keys().config_key_by_id(r.param("id"))) {
        co_await reply_json(r, key_json(*k, nullptr));
        co_return;
    }
    auto k = co_await load_key(r, false);
    if (k) co_await reply_json(r, key_json(*k, nullptr));
}

asio::awaitable<void> admin_update_key(api_request& r) {
    if (!co_await admin_gate(r)) co_return;
    auto body = co_await parse_body(r);
    if (!body) co_return;
    auto k = co_await load_key(r, true);
    if (!k) co_return;
    auto old_name = k->name;
    if (auto err = policy::parse_key_fields(*body, *k, true); !err.empty()) {
        co_await reply_error(r, api_error::bad_request(err, "invalid_key_fields"));
        co_return;
    }
    if (k->name != old_name) {
        bool failed = false;
        bool taken = co_await name_taken(*r.app.access, k->name, k->id, failed);
        if (failed || taken) {
            co_await reply_error(r, rename_error(failed, k->name));
            co_return;
        }
    }
    std::string no_old_hash;
    if (!co_await save(r, *k, no_old_hash)) co_return;
    audit(*r.app.access, "key.update", *k, r.rec.request_id);
    co_await reply_json(r, key_json(*k, nullptr));
}

asio::awaitable<void> admin_rotate_key(api_request& r) {
    if (!co_await admin_gate(r)) co_return;
    auto k = co_await load_key(r, true);
    if (!k) co_return;
    auto old_hash = k->hash;
    auto text = policy::new_key_text();
    k->hash = state::sha256_hex(text);
    k->prefix = policy::display_prefix(text);
    if (!co_await save(r, *k, old_hash)) co_return;
    audit(*r.app.access, "key.rotate", *k, r.rec.request_id);
    co_await reply_json(r, key_json(*k, &text));
}

asio::awaitable<void> admin_disable_key(api_request& r) { co_await set_disabled(r, true); }
asio::awaitable<void> admin_enable_key(api_request& r) { co_await set_disabled(r, false); }

asio::awaitable<void> admin_delete_key(api_request& r) {
    if (!co_await admin_gate(r)) co_return;
    auto k = co_await load_key(r, true);
    if (!k) co_return;
    auto removed = co_await r.app.access->key_store()->remove(k->id);
    if (!removed) {
        co_await reply_error(r, store_error());
        co_return;
    }
    r.app.access->keys().invalidate(k->hash);
    audit(*r.app.access, "key.delete", *k, r.rec.request_id);
    json::object o;
    o["id"] = k->id;
    o["object"] = "key";
    o["deleted"] = true;
    co_await reply_json(r, json::serialize(o));
}

asio::awaitable<void> admin_spend(api_request& r) {
    if (!co_await admin_gate(r)) co_return;
    std::string scope, period, window, label;
    double budget = 0;
    if (auto err = spend_request(r, scope, period, window, budget, label)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto& rt = *r.app.access;
    if (!scope.starts_with("team:")) {
        // A key by name or id: config keys first, then stored ones.
        std::optional<virtual_key> found;
        for (auto const& k : rt.keys().config_keys())
            if (k->name == scope || k->id == scope) found = *k;
        if (!found) {
            auto all = co_await rt.key_store()->list();
            if (!all) {
                co_await reply_error(r, store_error());
                co_return;
            }
            for (auto const& s : *all)
                if (auto k = policy::from_stored(s); k && (k->name == scope || k->id == scope)) found = std::move(*k);
        }
        if (!found) {
            co_await reply_error(r, api_error::not_found("no key named '" + scope + "'", "key_not_found"));
            co_return;
        }
        label = "key:" + found->name;
        budget = period == "day" ? found->budget.daily_usd : found->budget.monthly_usd;
        scope = "key:" + found->id;
    }
    auto spent = co_await rt.ledger().spent(scope, window);
    if (!spent) {
        co_await reply_error(r, store_error());
        co_return;
    }
    co_await reply_json(r, spend_json(label, period, window, double(*spent) / 1e6, budget));
}

namespace {

// DELETE /admin/cache's query: scope (global, anonymous, key:NAME, team:NAME) and model, both optional.
std::optional<api_error> cache_request(api_request& r, std::string& scope, std::string& model) {
    scope = query_param(r.req, "scope").value_or("");
    model = query_param(r.req, "model").value_or("");
    bool named = (scope.starts_with("key:") || scope.starts_with("team:")) && scope.find(':') + 1 < scope.size();
    if (!scope.empty() && scope != "global" && scope != "anonymous" && !named)
        return api_error::bad_request("'scope' must be global, anonymous, key:NAME or team:NAME", "invalid_scope");
    if (scope.size() > 256 || model.size() > 256) return api_error::bad_request("'scope' or 'model' is too long", "invalid_query");
    return std::nullopt;
}

api_error cache_unavailable() {
    return api_error{503, "server_error", "state_unavailable", "the cache store is unavailable; retry later"};
}

std::string cleared_json(std::string const& scope, std::string const& model, std::uint64_t removed) {
    json::object o;
    o["object"] = "cache.cleared";
    o["scope"] = scope.empty() ? json::value(nullptr) : json::value(scope);
    o["model"] = model.empty() ? json::value(nullptr) : json::value(model);
    o["removed"] = removed;
    return json::serialize(o);
}

}  // namespace

asio::awaitable<void> admin_clear_cache(api_request& r) {
    if (!co_await admin_gate(r)) co_return;
    if (!r.app.cache) {
        co_await reply_error(r, api_error::not_found("the response cache is not configured (plugin response-cache)", "cache_not_configured"));
        co_return;
    }
    std::string scope, model;
    if (auto err = cache_request(r, scope, model)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto asked = scope;
    if (scope.starts_with("key:")) {
        // Entries are bound to the key's id: find it by name (or take an id), config keys first.
        auto name = scope.substr(4);
        std::string id;
        if (r.app.access) {
            for (auto const& k : r.app.access->keys().config_keys())
                if (k->name == name || k->id == name) id = k->id;
            if (id.empty() && r.app.access->key_store()) {
                auto all = co_await r.app.access->key_store()->list();
                if (!all) {
                    co_await reply_error(r, cache_unavailable());
                    co_return;
                }
                for (auto const& stored : *all)
                    if (auto k = policy::from_stored(stored); k && (k->name == name || k->id == name)) id = k->id;
            }
        }
        if (id.empty()) {
            co_await reply_error(r, api_error::not_found("no key named '" + name + "'", "key_not_found"));
            co_return;
        }
        scope = policy::cache_runtime::key_scope(id);
    }
    auto removed = co_await r.app.cache->erase(scope, model);
    if (!removed) {
        co_await reply_error(r, cache_unavailable());
        co_return;
    }
    co_await reply_json(r, cleared_json(asked, model, *removed));
}

asio::awaitable<void> admin_logs(api_request& r) { co_await query_log(r, false); }
asio::awaitable<void> admin_audit(api_request& r) { co_await query_log(r, true); }

}  // namespace toolgate::gateway::api
