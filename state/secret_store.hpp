#pragma once
// Small named values that must survive a restart and cannot be hashed because the gateway itself
// has to send them again: the OAuth tokens and client registrations of upstream MCP servers. Loaded
// once at start-up; saved in the background (a save never blocks its caller). Thread-safe.
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace toolgate::state {

class sqlite_db;

class secret_store {
public:
    virtual ~secret_store() = default;
    // Every value whose name starts with `prefix` (start-up only: it waits for the store).
    virtual std::map<std::string, std::string> load(std::string_view prefix) = 0;
    // Replaces the value (an empty value removes it); queued, committed soon after.
    virtual void save(std::string name, std::string value) = 0;
};

// In the SQLite file's `secrets` table (the file should be readable by the gateway's user only).
std::shared_ptr<secret_store> make_sqlite_secrets(std::shared_ptr<sqlite_db> db);
// Gone with the process (state.persist: false).
std::shared_ptr<secret_store> make_memory_secrets();

}  // namespace toolgate::state
