// The document stores (doc_store.hpp) in memory, in the state's SQLite file and in Redis. Commands
// and statements are built in plain functions; coroutine bodies follow the GCC 12 rules in
// CONTRIBUTING.md.
#include <boost/asio/use_awaitable.hpp>

#include <map>
#include <mutex>

#include "common/asio_util.hpp"
#include "state/doc_store.hpp"
#include "state/redis_pool.hpp"
#include "state/sqlite_db.hpp"

namespace toolgate::state {

namespace {

// ---- memory ----

class memory_docs final : public doc_store {
public:
    std::string_view kind() const override { return "memory"; }

    asio::awaitable<result<std::optional<stored_doc>>> get(std::string id) override {
        std::optional<stored_doc> out;
        {
            std::lock_guard lock(mu_);
            if (auto it = docs_.find(id); it != docs_.end()) out = it->second;
        }
        co_return out;
    }
    asio::awaitable<result<std::vector<stored_doc>>> list() override {
        std::vector<stored_doc> out;
        {
            std::lock_guard lock(mu_);
            for (auto const& [id, d] : docs_) out.push_back(d);
        }
        co_return out;
    }
    asio::awaitable<result<bool>> insert(stored_doc doc) override {
        std::lock_guard lock(mu_);
        auto id = doc.id;
        co_return docs_.emplace(std::move(id), std::move(doc)).second;
    }
    asio::awaitable<result<bool>> replace(stored_doc doc) override {
        std::lock_guard lock(mu_);
        auto it = docs_.find(doc.id);
        if (it == docs_.end()) co_return false;
        it->second = std::move(doc);
        co_return true;
    }
    asio::awaitable<result<bool>> remove(std::string id) override {
        std::lock_guard lock(mu_);
        co_return docs_.erase(id) > 0;
    }

private:
    std::mutex mu_;
    std::map<std::string, stored_doc> docs_;
};

// ---- sqlite ----

using detail::sqlite_conn;

auto get_fn(std::string collection, std::string id) {
    return [collection = std::move(collection), id = std::move(id)](sqlite_conn& c) -> result<std::optional<stored_doc>> {
        auto s = c.prepare("SELECT body, updated_ms FROM documents WHERE collection = ?1 AND id = ?2");
        s.bind(1, collection).bind(2, id);
        std::optional<stored_doc> out;
        if (s.step()) out = stored_doc{id, s.text(0), s.int64(1)};
        return out;
    };
}

auto list_fn(std::string collection) {
    return [collection = std::move(collection)](sqlite_conn& c) -> result<std::vector<stored_doc>> {
        auto s = c.prepare("SELECT id, body, updated_ms FROM documents WHERE collection = ?1 ORDER BY id");
        s.bind(1, collection);
        std::vector<stored_doc> out;
        while (s.step()) out.push_back(stored_doc{s.text(0), s.text(1), s.int64(2)});
        return out;
    };
}

detail::write_fn insert_fn(std::string collection, stored_doc d) {
    return [collection = std::move(collection), d = std::move(d)](sqlite_conn& c) -> std::int64_t {
        c.prepare("INSERT OR IGNORE INTO documents(collection, id, body, updated_ms) VALUES(?1, ?2, ?3, ?4)")
            .bind(1, collection)
            .bind(2, d.id)
            .bind(3, d.body)
            .bind(4, d.updated_ms)
            .run();
        return c.changes();
    };
}

detail::write_fn replace_fn(std::string collection, stored_doc d) {
    return [collection = std::move(collection), d = std::move(d)](sqlite_conn& c) -> std::int64_t {
        c.prepare("UPDATE documents SET body = ?3, updated_ms = ?4 WHERE collection = ?1 AND id = ?2")
            .bind(1, collection)
            .bind(2, d.id)
            .bind(3, d.body)
            .bind(4, d.updated_ms)
            .run();
        return c.changes();
    };
}

detail::write_fn remove_fn(std::string collection, std::string id) {
    return [collection = std::move(collection), id = std::move(id)](sqlite_conn& c) -> std::int64_t {
        c.prepare("DELETE FROM documents WHERE collection = ?1 AND id = ?2").bind(1, collection).bind(2, id).run();
        return c.changes();
    };
}

class sqlite_docs final : public doc_store {
public:
    sqlite_docs(std::shared_ptr<sqlite_db> db, std::string collection) : db_(std::move(db)), collection_(std::move(collection)) {}
    std::string_view kind() const override { return "sqlite"; }

    asio::awaitable<result<std::optional<stored_doc>>> get(std::string id) override {
        co_return co_await db_->read<std::optional<stored_doc>>(get_fn(collection_, std::move(id)), asio::use_awaitable);
    }
    asio::awaitable<result<std::vector<stored_doc>>> list() override {
        co_return co_await db_->read<std::vector<stored_doc>>(list_fn(collection_), asio::use_awaitable);
    }
    asio::awaitable<result<bool>> insert(stored_doc doc) override {
        co_return co_await changed(insert_fn(collection_, std::move(doc)));
    }
    asio::awaitable<result<bool>> replace(stored_doc doc) override {
        co_return co_await changed(replace_fn(collection_, std::move(doc)));
    }
    asio::awaitable<result<bool>> remove(std::string id) override {
        co_return co_await changed(remove_fn(collection_, std::move(id)));
    }

private:
    asio::awaitable<result<bool>> changed(detail::write_fn fn) {
        auto [ec, n] = co_await db_->write(std::move(fn), nothrow_awaitable);
        if (ec) co_return result<bool>(boost::system::in_place_error, ec);  // an error_code is also a bool
        co_return n > 0;
    }

