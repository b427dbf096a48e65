// The route patterns and the agent-loop planning of gateway/api, without sockets.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <set>

#include "agentloop/config.hpp"

#include "gateway/api/chat_plan.hpp"
#include "gateway/api/request.hpp"

using namespace toolgate;
using namespace toolgate::gateway;
namespace json = boost::json;

TEST(match_route, fixed_segment_and_rest_parameters) {
    route_params p;
    EXPECT_TRUE(match_route("/v1/chat/completions", "/v1/chat/completions", p));
    EXPECT_FALSE(match_route("/v1/chat/completions", "/v1/chat/completions/x", p));
    EXPECT_FALSE(match_route("/v1/chat/completions", "/v1/chat", p));
    EXPECT_TRUE(match_route("/v1/sessions/{id}", "/v1/sessions/abc", p));
    EXPECT_EQ(p.at("id"), "abc");
    EXPECT_FALSE(match_route("/v1/sessions/{id}", "/v1/sessions/", p)) << "a parameter is never empty";
    EXPECT_FALSE(match_route("/v1/sessions/{id}", "/v1/sessions/a/b", p)) << "{id} is one segment";
    EXPECT_TRUE(match_route("/admin/mcp/servers/{name}/authorize", "/admin/mcp/servers/gh/authorize", p));
    EXPECT_EQ(p.at("name"), "gh");
    EXPECT_FALSE(match_route("/admin/mcp/servers/{name}/authorize", "/admin/mcp/servers/gh/other", p));
    EXPECT_TRUE(match_route("/v1/models/{id*}", "/v1/models/openai/gpt-4o", p));
    EXPECT_EQ(p.at("id"), "openai/gpt-4o");
    EXPECT_FALSE(match_route("/v1/models/{id*}", "/v1/models/", p));
}

namespace {

struct fixture {
    gateway_config cfg;
    injected_catalog catalog;
    inbound_request req;

    fixture() {
        cfg.mcp_servers.resize(1);
        cfg.mcp_servers[0].name = "demo";
        auto cat = std::make_shared<mcp::catalog>();
        for (auto const* name : {"demo__echo", "demo__add"}) {
            mcp::tool_entry t;
            t.exposed = name;
            t.server = "demo";
            t.name = std::string(name).substr(6);
            t.definition["description"] = "a tool";
            cat->by_exposed[t.exposed] = cat->tools.size();
            cat->tools.push_back(t);
            catalog.definitions.push_back(openai_tool(cat->tools.back()));
        }
        catalog.source = cat;
    }

    std::optional<api_error> plan(json::object& body, loop_plan& out, bool& changed) {
        return plan_loop(cfg, req, catalog, body, out, changed);
    }
};

json::object body_of(std::string_view text) { return json::parse(text).as_object(); }

std::vector<std::string> tool_names(json::object const& body) {
    std::vector<std::string> out;
    if (auto const* t = body.if_contains("tools"))
        for (auto const& e : t->as_array()) out.emplace_back(e.at("function").at("name").as_string());
    return out;
}

}  // namespace

TEST(plan_loop, offers_the_mcp_tools_after_the_clients_own) {
    fixture f;
    auto body = body_of(R"({"model":"m","messages":[{"role":"user","content":"hi"}],
        "tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]})");
    loop_plan plan;
    bool changed = false;
    EXPECT_FALSE(f.plan(body, plan, changed));
    EXPECT_TRUE(plan.run);
    EXPECT_TRUE(changed);
    EXPECT_EQ(tool_names(body), (std::vector<std::string>{"get_weather", "demo__echo", "demo__add"}));
    EXPECT_EQ(plan.tools, (std::vector<std::string>{"demo__echo", "demo__add"}));
    EXPECT_EQ(plan.client_tools.count("get_weather"), 1u);
}

TEST(plan_loop, a_client_tool_of_the_same_name_wins) {
    fixture f;
    auto body = body_of(R"({"model":"m","messages":[{"role":"user","content":"hi"}],
        "tools":[{"type":"function","function":{"name":"demo__echo","parameters":{}}}]})");
    loop_plan plan;
    bool changed = false;
    EXPECT_FALSE(f.plan(body, plan, changed));
    EXPECT_EQ(plan.tools, (std::vector<std::string>{"demo__add"}));
    EXPECT_EQ(tool_names(body), (std::vector<std::string>{"demo__echo", "demo__add"}));
}

