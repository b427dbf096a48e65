#pragma once
// AWS event stream framing (application/vnd.amazon.eventstream), the binary framing of Bedrock's
// ConverseStream, sans-io: messages of a prelude (total length, headers length, prelude CRC32),
// typed headers, a payload and a message CRC32, decoded from bytes split anywhere. Both CRCs are
// checked; a bad one, an impossible length or a malformed header ends the stream. Bounded: a
// message larger than the limit is refused before it is buffered.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace toolgate::providers::eventstream {

struct header_value {
    enum class kind : std::uint8_t { bool_true = 0, bool_false, byte, int16, int32, int64, bytes, string, timestamp, uuid };
    kind type = kind::string;
    std::int64_t number = 0;  // byte, int16, int32, int64, timestamp (ms since the epoch)
    std::string text;         // bytes, string, uuid (its 16 bytes)
};

struct message {
    std::vector<std::pair<std::string, header_value>> headers;
    std::string payload;
    // A string header's value (":event-type", ":message-type", ...); "" when absent or not a string.
    std::string_view header(std::string_view name) const;
};

enum class error { none, too_large, bad_length, bad_prelude_crc, bad_message_crc, bad_header };
std::string_view to_string(error e);

class decoder {
public:
    explicit decoder(std::size_t max_message_bytes = 16u << 20) : max_(max_message_bytes) {}
    // Appends every message completed by `bytes` to `out`. False at the first framing error
    // (failure() says which); the decoder is unusable after that.
    bool feed(std::string_view bytes, std::vector<message>& out);
    // Bytes of a message that has not ended (a stream that stops here was cut short).
    bool has_partial() const { return buf_.size() > at_; }
    error failure() const { return failure_; }

private:
    bool fail(error e) {
        failure_ = e;
        return false;
    }
    std::size_t max_;
    std::string buf_;
    std::size_t at_ = 0;  // start of the first unread message in buf_
    error failure_ = error::none;
};

// CRC-32 (IEEE 802.3, as zlib and gzip compute it), continued from `crc`.
std::uint32_t crc32(std::string_view data, std::uint32_t crc = 0);

// A message as framed bytes (the fake upstreams of the tests, the fuzz target's round trip).
std::string encode(message const& m);

}  // namespace toolgate::providers::eventstream
