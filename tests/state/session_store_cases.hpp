#pragma once
// The state::session_store behaviours, written once and run against every store: test_memory.cpp,
// test_sqlite.cpp and test_redis.cpp call each case with their store and their way of running a
// coroutine to completion (a callable `run(asio::awaitable<T>) -> T`). Every time is the caller's
// now_ms, counted from store_env::t0; Redis also sets its keys' expiries from these times
// (PEXPIREAT), so for Redis t0 must be the real time. The assertions run here, in plain functions,
// never inside a coroutine body (GCC 12 rules, CONTRIBUTING.md).
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "state/session_store.hpp"

namespace toolgate::testing::session_cases {

// Where the stores differ.
struct store_env {
    std::int64_t t0 = 0;                 // the base of every now_ms
    std::int64_t tombstone_ms = 60'000;  // what the store was made with
    // Leases lapse at the caller's now_ms (memory, sqlite: the lease table in the process) or on
    // the server's clock (redis: SET NX PX), where the case waits for the lapse.
    bool lease_on_caller_clock = true;
    // lock() by the holder that has the lease succeeds (the interface: "false when another holder
    // has it"). Redis's SET NX refuses its own holder too.
    bool holder_relocks = true;
};

inline std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// A row as sessions/ writes one: meta and messages are opaque JSON texts to a store.
inline state::session_row make_row(std::string id, std::string owner, std::int64_t created_ms, std::int64_t ttl_ms,
                                   std::string const& note = "first") {
    state::session_row r;
    r.id = std::move(id);
    r.owner = std::move(owner);
    r.created_ms = created_ms;
    r.updated_ms = created_ms;
    r.expires_ms = created_ms + ttl_ms;
    r.version = 1;
    r.meta = "{\"metadata\":{\"note\":\"" + note + "\"},\"count\":2}";
    r.messages = "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello " + note + "\"}]";
    return r;
}

// The row a save writes after `r`: the next version, touched at `now_ms`.
inline state::session_row next_version(state::session_row r, std::int64_t now_ms, std::int64_t ttl_ms,
                                       std::string const& note) {
    r.version += 1;
    r.updated_ms = now_ms;
    r.expires_ms = now_ms + ttl_ms;
    r.meta = "{\"metadata\":{\"note\":\"" + note + "\"},\"count\":3}";
    r.messages = "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"},"
                 "{\"role\":\"user\",\"content\":\"" +
                 note + "\"}]";
    return r;
}

inline void expect_row(state::session_row const& got, state::session_row const& want, bool with_messages) {
    EXPECT_EQ(got.id, want.id);
    EXPECT_EQ(got.owner, want.owner);
    EXPECT_EQ(got.created_ms, want.created_ms);
    EXPECT_EQ(got.updated_ms, want.updated_ms);
    EXPECT_EQ(got.expires_ms, want.expires_ms);
    EXPECT_EQ(got.version, want.version);
    EXPECT_EQ(got.meta, want.meta);
    if (with_messages) {
        EXPECT_EQ(got.messages, want.messages);
    } else {
        EXPECT_EQ(got.messages, "") << "a list page leaves the messages out";
    }
}

inline std::vector<std::string> ids_of(state::session_page const& p) {
    std::vector<std::string> out;
    for (auto const& r : p.rows) out.push_back(r.id);
    return out;
}

// The store's calls run to completion; an error result throws (the test fails naming it).
template <class Run>
struct driver {
    state::session_store& store;
    Run const& run;

    bool create(state::session_row r) const { return run(store.create(std::move(r))).value(); }
    state::session_lookup get(std::string id, std::int64_t now) const { return run(store.get(std::move(id), now)).value(); }
    bool save(state::session_row r, std::int64_t now) const { return run(store.save(std::move(r), now)).value(); }
    bool erase(std::string id, std::string owner, std::int64_t now) const {
        return run(store.erase(std::move(id), std::move(owner), now)).value();
    }
    state::session_page list(std::string owner, std::string after, std::size_t limit, std::int64_t now) const {
        return run(store.list(std::move(owner), std::move(after), limit, now)).value();
    }
    bool lock(std::string id, std::string holder, std::int64_t lease_ms, std::int64_t now) const {
        return run(store.lock(std::move(id), std::move(holder), lease_ms, now)).value();
    }
    void unlock(std::string id, std::string holder) const { run(store.unlock(std::move(id), std::move(holder))).value(); }
};

