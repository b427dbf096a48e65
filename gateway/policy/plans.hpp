#pragma once
// What a model turn asks of the rate limits and the budgets, decided by plain functions
// (limits.cpp, budget.cpp) for the one filter that asks the stores (admission.cpp). Internal to
// gateway/policy.
#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/policy/filters.hpp"
#include "state/turn_gate.hpp"

namespace toolgate::gateway::policy {

// ---- rate limits (limits.cpp) ----

struct planned_checks {
    std::vector<state::limit_check> checks;
    struct label {
        std::string_view field;  // "requests_per_minute"
        std::string_view what;   // "key", "team", "user", "model", "the gateway"
        std::string_view name;
    };
    std::vector<label> labels;  // formatted only when a check refuses
    std::vector<limit_unit> units;
    struct slot {
        std::string counter;
        std::int64_t limit;
        label why;
    };
    std::vector<slot> concurrency;
    std::vector<state::limit_check> token_checks;  // the token checks again, corrected after the turn
};

// `model` and the scope's key, team and user must outlive the plan (its labels point into them).
planned_checks plan_checks(access_runtime const& rt, request_scope const& scope, std::string const& model,
                           bool first_turn, std::int64_t tokens);
std::string user_of(boost::json::object const& body);
// x-ratelimit-{limit,remaining,reset}-{requests,tokens} from the tightest verdict of each unit.
void rate_headers(header_list* headers, planned_checks const& p, state::admit_result const& r, std::int64_t now);
// 429 rate_limit_exceeded (retry_after_ms < 0: the request can never fit).
api_error limited(planned_checks::label const& why, std::int64_t retry_after_ms, header_list* headers);
api_error limits_down();

// ---- budgets (budget.cpp) ----

// Saturated at a billion dollars.
std::int64_t to_micros(double usd);

struct budget_plan {
    std::vector<state::budget_line> lines;  // every line of the key and its team: all record spend
    struct label {
        std::string_view what;  // "key" or "team"
        std::string_view name;
        bool daily;
        double usd;
    };
    // The lines with a budget, reserved on before the turn (the others only record spend).
    std::vector<state::budget_line> held;
    std::vector<label> held_labels;  // formatted only when a line refuses
    bool limited() const { return !held.empty(); }
};

budget_plan plan_budget(request_scope const& scope, std::int64_t now);
api_error over_budget(budget_plan::label const& why, std::int64_t spent, std::int64_t limit, header_list* headers);
api_error unpriced(std::string const& model);
api_error ledger_down();

// Counts the text a streamed turn delivered, for a turn that ends without usage.
class counting_sink final : public providers::chat_sink {
public:
    explicit counting_sink(providers::chat_sink& inner) : inner_(inner) {}
    asio::awaitable<bool> on_chunk(json::object& chunk, std::string_view raw) override;
    asio::awaitable<bool> flush() override { return inner_.flush(); }
    asio::awaitable<bool> on_comment(std::string_view text) override { return inner_.on_comment(text); }
    std::size_t bytes() const { return bytes_; }

private:
    void count(json::object const& chunk);
    providers::chat_sink& inner_;
    std::size_t bytes_ = 0;
};

// What the turn cost: its usage priced, or (a turn abandoned without usage) its input estimate and
// the text it streamed; nothing when no provider was called or it failed before answering.
double turn_cost(turn_context const& ctx, turn_result const& r, std::int64_t input, std::size_t streamed, bool cancelled);
// On the images routes: the images a request asks for (its `n`, else 1) and the ones an answer
// holds (its `data`), which the catalog's per_image price applies to.
std::int64_t images_asked(turn_context const& ctx);
std::int64_t images_made(turn_context const& ctx, turn_result const& r);
state::spend_entry spend_of(turn_context const& ctx, request_scope const& scope, std::int64_t now);

}  // namespace toolgate::gateway::policy
