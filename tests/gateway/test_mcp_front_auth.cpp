// /mcp behind OAuth: what a verified token's claims decide (issuer, audience, times with the clock
// skew, scopes to tools), and the challenges and metadata an MCP client reads.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "gateway/mcp_front_auth.hpp"

namespace toolgate::gateway {
namespace {

namespace json = boost::json;

mcp_front_oauth settings() {
    mcp_front_oauth o;
    o.issuer = "https://login.example.com/";
    o.audience = "https://gw.example.com/mcp";
    o.scopes_to_tools = {{"tools.read", {"docs__*"}}, {"tools.admin", {"*"}}};
    return o;
}

json::object claims(std::string const& extra) {
    return json::parse(R"({"iss":"https://login.example.com","aud":"https://gw.example.com/mcp","sub":"ada","exp":2000,)" + extra + "}")
        .as_object();
}

TEST(McpFrontAuth, ClaimsDecide) {
    auto cfg = settings();
    struct row {
        std::string extra;
        std::int64_t now;
        int status;
        std::string error;
    } rows[] = {
        {R"("scope":"tools.read")", 1000, 200, ""},
        {R"("scope":"tools.read","nbf":1050)", 1000, 200, ""},            // within the 60 s skew
        {R"("scope":"tools.read","nbf":1100)", 1000, 401, "invalid_token"},
        {R"("scope":"tools.read")", 2059, 200, ""},                       // expired 59 s ago: skew
        {R"("scope":"tools.read")", 2060, 401, "invalid_token"},
        {R"("scope":"email profile")", 1000, 403, "insufficient_scope"},
        {R"("scp":["tools.admin"])", 1000, 200, ""},
        {R"("iss":"https://evil.example.com","scope":"tools.read")", 1000, 401, "invalid_token"},
    };
    for (auto const& r : rows) {
        auto c = claims(r.extra);
        if (r.extra.find("\"iss\"") != std::string::npos) c["iss"] = "https://evil.example.com";
        auto got = check_claims(c, cfg, r.now);
        EXPECT_EQ(got.status, r.status) << r.extra << " at " << r.now;
        EXPECT_EQ(got.error, r.error) << r.extra;
    }
    auto wrong_aud = claims(R"("scope":"tools.read")");
    wrong_aud["aud"] = "https://other.example.com/mcp";
    EXPECT_EQ(check_claims(wrong_aud, cfg, 1000).status, 401);
    wrong_aud["aud"] = json::parse(R"(["x","https://gw.example.com/mcp/"])");
    EXPECT_EQ(check_claims(wrong_aud, cfg, 1000).status, 200) << "an audience list holding ours";
    auto no_exp = claims(R"("scope":"tools.read")");
    no_exp.erase("exp");
    EXPECT_EQ(check_claims(no_exp, cfg, 1000).status, 401);
}

TEST(McpFrontAuth, ScopesGrantTools) {
    auto cfg = settings();
    auto narrow = check_claims(claims(R"("scope":"tools.read openid")"), cfg, 1000);
    ASSERT_TRUE(narrow.identity);
    EXPECT_EQ(narrow.identity->name, "oauth:ada");
    ASSERT_TRUE(narrow.identity->tools);
    EXPECT_EQ(*narrow.identity->tools, std::vector<std::string>{"docs__*"});
    auto all = check_claims(claims(R"("scope":"tools.read tools.admin")"), cfg, 1000);
    ASSERT_TRUE(all.identity);
    EXPECT_FALSE(all.identity->tools) << "\"*\" grants every tool";
}

TEST(McpFrontAuth, ChallengesAndMetadata) {
    token_verifier v(settings());
    EXPECT_EQ(v.metadata_url(), "https://gw.example.com/.well-known/oauth-protected-resource/mcp");
    token_check none;
    none.status = 401;
    EXPECT_EQ(v.challenge(none), R"(Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/mcp")");
    token_check scope;
    scope.status = 403;
    scope.error = "insufficient_scope";
    scope.description = "no scope";
    EXPECT_NE(v.challenge(scope).find(R"(error="insufficient_scope")"), std::string::npos);
    EXPECT_NE(v.challenge(scope).find(R"(scope="tools.read tools.admin")"), std::string::npos);
    auto md = json::parse(v.metadata_json()).as_object();
    EXPECT_EQ(md.at("resource"), "https://gw.example.com/mcp");
    EXPECT_EQ(md.at("authorization_servers").as_array().at(0), "https://login.example.com/");
    EXPECT_EQ(md.at("scopes_supported").as_array().size(), 2u);
    EXPECT_TRUE(token_verifier::looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"));
    EXPECT_FALSE(token_verifier::looks_like_jwt("sk-toolgate-0123456789abcdef"));
    mcp_front_config plain;
    EXPECT_EQ(unauthorized_challenge(plain), "Bearer");
}

}  // namespace
}  // namespace toolgate::gateway
