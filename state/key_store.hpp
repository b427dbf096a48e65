#pragma once
// Virtual keys created through the admin API. A key is stored only as the SHA-256 of its text
// (hex) and its first characters for display; everything a key carries (name, team, models,
// tools, limits, budget, metadata, disabled) is an attribute object the policy layer reads, so
// the stores need not know it. Implementations: memory, sqlite, redis (shared by replicas).
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "state/errors.hpp"

namespace toolgate::state {

namespace asio = boost::asio;

struct stored_key {
    std::string id;      // "key_..." (stable across rotations)
    std::string hash;    // hex SHA-256 of the key text
    std::string prefix;  // the key's first characters, for display
    boost::json::object attrs;
    std::int64_t created_ms = 0;
    std::int64_t updated_ms = 0;
};

class key_store {
public:
    virtual ~key_store() = default;
    virtual std::string_view kind() const = 0;

    virtual asio::awaitable<result<std::optional<stored_key>>> find_hash(std::string const& hash) = 0;
    virtual asio::awaitable<result<std::optional<stored_key>>> get(std::string const& id) = 0;
    virtual asio::awaitable<result<std::vector<stored_key>>> list() = 0;
    // Inserts or replaces the key with this id (a rotation changes its hash and prefix).
    virtual asio::awaitable<result<void>> put(stored_key const& key) = 0;
    // False when there was no such key.
    virtual asio::awaitable<result<bool>> remove(std::string const& id) = 0;
};

// Hex SHA-256 of `text`.
std::string sha256_hex(std::string_view text);

}  // namespace toolgate::state
