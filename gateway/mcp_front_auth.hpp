#pragma once
// /mcp as an OAuth-protected resource (MCP authorization 2025-11-25, RFC 9728): the protected
// resource metadata, the Bearer challenges, and the verification of JWT access tokens against the
// issuer's JWK set (RS256, ES256, EdDSA; fetched from the issuer's metadata, cached, fetched again
// for an unknown key id at most every 30 s, and every 10 minutes): signature, `iss`, `aud`, `exp`
// and `nbf` with a bounded clock skew; `alg: none` and a key of another algorithm refused. The
// token's scopes decide the tools its caller sees and may call (`scopes_to_tools`).
//
// Thread-safe: verify() may be awaited on any worker thread (the key cache has a short lock).
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/config.hpp"

namespace toolgate::gateway {

struct token_check {
    int status = 200;           // 200, 401 (no or bad token) or 403 (a good token without the scope)
    std::string error;          // invalid_token | insufficient_scope ("" when no token was given)
    std::string description;    // for the client; never the token
    std::optional<mcp_front_key> identity;  // 200: the caller (sub) and its tools
};

// The claims decide (no I/O, no signature): the issuer, the audience, the times, then the scopes.
token_check check_claims(boost::json::object const& claims, mcp_front_oauth const& cfg, std::int64_t now_unix);

// Where the protected resource metadata of `cfg` is: "/.well-known/oauth-protected-resource" + the
// audience's path, on the audience's origin.
std::string resource_metadata_url(mcp_front_oauth const& cfg);
// The WWW-Authenticate of a 401 without a token: with resource_metadata when /mcp is behind OAuth.
std::string unauthorized_challenge(mcp_front_config const& cfg);

class token_verifier {
public:
    explicit token_verifier(mcp_front_oauth cfg);
    ~token_verifier();

    // A bearer token that is a JWT (three base64url parts); others may be the gateway's own keys.
    static bool looks_like_jwt(std::string_view token);
    boost::asio::awaitable<token_check> verify(std::string token);

    // WWW-Authenticate for a 401 or 403 (with resource_metadata, and the scopes for a 403).
    std::string challenge(token_check const& c) const;
    // Where the protected resource metadata is ("/.well-known/oauth-protected-resource" + the
    // audience's path, on the audience's origin), and the document itself.
    std::string metadata_url() const;
    std::string metadata_json() const;

    struct impl;  // (the key cache; public for the fetch coroutine in the .cpp)

private:
    std::shared_ptr<impl> impl_;
};

}  // namespace toolgate::gateway
