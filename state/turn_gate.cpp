// The turn gate over the stores' own calls (turn_gate.hpp): memory counters with a memory or
// SQLite ledger. Coroutine bodies follow the GCC 12 rules in CONTRIBUTING.md.
#include "state/turn_gate.hpp"

#include <stdexcept>
#include <utility>

namespace toolgate::state {

namespace {

bool has(std::vector<budget_line> const* lines) { return lines && !lines->empty(); }

class store_gate final : public turn_gate {
public:
    store_gate(std::shared_ptr<counter_store> counters, std::shared_ptr<ledger> ledger)
        : counters_(std::move(counters)), ledger_(std::move(ledger)) {
        std::vector<limit_check> none;
        if (!counters_->admit_now(none, 0)) throw std::invalid_argument("the store gate needs counters that answer at once");
    }

    std::optional<turn_admission> open_now(turn_open const& t) override {
        if (has(t.lines) && !ledger_->reserves_at_once()) return std::nullopt;
        turn_admission out;
        out.admitted = *counters_->admit_now(*t.checks, t.now_ms);
        if (!allowed(out.admitted) || !has(t.lines)) return out;
        out.reserved = *ledger_->reserve_now(*t.lines, *t.reservation, t.micros, t.now_ms, t.lease_ms);
        if (out.admitted && refused(*out.reserved)) uncount(t);
        return out;
    }

    asio::awaitable<turn_admission> open(turn_open const& t) override {
        if (auto at_once = open_now(t)) co_return std::move(*at_once);
        // Only a ledger that must be awaited gets here (open_now answered every other turn).
        turn_admission out;
        out.admitted = *counters_->admit_now(*t.checks, t.now_ms);
        if (!allowed(out.admitted)) co_return out;
        out.reserved = co_await ledger_->reserve(*t.lines, *t.reservation, t.micros, t.now_ms, t.lease_ms);
        if (out.admitted && refused(*out.reserved)) uncount(t);
        co_return out;
    }

    bool close_now(turn_close const& t) override {
        if (has(t.lines) && !ledger_->settles_at_once()) return false;
        adjust(t);
        if (has(t.lines)) ledger_->settle_now(*t.lines, *t.reservation, t.micros, *t.who);
        return true;
    }

    // A settle that fails is tried once more; a reservation left behind lapses with its lease.
    asio::awaitable<result<void>> close(turn_close const& t) override {
        if (close_now(t)) co_return result<void>();
        adjust(t);
        auto settled = co_await ledger_->settle(*t.lines, *t.reservation, t.micros, *t.who);
        if (!settled) settled = co_await ledger_->settle(*t.lines, *t.reservation, t.micros, *t.who);
        co_return settled;
    }

private:
    // A store error is not a refusal: the caller decides (on_unavailable) whether to go on.
    static bool allowed(result<admit_result> const& r) { return !r || r->allowed; }
    static bool refused(result<reserve_result> const& r) { return r && !r->allowed; }

    // The budget refused: the turn's counts are taken back.
    void uncount(turn_open const& t) {
        for (auto const& c : *t.checks) counters_->adjust_now(c, t.now_ms, -c.amount, t.now_ms);
    }

    void adjust(turn_close const& t) {
        if (!t.adjust || t.delta == 0) return;
        for (auto const& c : *t.adjust) counters_->adjust_now(c, t.at_ms, t.delta, t.now_ms);
    }

    std::shared_ptr<counter_store> counters_;
    std::shared_ptr<ledger> ledger_;
};

}  // namespace

std::shared_ptr<turn_gate> make_store_gate(std::shared_ptr<counter_store> counters, std::shared_ptr<ledger> ledger) {
    return std::make_shared<store_gate>(std::move(counters), std::move(ledger));
}

}  // namespace toolgate::state
