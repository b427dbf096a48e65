#pragma once
// Definitions made through the admin API that are not keys (AI endpoints today): JSON documents
// under an id, one collection per kind, with the time of their last change. Implementations:
// memory (tests, persist: false), sqlite (the state file: they survive a restart), redis (shared
// by replicas). Callable from any worker thread; each call completes on the caller's executor.
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "state/errors.hpp"

namespace toolgate::state {

namespace asio = boost::asio;

struct stored_doc {
    std::string id;
    std::string body;  // JSON text, as the caller wrote it
    std::int64_t updated_ms = 0;
};

class doc_store {
public:
    virtual ~doc_store() = default;
    virtual std::string_view kind() const = 0;

    virtual asio::awaitable<result<std::optional<stored_doc>>> get(std::string id) = 0;
    // Every document of the collection, by id.
    virtual asio::awaitable<result<std::vector<stored_doc>>> list() = 0;
    // False when a document with this id exists already (nothing written): two replicas creating
    // the same id at once, one wins.
    virtual asio::awaitable<result<bool>> insert(stored_doc doc) = 0;
    // Replaces an existing document; false when there is none.
    virtual asio::awaitable<result<bool>> replace(stored_doc doc) = 0;
    // False when there was no such document.
    virtual asio::awaitable<result<bool>> remove(std::string id) = 0;
};

class sqlite_db;
class redis_pool;

std::shared_ptr<doc_store> make_memory_docs();
// Rows of the `documents` table with this collection name.
std::shared_ptr<doc_store> make_sqlite_docs(std::shared_ptr<sqlite_db> db, std::string collection);
// One hash, "<prefix>docs:<collection>", a field per document.
std::shared_ptr<doc_store> make_redis_docs(std::shared_ptr<redis_pool> pool, std::string collection);

}  // namespace toolgate::state
