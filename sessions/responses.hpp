#pragma once
// Stored responses, for the Responses API's `store` and `previous_response_id`: each stored
// Response is a row of the session store (the same SQLite file, Redis or memory as sessions), under
// its own owner namespace, so that a key's sessions and its responses never mix. The row keeps the
// Response and its input items (GET /v1/responses/{id}, .../input_items) and the conversation up to
// and including it (what a request that names it as previous_response_id continues). Rows lapse
// after `ttl`. Built once at start-up; callable from any worker thread.
#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "common/api_error.hpp"

namespace toolgate::state {
class session_store;
}

namespace toolgate::sessions {

namespace asio = boost::asio;

struct stored_response {
    boost::json::object response;
    boost::json::array input_items;
    boost::json::array conversation;  // chat messages, the response's own output last
};

class response_store {
public:
    // `max_bytes`: one stored response at most (the Response, its input items, the conversation);
    // a longer conversation loses its oldest turns, and a response larger by itself is not kept.
    response_store(std::shared_ptr<state::session_store> store, std::chrono::milliseconds ttl,
                   std::size_t max_bytes = std::size_t(4) << 20);

    std::string_view kind() const;
    std::chrono::milliseconds ttl() const { return ttl_; }

    // 503 when the store cannot answer; a response id that exists already is 409.
    asio::awaitable<std::optional<api_error>> put(std::string id, std::string owner, stored_response r, std::int64_t now_ms);
    // 404 for an unknown or lapsed id, or another owner's.
    asio::awaitable<std::variant<stored_response, api_error>> get(std::string id, std::string owner, std::int64_t now_ms);
    asio::awaitable<std::optional<api_error>> erase(std::string id, std::string owner, std::int64_t now_ms);

private:
    std::shared_ptr<state::session_store> store_;
    std::chrono::milliseconds ttl_;
    std::size_t max_bytes_;
};

// Drops the oldest messages of `conversation` until `budget` bytes of JSON are left, then any
// tool results left at its head (the call they answered went); false when not even its last
// message fits.
bool fit_conversation(boost::json::array& conversation, std::size_t budget);

// "Response with id '...' not found." (404, the API's own words).
api_error response_not_found(std::string_view id);

}  // namespace toolgate::sessions
