#pragma once
// The request and audit logs in PostgreSQL (libpq). One writer thread owns the write connection:
// it takes what is queued and writes it with multi-row INSERT statements (PQexecParams, text
// parameters), one transaction per batch, into request_log and audit_log (created when missing at
// every (re)connect). While the server is down the writer reconnects with backoff and records stay
// queued up to `queue` (beyond it append() drops and counts). A batch the server refuses for any
// other reason is counted as failed and dropped. Queries run on a reader thread with a connection
// of its own. Completions (query, flush) go to the caller's executor.
//
// Thread safety: the store may be used from any thread; append() never blocks.
// Delivery: at least once. A connection lost while a COMMIT's answer is on its way makes the batch
// be written again after the reconnect.
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "state/log_store.hpp"

namespace toolgate::state {

struct postgres_options {
    std::string url;                 // postgresql://user[:password]@host:port/db (libpq conninfo or URI)
    std::size_t queue = 65'536;      // pending records before they are dropped (counted)
    std::size_t batch = 1000;        // records per INSERT statement at most
    std::chrono::milliseconds reconnect_backoff{1000};  // the first retry; doubles up to 16x
    log_retention retention;
};

// Never throws for an unreachable server (it connects in the background and retries); throws
// std::invalid_argument for a URL libpq cannot parse (PQconninfoParse). No message or log line
// shows the URL's password.
std::shared_ptr<log_store> make_postgres_log(postgres_options const& opts);

}  // namespace toolgate::state
