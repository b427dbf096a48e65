// /admin/endpoints: the AI endpoints made through the admin API (create, read, replace, merge-patch,
// delete) beside the config's, which are listed and read here but changed only in the file. A
// definition takes the fields of one `endpoints` entry as JSON and is checked exactly as the
// config's are before it is stored (the state's SQLite file, or Redis shared by the replicas).
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "common/json_util.hpp"
#include "gateway/api/endpoint_directory.hpp"
#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/policy/access.hpp"
#include "state/doc_store.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

// Stored endpoints at most, and the size of one definition.
constexpr std::size_t max_endpoints = 1000;
constexpr std::size_t max_definition_bytes = 256 * 1024;

api_error store_error() {
    return api_error{503, "server_error", "state_unavailable", "the endpoint store is unavailable; retry later"};
}
api_error no_endpoint(std::string_view slug) {
    return api_error::not_found("no endpoint '" + std::string(slug) + "'", "endpoint_not_found");
}
api_error config_endpoint(std::string_view slug) {
    return api_error{409, "invalid_request_error", "config_endpoint",
                     "endpoint '" + std::string(slug) + "' comes from the config file; change it there"};
}
api_error too_many() {
    return api_error{409, "invalid_request_error", "too_many_endpoints",
                     "the gateway keeps at most " + std::to_string(max_endpoints) +
                         " endpoints made through the admin API; delete one first"};
}
api_error endpoint_exists(std::string const& slug) {
    return api_error{409, "invalid_request_error", "endpoint_exists", "endpoint '" + slug + "' exists already"};
}
// (A plain function: a ?: of two api_error temporaries in a coroutine is what GCC 12 gets wrong.)
api_error load_error(bool for_change, std::string_view slug) { return for_change ? config_endpoint(slug) : no_endpoint(slug); }
api_error invalid(std::string what) { return api_error::bad_request("invalid endpoint: " + what, "invalid_endpoint"); }

void audit(api_request& r, std::string_view action, std::string const& slug) {
    auto* log = r.app.access ? r.app.access->audit() : nullptr;
    if (!log) return;
    state::log_record rec;
    rec.kind = state::log_kind::audit;
    rec.ts_ms = policy::unix_now_ms();
    rec.request_id = r.rec.request_id;
    rec.record["action"] = action;
    rec.record["actor"] = "admin";
    rec.record["target"] = slug;
    log->append(std::move(rec));
}

json::object stored_json(endpoint_config const& e, json::object const& def, std::int64_t updated_ms) {
    auto o = endpoint_summary(e);
    o["source"] = "admin";
    o["updated_at"] = updated_ms / 1000;
    o["definition"] = def;
    return o;
}

json::object config_json(endpoint_config const& e) {
    auto o = endpoint_summary(e);
    o["source"] = "config";
    return o;
}

// RFC 7396: members of `patch` replace those of `target`; null removes one; objects merge.
void merge_patch(json::object& target, json::object const& patch) {
    for (auto const& kv : patch) {
        if (kv.value().is_null()) {
            target.erase(kv.key());
        } else if (kv.value().is_object()) {
            auto& slot = target[kv.key()];  // (written, not read: the object may grow here)
            if (!slot.is_object()) slot = json::object();
            merge_patch(slot.get_object(), kv.value().get_object());
        } else {
            target[kv.key()] = kv.value();
        }
    }
}

// A definition checked as the config's are; its endpoint, or the 400 to answer.
std::variant<std::shared_ptr<endpoint_config const>, api_error> check(endpoint_directory const& dir, json::object const& def) {
    if (json::serialize(def).size() > max_definition_bytes)
        return invalid("the definition is larger than " + std::to_string(max_definition_bytes / 1024) + " KiB");
    auto parsed = parse_endpoint_json(def, dir.context());
    if (auto* msg = std::get_if<std::string>(&parsed)) return invalid(*msg);
    return std::get<std::shared_ptr<endpoint_config const>>(parsed);
}

asio::awaitable<bool> gate(api_request& r) {
    if (auto err = admin_check(r)) {
        co_await reply_error(r, *err);
        co_return false;
    }
    co_return true;
}

asio::awaitable<void> reply_status(api_request& r, int status, json::object const& body) {
    r.rec.status = status;
    co_await r.out.send(status, "application/json", json::serialize(body), r.headers);
}

// The stored definition of {slug} as an object; answers 404/409/503 itself and returns nullopt.
asio::awaitable<std::optional<state::stored_doc>> load(api_request& r, bool for_change) {
    auto& dir = *r.app.endpoints;
    auto slug = std::string(r.param("slug"));
    if (dir.config_endpoint(slug)) {
        co_await reply_error(r, load_error(for_change, slug));
        co_return std::nullopt;
    }
    auto got = co_await dir.store()->get(slug);
    if (!got) {
        co_await reply_error(r, store_error());
        co_return std::nullopt;
    }
    if (!*got) co_await reply_error(r, no_endpoint(slug));
    co_return std::move(*got);
}

json::object definition_of(state::stored_doc const& doc) {
    boost::system::error_code ec;
    auto v = parse_bounded(doc.body, ec);
    return !ec && v.is_object() ? std::move(v.get_object()) : json::object();
}

