// The in-process stores, and the small helpers every store shares (hashing, UTC periods).
#include "state/memory.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>

namespace toolgate::state {

// ---- shared helpers ----

std::string sha256_hex(std::string_view text) {
    // Fetched once: OpenSSL 3 looks the algorithm up again on every EVP_sha256() digest otherwise,
    // and every request hashes its key. One context per thread, reset for each digest, spares an
    // allocation per call.
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    struct context {
        EVP_MD_CTX* c = EVP_MD_CTX_new();
        ~context() { EVP_MD_CTX_free(c); }
    };
    thread_local context ctx;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!ctx.c || EVP_DigestInit_ex2(ctx.c, md, nullptr) != 1 || EVP_DigestUpdate(ctx.c, text.data(), text.size()) != 1 ||
        EVP_DigestFinal_ex(ctx.c, digest, &len) != 1)
        EVP_Digest(text.data(), text.size(), digest, &len, md, nullptr);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(len * 2, '0');
    for (unsigned i = 0; i < len; ++i) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    return out;
}

namespace {

std::tm utc_tm(std::int64_t ms) {
    std::time_t t = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return tm;
}

std::int64_t utc_ms(int year, int month0, int day) {
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month0;
    tm.tm_mday = day;
    return static_cast<std::int64_t>(timegm(&tm)) * 1000;
}

}  // namespace

namespace {

// The day and month names of one UTC day, kept per thread: every priced turn asks for them.
struct day_names {
    std::int64_t day = INT64_MIN;  // days since the epoch
    std::string day_name, month_name;
};

day_names const& names_of(std::int64_t ms) {
    thread_local day_names cached;
    auto day = ms >= 0 ? ms / 86'400'000 : (ms - 86'399'999) / 86'400'000;
    if (cached.day != day) {
        auto tm = utc_tm(ms);
        char buf[40];
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
        cached.day_name = buf;
        cached.month_name.assign(buf, 7);
        cached.day = day;
    }
    return cached;
}

}  // namespace

std::string utc_day(std::int64_t ms) { return names_of(ms).day_name; }
std::string utc_month(std::int64_t ms) { return names_of(ms).month_name; }

std::int64_t utc_day_end(std::int64_t ms) {
    auto tm = utc_tm(ms);
    return utc_ms(tm.tm_year + 1900, tm.tm_mon, tm.tm_mday + 1);  // timegm normalizes the 32nd
}

std::int64_t utc_month_end(std::int64_t ms) {
    auto tm = utc_tm(ms);
    return utc_ms(tm.tm_year + 1900, tm.tm_mon + 1, 1);
}

std::string_view to_string(log_kind k) {
    switch (k) {
        case log_kind::request: return "request";
        case log_kind::turn: return "turn";
        case log_kind::tool: return "tool";
        case log_kind::audit: return "audit";
    }
    return "request";
}

std::optional<log_kind> log_kind_from(std::string_view s) {
    for (auto k : std::array<log_kind, 4>{log_kind::request, log_kind::turn, log_kind::tool, log_kind::audit})
        if (to_string(k) == s) return k;
    return std::nullopt;
}

// ---- ledger_book ----

struct ledger_book::impl {
    struct line_state {
        std::int64_t spent = 0;
        // reservation id -> (micros, expiry)
        std::unordered_map<std::string, std::pair<std::int64_t, std::int64_t>> held;
        std::int64_t held_sum = 0;
        std::int64_t first_expiry = INT64_MAX;  // no lease lapses before this
    };
    // Looked up by views of the caller's strings: no key is built for a line that exists.
    struct line_less {
        using is_transparent = void;
        using view = std::pair<std::string_view, std::string_view>;
        static view v(std::pair<std::string, std::string> const& k) { return {k.first, k.second}; }
        static view v(view k) { return k; }
        template <class A, class B>
        bool operator()(A const& a, B const& b) const { return v(a) < v(b); }
    };
    mutable std::mutex mu;
    std::map<std::pair<std::string, std::string>, line_state, line_less> lines;

    line_state& line(std::string_view scope, std::string_view period) {
        auto it = lines.find(line_less::view{scope, period});
        if (it == lines.end()) it = lines.emplace(std::make_pair(std::string(scope), std::string(period)), line_state{}).first;
        return it->second;
    }

