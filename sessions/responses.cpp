// Stored responses on the session store (responses.hpp). Rows are built in plain functions; the
// coroutines only read and write (GCC 12 rules: CONTRIBUTING.md).
#include "sessions/responses.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <vector>

#include "common/json_util.hpp"
#include "sessions/session.hpp"
#include "state/session_store.hpp"

namespace toolgate::sessions {

namespace json = boost::json;

namespace {

// A key's responses live apart from its sessions.
std::string owner_of(std::string const& owner) { return "resp:" + owner; }

state::session_row row_of(std::string id, std::string owner, stored_response const& r, std::int64_t now_ms,
                          std::int64_t ttl_ms) {
    json::object meta;
    meta["response"] = r.response;
    meta["input_items"] = r.input_items;
    state::session_row row;
    row.id = std::move(id);
    row.owner = owner_of(owner);
    row.created_ms = now_ms;
    row.updated_ms = now_ms;
    row.expires_ms = now_ms + ttl_ms;
    row.version = 1;
    row.meta = json::serialize(meta);
    row.messages = json::serialize(r.conversation);
    return row;
}

std::optional<stored_response> read_row(state::session_row const& row) {
    boost::system::error_code ec;
    auto meta = parse_bounded(row.meta, ec);
    if (ec || !meta.is_object()) return std::nullopt;
    auto messages = parse_bounded(row.messages, ec);
    if (ec || !messages.is_array()) return std::nullopt;
    auto const* resp = meta.get_object().if_contains("response");
    auto const* items = meta.get_object().if_contains("input_items");
    if (!resp || !resp->is_object() || !items || !items->is_array()) return std::nullopt;
    stored_response out;
    out.response = resp->get_object();
    out.input_items = items->get_array();
    out.conversation = std::move(messages.get_array());
    return out;
}

api_error too_large_error(std::size_t max) {
    return api_error{413, "invalid_request_error", "response_too_large",
                     "the response is larger than a stored response may be (" + std::to_string(max >> 20) + " MiB)"};
}

api_error exists_error(std::string const& id) {
    return api_error{409, "invalid_request_error", "response_exists", "a response with id '" + id + "' exists already"};
}

}  // namespace

api_error response_not_found(std::string_view id) {
    auto err = api_error::not_found("Response with id '" + std::string(id) + "' not found.", "response_not_found");
    return err;
}

response_store::response_store(std::shared_ptr<state::session_store> store, std::chrono::milliseconds ttl,
                               std::size_t max_bytes)
    : store_(std::move(store)), ttl_(ttl), max_bytes_(max_bytes) {}

bool fit_conversation(json::array& conversation, std::size_t budget) {
    std::vector<std::size_t> sizes;
    std::size_t total = 2;
    for (auto const& m : conversation) {
        sizes.push_back(json::serialize(m).size() + 1);
        total += sizes.back();
    }
    std::size_t drop = 0;
    while (drop < conversation.size() && total > budget) total -= sizes[drop++];
    auto role_of = [&](std::size_t i) {
        auto const* o = conversation[i].if_object();
        auto const* r = o ? o->if_contains("role") : nullptr;
        return r && r->is_string() ? std::string_view(r->get_string()) : std::string_view();
    };
    while (drop < conversation.size() && role_of(drop) == "tool") ++drop;
    if (drop == conversation.size() && !conversation.empty()) return false;  // not even the last turn fits
    if (drop > 0) conversation.erase(conversation.begin(), conversation.begin() + static_cast<std::ptrdiff_t>(drop));
    return total <= budget;
}

std::string_view response_store::kind() const { return store_->kind(); }

asio::awaitable<std::optional<api_error>> response_store::put(std::string id, std::string owner, stored_response r,
                                                              std::int64_t now_ms) {
    auto fixed = json::serialize(r.response).size() + json::serialize(r.input_items).size();
    if (fixed >= max_bytes_ || !fit_conversation(r.conversation, max_bytes_ - fixed)) co_return too_large_error(max_bytes_);
    auto made = co_await store_->create(row_of(id, std::move(owner), r, now_ms, ttl_.count()));
    if (!made) co_return store_error();
    if (!*made) co_return exists_error(id);
    co_return std::nullopt;
}

asio::awaitable<std::variant<stored_response, api_error>> response_store::get(std::string id, std::string owner,
                                                                              std::int64_t now_ms) {
    if (!valid_id(id)) co_return response_not_found(id);
    auto found = co_await store_->get(id, now_ms);
    if (!found) co_return store_error();
    if (found->state != state::session_state::live || found->row.owner != owner_of(owner)) co_return response_not_found(id);
    auto r = read_row(found->row);
    if (!r) co_return response_not_found(id);  // a damaged row is no response
    co_return std::move(*r);
}

asio::awaitable<std::optional<api_error>> response_store::erase(std::string id, std::string owner, std::int64_t now_ms) {
    if (!valid_id(id)) co_return response_not_found(id);
    auto gone = co_await store_->erase(id, owner_of(owner), now_ms);
    if (!gone) co_return store_error();
    if (!*gone) co_return response_not_found(id);
    co_return std::nullopt;
}

}  // namespace toolgate::sessions
