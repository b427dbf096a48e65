#pragma once
// JSON-RPC 2.0 as MCP uses it, sans-io: classifying incoming messages, building outgoing ones, and
// splitting a newline-delimited byte stream (the stdio transport) into bounded lines.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace toolgate::mcp {

namespace json = boost::json;

// Standard JSON-RPC error codes.
namespace errc {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
// Ours (implementation range): the transport could not deliver the request or its answer. The
// session reports it like a timeout, not like an answer from the server.
inline constexpr int transport_failure = -32099;
}  // namespace errc

struct message {
    enum class kind { request, notification, response, error, invalid };
    kind type = kind::invalid;
    json::value id;        // request, response, error
    std::string method;    // request, notification
    json::value params;    // request, notification (null when absent)
    json::value result;    // response
    int error_code = 0;    // error
    std::string error_message;
    json::value error_data;
    std::string problem;  // why it is invalid
};

// Classifies one parsed JSON value. Batches (arrays) are reported invalid: MCP 2025-06-18 removed them.
message classify(json::value v);
// Parses and classifies a JSON text.
message parse_message(std::string_view text);

std::string make_request(json::value const& id, std::string_view method, json::value const& params);
std::string make_notification(std::string_view method, json::value const& params);
std::string make_result(json::value const& id, json::value const& result);
std::string make_error(json::value const& id, int code, std::string_view message);

// Splits newline-delimited JSON: complete lines out, partial ones kept for the next read. A line
// longer than the bound is dropped whole (reported once through `oversized`), and reading resumes
// at the next newline, so a misbehaving server cannot grow our memory without bound. Of a dropped
// line only its first and last bytes are kept: when the line ends, the numeric id of the answer it
// was (`{"jsonrpc":"2.0","id":7,...` or `...,"id":7}`) goes to `dropped_ids`, so that the caller
// waiting for it can be told at once instead of at its timeout.
class line_framer {
public:
    explicit line_framer(std::size_t max_line_bytes) : max_(max_line_bytes) {}
    void feed(std::string_view bytes, std::vector<std::string>& lines, std::size_t& oversized,
              std::vector<std::int64_t>* dropped_ids = nullptr);
    std::size_t buffered() const { return partial_.size(); }

private:
    void keep_tail(std::string_view piece);
    std::size_t max_;
    std::string partial_;
    bool skipping_ = false;
    std::string head_, tail_;  // of the line being dropped
};

// The id of an answer from the first or last bytes of its line, when it is a top-level member
// there ("id" right after "{" or after "jsonrpc", or the last member before the closing "}"), a
// whole number, and neither end names a "method" (a request of the server's own numbering).
std::optional<std::int64_t> answer_id_of_ends(std::string_view head, std::string_view tail);

// An id as text, for maps and logs ("7", "\"abc\"").
std::string id_key(json::value const& id);

}  // namespace toolgate::mcp