    // What open reservations hold; lapsed ones (their request never settled) are dropped first.
    // The sum is kept, so this walks the reservations only when one may have lapsed.
    static std::int64_t reserved(line_state& s, std::int64_t now_ms) {
        if (now_ms < s.first_expiry) return s.held_sum;
        s.first_expiry = INT64_MAX;
        for (auto it = s.held.begin(); it != s.held.end();) {
            if (it->second.second <= now_ms) {
                s.held_sum -= it->second.first;
                it = s.held.erase(it);
                continue;
            }
            s.first_expiry = std::min(s.first_expiry, it->second.second);
            ++it;
        }
        return s.held_sum;
    }

    static void hold(line_state& s, std::string const& id, std::int64_t micros, std::int64_t expiry) {
        release(s, id);
        s.held.emplace(id, std::make_pair(micros, expiry));
        s.held_sum += micros;
        s.first_expiry = std::min(s.first_expiry, expiry);
    }

    static void release(line_state& s, std::string const& id) {
        auto it = s.held.find(id);
        if (it == s.held.end()) return;
        s.held_sum -= it->second.first;
        s.held.erase(it);
    }
};

ledger_book::ledger_book() : impl_(std::make_unique<impl>()) {}
ledger_book::~ledger_book() = default;

reserve_result ledger_book::reserve(std::vector<budget_line> const& lines, std::string const& reservation,
                                    std::int64_t micros, std::int64_t now_ms, std::int64_t lease_ms) {
    reserve_result out;
    std::lock_guard lock(impl_->mu);
    std::vector<impl::line_state*> states;
    states.reserve(lines.size());
    out.allowed = true;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        auto& s = impl_->line(lines[i].scope, lines[i].period);
        states.push_back(&s);
        auto used = s.spent + impl::reserved(s, now_ms);
        out.spent_micros.push_back(used);
        if (out.allowed && used + micros > lines[i].limit_micros) {
            out.allowed = false;
            out.rejected = i;
        }
    }
    if (!out.allowed) return out;
    for (auto* s : states) impl::hold(*s, reservation, micros, now_ms + lease_ms);
    return out;
}

void ledger_book::settle(std::vector<budget_line> const& lines, std::string const& reservation, std::int64_t actual) {
    std::lock_guard lock(impl_->mu);
    for (auto const& l : lines) {
        auto& s = impl_->line(l.scope, l.period);
        impl::release(s, reservation);
        s.spent += actual;
    }
}

void ledger_book::load(std::string const& scope, std::string const& period, std::int64_t micros) {
    std::lock_guard lock(impl_->mu);
    impl_->line(scope, period).spent += micros;
}

std::int64_t ledger_book::spent(std::string const& scope, std::string const& period) const {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->lines.find(impl::line_less::view{scope, period});
    return it == impl_->lines.end() ? 0 : it->second.spent;
}

namespace {

// ---- counters ----

class memory_counters final : public counter_store {
public:
    explicit memory_counters(memory_options const& o) : per_stripe_(std::max<std::size_t>(16, o.max_counters / stripes)) {}

    std::string_view kind() const override { return "memory"; }

    asio::awaitable<result<admit_result>> admit(std::vector<limit_check> const& checks, std::int64_t now_ms) override {
        co_return admit_locked(checks, now_ms);
    }

    asio::awaitable<result<void>> adjust(limit_check const& check, std::int64_t at_ms, std::int64_t delta,
                                         std::int64_t now_ms) override {
        adjust_now(check, at_ms, delta, now_ms);
        co_return result<void>();
    }

    std::optional<result<admit_result>> admit_now(std::vector<limit_check> const& checks, std::int64_t now_ms) override {
        return admit_locked(checks, now_ms);
    }

    bool adjust_now(limit_check const& check, std::int64_t at_ms, std::int64_t delta, std::int64_t now_ms) override {
        auto& st = stripe_of(check.key);
        std::lock_guard lock(st.mu);
        if (auto* w = st.find(check.key)) window_add(*w, check.spec, at_ms, now_ms, delta);
        return true;
    }

    asio::awaitable<result<bool>> acquire(std::string const& key, std::int64_t limit, std::string const& lease,
                                          std::int64_t now_ms, std::int64_t lease_ms) override {
        auto& st = stripe_of(key);
        std::lock_guard lock(st.mu);
        auto& held = st.leases[key];
        for (auto it = held.begin(); it != held.end();) it = it->second <= now_ms ? held.erase(it) : std::next(it);
        if (static_cast<std::int64_t>(held.size()) >= limit) co_return false;
        held[lease] = now_ms + lease_ms;
        co_return true;
    }

    asio::awaitable<result<void>> release(std::string const& key, std::string const& lease) override {
        auto& st = stripe_of(key);
        std::lock_guard lock(st.mu);
        if (auto it = st.leases.find(key); it != st.leases.end()) {
            it->second.erase(lease);
            if (it->second.empty()) st.leases.erase(it);
        }
        co_return result<void>();
    }

private:
    static constexpr std::size_t stripes = 16;

