#pragma once
// The embedded durable store: one SQLite file (WAL) for keys, the spend ledger and the request and
// audit logs. Writes go to one writer thread through a bounded queue and are committed in batches
// (one transaction per batch), so a worker never waits on the disk; reads run on the store's
// own reader thread. Both complete on the caller's executor.
//
// Durability: WAL with synchronous=NORMAL. A committed write survives the process being killed
// (kill -9); settle() and key changes return only after their batch is committed.
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "state/key_store.hpp"
#include "state/ledger.hpp"
#include "state/log_store.hpp"

namespace toolgate::state {

struct sqlite_options {
    std::string path = "toolgate.db";
    std::size_t queue = 65'536;  // pending writes before log records are dropped
    std::chrono::milliseconds busy_timeout{5'000};
    log_retention retention;
};

class sqlite_db;

// Opens (creating when missing) the file and its tables; throws std::runtime_error naming the
// path and SQLite's message when that fails (start-up only).
std::shared_ptr<sqlite_db> open_sqlite(sqlite_options const& opts);

// The ledger loads the spend of the current and previous periods at construction.
std::shared_ptr<ledger> make_sqlite_ledger(std::shared_ptr<sqlite_db> db);
std::shared_ptr<key_store> make_sqlite_keys(std::shared_ptr<sqlite_db> db);
std::shared_ptr<log_store> make_sqlite_log(std::shared_ptr<sqlite_db> db);

}  // namespace toolgate::state
