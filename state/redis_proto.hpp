#pragma once
// The Redis protocol without I/O (internal to state/): the URL, commands written as RESP arrays,
// replies read by hiredis's redisReader, and script digests. The connection (redis_pool.hpp)
// only moves these bytes; everything here is testable without a socket.
//
// Thread safety: plain values; a reply_reader belongs to one connection.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct redisReader;

namespace toolgate::state::detail {

struct redis_endpoint {
    std::string host;
    std::string port = "6379";
    std::string password;  // empty: no AUTH
    int db = 0;
};

// redis://[:password@]host[:port][/db]; throws std::invalid_argument naming what is wrong.
redis_endpoint parse_redis_url(std::string_view url);

// One RESP2 reply. Errors are values: a script that refused, NOSCRIPT, WRONGTYPE.
struct redis_reply {
    enum class kind { string, status, error, integer, nil, array };
    kind type = kind::nil;
    std::string str;  // string, status, error
    std::int64_t integer = 0;
    std::vector<redis_reply> elements;

    bool is_error() const { return type == kind::error; }
    bool is_nil() const { return type == kind::nil; }
};

// Appends `args` as one RESP array of bulk strings (binary-safe).
void append_command(std::string& out, std::vector<std::string> const& args);
std::string encode_command(std::vector<std::string> const& args);

// Incremental reader: feed bytes as they arrive, take whole replies out.
class reply_reader {
public:
    enum class status { reply, more, error };

    reply_reader();
    ~reply_reader();
    reply_reader(reply_reader const&) = delete;
    reply_reader& operator=(reply_reader const&) = delete;

    void feed(char const* data, std::size_t n);
    // `reply`: `out` holds the next reply; `more`: wait for bytes; `error`: the stream is not RESP
    // (the connection must be dropped).
    status next(redis_reply& out);

    // hiredis 0.14 allocates an array reply's element table from its header alone: a header of
    // more elements (or a longer bulk string) than any reply of ours is refused before hiredis sees
    // it, so that one line from a bad peer cannot make the gateway allocate gigabytes.
    static constexpr std::int64_t max_elements = 1 << 20;
    static constexpr std::int64_t max_bulk_bytes = 64 << 20;

private:
    // Scans the RESP framing of `data` (header lines, bulk payloads skipped); returns how many of
    // its bytes precede an oversized header (all of them when there is none).
    std::size_t scan(char const* data, std::size_t n);

    redisReader* r_;
    bool failed_ = false;
    bool poisoned_ = false;   // an oversized header was seen: the replies before it, then an error
    std::int64_t skip_ = 0;   // bytes of a bulk payload (and its CRLF) still to pass over
    bool in_line_ = false;
    bool after_cr_ = false;
    char line_type_ = 0;
    std::string line_;        // the first bytes of the current header line
    std::size_t line_start_ = 0;  // where the current line began in this feed (0: in an earlier one)
};

// Lowercase hex SHA-1, the digest EVALSHA names a script by.
std::string sha1_hex(std::string_view text);

// A Lua script and its digest, computed once.
struct redis_script {
    std::string text;
    std::string sha;
    explicit redis_script(std::string body) : text(std::move(body)), sha(sha1_hex(text)) {}
};

}  // namespace toolgate::state::detail