    struct entry {
        window_counts counts;
        window_spec spec;
        std::list<std::string>::iterator lru;
    };
    struct stripe {
        std::mutex mu;
        std::unordered_map<std::string, entry> map;
        std::list<std::string> lru;  // most recently used first
        std::unordered_map<std::string, std::unordered_map<std::string, std::int64_t>> leases;

        window_counts* find(std::string const& key) {
            auto it = map.find(key);
            return it == map.end() ? nullptr : &it->second.counts;
        }
    };

    stripe& stripe_of(std::string const& key) { return stripes_[std::hash<std::string>{}(key) % stripes]; }

    window_counts& touch(stripe& st, limit_check const& c, std::int64_t now_ms, std::vector<limit_check> const& call) {
        auto it = st.map.find(c.key);
        if (it != st.map.end()) {
            st.lru.splice(st.lru.begin(), st.lru, it->second.lru);
            it->second.spec = c.spec;
            return it->second.counts;
        }
        if (st.map.size() >= per_stripe_) evict(st, now_ms, call);
        st.lru.push_front(c.key);
        auto& e = st.map[c.key];
        e.spec = c.spec;
        e.lru = st.lru.begin();
        return e.counts;
    }

    // Idle counters go first (forgetting them changes nothing). Counters still counting are kept
    // up to twice the bound; past that the least recently used one goes (its key's count restarts:
    // the price of a memory bound under a flood of distinct keys). A counter of the current call is
    // never dropped (the call holds a pointer to it).
    void evict(stripe& st, std::int64_t now_ms, std::vector<limit_check> const& call) {
        auto in_call = [&call](std::string const& key) {
            for (auto const& c : call)
                if (c.key == key) return true;
            return false;
        };
        for (auto it = st.lru.rbegin(); it != st.lru.rend(); ++it) {
            auto m = st.map.find(*it);
            if (!in_call(*it) && window_idle(m->second.counts, m->second.spec, now_ms)) {
                st.lru.erase(m->second.lru);
                st.map.erase(m);
                return;
            }
        }
        if (st.map.size() < 2 * per_stripe_) return;
        for (auto it = st.lru.rbegin(); it != st.lru.rend(); ++it) {
            if (in_call(*it)) continue;
            auto m = st.map.find(*it);
            st.lru.erase(m->second.lru);
            st.map.erase(m);
            return;
        }
    }

    result<admit_result> admit_locked(std::vector<limit_check> const& checks, std::int64_t now_ms) {
        admit_result out;
        out.allowed = true;
        out.verdicts.resize(checks.size());
        // Every stripe involved is locked, in index order (no deadlock), so the check and the
        // count are one step for all the checks.
        std::array<bool, stripes> need{};
        for (auto const& c : checks) need[std::hash<std::string>{}(c.key) % stripes] = true;
        std::array<std::unique_lock<std::mutex>, stripes> locks;
        for (std::size_t i = 0; i < stripes; ++i)
            if (need[i]) locks[i] = std::unique_lock(stripes_[i].mu);
        std::vector<window_counts*> counts(checks.size());
        for (std::size_t i = 0; i < checks.size(); ++i) {
            counts[i] = &touch(stripe_of(checks[i].key), checks[i], now_ms, checks);
            out.verdicts[i] = window_check(*counts[i], checks[i].spec, now_ms, checks[i].amount);
            if (!out.verdicts[i].allowed && out.allowed) {
                out.allowed = false;
                out.rejected = i;
            }
        }
        if (!out.allowed) return out;
        for (std::size_t i = 0; i < checks.size(); ++i) window_add(*counts[i], checks[i].spec, now_ms, now_ms, checks[i].amount);
        return out;
    }

