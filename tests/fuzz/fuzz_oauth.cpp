// What an MCP server, an authorization server or an OAuth client sends toolgate before anything is
// verified: WWW-Authenticate challenges, metadata documents, token answers, redirect queries, JWTs
// and JWK sets. Oracles: nothing crashes; what toolgate encodes it decodes back (form fields,
// base64url); scope sets cover their parts; a token checked against keys parsed from the input
// never verifies with an algorithm the key does not have.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/jwt.hpp"
#include "common/text.hpp"
#include "mcp/oauth.hpp"

namespace oauth = toolgate::mcp::oauth;
namespace jwt = toolgate::jwt;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1 || size > 64 * 1024) return 0;
    std::string_view in(reinterpret_cast<char const*>(data + 1), size - 1);
    switch (data[0] % 6) {
        case 0: {
            auto c = oauth::parse_challenge(in);
            check(c.bearer || (c.error.empty() && c.scope.empty() && c.resource_metadata.empty()));
            auto merged = oauth::merge_scopes(c.scope, c.error);
            check(oauth::covers(merged, c.scope) && oauth::covers(merged, c.error) && oauth::covers(c.scope, c.scope));
            break;
        }
        case 1: {
            auto md = oauth::parse_server_metadata(in);
            if (md) check(oauth::split_url(md->token_endpoint).has_value());
            (void)oauth::parse_resource_metadata(in);
            auto t = oauth::parse_token_answer(200, in);
            if (t.error.empty()) check(!t.access_token.empty());
            (void)oauth::parse_token_answer(400, in);
            break;
        }
        case 2: {
            // Two URLs split at the first newline: discovery lists and the resource check.
            auto nl = in.find('\n');
            auto a = in.substr(0, nl);
            auto b = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
            for (auto const& u : oauth::resource_metadata_urls(a, b)) check(oauth::split_url(u).has_value());
            for (auto const& u : oauth::server_metadata_urls(a)) check(oauth::split_url(u).has_value());
            if (oauth::resource_matches(a, b)) check(oauth::split_url(a) && oauth::split_url(b));
            (void)oauth::is_loopback_url(a);
            break;
        }
        case 3: {
            std::string value(in);
            auto q = oauth::form_encode({{"code", value}, {"state", "s"}});
            check(oauth::query_value(q, "code") == value);
            check(oauth::query_value(q, "state") == "s");
            (void)oauth::query_value(in, "code");
            break;
        }
        case 4: {
            std::string raw(in);
            check(jwt::base64url_decode(toolgate::base64(raw, true)) == raw);
            (void)jwt::base64url_decode(in);
            break;
        }
        case 5: {
            // A JWK set, then a token, split at the first newline.
            auto nl = in.find('\n');
            auto keys = jwt::parse_jwks(in.substr(0, nl));
            auto token = jwt::decode(nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1));
            if (token)
                for (auto const& k : keys) {
                    check(!jwt::verify(k, "none", *token));
                    for (auto alg : {"RS256", "ES256", "EdDSA"})
                        if (alg != k.alg) check(!jwt::verify(k, alg, *token));
                }
            break;
        }
    }
    return 0;
}
