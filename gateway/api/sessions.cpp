// /v1/sessions: create, list, read and delete the caller's server-side sessions (sessions/).
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <charconv>

#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "sessions/service.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

constexpr std::size_t default_page = 20;
constexpr std::size_t max_page = 100;

std::string list_json(sessions::page const& p) {
    json::object o;
    o["object"] = "list";
    json::array data;
    for (auto const& s : p.items) data.push_back(sessions::to_json(s, false));
    if (!p.items.empty()) {
        o["first_id"] = p.items.front().id;
        o["last_id"] = p.items.back().id;
    } else {
        o["first_id"] = nullptr;
        o["last_id"] = nullptr;
    }
    o["data"] = std::move(data);
    o["has_more"] = p.more;
    return json::serialize(o);
}

std::string deleted_json(std::string const& id) {
    json::object o;
    o["id"] = id;
    o["object"] = "session.deleted";
    o["deleted"] = true;
    return json::serialize(o);
}

std::string session_json(sessions::session const& s, bool with_messages) {
    return json::serialize(sessions::to_json(s, with_messages));
}

// ?limit= (1..100); nullopt when malformed.
std::optional<std::size_t> page_size(inbound_request const& req) {
    auto v = query_param(req, "limit");
    if (!v) return default_page;
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc() || end != v->data() + v->size() || n < 1 || n > max_page) return std::nullopt;
    return n;
}

}  // namespace

std::string session_owner(api_request const& r) {
    return r.access_scope.key ? r.access_scope.key->id : std::string("anonymous");
}

api_error sessions_disabled() {
    return api_error::bad_request("sessions are not enabled on this gateway (config: a sessions section)",
                                  "sessions_disabled");
}

asio::awaitable<void> create_session(api_request& r) {
    if (!r.app.sessions) {
        co_await reply_error(r, sessions_disabled());
        co_return;
    }
    json::object body;
    if (!r.req.body.empty()) {
        auto parsed = co_await parse_body(r);
        if (!parsed) co_return;
        body = std::move(*parsed);
    }
    auto req = sessions::parse_create(body, r.app.sessions->config());
    if (auto* err = std::get_if<api_error>(&req)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto made = co_await r.app.sessions->create(session_owner(r), std::move(std::get<sessions::create_request>(req)),
                                                policy::unix_now_ms());
    if (auto* err = std::get_if<api_error>(&made)) {
        co_await reply_error(r, *err);
        co_return;
    }
    co_await reply_json(r, session_json(std::get<sessions::session>(made), false));
}

asio::awaitable<void> list_sessions(api_request& r) {
    if (!r.app.sessions) {
        co_await reply_error(r, sessions_disabled());
        co_return;
    }
    auto limit = page_size(r.req);
    if (!limit) {
        co_await reply_error(r, api_error::bad_request("'limit' must be a whole number from 1 to 100", "invalid_limit"));
        co_return;
    }
    auto after = query_param(r.req, "after").value_or("");
    auto p = co_await r.app.sessions->list(session_owner(r), std::move(after), *limit, policy::unix_now_ms());
    if (auto* err = std::get_if<api_error>(&p)) {
        co_await reply_error(r, *err);
        co_return;
    }
    co_await reply_json(r, list_json(std::get<sessions::page>(p)));
}

asio::awaitable<void> get_session(api_request& r) {
    if (!r.app.sessions) {
        co_await reply_error(r, sessions_disabled());
        co_return;
    }
    auto s = co_await r.app.sessions->get(std::string(r.param("id")), session_owner(r), policy::unix_now_ms());
    if (auto* err = std::get_if<api_error>(&s)) {
        co_await reply_error(r, *err);
        co_return;
    }
    co_await reply_json(r, session_json(std::get<sessions::session>(s), true));
}

asio::awaitable<void> delete_session(api_request& r) {
    if (!r.app.sessions) {
        co_await reply_error(r, sessions_disabled());
        co_return;
    }
    auto id = std::string(r.param("id"));
    auto err = co_await r.app.sessions->erase(id, session_owner(r), policy::unix_now_ms());
    if (err) {
        co_await reply_error(r, *err);
        co_return;
    }
    co_await reply_json(r, deleted_json(id));
}

}  // namespace toolgate::gateway::api