// create, then get live with every field; the id is taken while live, whoever asks.
template <class Run>
void create_and_get(state::session_store& store, Run const& run, store_env const& env) {
    SCOPED_TRACE(store.kind());
    driver<Run> d{store, run};
    auto const t0 = env.t0;
    auto row = make_row("s-create", "k1", t0, 600'000);
    EXPECT_TRUE(d.create(row));
    auto got = d.get("s-create", t0 + 1);
    ASSERT_EQ(got.state, state::session_state::live);
    expect_row(got.row, row, true);

    EXPECT_FALSE(d.create(make_row("s-create", "k1", t0 + 2, 600'000, "second")));
    EXPECT_FALSE(d.create(make_row("s-create", "k2", t0 + 2, 600'000, "second")));
    auto still = d.get("s-create", t0 + 3);
    ASSERT_EQ(still.state, state::session_state::live);
    expect_row(still.row, row, true);

    EXPECT_EQ(d.get("s-never", t0).state, state::session_state::missing);
}

// save is a compare-and-set on the version, by the owner, of a live session.
template <class Run>
void save_is_versioned(state::session_store& store, Run const& run, store_env const& env) {
    SCOPED_TRACE(store.kind());
    driver<Run> d{store, run};
    auto const t0 = env.t0;
    auto v1 = make_row("s-save", "k1", t0, 600'000);
    ASSERT_TRUE(d.create(v1));

    auto v2 = next_version(v1, t0 + 5, 600'000, "second");
    EXPECT_TRUE(d.save(v2, t0 + 5));
    auto got = d.get("s-save", t0 + 6);
    ASSERT_EQ(got.state, state::session_state::live);
    expect_row(got.row, v2, true);  // created_ms kept, the rest replaced

    EXPECT_FALSE(d.save(v2, t0 + 7)) << "a stale version (another writer won)";
    auto skipped = next_version(next_version(v2, t0 + 7, 600'000, "x"), t0 + 7, 600'000, "skipped");  // version 4
    EXPECT_FALSE(d.save(skipped, t0 + 7)) << "a version ahead";
    auto v3 = next_version(v2, t0 + 8, 600'000, "third");
    auto by_other = v3;
    by_other.owner = "k2";
    EXPECT_FALSE(d.save(by_other, t0 + 8)) << "another owner";
    auto unchanged = d.get("s-save", t0 + 8);
    ASSERT_EQ(unchanged.state, state::session_state::live);
    expect_row(unchanged.row, v2, true);

    EXPECT_TRUE(d.save(v3, t0 + 8));
    EXPECT_EQ(d.get("s-save", t0 + 9).row.version, 3);

    auto nowhere = next_version(make_row("s-nowhere", "k1", t0, 600'000), t0 + 9, 600'000, "x");
    EXPECT_FALSE(d.save(nowhere, t0 + 9)) << "a session that never was";
    // Past its expiry (stored expires_ms = v3's) a session takes no save.
    auto v4 = next_version(v3, v3.expires_ms, 600'000, "late");
    EXPECT_FALSE(d.save(v4, v3.expires_ms));
}

// erase leaves a tombstone (gone, its id and owner kept) that lapses into missing; then the id
// is free again.
template <class Run>
void erase_leaves_a_tombstone(state::session_store& store, Run const& run, store_env const& env) {
    SCOPED_TRACE(store.kind());
    driver<Run> d{store, run};
    auto const t0 = env.t0;
    auto const tomb = env.tombstone_ms;
    ASSERT_TRUE(d.create(make_row("s-erase", "k1", t0, 600'000)));

    EXPECT_FALSE(d.erase("s-erase", "k2", t0 + 10)) << "another owner";
    EXPECT_EQ(d.get("s-erase", t0 + 11).state, state::session_state::live);
    EXPECT_FALSE(d.erase("s-never", "k1", t0 + 11));

    EXPECT_TRUE(d.erase("s-erase", "k1", t0 + 20));
    auto gone = d.get("s-erase", t0 + 21);
    EXPECT_EQ(gone.state, state::session_state::gone);
    EXPECT_EQ(gone.row.id, "s-erase");
    EXPECT_EQ(gone.row.owner, "k1");
    EXPECT_EQ(gone.row.meta, "");
    EXPECT_EQ(gone.row.messages, "");
    EXPECT_FALSE(d.erase("s-erase", "k1", t0 + 22)) << "erased twice";
    EXPECT_FALSE(d.save(next_version(make_row("s-erase", "k1", t0, 600'000), t0 + 22, 600'000, "x"), t0 + 22));
    EXPECT_FALSE(d.create(make_row("s-erase", "k1", t0 + 23, 600'000))) << "a tombstoned id is taken";
    EXPECT_TRUE(d.list("k1", "", 10, t0 + 23).rows.empty());

    EXPECT_EQ(d.get("s-erase", t0 + 20 + tomb - 1).state, state::session_state::gone);
    EXPECT_EQ(d.get("s-erase", t0 + 20 + tomb).state, state::session_state::missing);
    auto reborn = make_row("s-erase", "k2", t0 + 20 + tomb, 600'000, "reborn");
    EXPECT_TRUE(d.create(reborn));
    auto back = d.get("s-erase", t0 + 20 + tomb + 1);
    ASSERT_EQ(back.state, state::session_state::live);
    expect_row(back.row, reborn, true);
}

// An idle session expires: gone until expires + tombstone, then missing, then free again.
template <class Run>
void expiry_then_tombstone(state::session_store& store, Run const& run, store_env const& env) {
    SCOPED_TRACE(store.kind());
    driver<Run> d{store, run};
    auto const t0 = env.t0;
    auto const tomb = env.tombstone_ms;
    ASSERT_TRUE(d.create(make_row("s-idle", "k1", t0, 1'000)));

    EXPECT_EQ(d.get("s-idle", t0 + 999).state, state::session_state::live);
    auto gone = d.get("s-idle", t0 + 1'000);
    EXPECT_EQ(gone.state, state::session_state::gone);
    EXPECT_EQ(gone.row.id, "s-idle");
    EXPECT_EQ(gone.row.owner, "k1");
    EXPECT_FALSE(d.erase("s-idle", "k1", t0 + 1'000)) << "an expired session is not live";
    EXPECT_TRUE(d.list("k1", "", 10, t0 + 1'000).rows.empty());
    EXPECT_FALSE(d.create(make_row("s-idle", "k2", t0 + 1'000 + tomb - 1, 600'000)));
    EXPECT_EQ(d.get("s-idle", t0 + 1'000 + tomb - 1).state, state::session_state::gone);

    EXPECT_EQ(d.get("s-idle", t0 + 1'000 + tomb).state, state::session_state::missing);
    auto again = make_row("s-idle", "k2", t0 + 1'000 + tomb, 600'000, "again");
    EXPECT_TRUE(d.create(again));
    auto back = d.get("s-idle", t0 + 1'000 + tomb + 1);
    ASSERT_EQ(back.state, state::session_state::live);
    expect_row(back.row, again, true);
    EXPECT_EQ(ids_of(d.list("k2", "", 10, t0 + 1'000 + tomb + 1)), std::vector<std::string>{"s-idle"});
    EXPECT_TRUE(d.list("k1", "", 10, t0 + 1'000 + tomb + 1).rows.empty());
}

// list: the owner's live sessions, newest created first (ties by id, descending), pages after an
// id, without messages.
template <class Run>
void list_pages_newest_first(state::session_store& store, Run const& run, store_env const& env) {
    SCOPED_TRACE(store.kind());
    driver<Run> d{store, run};
    auto const t0 = env.t0;
    std::vector<state::session_row> made;
    made.push_back(make_row("a", "k1", t0, 20));  // expired by the time of listing
    made.push_back(make_row("b", "k1", t0 + 1, 600'000));
    made.push_back(make_row("c", "k1", t0 + 2, 600'000));  // erased below
    made.push_back(make_row("d", "k1", t0 + 3, 600'000));
    made.push_back(make_row("e", "k1", t0 + 4, 600'000));
    made.push_back(make_row("x", "k2", t0 + 5, 600'000));
    made.push_back(make_row("p", "k1", t0 + 6, 600'000));
    made.push_back(make_row("q", "k1", t0 + 6, 600'000));  // the same creation time as p
    for (auto const& r : made) ASSERT_TRUE(d.create(r)) << r.id;
    ASSERT_TRUE(d.erase("c", "k1", t0 + 10));
    auto const now = t0 + 100;

    auto all = d.list("k1", "", 10, now);
    EXPECT_EQ(ids_of(all), (std::vector<std::string>{"q", "p", "e", "d", "b"}));
    EXPECT_FALSE(all.more);
    for (auto const& r : all.rows) {
        SCOPED_TRACE(r.id);
        for (auto const& m : made) {
            if (m.id == r.id) expect_row(r, m, false);
        }
    }
    auto exact = d.list("k1", "", 5, now);
    EXPECT_EQ(exact.rows.size(), 5u);
    EXPECT_FALSE(exact.more) << "nothing live after the fifth";

    auto p1 = d.list("k1", "", 2, now);
    EXPECT_EQ(ids_of(p1), (std::vector<std::string>{"q", "p"}));
    EXPECT_TRUE(p1.more);
    auto p2 = d.list("k1", "p", 2, now);
    EXPECT_EQ(ids_of(p2), (std::vector<std::string>{"e", "d"}));
    EXPECT_TRUE(p2.more);
    auto p3 = d.list("k1", "d", 2, now);
    EXPECT_EQ(ids_of(p3), (std::vector<std::string>{"b"}));
    EXPECT_FALSE(p3.more);
    EXPECT_EQ(ids_of(d.list("k1", "q", 1, now)), (std::vector<std::string>{"p"}));

    EXPECT_EQ(ids_of(d.list("k2", "", 10, now)), (std::vector<std::string>{"x"}));
    auto nobody = d.list("k3", "", 10, now);
    EXPECT_TRUE(nobody.rows.empty());
    EXPECT_FALSE(nobody.more);
    // After an id that is not the owner's live session: an empty page.
    EXPECT_TRUE(d.list("k1", "c", 10, now).rows.empty()) << "erased";
    EXPECT_TRUE(d.list("k1", "a", 10, now).rows.empty()) << "expired";
    EXPECT_TRUE(d.list("k1", "x", 10, now).rows.empty()) << "another owner's";
    EXPECT_TRUE(d.list("k1", "nope", 10, now).rows.empty()) << "never was";
}

// A page that is full before an expired session in the owner's index still says there is more.
template <class Run>
void list_reports_more_past_an_expired_session(state::session_store& store, Run const& run, store_env const& env) {
    SCOPED_TRACE(store.kind());
    driver<Run> d{store, run};
    auto const t0 = env.t0;
    ASSERT_TRUE(d.create(make_row("m-a", "k1", t0, 600'000)));
    ASSERT_TRUE(d.create(make_row("m-b", "k1", t0 + 1, 20)));  // expired when listed
    ASSERT_TRUE(d.create(make_row("m-c", "k1", t0 + 2, 600'000)));
    ASSERT_TRUE(d.create(make_row("m-d", "k1", t0 + 3, 600'000)));
    auto first = d.list("k1", "", 2, t0 + 100);
    EXPECT_EQ(ids_of(first), (std::vector<std::string>{"m-d", "m-c"}));
    EXPECT_TRUE(first.more) << "m-a is live after the page";
    auto second = d.list("k1", "m-c", 2, t0 + 100);
    EXPECT_EQ(ids_of(second), (std::vector<std::string>{"m-a"}));
    EXPECT_FALSE(second.more);
}

// One holder at a time; unlock by another holder does nothing; a lapsed lease can be taken.
template <class Run>
void leases(state::session_store& store, Run const& run, store_env const& env) {
    SCOPED_TRACE(store.kind());
    driver<Run> d{store, run};
    auto const t0 = env.t0;
    constexpr std::int64_t long_lease = 60'000;
    EXPECT_TRUE(d.lock("s-lease", "h1", long_lease, t0));
    EXPECT_FALSE(d.lock("s-lease", "h2", long_lease, t0 + 1));
    if (env.holder_relocks) {
        EXPECT_TRUE(d.lock("s-lease", "h1", long_lease, t0 + 2)) << "the holder renews";
    }
    d.unlock("s-lease", "h2");  // not the holder: nothing happens
    EXPECT_FALSE(d.lock("s-lease", "h2", long_lease, t0 + 3));
    EXPECT_TRUE(d.lock("s-other", "h2", long_lease, t0 + 3)) << "each session has its own lease";
    d.unlock("s-lease", "h1");
    EXPECT_TRUE(d.lock("s-lease", "h2", long_lease, t0 + 4));
    EXPECT_FALSE(d.lock("s-lease", "h1", long_lease, t0 + 5));
    d.unlock("s-lease", "h2");
    d.unlock("s-other", "h2");
    d.unlock("s-never-locked", "h1");  // harmless

    if (env.lease_on_caller_clock) {
        EXPECT_TRUE(d.lock("s-lapse", "h1", 1'000, t0));
        EXPECT_FALSE(d.lock("s-lapse", "h2", 1'000, t0 + 999));
        EXPECT_TRUE(d.lock("s-lapse", "h2", 1'000, t0 + 1'000)) << "h1's lease lapsed";
        EXPECT_FALSE(d.lock("s-lapse", "h1", 1'000, t0 + 1'001));
    } else {
        // The server's clock: wait for the lapse (on this thread, not in a coroutine).
        EXPECT_TRUE(d.lock("s-lapse", "h1", 1'000, t0));
        EXPECT_FALSE(d.lock("s-lapse", "h2", 1'000, t0));
        std::this_thread::sleep_for(std::chrono::milliseconds(1'300));
        EXPECT_TRUE(d.lock("s-lapse", "h2", 1'000, t0)) << "h1's lease lapsed";
        EXPECT_FALSE(d.lock("s-lapse", "h1", 1'000, t0));
    }
}

}  // namespace toolgate::testing::session_cases
