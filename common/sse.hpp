#pragma once
// Server-Sent Events parsing, sans-io: bytes go in as they arrive from the socket, complete events
// come out. Handles LF, CRLF and CR line ends split anywhere across reads, comments, multi-line data
// and a bound on the size of one event.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace toolgate::sse {

struct event {
    std::string type;  // "event:" field, empty means "message"
    std::string data;  // "data:" lines joined by '\n'
    std::string id;
};

class parser {
public:
    explicit parser(std::size_t max_event_bytes = 16u << 20) : max_event_bytes_(max_event_bytes) {}

    // Appends every event completed by `bytes` to `out`. Returns false once an event or line grows
    // beyond the bound; the parser is unusable after that.
    bool feed(std::string_view bytes, std::vector<event>& out);

    // True when the stream ended mid-event (bytes buffered that never formed a complete event).
    bool has_partial() const { return !line_.empty() || has_data_; }

    // The reconnection time the stream set with its last valid "retry:" field (digits only), in
    // milliseconds and at most ten minutes; -1 when it set none.
    std::int64_t retry_ms() const { return retry_ms_; }
    // The stream's last event ID, as the spec keeps it: set by every "id:" field, also of an event
    // that is never dispatched (one without data).
    std::string const& last_event_id() const { return last_id_; }

private:
    void process_line(std::string_view line, std::vector<event>& out);

    std::size_t max_event_bytes_;
    std::string line_;
    event current_;
    bool has_data_ = false;
    bool skip_lf_ = false;
    bool failed_ = false;
    std::int64_t retry_ms_ = -1;
    std::string last_id_;
};

// Formats one "data:" event (the payload must not contain newlines; JSON from a serializer does not).
inline std::string format_data(std::string_view payload) {
    std::string s;
    s.reserve(payload.size() + 8);
    s.append("data: ").append(payload).append("\n\n");
    return s;
}

}  // namespace toolgate::sse
