#pragma once
// The body of an MCP server's HTTP answer (a JSON object, or an SSE stream of messages) into the
// transport's message queue, bounded in bytes; sans-io, so the fuzz target can drive it.
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/http_client.hpp"
#include "common/sse.hpp"
#include "mcp/message_queue.hpp"

namespace toolgate::mcp::detail {

namespace asio = boost::asio;

// Feeds an HTTP body (JSON or SSE) into the message queue.
class message_reader final : public http::body_reader {
public:
    message_reader(detail::message_queue& q, std::size_t max_bytes, std::string* last_event_id,
                   std::function<void(sse::event const&)> on_event = {})
        : queue_(q), parser_(max_bytes), max_(max_bytes), last_event_id_(last_event_id), on_event_(std::move(on_event)) {}

    void on_head(http::response const& head) override {
        sse_ = head.header("content-type").find("text/event-stream") != std::string_view::npos;
        session_id = std::string(head.header("mcp-session-id"));
    }

    asio::awaitable<bool> on_data(std::string_view data) override {
        if (!sse_) {
            if (json_.size() + data.size() > max_) {
                overflowed_ = true;
                co_return false;
            }
            json_.append(data);
            co_return true;
        }
        events_.clear();
        // The events completed before an oversized one are still delivered; then the body stops.
        bool ok = parser_.feed(data, events_);
        overflowed_ = overflowed_ || !ok;
        if (last_event_id_ && !parser_.last_event_id().empty()) *last_event_id_ = parser_.last_event_id();
        for (auto& ev : events_) {
            if (on_event_ && !ev.type.empty() && ev.type != "message") {
                on_event_(ev);
                continue;
            }
            if (ev.data.empty()) continue;
            bool enough = on_message && on_message(ev.data);
            queue_.push(std::move(ev.data));
            if (enough) co_return false;  // the rest of the stream is not wanted
        }
        co_return ok;
    }

    // A JSON body arrives whole: hand it over at the end.
    void finish() {
        if (sse_ || json_.empty()) return;
        if (on_message) on_message(json_);
        queue_.push(std::move(json_));
    }

    bool is_sse() const { return sse_; }
    // The body went past the size bound (it was cut there; resuming would only replay it).
    bool overflowed() const { return overflowed_; }
    // The stream's reconnection time ("retry:"), -1 when it gave none.
    std::int64_t retry_ms() const { return parser_.retry_ms(); }

    std::string session_id;
    // Sees each streamed message before it is queued; true ends the body after it (a resumed
    // stream is read up to the answer it was opened for).
    std::function<bool(std::string_view)> on_message;

private:
    detail::message_queue& queue_;
    sse::parser parser_;
    std::size_t max_;
    std::string* last_event_id_;
    std::function<void(sse::event const&)> on_event_;
    bool sse_ = false;
    bool overflowed_ = false;
    std::string json_;
    std::vector<sse::event> events_;
};

}  // namespace toolgate::mcp::detail
