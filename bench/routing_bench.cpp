// Routing decision cost: ns per choose() with 100 targets, for each strategy, against the cheapest
// decision (fallback: the eligible targets in listed order) measured in the same run; and the
// router's share of a request, as a fraction of a 50 us gateway round trip.
//
// usage: routing_bench [--targets 100] [--decisions 200000]
#include <re2/re2.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gateway/routing/strategy.hpp"

using namespace toolgate::gateway::routing;

namespace {

struct result {
    char const* name;
    double ns;
};

double run(strategy_settings const& s, std::size_t targets, std::size_t decisions, route_input const& in) {
    pool_state state(targets);
    std::vector<target_view> views(targets);
    for (std::size_t i = 0; i < targets; ++i) {
        views[i].eligible = i % 10 != 3;  // a few breakers open
        if (i % 7 != 0) views[i].input_price = 0.1 + double(i % 13) * 0.05;
        views[i].context_window = (i % 5 == 0) ? 8000 : 128000;
    }
    auto now = clock::now();
    for (std::size_t i = 0; i < targets; ++i)
        for (int k = 0; k < 32; ++k) state.record_latency(i, milliseconds(20 + (i * 7 + k) % 90), now);
    std::size_t sink = 0;
    auto start = std::chrono::steady_clock::now();
    for (std::size_t d = 0; d < decisions; ++d) {
        auto c = choose(s, state, in, views, now, double(d % 1000) / 1000.0);
        sink += c.order.empty() ? 0 : c.order.front();
    }
    auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    if (sink == 42) std::puts("");  // keeps the loop
    return ns / double(decisions);
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t targets = 100, decisions = 200000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--targets")) targets = std::strtoul(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--decisions")) decisions = std::strtoul(argv[i + 1], nullptr, 10);
    }
    std::string prompt(2000, 'x');
    prompt += " please file this invoice under accounts";
    std::vector<std::pair<std::string, std::string>> headers{{"x-tier", "gold"}};
    route_input in;
    in.model = "gpt-4o-mini";
    in.has_tools = true;
    in.input_tokens = 12000;
    in.headers = &headers;
    in.prompt = prompt;
    in.sticky_key = "key:sk-client-1234";
    in.minute_of_day = 600;

    auto base = [&](mode m) {
        strategy_settings s;
        s.how = m;
        s.weights.resize(targets);
        for (std::size_t i = 0; i < targets; ++i) s.weights[i] = 1 + unsigned(i % 4);
        return s;
    };
    std::vector<result> results;
    results.push_back({"fallback", run(base(mode::fallback), targets, decisions, in)});
    results.push_back({"single", run(base(mode::single), targets, decisions, in)});
    results.push_back({"loadbalance", run(base(mode::loadbalance), targets, decisions, in)});
    {
        auto s = base(mode::conditional);
        for (std::size_t i = 0; i < 20; ++i) {
            condition c;
            c.what = i % 2 ? condition::kind::model_prefix : condition::kind::header;
            c.value = i == 19 ? "gpt-" : "nomatch-" + std::to_string(i);
            c.header = "x-tier";
            c.target = i * 3 % targets;
            s.conditions.push_back(c);
        }
        results.push_back({"conditional (20)", run(s, targets, decisions, in)});
    }
    results.push_back({"least-latency", run(base(mode::least_latency), targets, decisions, in)});
    results.push_back({"cost-optimized", run(base(mode::cost_optimized), targets, decisions, in)});
    {
        auto s = base(mode::content_based);
        for (std::size_t i = 0; i < 5; ++i) {
            content_condition c;
            c.what = content_condition::kind::prompt_regex;
            c.value = i == 4 ? "(?i)invoice" : "(?i)never" + std::to_string(i);
            c.regex = std::make_shared<re2::RE2>(c.value);
            c.target = i;
            s.content_conditions.push_back(c);
        }
        results.push_back({"content-based (5 re, 2 KB)", run(s, targets, decisions, in)});
    }
    {
        auto s = base(mode::ab_test);
        s.variants = {{"a", 0, 90}, {"b", 1, 10}};
        results.push_back({"ab-test", run(s, targets, decisions, in)});
    }
    double ref = results.front().ns;
    std::printf("routing decision cost, %zu targets (10%% ineligible), %zu decisions each, one thread\n", targets, decisions);
    std::printf("%-28s%12s%14s%21s\n", "mode", "ns/decision", "vs fallback", "of a 50 us request");
    for (auto const& r : results)
        std::printf("%-28s%12.0f%13.2fx%20.2f%%\n", r.name, r.ns, r.ns / ref, r.ns / 50000.0 * 100.0);
    return 0;
}