TEST(plan_loop, headers_and_tool_choice_switch_the_loop_off_or_narrow_it) {
    struct row {
        std::vector<std::pair<std::string, std::string>> headers;
        char const* body;
        bool run;
        std::size_t tools;
    };
    row const rows[] = {
        {{{"x-toolgate-mcp-servers", "none"}}, R"({"messages":[{"role":"user","content":"x"}]})", false, 0},
        {{{"x-toolgate-mcp-tools", "none"}}, R"({"messages":[{"role":"user","content":"x"}]})", false, 0},
        {{{"x-toolgate-mcp-tools", "demo__add"}}, R"({"messages":[{"role":"user","content":"x"}]})", true, 1},
        {{{"x-toolgate-mcp-servers", "demo"}}, R"({"messages":[{"role":"user","content":"x"}]})", true, 2},
        {{}, R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"none"})", false, 0},
    };
    for (auto const& r : rows) {
        fixture f;
        f.req.headers = r.headers;
        auto body = body_of(r.body);
        loop_plan plan;
        bool changed = false;
        EXPECT_FALSE(f.plan(body, plan, changed)) << r.body;
        EXPECT_EQ(plan.run, r.run) << r.body;
        EXPECT_EQ(plan.tools.size(), r.tools) << r.body;
    }
}

TEST(plan_loop, wrong_requests_get_their_400) {
    struct row {
        std::vector<std::pair<std::string, std::string>> headers;
        char const* body;
        char const* code;
    };
    row const rows[] = {
        {{{"x-toolgate-mcp-servers", "nope"}}, R"({"messages":[{"role":"user","content":"x"}]})", "unknown_mcp_server"},
        {{}, R"({"messages":[{"role":"user","content":"x"}],"tools":{}})", "invalid_tools"},
        {{}, R"({"messages":[{"role":"user","content":"x"}],"n":2})", "unsupported_n"},
        {{{"x-toolgate-max-iterations", "0"}}, R"({"messages":[{"role":"user","content":"x"}]})", "invalid_limit_header"},
        {{{"x-toolgate-tool-timeout", "soon"}}, R"({"messages":[{"role":"user","content":"x"}]})", "invalid_limit_header"},
        {{{"x-toolgate-max-cost", "-1"}}, R"({"messages":[{"role":"user","content":"x"}]})", "invalid_limit_header"},
    };
    for (auto const& r : rows) {
        fixture f;
        f.req.headers = r.headers;
        auto body = body_of(r.body);
        loop_plan plan;
        bool changed = false;
        auto err = f.plan(body, plan, changed);
        ASSERT_TRUE(err) << r.body;
        EXPECT_EQ(err->status, 400);
        EXPECT_EQ(err->code, r.code);
    }
}

TEST(apply_limit_headers, a_request_tightens_limits_and_never_loosens_them) {
    agentloop::limits l;
    l.max_iterations = 10;
    l.tool_timeout = std::chrono::seconds(60);
    inbound_request req;
    req.headers = {{"x-toolgate-max-iterations", "3"}, {"x-toolgate-tool-timeout", "5s"}};
    EXPECT_FALSE(apply_limit_headers(req, l));
    EXPECT_EQ(l.max_iterations, 3u);
    EXPECT_EQ(l.tool_timeout, std::chrono::seconds(5));
    req.headers = {{"x-toolgate-max-iterations", "50"}, {"x-toolgate-tool-timeout", "10m"}};
    EXPECT_FALSE(apply_limit_headers(req, l));
    EXPECT_EQ(l.max_iterations, 3u);
    EXPECT_EQ(l.tool_timeout, std::chrono::seconds(5));
    req.headers = {{"x-toolgate-max-tool-result-bytes", "10"}};
    EXPECT_FALSE(apply_limit_headers(req, l));
    EXPECT_EQ(l.max_tool_result_bytes, 256u) << "clamped to the smallest useful size";
}

TEST(limit_descriptors, each_limit_is_described_once_and_each_header_tightens_its_own_limit) {
    std::set<std::string_view> keys, headers;
    for (auto const& d : agentloop::limit_descriptors()) {
        EXPECT_TRUE(keys.insert(d.key).second) << d.key;
        if (!d.header.empty()) {
            EXPECT_TRUE(headers.insert(d.header).second) << d.header;
        }
        EXPECT_LE(d.min, d.max) << d.key;
        if (d.header.empty()) continue;
        agentloop::limits l;
        l.max_total_tokens = 1000;
        l.max_cost_usd = 10;
        auto before = d.get(l);
        inbound_request req;
        bool duration = d.kind == agentloop::limit_descriptor::unit::duration;
        req.headers = {{std::string(d.header), duration ? std::string("1s") : std::string("1")}};
        EXPECT_FALSE(apply_limit_headers(req, l)) << d.header;
        EXPECT_LT(d.get(l), before) << d.header << " tightens " << d.key;
        for (auto const& other : agentloop::limit_descriptors()) {
            if (&other == &d) continue;
            agentloop::limits fresh;
            fresh.max_total_tokens = 1000;
            fresh.max_cost_usd = 10;
            EXPECT_EQ(other.get(l), other.get(fresh)) << d.header << " left " << other.key << " alone";
        }
    }
    EXPECT_EQ(headers.size(), 7u);
}