    std::shared_ptr<sqlite_db> db_;
    std::string collection_;
};

// ---- redis ----

using detail::redis_reply;

// A field's value: "<updated_ms> <body>".
std::string encode(stored_doc const& d) { return std::to_string(d.updated_ms) + " " + d.body; }

std::optional<stored_doc> decode(std::string id, std::string const& value) {
    auto space = value.find(' ');
    if (space == std::string::npos || space == 0 || space > 19) return std::nullopt;
    std::int64_t ms = 0;
    for (std::size_t i = 0; i < space; ++i) {
        if (value[i] < '0' || value[i] > '9') return std::nullopt;
        ms = ms * 10 + (value[i] - '0');
    }
    return stored_doc{std::move(id), value.substr(space + 1), ms};
}

std::vector<std::string> command(char const* verb, std::string const& hash, std::vector<std::string> rest) {
    std::vector<std::string> c;
    c.reserve(2 + rest.size());
    c.emplace_back(verb);
    c.push_back(hash);
    for (auto& r : rest) c.push_back(std::move(r));
    return c;
}

std::vector<std::string> args(std::string a) {
    std::vector<std::string> v;
    v.push_back(std::move(a));
    return v;
}

std::vector<std::string> args(std::string a, std::string b) {
    std::vector<std::string> v;
    v.push_back(std::move(a));
    v.push_back(std::move(b));
    return v;
}

// Replaces a field only when it exists (HSET alone would create it).
constexpr char const* replace_script =
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1 end "
    "return 0";

std::vector<std::string> replace_command(std::string const& hash, stored_doc const& d) {
    std::vector<std::string> c;
    c.emplace_back("EVAL");
    c.emplace_back(replace_script);
    c.emplace_back("1");
    c.push_back(hash);
    c.push_back(d.id);
    c.push_back(encode(d));
    return c;
}

result<bool> read_flag(result<redis_reply> const& r) {
    if (!r) return result<bool>(boost::system::in_place_error, r.error());
    if (r->type != redis_reply::kind::integer) return result<bool>(boost::system::in_place_error, make_error_code(errc::protocol));
    return r->integer > 0;
}

result<std::optional<stored_doc>> read_get(result<redis_reply> const& r, std::string id) {
    if (!r) return r.error();
    if (r->is_nil()) return std::optional<stored_doc>();
    if (r->type != redis_reply::kind::string) return make_error_code(errc::protocol);
    auto d = decode(std::move(id), r->str);
    if (!d) return make_error_code(errc::protocol);
    return d;
}

result<std::vector<stored_doc>> read_all(result<redis_reply> const& r) {
    if (!r) return r.error();
    if (r->type != redis_reply::kind::array || r->elements.size() % 2) return make_error_code(errc::protocol);
    std::map<std::string, stored_doc> by_id;
    for (std::size_t i = 0; i + 1 < r->elements.size(); i += 2) {
        auto d = decode(r->elements[i].str, r->elements[i + 1].str);
        if (d) by_id.emplace(d->id, std::move(*d));
    }
    std::vector<stored_doc> out;
    for (auto& [id, d] : by_id) out.push_back(std::move(d));
    return out;
}

class redis_docs final : public doc_store {
public:
    redis_docs(std::shared_ptr<redis_pool> pool, std::string const& collection)
        : pool_(std::move(pool)), hash_(pool_->prefix() + "docs:" + collection) {}
    std::string_view kind() const override { return "redis"; }

    asio::awaitable<result<std::optional<stored_doc>>> get(std::string id) override {
        auto r = co_await pool_->command(command("HGET", hash_, args(id)));
        co_return read_get(r, std::move(id));
    }
    asio::awaitable<result<std::vector<stored_doc>>> list() override {
        auto r = co_await pool_->command(command("HGETALL", hash_, std::vector<std::string>()));
        co_return read_all(r);
    }
    asio::awaitable<result<bool>> insert(stored_doc doc) override {
        auto r = co_await pool_->command(command("HSETNX", hash_, args(doc.id, encode(doc))));
        co_return read_flag(r);
    }
    asio::awaitable<result<bool>> replace(stored_doc doc) override {
        auto r = co_await pool_->command(replace_command(hash_, doc));
        co_return read_flag(r);
    }
    asio::awaitable<result<bool>> remove(std::string id) override {
        auto r = co_await pool_->command(command("HDEL", hash_, args(std::move(id))));
        co_return read_flag(r);
    }

private:
    std::shared_ptr<redis_pool> pool_;
    std::string hash_;
};

}  // namespace

std::shared_ptr<doc_store> make_memory_docs() { return std::make_shared<memory_docs>(); }

std::shared_ptr<doc_store> make_sqlite_docs(std::shared_ptr<sqlite_db> db, std::string collection) {
    return std::make_shared<sqlite_docs>(std::move(db), std::move(collection));
}

std::shared_ptr<doc_store> make_redis_docs(std::shared_ptr<redis_pool> pool, std::string collection) {
    return std::make_shared<redis_docs>(std::move(pool), collection);
}

}  // namespace toolgate::state
