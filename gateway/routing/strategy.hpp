#pragma once
// Routing strategies as pure decisions: given a pool's settings, its shared state, what the request
// looks like and what each target can do right now, produce the order in which targets are tried.
// No I/O, no clock reads, no random numbers drawn here: time and a uniform number come in as
// arguments, so every choice is deterministic under test. The router (router.cpp) drives the I/O.
//
// Every mode yields an ordered list: its choice first, then the other eligible targets in the
// order the mode prefers (listed order unless said otherwise), which the router falls back through
// on a retryable failure. `single` yields only its one target.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace toolgate::gateway::routing {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

enum class mode { single, fallback, loadbalance, conditional, least_latency, cost_optimized, content_based, ab_test };
std::optional<mode> parse_mode(std::string_view text);  // "least-latency", "cost-optimized", ...
std::string_view to_string(mode m);

// conditional: first match wins; no match: the first target.
struct condition {
    enum class kind { model, model_prefix, has_tools, input_tokens_gt, header, time_of_day };
    kind what = kind::model;
    std::string value;           // model, model_prefix: the name or prefix; header: the expected value
    std::string header;          // header: its lower-case name
    bool flag = true;            // has_tools: the wanted value
    std::int64_t tokens = 0;     // input_tokens_gt: the bound
    int from_minute = 0;         // time_of_day "HH:MM-HH:MM" in UTC, minutes since midnight; the
    int to_minute = 0;           //   range may wrap midnight (22:00-06:00); from == to: never
    std::size_t target = 0;      // index into the pool's targets
};

// content-based: on the request's prompt text; first match wins; no match: the first target.
struct content_condition {
    enum class kind { prompt_contains, prompt_not_contains, prompt_regex };
    kind what = kind::prompt_contains;
    std::string value;                        // contains / not_contains: case-sensitive substring
    std::shared_ptr<re2::RE2 const> regex;    // prompt_regex: compiled once at start-up (RE2: linear time)
    std::size_t target = 0;
};

// ab-test: a variant per client, weighted, sticky by the client's key or `user`.
struct variant {
    std::string label;
    std::size_t target = 0;
    unsigned weight = 1;
};

// The parts of a pool's settings the strategies read (the router's pool settings hold one).
struct strategy_settings {
    mode how = mode::fallback;
    std::vector<unsigned> weights;  // one per target (loadbalance); all >= 0, sum > 0
    std::vector<condition> conditions;
    std::vector<content_condition> content_conditions;
    std::vector<variant> variants;
    // least-latency
    double explore = 0.05;                       // share of picks that go to a target other than the fastest
    milliseconds latency_window{5 * 60 * 1000};  // samples older than this are forgotten
};

// What a strategy may look at in the request.
struct route_input {
    std::string_view model;                      // as requested, after alias resolution
    bool has_tools = false;
    std::int64_t input_tokens = 0;               // estimate
    std::vector<std::pair<std::string, std::string>> const* headers = nullptr;  // lower-case names
    std::string_view prompt;                     // system and user text, joined (content-based)
    std::string_view sticky_key;                 // the client's key or `user`; empty: none (ab-test)
    int minute_of_day = 0;                       // UTC, 0..1439
};

// Per-target facts the caller fills in for this request.
struct target_view {
    bool eligible = true;                 // its breaker admits calls and its provider serves the model
    std::optional<double> input_price;    // USD per million input tokens; nullopt: unpriced
    std::int64_t context_window = 0;      // tokens; 0: unknown (assumed to fit)
};

struct choice {
    std::vector<std::size_t> order;  // target indices to try, best first; empty: none eligible
    std::string variant;             // ab-test: the label assigned to this client
};

// The mutable state of one pool, shared by all worker threads: the smooth weighted round robin's
// current weights and the latency samples. Thread-safe (a short critical section per call).
class pool_state {
public:
    explicit pool_state(std::size_t targets, std::size_t max_samples = 64);

    void record_latency(std::size_t target, milliseconds latency, clock::time_point now);
    // The median of the target's samples within the window; nullopt without any.
    std::optional<milliseconds> p50(std::size_t target, milliseconds window, clock::time_point now);

private:
    friend choice choose(strategy_settings const&, pool_state&, route_input const&, std::span<target_view const>,
                         clock::time_point, double);
    struct sample {
        clock::time_point at;
        milliseconds latency;
    };
    // The median of a target's ring, computed when a sample arrives, and the age of its oldest
    // sample: a decision reads it in O(1) while every sample is within the window, and prunes the
    // ring only when one has aged out.
    struct cached {
        std::optional<milliseconds> median;
        clock::time_point oldest{};
    };
    std::optional<milliseconds> median_locked(std::size_t target, milliseconds window, clock::time_point now);
    void recompute_locked(std::size_t target);

    std::mutex mu_;
    std::vector<std::int64_t> current_;          // smooth weighted round robin
    std::vector<std::vector<sample>> latency_;   // ring per target, oldest overwritten
    std::vector<std::size_t> next_;              // ring write positions
    std::vector<cached> cache_;
    std::size_t max_samples_ = 64;
};

// The order to try targets in. `unit` is a uniform random number in [0, 1) (least-latency's
// exploration; ab-test without a sticky key). `targets.size()` is the pool's target count.
choice choose(strategy_settings const& s, pool_state& state, route_input const& in, std::span<target_view const> targets,
              clock::time_point now, double unit);

// Does the condition hold for this request?
bool matches(condition const& c, route_input const& in);
bool matches(content_condition const& c, std::string_view prompt);

// FNV-1a, 64 bit: stable across runs and machines (ab-test stickiness must survive restarts).
std::uint64_t stable_hash(std::string_view text);

// A rough token estimate for routing decisions: about four bytes per token.
std::int64_t estimate_tokens(std::size_t text_bytes);

}  // namespace toolgate::gateway::routing
