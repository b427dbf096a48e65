// Each guardrail, and all seven together, on a 4 KB and a 64 KB prompt: p50 and p99 of one check
// in microseconds, next to what the gateway spends anyway on the same request in the same run
// (parsing the request body's JSON), as a ratio.
//   cmake --build build --target guardrails_bench && build/bench/guardrails_bench [--runs 400]
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "guardrails/guardrail.hpp"

namespace gr = toolgate::guardrails;
namespace json = boost::json;
using clk = std::chrono::steady_clock;

namespace {

// Prose with the things guardrails look for only rarely: numbers, an address, code, punctuation.
std::string make_prompt(std::size_t bytes, unsigned seed) {
    static char const* words[] = {"the", "quarterly", "report", "shows", "revenue", "growth", "of", "12.5%", "in",
                                  "Europe", "while", "costs", "rose", "by", "3", "percent;", "please", "summarise",
                                  "the", "main", "drivers", "and", "list", "risks", "for", "next", "year.", "See",
                                  "section", "4.2", "and", "the", "table", "below:", "int", "main()", "{", "return",
                                  "0;", "}", "Contact", "the", "finance", "team", "before", "Friday."};
    std::mt19937 rng(seed);
    std::string out;
    out.reserve(bytes + 16);
    while (out.size() < bytes) {
        out += words[rng() % (sizeof words / sizeof *words)];
        out += (rng() % 17 == 0) ? "\n" : " ";
    }
    out.resize(bytes);
    return out;
}

json::object config_of(char const* text) { return json::parse(text).as_object(); }

struct subject {
    std::string name;
    std::vector<std::shared_ptr<gr::guardrail const>> rails;
};

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
    int runs = 400;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], "--runs") == 0) runs = std::max(10, std::atoi(argv[i + 1]));

    gr::build_context ctx;
    struct spec {
        char const* name;
        char const* config;
    };
    spec specs[] = {
        {"word-filter", R"({"words":["darn","heck","blast","crikey","drat"]})"},
        {"max-token", R"({"max_input_tokens":32000,"max_output_tokens":4096,"max_messages":200})"},
        {"regex-guard", R"({"patterns":["(?i)project\\s+aurora","(?i)internal\\s+only","\\bTKT-\\d{6}\\b"]})"},
        {"pii-redact", R"({"entities":["email","phone","credit_card","iban","us_ssn","ip_address"],"action":"redact"})"},
        {"secret-scan", R"({"action":"block"})"},
        {"prompt-shield", R"({"threshold":0.7})"},
        {"schema-guard", R"({"schema":{"type":"object"}})"},
    };
    std::vector<subject> subjects;
    subject all{"all seven", {}};
    for (auto const& s : specs) {
        auto g = std::shared_ptr<gr::guardrail const>(gr::make(s.name, config_of(s.config), ctx));
        subjects.push_back(subject{s.name, {g}});
        all.rails.push_back(g);
    }
    subjects.push_back(all);

    std::printf("guardrails, one check of a request with one user message; p50 / p99 in us over %d runs;\n"
                "ratio: the check's p50 against parsing the same request's JSON body (what every request costs)\n\n",
                runs);
    std::printf("%-14s %10s %10s %10s %10s %10s %10s\n", "guardrail", "4KB p50", "4KB p99", "x parse", "64KB p50",
                "64KB p99", "x parse");
    for (auto const& sub : subjects) {
        std::printf("%-14s", sub.name.c_str());
        for (std::size_t size : {std::size_t(4 * 1024), std::size_t(64 * 1024)}) {
            auto text = make_prompt(size, 7);
            json::object msg;
            msg["role"] = "user";
            msg["content"] = text;
            json::array msgs;
            msgs.push_back(msg);
            json::object body;
            body["model"] = "m";
            body["messages"] = msgs;
            auto raw = json::serialize(body);
            std::vector<double> parse_us, check_us;
            for (int r = 0; r < runs; ++r) {
                auto t0 = clk::now();
                auto parsed = json::parse(raw);
                auto t1 = clk::now();
                parse_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
                auto& b = parsed.as_object();
                std::vector<gr::text_part> parts;
                parts.push_back(gr::text_part{gr::part_kind::user, 0, text});
                gr::scope sc;
                auto t2 = clk::now();
                for (auto const& g : sub.rails) {
                    if (g->name() == "schema-guard") {
                        std::vector<gr::text_part> answer;
                        answer.push_back(gr::text_part{gr::part_kind::assistant, 0, R"({"total":42})"});
                        (void)g->check(answer, &b, sc);
                    } else {
                        (void)g->check(parts, &b, sc);
                    }
                }
                auto t3 = clk::now();
                check_us.push_back(std::chrono::duration<double, std::micro>(t3 - t2).count());
            }
            double p50 = percentile(check_us, 0.5), p99 = percentile(check_us, 0.99);
            std::printf(" %10.1f %10.1f %9.2fx", p50, p99, p50 / std::max(0.001, percentile(parse_us, 0.5)));
        }
        std::printf("\n");
    }
    return 0;
}
