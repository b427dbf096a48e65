#pragma once
// The chat route's own stream read back, for the ingresses that answer in other shapes (Messages,
// Responses): the bytes it writes ("data: {chunk}", ": keep-alive", "data: [DONE]", an error
// object) in any pieces, as whole items. Plain code, no I/O.
#include <boost/json/object.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace toolgate::gateway {

struct chat_stream_item {
    enum class kind { chunk, error, done, comment } what = kind::chunk;
    boost::json::object object;  // a chunk, or the error's "error" object
};

class chat_stream_reader {
public:
    // The items `bytes` completes.
    void feed(std::string_view bytes, std::vector<chat_stream_item>& out);
    // The stream ended: an event left without its blank line is read too.
    void finish(std::vector<chat_stream_item>& out);

private:
    void block(std::string_view text, std::vector<chat_stream_item>& out) const;
    std::string pending_;
};

// Which call a streamed tool_calls fragment belongs to: its `index`, or, without one (some
// OpenAI-compatible servers), the call it continues, a new `id` starting the next one.
class call_indexer {
public:
    std::int64_t index_of(boost::json::object const& fragment);

private:
    std::string last_id_;
    std::int64_t last_ = 0;
    std::int64_t top_ = -1;  // the highest index given so far
};

}  // namespace toolgate::gateway
