// The sliding-window arithmetic, the memory stores and the UTC periods, on a simulated clock.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <stdexcept>
#include <thread>

#include "state/cache_store.hpp"
#include "state/memory.hpp"
#include "state/session_store.hpp"
#include "state/turn_gate.hpp"
#include "tests/state/doc_store_cases.hpp"
#include "tests/state/session_store_cases.hpp"

namespace state = toolgate::state;
namespace asio = boost::asio;

namespace {

constexpr std::int64_t minute = 60'000;
constexpr std::int64_t t0 = 1'764'633'600'000;  // 2025-12-02T00:00:00Z, a bucket edge

template <class T>
T run(asio::awaitable<T> a) {
    asio::io_context ioc;
    auto f = asio::co_spawn(ioc, std::move(a), asio::use_future);
    ioc.run();
    return f.get();
}

state::window_verdict admit(state::window_counts& w, state::window_spec const& s, std::int64_t now, std::int64_t amount = 1) {
    auto v = state::window_check(w, s, now, amount);
    if (v.allowed) state::window_add(w, s, now, now, amount);
    return v;
}

}  // namespace

TEST(Window, AdmitsExactlyTheLimitThenRefusesWithRetryAfter) {
    state::window_spec s{minute, 5};
    state::window_counts w;
    for (int i = 0; i < 5; ++i) {
        auto v = admit(w, s, t0 + i * 100);
        ASSERT_TRUE(v.allowed) << i;
        EXPECT_EQ(v.remaining, 4 - i);
    }
    auto v = admit(w, s, t0 + 600);
    EXPECT_FALSE(v.allowed);
    EXPECT_EQ(v.remaining, 0);
    // Everything was counted in the first 1 s bucket, which leaves the window 61 s after t0.
    EXPECT_EQ(v.retry_after_ms, 61'000 - 600);
    EXPECT_EQ(v.reset_ms, 61'000 - 600);
    EXPECT_FALSE(admit(w, s, t0 + 60'999).allowed);
    EXPECT_TRUE(admit(w, s, t0 + 61'000).allowed);
}

TEST(Window, NoSpanOfOneMinuteEverHoldsMoreThanTheLimit) {
    // Requests at every 250 ms for 5 minutes; admitted times must never have more than N in any
    // 60 s interval (a fixed window admits 2N across its edge).
    state::window_spec s{minute, 10};
    state::window_counts w;
    std::vector<std::int64_t> admitted;
    for (std::int64_t t = t0 + 123; t < t0 + 5 * minute; t += 250)
        if (admit(w, s, t).allowed) admitted.push_back(t);
    ASSERT_GE(admitted.size(), 40u);
    for (std::size_t i = 0; i < admitted.size(); ++i) {
        std::size_t in_span = 0;
        for (std::size_t j = i; j < admitted.size() && admitted[j] < admitted[i] + minute; ++j) ++in_span;
        EXPECT_LE(in_span, 10u) << "from " << admitted[i] - t0;
    }
}

TEST(Window, BurstAtTheEdgeOfAFixedWindowIsRefused) {
    state::window_spec s{minute, 3};
    state::window_counts w;
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(admit(w, s, t0 + 59'900).allowed);
    // A fixed window would open again at t0 + 60 s.
    EXPECT_FALSE(admit(w, s, t0 + 60'100).allowed);
}

TEST(Window, TokenCorrectionsMoveTheCount) {
    state::window_spec s{minute, 1000};
    state::window_counts w;
    EXPECT_TRUE(admit(w, s, t0, 800).allowed);   // the estimate
    EXPECT_FALSE(admit(w, s, t0 + 10, 300).allowed);
    state::window_add(w, s, t0, t0 + 2'000, -600);  // the real usage was 200
    auto v = admit(w, s, t0 + 2'000, 300);
    EXPECT_TRUE(v.allowed);
    EXPECT_EQ(v.remaining, 500);
    // A correction never takes a bucket below zero.
    state::window_add(w, s, t0, t0 + 2'000, -10'000);
    EXPECT_EQ(state::window_check(w, s, t0 + 2'000, 0).used, 300);
}

TEST(Window, CorrectionsOutsideTheWindowAreIgnored) {
    state::window_spec s{minute, 100};
    state::window_counts w;
    EXPECT_TRUE(admit(w, s, t0, 50).allowed);
    EXPECT_TRUE(admit(w, s, t0 + 2 * minute, 10).allowed);
    state::window_add(w, s, t0, t0 + 2 * minute, 40);  // t0's bucket has left
    EXPECT_EQ(state::window_check(w, s, t0 + 2 * minute, 0).used, 10);
}

TEST(Window, AnAmountOverTheLimitNeverFits) {
    state::window_spec s{minute, 100};
    state::window_counts w;
    auto v = state::window_check(w, s, t0, 101);
    EXPECT_FALSE(v.allowed);
    EXPECT_EQ(v.retry_after_ms, -1);
}

TEST(Window, HourAndDayWindowsUseWiderBuckets) {
    state::window_spec hour{60 * minute, 2};
    state::window_counts w;
    EXPECT_TRUE(admit(w, hour, t0).allowed);
    EXPECT_TRUE(admit(w, hour, t0 + 30 * minute).allowed);
    auto v = admit(w, hour, t0 + 59 * minute);
    EXPECT_FALSE(v.allowed);
    EXPECT_EQ(v.retry_after_ms, 61 * minute - 59 * minute);  // the first 1-minute bucket leaves
    EXPECT_TRUE(admit(w, hour, t0 + 61 * minute).allowed);
}

TEST(MemoryCounters, AdmitIsAllOrNothing) {
    auto c = state::make_memory_counters();
    std::vector<state::limit_check> checks(2);
    checks[0] = {"a", {minute, 10}, 1};
    checks[1] = {"b", {minute, 1}, 1};
    EXPECT_TRUE(run(c->admit(checks, t0))->allowed);
    auto r = run(c->admit(checks, t0 + 1));
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->allowed);
    EXPECT_EQ(r->rejected, 1u);
    // "a" was not counted by the refused admit.
    std::vector<state::limit_check> only_a(1, checks[0]);
    EXPECT_EQ(run(c->admit(only_a, t0 + 2))->verdicts[0].used, 1);
}

TEST(MemoryCounters, ExactUnderConcurrencyFromManyThreads) {
    auto c = state::make_memory_counters();
    std::atomic<int> admitted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            std::vector<state::limit_check> checks(1, state::limit_check{"k", {minute, 50}, 1});
            for (int i = 0; i < 100; ++i)
                if (run(c->admit(checks, t0 + i))->allowed) admitted.fetch_add(1);
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(admitted.load(), 50);
}

TEST(MemoryCounters, LeasesAreBoundedAndLapse) {
    auto c = state::make_memory_counters();
    EXPECT_TRUE(*run(c->acquire("c", 2, "r1", t0, 1000)));
    EXPECT_TRUE(*run(c->acquire("c", 2, "r2", t0, 1000)));
    EXPECT_FALSE(*run(c->acquire("c", 2, "r3", t0, 1000)));
    EXPECT_TRUE(run(c->release("c", "r1")));
    EXPECT_TRUE(*run(c->acquire("c", 2, "r3", t0, 1000)));
    EXPECT_FALSE(*run(c->acquire("c", 2, "r4", t0 + 999, 1000)));
    EXPECT_TRUE(*run(c->acquire("c", 2, "r4", t0 + 1000, 1000)));  // r2 and r3 lapsed
}

TEST(MemoryCounters, BoundedByMaxCounters) {
    state::memory_options o;
    o.max_counters = 16 * 16;
    auto c = state::make_memory_counters(o);
    for (int i = 0; i < 10'000; ++i) {
        std::vector<state::limit_check> checks(1, state::limit_check{"u" + std::to_string(i), {minute, 1}, 1});
        ASSERT_TRUE(run(c->admit(checks, t0 + i))->allowed);
    }
    // The newest is still counted.
    std::vector<state::limit_check> last(1, state::limit_check{"u9999", {minute, 1}, 1});
    EXPECT_FALSE(run(c->admit(last, t0 + 10'000))->allowed);
}

TEST(LedgerBook, ReservationsBoundConcurrentSpend) {
    state::ledger_book b;
    std::vector<state::budget_line> lines(2);
    lines[0] = {"key:k", "2025-12-02", 1'000'000};  // $1 a day
    lines[1] = {"team:t", "2025-12", 1'500'000};
    EXPECT_TRUE(b.reserve(lines, "r1", 600'000, t0, 60'000).allowed);
    auto r2 = b.reserve(lines, "r2", 600'000, t0, 60'000);
    EXPECT_FALSE(r2.allowed);
    EXPECT_EQ(r2.rejected, 0u);
    EXPECT_EQ(r2.spent_micros[0], 600'000);
    b.settle(lines, "r1", 100'000);  // it cost less
    EXPECT_EQ(b.spent("key:k", "2025-12-02"), 100'000);
    EXPECT_TRUE(b.reserve(lines, "r2", 600'000, t0, 60'000).allowed);
    // The team line is shared with another key.
    std::vector<state::budget_line> other(1, state::budget_line{"team:t", "2025-12", 1'500'000});
    auto r3 = b.reserve(other, "r3", 900'000, t0, 60'000);
    EXPECT_FALSE(r3.allowed);
    EXPECT_EQ(r3.spent_micros[0], 700'000);
}

TEST(LedgerBook, ALapsedReservationIsReleased) {
    state::ledger_book b;
    std::vector<state::budget_line> lines(1, state::budget_line{"key:k", "2025-12-02", 1'000});
    EXPECT_TRUE(b.reserve(lines, "r1", 1'000, t0, 5'000).allowed);
    EXPECT_FALSE(b.reserve(lines, "r2", 1, t0 + 4'999, 5'000).allowed);
    EXPECT_TRUE(b.reserve(lines, "r2", 1, t0 + 5'000, 5'000).allowed);
}

TEST(LedgerBook, ActualCostMayExceedTheReservation) {
    state::ledger_book b;
    std::vector<state::budget_line> lines(1, state::budget_line{"key:k", "d", 1'000});
    EXPECT_TRUE(b.reserve(lines, "r1", 100, t0, 5'000).allowed);
    b.settle(lines, "r1", 1'200);
    EXPECT_EQ(b.spent("key:k", "d"), 1'200);
    EXPECT_FALSE(b.reserve(lines, "r2", 0, t0, 5'000).allowed);
}

TEST(UtcPeriods, RollOverAtMidnightAndMonthEnd) {
    std::int64_t last_ms_of_nov = 1'764'547'199'999;  // 2025-11-30T23:59:59.999Z
    EXPECT_EQ(state::utc_day(last_ms_of_nov), "2025-11-30");
    EXPECT_EQ(state::utc_month(last_ms_of_nov), "2025-11");
    EXPECT_EQ(state::utc_day(last_ms_of_nov + 1), "2025-12-01");
    EXPECT_EQ(state::utc_month(last_ms_of_nov + 1), "2025-12");
    EXPECT_EQ(state::utc_day_end(last_ms_of_nov), last_ms_of_nov + 1);
    EXPECT_EQ(state::utc_month_end(last_ms_of_nov), last_ms_of_nov + 1);
    // December ends on the 31st, February 2028 on the 29th.
    EXPECT_EQ(state::utc_day(state::utc_month_end(t0) - 1), "2025-12-31");
    std::int64_t feb_2028 = 1'832'976'000'000;  // 2028-02-01T00:00:00Z
    EXPECT_EQ(state::utc_day(state::utc_month_end(feb_2028) - 1), "2028-02-29");
    EXPECT_EQ(state::utc_month(state::utc_month_end(feb_2028)), "2028-03");
}

TEST(Hashing, Sha256Hex) {
    EXPECT_EQ(state::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(MemoryLog, KeepsTheNewestAndFilters) {
    state::memory_options o;
    o.log_rows = 3;
    auto log = state::make_memory_log(o);
    for (int i = 0; i < 5; ++i) {
        state::log_record r;
        r.ts_ms = t0 + i;
        r.key = i % 2 ? "odd" : "even";
        r.status = 200;
        log->append(r);
    }
    state::log_query q;
    auto all = run(log->query(q));
    ASSERT_EQ(all->size(), 3u);
    EXPECT_EQ(all->front().id, 5);
    q.key = "odd";
    EXPECT_EQ(run(log->query(q))->size(), 1u);
    q.key.clear();
    q.before_id = 5;
    EXPECT_EQ(run(log->query(q))->size(), 2u);
}

// ---- the turn gate over memory counters and a memory ledger ----

namespace {

struct gate_case {
    std::vector<state::limit_check> checks;
    std::vector<state::limit_check> tokens;
    std::vector<state::budget_line> lines;
    std::string reservation;
    state::turn_open open(std::int64_t micros, std::int64_t now) const {
        state::turn_open t;
        t.checks = &checks;
        t.lines = &lines;
        t.reservation = &reservation;
        t.micros = micros;
        t.now_ms = now;
        t.lease_ms = minute;
        return t;
    }
};

gate_case turn_case(std::string id) {
    gate_case g;
    g.checks.push_back({"rl:key:k1:rpm", {minute, 2}, 1});
    g.checks.push_back({"rl:key:k1:tpm", {minute, 100}, 40});
    g.tokens.push_back(g.checks[1]);
    g.lines.push_back({"key:k1", "2025-12-02", 1'000});
    g.reservation = std::move(id);
    return g;
}

}  // namespace

TEST(StoreGate, CountsAndReservesTogetherAndABudgetRefusalCountsNothing) {
    auto counters = state::make_memory_counters();
    auto ledger = state::make_memory_ledger();
    auto gate = state::make_store_gate(counters, ledger);
    auto a = turn_case("r1");
    auto first = gate->open_now(a.open(600, t0));
    ASSERT_TRUE(first);
    ASSERT_TRUE(first->admitted && first->admitted->allowed);
    ASSERT_TRUE(first->reserved && *first->reserved && (*first->reserved)->allowed);

    auto b = turn_case("r2");
    auto second = gate->open_now(b.open(600, t0 + 1));  // 600 + 600 > 1000
    ASSERT_TRUE(second);
    ASSERT_TRUE(second->admitted && second->admitted->allowed);
    ASSERT_TRUE(second->reserved && *second->reserved);
    EXPECT_FALSE((*second->reserved)->allowed);
    EXPECT_EQ((*second->reserved)->spent_micros[0], 600);

    // r1 closes: its tokens corrected (+10), its cost settled (700, more than reserved).
    state::spend_entry who;
    who.request_id = "r1";
    state::turn_close close;
    close.adjust = &a.tokens;
    close.at_ms = t0;
    close.delta = 10;
    close.now_ms = t0 + 2;
    close.lines = &a.lines;
    close.reservation = &a.reservation;
    close.micros = 700;
    close.who = &who;
    EXPECT_TRUE(gate->close_now(close));
    EXPECT_EQ(*run(ledger->spent("key:k1", "2025-12-02")), 700);

    // The refused r2 counted nothing: one request and 50 tokens so far.
    auto c = turn_case("r3");
    auto third = gate->open_now(c.open(100, t0 + 3));
    ASSERT_TRUE(third && third->admitted && third->admitted->allowed);
    EXPECT_EQ(third->admitted->verdicts[0].used, 1);
    EXPECT_EQ(third->admitted->verdicts[1].used, 50);
    // A rate-limit refusal reserves nothing.
    auto d = turn_case("r4");
    auto fourth = gate->open_now(d.open(100, t0 + 4));
    ASSERT_TRUE(fourth && fourth->admitted);
    EXPECT_FALSE(fourth->admitted->allowed);
    EXPECT_FALSE(fourth->reserved);
    std::vector<state::budget_line> probe_lines = a.lines;
    auto probe = ledger->reserve_now(probe_lines, "probe", 0, t0 + 5, minute);
    ASSERT_TRUE(probe && *probe);
    EXPECT_EQ((*probe)->spent_micros[0], 800);  // 700 spent + r3's 100 held
}

TEST(StoreGate, RefusesCountersThatNeedIo) {
    class slow_counters final : public state::counter_store {
    public:
        std::string_view kind() const override { return "slow"; }
        asio::awaitable<state::result<state::admit_result>> admit(std::vector<state::limit_check> const&, std::int64_t) override {
            state::admit_result r;
            co_return r;
        }
        asio::awaitable<state::result<void>> adjust(state::limit_check const&, std::int64_t, std::int64_t, std::int64_t) override {
            co_return state::result<void>();
        }
        asio::awaitable<state::result<bool>> acquire(std::string const&, std::int64_t, std::string const&, std::int64_t,
                                                     std::int64_t) override {
            co_return true;
        }
        asio::awaitable<state::result<void>> release(std::string const&, std::string const&) override {
            co_return state::result<void>();
        }
    };
    EXPECT_THROW(state::make_store_gate(std::make_shared<slow_counters>(), state::make_memory_ledger()), std::invalid_argument);
}

// ---- the memory response-cache store ----

namespace {

state::cache_value get(state::cache_store& c, std::string const& key, std::int64_t now) { return *c.get_now(key, now); }

void put(state::cache_store& c, std::string const& key, std::string value, std::int64_t ttl, std::int64_t now,
         std::string const& scope = "global") {
    ASSERT_TRUE(c.put_now(key, value, scope, ttl, now));
}

}  // namespace

TEST(MemoryCache, ExpiresEntriesAtTheirTtl) {
    auto c = state::make_memory_cache(16 << 20);
    put(*c, "s:m:a", "alpha", 1000, t0);
    ASSERT_TRUE(get(*c, "s:m:a", t0 + 999));
    EXPECT_EQ(*get(*c, "s:m:a", t0 + 999), "alpha");
    EXPECT_FALSE(get(*c, "s:m:a", t0 + 1000));
    EXPECT_FALSE(get(*c, "s:m:a", t0));  // dropped when found lapsed
}

TEST(MemoryCache, EvictsTheLeastRecentlyUsedByBytesAndCountsItPerScope) {
    // 16 stripes of 64 KiB: one key's stripe holds about six 10 KB values.
    auto c = state::make_memory_cache(1 << 20);
    std::string value(10'000, 'v');
    // Keys of one stripe are not predictable; fill far past the whole capacity instead.
    for (int i = 0; i < 400; ++i) put(*c, "s:m:" + std::to_string(i), value, 60'000, t0 + i, i % 2 ? "odd" : "even");
    std::uint64_t bytes = 0, entries = 0, evictions = 0;
    for (auto const& [scope, counts] : c->counts()) {
        bytes += counts.bytes;
        entries += counts.entries;
        evictions += counts.evictions;
    }
    EXPECT_LE(bytes, 1u << 20);
    EXPECT_GT(entries, 50u);
    EXPECT_EQ(entries + evictions, 400u);
    // The newest survive, the oldest went.
    EXPECT_TRUE(get(*c, "s:m:399", t0 + 500));
    EXPECT_FALSE(get(*c, "s:m:0", t0 + 500));
    auto counts = c->counts();
    ASSERT_EQ(counts.size(), 2u);
    EXPECT_EQ(counts[0].first, "even");
    EXPECT_GT(counts[0].second.evictions, 0u);
}

TEST(MemoryCache, AReadKeepsAnEntryFromBeingEvicted) {
    auto c = state::make_memory_cache(1 << 20);
    std::string value(10'000, 'v');
    put(*c, "s:m:keep", value, 60'000, t0);
    for (int i = 0; i < 400; ++i) {
        ASSERT_TRUE(get(*c, "s:m:keep", t0 + i)) << "evicted after " << i << " stores";
        put(*c, "s:m:" + std::to_string(i), value, 60'000, t0 + i);
    }
}

TEST(MemoryCache, NeverStoresWhatCannotFitAndReplacesAKeysValue) {
    auto c = state::make_memory_cache(1 << 20);
    put(*c, "s:m:big", std::string(70'000, 'x'), 60'000, t0);  // more than a stripe's 64 KiB
    EXPECT_FALSE(get(*c, "s:m:big", t0));
    put(*c, "s:m:k", "one", 60'000, t0);
    put(*c, "s:m:k", "two", 60'000, t0);
    EXPECT_EQ(*get(*c, "s:m:k", t0), "two");
    EXPECT_EQ(c->counts()[0].second.entries, 1u);
}

TEST(MemoryCache, ErasesByScopePartModelPartOrBoth) {
    auto c = state::make_memory_cache(16 << 20);
    for (auto const* k : {"s1:m1:a", "s1:m2:b", "s2:m1:c", "s2:m2:d"}) put(*c, k, "v", 60'000, t0);
    EXPECT_EQ(*run(c->erase("s1", "m1")), 1u);
    EXPECT_EQ(*run(c->erase("", "m2")), 2u);
    EXPECT_FALSE(get(*c, "s1:m2:b", t0));
    EXPECT_TRUE(get(*c, "s2:m1:c", t0));
    EXPECT_EQ(*run(c->erase("", "")), 1u);
    EXPECT_FALSE(get(*c, "s2:m1:c", t0));
    EXPECT_TRUE(state::cache_key_matches("ab:cd:ef", "ab", ""));
    EXPECT_FALSE(state::cache_key_matches("ab:cd:ef", "cd", ""));
    EXPECT_FALSE(state::cache_key_matches("abcd", "", ""));
}

// ---- the memory session store (the cases shared with sqlite and redis: session_store_cases.hpp) ----

namespace {

namespace session_cases = toolgate::testing::session_cases;

constexpr std::int64_t session_tombstone = 60'000;

session_cases::store_env memory_session_env() {
    session_cases::store_env env;
    env.t0 = t0;
    env.tombstone_ms = session_tombstone;
    return env;
}

auto const run_here = [](auto op) { return run(std::move(op)); };

}  // namespace

TEST(MemorySessions, CreateAndGet) {
    auto store = state::make_memory_sessions(session_tombstone);
    EXPECT_EQ(store->kind(), "memory");
    session_cases::create_and_get(*store, run_here, memory_session_env());
}

TEST(MemorySessions, SaveIsVersioned) {
    auto store = state::make_memory_sessions(session_tombstone);
    session_cases::save_is_versioned(*store, run_here, memory_session_env());
}

TEST(MemorySessions, EraseLeavesATombstone) {
    auto store = state::make_memory_sessions(session_tombstone);
    session_cases::erase_leaves_a_tombstone(*store, run_here, memory_session_env());
}

TEST(MemorySessions, ExpiryThenTombstone) {
    auto store = state::make_memory_sessions(session_tombstone);
    session_cases::expiry_then_tombstone(*store, run_here, memory_session_env());
}

TEST(MemorySessions, ListPagesNewestFirst) {
    auto store = state::make_memory_sessions(session_tombstone);
    session_cases::list_pages_newest_first(*store, run_here, memory_session_env());
}

TEST(MemorySessions, ListReportsMorePastAnExpiredSession) {
    auto store = state::make_memory_sessions(session_tombstone);
    session_cases::list_reports_more_past_an_expired_session(*store, run_here, memory_session_env());
}

TEST(MemorySessions, Leases) {
    auto store = state::make_memory_sessions(session_tombstone);
    session_cases::leases(*store, run_here, memory_session_env());
}

TEST(MemorySessions, BoundedByMaxSessionsAndLapsedOnesMakeRoom) {
    auto store = state::make_memory_sessions(session_tombstone, 2);
    EXPECT_TRUE(run(store->create(session_cases::make_row("one", "k1", t0, 1'000))).value());
    EXPECT_TRUE(run(store->create(session_cases::make_row("two", "k1", t0 + 1, 600'000))).value());
    auto full = run(store->create(session_cases::make_row("three", "k1", t0 + 2, 600'000)));
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error(), state::errc::overloaded);
    // "one" expired at t0 + 1 s and its tombstone lapsed a minute later: swept to make room.
    EXPECT_TRUE(run(store->create(session_cases::make_row("three", "k1", t0 + 1'000 + session_tombstone, 600'000))).value());
    EXPECT_EQ(run(store->get("one", t0 + 1'000 + session_tombstone)).value().state, state::session_state::missing);
    EXPECT_EQ(run(store->get("two", t0 + 1'000 + session_tombstone)).value().state, state::session_state::live);
}

// ---- the memory document store (the cases shared with sqlite and redis: doc_store_cases.hpp) ----

TEST(MemoryDocs, InsertReplaceListRemove) {
    auto store = state::make_memory_docs();
    EXPECT_EQ(store->kind(), "memory");
    toolgate::testing::doc_cases::insert_replace_list_remove(*store, run_here);
}

TEST(MemorySessions, BoundedInBytesToo) {
    auto store = state::make_memory_sessions(session_tombstone, 100, 1000);
    auto big = [](std::string id) {
        state::session_row r;
        r.id = std::move(id);
        r.owner = "k";
        r.created_ms = r.updated_ms = t0;
        r.expires_ms = t0 + 60'000;
        r.version = 1;
        r.meta = "{}";
        r.messages = std::string(600, 'x');
        return r;
    };
    EXPECT_TRUE(run(store->create(big("a"))).value());
    auto full = run(store->create(big("b")));
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error(), make_error_code(state::errc::overloaded));
    // A deleted session gives its bytes back (its tombstone keeps only the id).
    EXPECT_TRUE(run(store->erase("a", "k", t0 + 1)).value());
    EXPECT_TRUE(run(store->create(big("b"))).value());
}
