// OAuth to upstream MCP servers, the sans-io parts: challenges, discovery URLs, resource checks,
// metadata, PKCE, encoding, token answers, scopes, client authentication.
#include <gtest/gtest.h>

#include "mcp/oauth.hpp"

namespace toolgate::mcp::oauth {
namespace {

TEST(OAuthChallenge, ParametersInAnyOrderQuotedOrNot) {
    auto c = parse_challenge(R"(Bearer error="invalid_token", error_description="Missing Authorization header", scope="mcp:basic", resource_metadata="http://localhost:1/.well-known/oauth-protected-resource/mcp")");
    EXPECT_TRUE(c.bearer);
    EXPECT_EQ(c.error, "invalid_token");
    EXPECT_EQ(c.scope, "mcp:basic");
    EXPECT_EQ(c.resource_metadata, "http://localhost:1/.well-known/oauth-protected-resource/mcp");
    // error last, as the step-up server sends it; unquoted values; odd spacing and case.
    c = parse_challenge(R"(bearer   scope="mcp:basic mcp:write",resource_metadata=https://x/m , error=insufficient_scope)");
    EXPECT_TRUE(c.bearer);
    EXPECT_EQ(c.error, "insufficient_scope");
    EXPECT_EQ(c.scope, "mcp:basic mcp:write");
    EXPECT_EQ(c.resource_metadata, "https://x/m");
    EXPECT_FALSE(parse_challenge("Basic realm=\"x\"").bearer);
    EXPECT_FALSE(parse_challenge("").bearer);
    EXPECT_EQ(parse_challenge(R"(Bearer scope="a \"b\"")").scope, "a \"b\"");
    EXPECT_EQ(parse_challenge(R"(Bearer scope="unterminated)").scope, "unterminated");
}

TEST(OAuthDiscovery, ResourceMetadataUrlsInOrder) {
    using v = std::vector<std::string>;
    EXPECT_EQ(resource_metadata_urls("http://localhost:3000/mcp", ""),
              (v{"http://localhost:3000/.well-known/oauth-protected-resource/mcp",
                 "http://localhost:3000/.well-known/oauth-protected-resource"}));
    EXPECT_EQ(resource_metadata_urls("https://h.example/mcp/", "https://h.example/custom.json"),
              (v{"https://h.example/custom.json", "https://h.example/.well-known/oauth-protected-resource/mcp",
                 "https://h.example/.well-known/oauth-protected-resource"}));
    EXPECT_EQ(resource_metadata_urls("https://H.example:443", "not a url"), (v{"https://h.example/.well-known/oauth-protected-resource"}));
    // A URL with credentials is not a server to discover (its origin without them could name another host).
    EXPECT_TRUE(resource_metadata_urls("http://user@evil@h.example/mcp", "").empty());
    EXPECT_FALSE(split_url("https://user:pass@h.example/mcp"));
}

TEST(OAuthDiscovery, ServerMetadataUrlsNeverTheRootForAnIssuerWithAPath) {
    using v = std::vector<std::string>;
    EXPECT_EQ(server_metadata_urls("http://localhost:9/tenant1"),
              (v{"http://localhost:9/.well-known/oauth-authorization-server/tenant1",
                 "http://localhost:9/.well-known/openid-configuration/tenant1",
                 "http://localhost:9/tenant1/.well-known/openid-configuration"}));
    EXPECT_EQ(server_metadata_urls("https://as.example/"),
              (v{"https://as.example/.well-known/oauth-authorization-server", "https://as.example/.well-known/openid-configuration"}));
    EXPECT_TRUE(server_metadata_urls("ftp://x").empty());
}

TEST(OAuthDiscovery, ResourceMustNameThisServer) {
    EXPECT_TRUE(resource_matches("http://localhost:3000/mcp", "http://localhost:3000/mcp"));
    EXPECT_TRUE(resource_matches("http://localhost:3000/mcp", "http://localhost:3000"));
    EXPECT_TRUE(resource_matches("http://LOCALHOST:3000/mcp/", "http://localhost:3000/mcp"));
    EXPECT_TRUE(resource_matches("https://h.example/a/mcp", "https://h.example:443/a"));
    EXPECT_FALSE(resource_matches("http://localhost:3000/mcp", "https://evil.example.com/mcp"));
    EXPECT_FALSE(resource_matches("http://localhost:3000/mcp", "http://localhost:3001/mcp"));
    EXPECT_FALSE(resource_matches("http://localhost:3000/mcp", "https://localhost:3000/mcp"));
    EXPECT_FALSE(resource_matches("http://localhost:3000/mcpx", "http://localhost:3000/mcp"));
    EXPECT_FALSE(resource_matches("http://localhost:3000/mcp", "http://localhost:3000/mcp/sub"));
    EXPECT_FALSE(resource_matches("http://localhost:3000/mcp", ""));
}

TEST(OAuthDiscovery, Metadata) {
    auto prm = parse_resource_metadata(R"({"resource":"http://h/mcp","authorization_servers":["http://as/t"],"scopes_supported":["a","b"]})");
    ASSERT_TRUE(prm);
    EXPECT_EQ(prm->authorization_servers.at(0), "http://as/t");
    EXPECT_EQ(prm->scopes_supported.size(), 2u);
    EXPECT_FALSE(parse_resource_metadata(R"({"authorization_servers":[]})"));
    EXPECT_FALSE(parse_resource_metadata("<html>"));

    auto md = parse_server_metadata(R"({"issuer":"http://as","authorization_endpoint":"http://as/authorize","token_endpoint":"http://as/token",
        "registration_endpoint":"http://as/register","token_endpoint_auth_methods_supported":["client_secret_post"],
        "client_id_metadata_document_supported":true})");
    ASSERT_TRUE(md);
    EXPECT_EQ(md->token_endpoint, "http://as/token");
    EXPECT_TRUE(md->client_id_metadata_documents);
    EXPECT_FALSE(parse_server_metadata(R"({"issuer":"http://as"})")) << "no token endpoint";
    EXPECT_FALSE(parse_server_metadata(R"J({"token_endpoint":"javascript:alert(1)"})J"));
    auto fb = fallback_metadata("http://localhost:7");
    EXPECT_EQ(fb.authorization_endpoint, "http://localhost:7/authorize");
    EXPECT_EQ(fb.token_endpoint, "http://localhost:7/token");
    EXPECT_EQ(fb.registration_endpoint, "http://localhost:7/register");
}

TEST(OAuthPkce, S256OfTheVerifier) {
    // RFC 7636 appendix B.
    EXPECT_EQ(pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    auto a = make_pkce(), b = make_pkce();
    EXPECT_EQ(a.verifier.size(), 64u);
    EXPECT_NE(a.verifier, b.verifier);
    EXPECT_EQ(a.challenge, pkce_challenge(a.verifier));
    for (char c : a.verifier) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || std::string_view("-._~").find(c) != std::string_view::npos);
}

TEST(OAuthEncoding, FormAndQuery) {
    EXPECT_EQ(form_encode({{"redirect_uri", "http://127.0.0.1:1/oauth/callback"}, {"scope", "a b"}}),
              "redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Foauth%2Fcallback&scope=a%20b");
    EXPECT_EQ(with_query("https://as/authorize", {{"x", "1"}}), "https://as/authorize?x=1");
    EXPECT_EQ(with_query("https://as/authorize?tenant=t", {{"x", "1"}}), "https://as/authorize?tenant=t&x=1");
    EXPECT_EQ(query_value("code=a%2Bb&state=s+1", "code"), "a+b");
    EXPECT_EQ(query_value("code=a%2Bb&state=s+1", "state"), "s 1");
    EXPECT_EQ(query_value("code=%zz", "code"), "%zz");
    EXPECT_EQ(query_value("x", "code"), "");
}

TEST(OAuthTokens, Answers) {
    auto t = parse_token_answer(200, R"({"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","scope":"a b"})");
    EXPECT_TRUE(t.error.empty());
    EXPECT_EQ(t.access_token, "at");
    EXPECT_EQ(t.refresh_token, "rt");
    EXPECT_EQ(t.lifetime, std::chrono::seconds(3600));
    EXPECT_EQ(parse_token_answer(200, R"({"access_token":"at","expires_in":"60"})").lifetime, std::chrono::seconds(60));
    EXPECT_FALSE(parse_token_answer(200, R"({"access_token":"at"})").lifetime);
    // Lifetimes past about 34 years are held there (a double past int64 once overflowed the cast).
    for (char const* huge : {R"({"access_token":"at","expires_in":3.6e35})", R"({"access_token":"at","expires_in":9223372036854775807})",
                             R"({"access_token":"at","expires_in":18446744073709551615})", R"({"access_token":"at","expires_in":"9000000000000"})"})
        EXPECT_EQ(parse_token_answer(200, huge).lifetime, std::chrono::seconds(std::int64_t(1) << 30)) << huge;
    EXPECT_EQ(parse_token_answer(400, R"({"error":"invalid_grant","error_description":"code used"})").error, "invalid_grant: code used");
    EXPECT_FALSE(parse_token_answer(200, R"({"access_token":"at","token_type":"mac"})").error.empty());
    EXPECT_FALSE(parse_token_answer(200, R"({"token_type":"bearer"})").error.empty());
    EXPECT_FALSE(parse_token_answer(502, "<html>").error.empty());
}

TEST(OAuthScopes, SetsOfWords) {
    EXPECT_EQ(merge_scopes("mcp:basic", "mcp:basic  mcp:write"), "mcp:basic mcp:write");
    EXPECT_EQ(merge_scopes("", ""), "");
    EXPECT_TRUE(covers("a b c", "c a"));
    EXPECT_TRUE(covers("a", ""));
    EXPECT_FALSE(covers("a", "a b"));
}

TEST(OAuthClientAuth, Choice) {
    using v = std::vector<std::string>;
    EXPECT_EQ(choose_client_auth(v{}, true, false), client_auth::secret_basic);
    EXPECT_EQ(choose_client_auth(v{"client_secret_post"}, true, false), client_auth::secret_post);
    EXPECT_EQ(choose_client_auth(v{"client_secret_post", "client_secret_basic"}, true, false), client_auth::secret_basic);
    EXPECT_EQ(choose_client_auth(v{"none"}, false, false), client_auth::none);
    EXPECT_EQ(choose_client_auth(v{}, false, true), client_auth::private_key_jwt);
    for (auto a : {client_auth::none, client_auth::secret_basic, client_auth::secret_post, client_auth::private_key_jwt})
        EXPECT_EQ(parse_client_auth(to_string(a)), a);
    EXPECT_FALSE(parse_client_auth("tls_client_auth"));
}

}  // namespace
}  // namespace toolgate::mcp::oauth