// Replaces {slug}'s definition by `def` (checked), answers 200 with it.
asio::awaitable<void> store_changed(api_request& r, std::string const& slug, json::object def) {
    auto& dir = *r.app.endpoints;
    auto const* s = def.if_contains("slug");
    if (s && (!s->is_string() || s->get_string() != slug)) {
        co_await reply_error(r, invalid("slug: an endpoint keeps its slug (delete it and create another)"));
        co_return;
    }
    def["slug"] = slug;
    auto checked = check(dir, def);
    if (auto* err = std::get_if<api_error>(&checked)) {
        co_await reply_error(r, *err);
        co_return;
    }
    state::stored_doc doc{slug, json::serialize(def), policy::unix_now_ms()};
    auto updated = doc.updated_ms;
    auto done = co_await dir.store()->replace(std::move(doc));
    if (!done) {
        co_await reply_error(r, store_error());
        co_return;
    }
    if (!*done) {
        co_await reply_error(r, no_endpoint(slug));  // deleted meanwhile
        co_return;
    }
    dir.invalidate(slug);
    audit(r, "endpoint.update", slug);
    co_await reply_json(r, json::serialize(stored_json(*std::get<std::shared_ptr<endpoint_config const>>(checked), def, updated)));
}

}  // namespace

asio::awaitable<void> list_endpoints(api_request& r) {
    if (!co_await gate(r)) co_return;
    auto& dir = *r.app.endpoints;
    json::array data;
    for (auto const& e : dir.config()) data.push_back(config_json(*e));
    if (dir.store()) {
        auto all = co_await dir.store()->list();
        if (!all) {
            co_await reply_error(r, store_error());
            co_return;
        }
        for (auto const& doc : *all) {
            auto def = definition_of(doc);
            auto parsed = parse_endpoint_json(def, dir.context());
            if (auto* e = std::get_if<std::shared_ptr<endpoint_config const>>(&parsed)) {
                data.push_back(stored_json(**e, def, doc.updated_ms));
            } else {
                // Still listed, with what is wrong: the config changed under it (a server gone...).
                json::object o;
                o["slug"] = doc.id;
                o["object"] = "endpoint";
                o["source"] = "admin";
                o["updated_at"] = doc.updated_ms / 1000;
                o["definition"] = def;
                o["error"] = std::get<std::string>(parsed);
                data.push_back(std::move(o));
            }
        }
    }
    json::object out;
    out["object"] = "list";
    out["data"] = std::move(data);
    co_await reply_json(r, json::serialize(out));
}

asio::awaitable<void> admin_create_endpoint(api_request& r) {
    if (!co_await gate(r)) co_return;
    auto body = co_await parse_body(r);
    if (!body) co_return;
    auto& dir = *r.app.endpoints;
    auto checked = check(dir, *body);
    if (auto* err = std::get_if<api_error>(&checked)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto const& e = *std::get<std::shared_ptr<endpoint_config const>>(checked);
    if (dir.config_endpoint(e.slug)) {
        co_await reply_error(r, config_endpoint(e.slug));
        co_return;
    }
    auto all = co_await dir.store()->list();
    if (!all) {
        co_await reply_error(r, store_error());
        co_return;
    }
    if (all->size() >= max_endpoints) {
        co_await reply_error(r, too_many());
        co_return;
    }
    state::stored_doc doc{e.slug, json::serialize(*body), policy::unix_now_ms()};
    auto updated = doc.updated_ms;
    auto made = co_await dir.store()->insert(std::move(doc));
    if (!made) {
        co_await reply_error(r, store_error());
        co_return;
    }
    if (!*made) {
        co_await reply_error(r, endpoint_exists(e.slug));
        co_return;
    }
    dir.invalidate(e.slug);
    audit(r, "endpoint.create", e.slug);
    co_await reply_status(r, 201, stored_json(e, *body, updated));
}

asio::awaitable<void> admin_get_endpoint(api_request& r) {
    if (!co_await gate(r)) co_return;
    if (auto e = r.app.endpoints->config_endpoint(r.param("slug"))) {
        co_await reply_json(r, json::serialize(config_json(*e)));
        co_return;
    }
    auto doc = co_await load(r, false);
    if (!doc) co_return;
    auto def = definition_of(*doc);
    auto parsed = parse_endpoint_json(def, r.app.endpoints->context());
    json::object o;
    if (auto* e = std::get_if<std::shared_ptr<endpoint_config const>>(&parsed)) {
        o = stored_json(**e, def, doc->updated_ms);
    } else {
        o["slug"] = doc->id;
        o["object"] = "endpoint";
        o["source"] = "admin";
        o["definition"] = def;
        o["error"] = std::get<std::string>(parsed);
    }
    co_await reply_json(r, json::serialize(o));
}

asio::awaitable<void> admin_replace_endpoint(api_request& r) {
    if (!co_await gate(r)) co_return;
    auto body = co_await parse_body(r);
    if (!body) co_return;
    auto doc = co_await load(r, true);
    if (!doc) co_return;
    co_await store_changed(r, doc->id, std::move(*body));
}

asio::awaitable<void> admin_update_endpoint(api_request& r) {
    if (!co_await gate(r)) co_return;
    auto body = co_await parse_body(r);
    if (!body) co_return;
    auto doc = co_await load(r, true);
    if (!doc) co_return;
    auto def = definition_of(*doc);
    merge_patch(def, *body);
    co_await store_changed(r, doc->id, std::move(def));
}

asio::awaitable<void> admin_delete_endpoint(api_request& r) {
    if (!co_await gate(r)) co_return;
    auto doc = co_await load(r, true);
    if (!doc) co_return;
    auto removed = co_await r.app.endpoints->store()->remove(doc->id);
    if (!removed) {
        co_await reply_error(r, store_error());
        co_return;
    }
    if (!*removed) {
        co_await reply_error(r, no_endpoint(doc->id));
        co_return;
    }
    r.app.endpoints->invalidate(doc->id);
    audit(r, "endpoint.delete", doc->id);
    json::object o;
    o["slug"] = doc->id;
    o["object"] = "endpoint";
    o["deleted"] = true;
    co_await reply_json(r, json::serialize(o));
}

}  // namespace toolgate::gateway::api