    std::size_t per_stripe_;
    std::array<stripe, stripes> stripes_;
};

// ---- ledger ----

class memory_ledger final : public ledger {
public:
    std::string_view kind() const override { return "memory"; }
    asio::awaitable<result<reserve_result>> reserve(std::vector<budget_line> const& lines, std::string const& reservation,
                                                    std::int64_t micros, std::int64_t now_ms, std::int64_t lease_ms) override {
        co_return book_.reserve(lines, reservation, micros, now_ms, lease_ms);
    }
    asio::awaitable<result<void>> settle(std::vector<budget_line> const& lines, std::string const& reservation,
                                         std::int64_t actual_micros, spend_entry const&) override {
        book_.settle(lines, reservation, actual_micros);
        co_return result<void>();
    }
    asio::awaitable<result<std::int64_t>> spent(std::string const& scope, std::string const& period) override {
        co_return book_.spent(scope, period);
    }
    std::optional<result<reserve_result>> reserve_now(std::vector<budget_line> const& lines, std::string const& reservation,
                                                      std::int64_t micros, std::int64_t now_ms, std::int64_t lease_ms) override {
        return book_.reserve(lines, reservation, micros, now_ms, lease_ms);
    }
    bool settle_now(std::vector<budget_line> const& lines, std::string const& reservation, std::int64_t actual_micros,
                    spend_entry const&) override {
        book_.settle(lines, reservation, actual_micros);
        return true;
    }
    bool reserves_at_once() const override { return true; }
    bool settles_at_once() const override { return true; }

private:
    ledger_book book_;
};

// ---- keys ----

class memory_keys final : public key_store {
public:
    std::string_view kind() const override { return "memory"; }
    asio::awaitable<result<std::optional<stored_key>>> find_hash(std::string const& hash) override {
        std::lock_guard lock(mu_);
        std::optional<stored_key> out;
        for (auto const& [id, k] : keys_)
            if (k.hash == hash) out = k;
        co_return out;
    }
    asio::awaitable<result<std::optional<stored_key>>> get(std::string const& id) override {
        std::lock_guard lock(mu_);
        std::optional<stored_key> out;
        if (auto it = keys_.find(id); it != keys_.end()) out = it->second;
        co_return out;
    }
    asio::awaitable<result<std::vector<stored_key>>> list() override {
        std::lock_guard lock(mu_);
        std::vector<stored_key> out;
        for (auto const& [id, k] : keys_) out.push_back(k);
        co_return out;
    }
    asio::awaitable<result<void>> put(stored_key const& key) override {
        std::lock_guard lock(mu_);
        keys_[key.id] = key;
        co_return result<void>();
    }
    asio::awaitable<result<bool>> remove(std::string const& id) override {
        std::lock_guard lock(mu_);
        co_return keys_.erase(id) > 0;
    }

private:
    std::mutex mu_;
    std::map<std::string, stored_key> keys_;
};

// ---- log ----

bool matches(log_record const& r, log_query const& q, std::int64_t until) {
    if (q.kind ? r.kind != *q.kind : r.kind == log_kind::audit) return false;
    if (!q.request_id.empty() && r.request_id != q.request_id) return false;
    if (!q.key.empty() && r.key != q.key) return false;
    if (!q.team.empty() && r.team != q.team) return false;
    if (!q.model.empty() && r.model != q.model) return false;
    if (q.status && r.status != *q.status) return false;
    return r.ts_ms >= q.since_ms && r.ts_ms <= until;
}

class memory_log final : public log_store {
public:
    explicit memory_log(memory_options const& o) : cap_(std::max<std::size_t>(1, o.log_rows)) {}
    std::string_view kind() const override { return "memory"; }
    void append(log_record rec) override {
        std::lock_guard lock(mu_);
        rows_.push_back(log_row{++next_, std::move(rec)});
        if (rows_.size() > cap_) rows_.pop_front();
        stats_.written.fetch_add(1, std::memory_order_relaxed);
    }
    asio::awaitable<result<std::vector<log_row>>> query(log_query q) override {
        std::lock_guard lock(mu_);
        std::vector<log_row> out;
        auto until = q.until_ms ? q.until_ms : INT64_MAX;
        auto limit = std::min<std::size_t>(q.limit ? q.limit : 100, 1000);
        for (auto it = rows_.rbegin(); it != rows_.rend() && out.size() < limit; ++it) {
            if (q.before_id && it->id >= q.before_id) continue;
            if (matches(it->rec, q, until)) out.push_back(*it);
        }
        co_return out;
    }
    asio::awaitable<void> flush() override { co_return; }
    log_stats const& stats() const override { return stats_; }

private:
    std::size_t cap_;
    std::mutex mu_;
    std::deque<log_row> rows_;
    std::int64_t next_ = 0;
    log_stats stats_;
};

}  // namespace

std::shared_ptr<counter_store> make_memory_counters(memory_options const& opts) {
    return std::make_shared<memory_counters>(opts);
}
std::shared_ptr<ledger> make_memory_ledger() { return std::make_shared<memory_ledger>(); }
std::shared_ptr<key_store> make_memory_keys() { return std::make_shared<memory_keys>(); }
std::shared_ptr<log_store> make_memory_log(memory_options const& opts) { return std::make_shared<memory_log>(opts); }

}  // namespace toolgate::state
