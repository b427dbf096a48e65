#pragma once
// The session API's logic over a state::session_store: create, read, list and delete for the
// /v1/sessions routes, and the three steps of a chat request on a session: begin (take the
// session's lease, load it or start it), prepare (the history in front of the new messages, fitted
// to the limits) and commit (store what the request added, then give the lease back) or release
// (store nothing). One request runs on a session at a time: a second one is refused with 409, never
// interleaved. Built once at start-up; callable from any worker thread.
#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "sessions/session.hpp"

namespace toolgate::sessions {

namespace asio = boost::asio;

template <class T>
using answer = std::variant<T, api_error>;

struct page {
    std::vector<session> items;  // messages left out
    bool more = false;
};

// One chat request's hold on a session, from begin() to commit() or release().
struct turn {
    session s;
    std::string holder;       // the lease's owner
    std::size_t history = 0;  // messages of s.messages that were stored before this request
    bool created = false;     // started by this request (x-session-id of an unknown id)
    bool open = false;        // the lease is held
};

class service {
public:
    service(settings s, std::shared_ptr<state::session_store> store, token_counter count);

    settings const& config() const { return s_; }
    std::string_view store_kind() const { return store_->kind(); }

    asio::awaitable<answer<session>> create(std::string owner, create_request req, std::int64_t now_ms);
    asio::awaitable<answer<session>> get(std::string id, std::string owner, std::int64_t now_ms);
    asio::awaitable<answer<page>> list(std::string owner, std::string after, std::size_t limit, std::int64_t now_ms);
    asio::awaitable<std::optional<api_error>> erase(std::string id, std::string owner, std::int64_t now_ms);

    // Takes the lease and loads the session (or starts it, with create_on_use). Errors: 400 for a
    // malformed id, 404, 410, 409 when another request holds it, 503 when the store cannot answer.
    // `limits`: a session started here gets them (null: the gateway's).
    asio::awaitable<answer<turn>> begin(std::string id, std::string owner, std::int64_t now_ms,
                                        limits const* lim = nullptr);
    // The messages to send: the history fitted to the limits (trim drops old turns from the
    // session too), then `incoming`. 429 session_limit when it cannot fit (reject, or a request
    // too large by itself).
    std::optional<api_error> prepare(turn& t, boost::json::array const& incoming, boost::json::array& out) const;
    // Appends `added` (the request's messages and the answer), fits the history again, saves it
    // and gives the lease back. False when the store refused (another writer or an outage): the
    // caller logs it; the answer has been sent already.
    asio::awaitable<bool> commit(turn& t, boost::json::array added, std::int64_t now_ms);
    // Gives the lease back without storing anything (a failed or cancelled request).
    asio::awaitable<void> release(turn& t);

    // Counts for /metrics.
    struct counts {
        std::atomic<std::uint64_t> created{0}, turns{0}, busy{0}, trimmed{0}, rejected{0}, save_failures{0},
            store_errors{0};
    };
    counts& stats() { return stats_; }

private:
    settings s_;
    std::shared_ptr<state::session_store> store_;
    token_counter count_;
    mutable counts stats_;
};

}  // namespace toolgate::sessions
