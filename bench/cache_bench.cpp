// The response cache's own costs, in process: the exact key of a ~1 KB request, a memory-store
// hit and store, and a semantic lookup over 100,000 cached vectors (1536 and 256 dimensions), each
// against the exact lookup measured in the same run.
//
// usage: build/bench/cache_bench [--entries 100000] [--lookups 20]
#include <boost/json/parse.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gateway/policy/cache_parts.hpp"
#include "gateway/policy/semantic_index.hpp"
#include "state/cache_store.hpp"

namespace cd = toolgate::gateway::policy::cache_detail;
using clock_type = std::chrono::steady_clock;

namespace {

double us_since(clock_type::time_point t0, std::size_t n) {
    return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() / double(n);
}

std::string request_text(int i) {
    std::string system;
    for (int k = 0; k < 20; ++k) system += "You are a helpful assistant. ";
    return R"({"model":"gpt-4o-mini","temperature":0.2,"messages":[{"role":"system","content":")" + system +
           R"("},{"role":"user","content":"Summarise the benefits of gateways in one line, take )" + std::to_string(i) + R"(."}]})";
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t entries = 100'000, lookups = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--entries")) entries = std::stoul(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--lookups")) lookups = std::stoul(argv[i + 1]);
    }

    // The exact key: parse excluded (the gateway has the body parsed already), canonical form + SHA-256.
    constexpr std::size_t keys = 20'000;
    std::vector<boost::json::object> bodies;
    for (std::size_t i = 0; i < 100; ++i) bodies.push_back(boost::json::parse(request_text(int(i))).as_object());
    std::vector<std::string> made;
    made.reserve(keys);
    auto t0 = clock_type::now();
    for (std::size_t i = 0; i < keys; ++i)
        made.push_back(cd::entry_key("key:app", "gpt-4o-mini", "openai/gpt-4o-mini", cd::request_fingerprint(bodies[i % 100], false)));
    double key_us = us_since(t0, keys);

    // The memory store: a hit and a store of a 600-byte answer.
    auto store = toolgate::state::make_memory_cache(256u << 20);
    std::string answer(600, 'a');
    t0 = clock_type::now();
    for (std::size_t i = 0; i < keys; ++i) {
        auto v = answer;
        store->put_now(made[i], v, "key:app", 600'000, 0);
    }
    double put_us = us_since(t0, keys);
    std::size_t hits = 0;
    t0 = clock_type::now();
    for (std::size_t i = 0; i < keys; ++i) hits += (*store->get_now(made[i], 1)) ? 1 : 0;
    double get_us = us_since(t0, keys);
    double exact_us = key_us + get_us;

    std::printf("exact key (canonical JSON + SHA-256 of a %zu-byte request): %.2f us\n", request_text(0).size(), key_us);
    std::printf("memory store: hit %.3f us, store %.3f us (%zu/%zu found)\n", get_us, put_us, hits, keys);
    std::printf("exact lookup (key + hit): %.2f us  = 1.0x\n", exact_us);

    std::mt19937 rng(42);
    std::normal_distribution<float> gauss;
    for (std::size_t dims : {std::size_t(1536), std::size_t(256)}) {
        toolgate::gateway::policy::semantic_index idx(entries);
        auto t1 = clock_type::now();
        for (std::size_t i = 0; i < entries; ++i) {
            std::vector<float> v(dims);
            for (auto& x : v) x = gauss(rng);
            idx.add("group", "k" + std::to_string(i), std::move(v), 1'000'000);
            if (i % 1024 == 0) idx.wait_idle();  // (the queue is bounded: keep every entry)
        }
        idx.wait_idle();
        double add_us = us_since(t1, entries);
        std::vector<float> q(dims);
        std::size_t found = 0;
        auto t2 = clock_type::now();
        for (std::size_t i = 0; i < lookups; ++i) {
            for (auto& x : q) x = gauss(rng);
            found += idx.best("group", q, 0.95f, 0) ? 1 : 0;
        }
        double best_us = us_since(t2, lookups);
        std::printf("semantic lookup, %zu entries x %zu dims (one context, %s): %.2f ms = %.0fx the exact lookup; "
                    "add %.2f us (indexing thread); vectors %.0f MiB; %zu false hits\n",
                    idx.size(), dims, idx.graph_groups() ? "hnsw graph" : "flat scan", best_us / 1000, best_us / exact_us, add_us,
                    double(entries) * double(dims) * 4 / (1 << 20), found);
    }
    return 0;
}
