#pragma once
// The request log and the audit log: append-only records, written off the request path. append()
// never blocks and never fails the request: when the store's bounded queue is full the record is
// dropped and counted (logging fails open). Implementations: memory (a bounded ring, for tests and
// the embedded default without a file), sqlite (default with a file), postgres.
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "state/errors.hpp"

namespace toolgate::state {

namespace asio = boost::asio;

enum class log_kind { request, turn, tool, audit };
std::string_view to_string(log_kind k);
// The kind named `s` ("request", "turn", ...), as stored.
std::optional<log_kind> log_kind_from(std::string_view s);

// One record. The indexed fields are columns (filters and paging use them); `record` holds
// everything, serialized as JSON.
struct log_record {
    log_kind kind = log_kind::request;
    std::int64_t ts_ms = 0;
    std::string request_id;
    std::string key;  // the key's name
    std::string team;
    std::string model;
    int status = 0;
    boost::json::object record;
};

struct log_query {
    std::optional<log_kind> kind;  // nullopt: request, turn and tool records (never audit unless asked)
    std::string request_id, key, team, model;
    std::optional<int> status;
    std::int64_t since_ms = 0;
    std::int64_t until_ms = 0;  // 0: now
    std::int64_t before_id = 0;  // paging: only ids below (0: from the newest)
    std::size_t limit = 100;
};

struct log_row {
    std::int64_t id = 0;  // increasing in write order
    log_record rec;
};

struct log_stats {
    std::atomic<std::uint64_t> written{0};
    std::atomic<std::uint64_t> dropped{0};
    std::atomic<std::uint64_t> failed{0};  // records of batches the store refused
};

struct log_retention {
    std::int64_t max_age_ms = 30LL * 24 * 3600 * 1000;
    std::int64_t max_rows = 1'000'000;
};

class log_store {
public:
    virtual ~log_store() = default;
    virtual std::string_view kind() const = 0;
    // Any thread; never blocks.
    virtual void append(log_record rec) = 0;
    // Newest first.
    virtual asio::awaitable<result<std::vector<log_row>>> query(log_query q) = 0;
    // Waits until everything appended before the call is written (tests, shutdown); bounded.
    virtual asio::awaitable<void> flush() = 0;
    virtual log_stats const& stats() const = 0;
};

}  // namespace toolgate::state
