#pragma once
// Hybrid turns without a session. When the agent loop hands client tool calls back, the messages
// it added on its own (its MCP calls and their results) are kept here, keyed by the caller and the
// client calls' ids; when the client posts the follow-up, the assistant message it sends back is
// replaced by that full transcript again, so the model sees what the gateway's tools said.
// Kept in this process's memory, and in Redis when the gateway has one (state.redis), so that the
// follow-up may land on any replica. (With a session, its stored history does this instead.)
// Built once at start-up; callable from any worker thread.
#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace toolgate::state {
class cache_store;
}

namespace toolgate::sessions {

namespace asio = boost::asio;

// ---- the decisions, without I/O ----

// The store key of a transcript: the caller's scope (its key id) and the client calls' ids, in any
// order, as a hex SHA-256 (a caller cannot reach another caller's transcript by naming its ids).
std::string hybrid_key(std::string_view scope, std::vector<std::string> ids);

// The assistant messages of `messages` that carry tool calls, with their keys: the places a stored
// transcript may go. At most `max` of them, the newest.
struct hybrid_slot {
    std::size_t index = 0;
    std::string key;
};
std::vector<hybrid_slot> hybrid_slots(boost::json::array const& messages, std::string_view scope, std::size_t max);

// Each found slot's message replaced by its transcript (`found` in index order).
struct hybrid_fill {
    std::size_t index = 0;
    boost::json::array transcript;
};
void splice(boost::json::array& messages, std::vector<hybrid_fill> found);

// ---- the store ----

struct hybrid_stats {
    std::atomic<std::uint64_t> remembered{0};
    std::atomic<std::uint64_t> expanded{0};       // assistant messages replaced by a transcript
    std::atomic<std::uint64_t> shared_hits{0};    // of those, found only in the shared store
    std::atomic<std::uint64_t> store_errors{0};   // the shared store did not answer
};

class hybrid_turns {
public:
    // `shared`: null, or a store the replicas share (the Redis cache store).
    explicit hybrid_turns(std::shared_ptr<state::cache_store> shared = nullptr,
                          std::chrono::milliseconds ttl = std::chrono::hours(1), std::size_t memory_bytes = 64u << 20);
    ~hybrid_turns();

    // Keeps the loop's transcript under the client calls' ids (nothing when there are none).
    asio::awaitable<void> remember(std::string scope, std::vector<std::string> client_call_ids,
                                   boost::json::array const& transcript);
    // Replaces the client's assistant messages by the transcripts kept for them; returns how many.
    asio::awaitable<std::size_t> expand(std::string scope, boost::json::array& messages);

    bool shared() const { return shared_ != nullptr; }
    hybrid_stats const& stats() const { return stats_; }

private:
    std::shared_ptr<state::cache_store> local_;
    std::shared_ptr<state::cache_store> shared_;
    std::int64_t ttl_ms_;
    hybrid_stats stats_;
};

}  // namespace toolgate::sessions
