#pragma once
// OAuth for upstream MCP servers, the parts that decide and encode (no I/O): the Bearer challenge
// of a 401/403 (RFC 6750, RFC 9728), where protected-resource and authorization-server metadata may
// be (RFC 9728, RFC 8414, OpenID discovery, and the 2025-03-26 fallbacks), what the metadata says,
// PKCE S256, the authorize URL with `resource` (RFC 8707), the token answer, scopes as sets, the
// client's authentication at the token endpoint. The driver is mcp/upstream_auth.hpp.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace toolgate::mcp::oauth {

// A Bearer challenge from WWW-Authenticate; parameters in any order, quoted or not.
struct challenge {
    bool bearer = false;
    std::string error;              // invalid_token, insufficient_scope, ...
    std::string scope;              // space-separated
    std::string resource_metadata;  // RFC 9728 §5.1
};
challenge parse_challenge(std::string_view www_authenticate);

// A URL split once: "http://host:port" (scheme and host lower case, default port left out), the
// path ("" for none, never ending in '/' unless it is "/"), and the query without '?'.
struct url_parts {
    std::string origin;
    std::string path;
    std::string query;
};
std::optional<url_parts> split_url(std::string_view url);
// True for http(s) URLs whose host is localhost or a loopback address.
bool is_loopback_url(std::string_view url);

// Where the server's protected resource metadata may be, in order: the challenge's hint, the
// path-based well-known URL, the root one (the root only when it is not the same as the path-based).
std::vector<std::string> resource_metadata_urls(std::string_view server_url, std::string_view hint);
// Where an authorization server's metadata may be, in order: RFC 8414 path insertion, OpenID path
// insertion, OpenID path appending (for an issuer with a path; never the root then), or the two root
// documents (issuer without a path).
std::vector<std::string> server_metadata_urls(std::string_view issuer);

// RFC 9728 §3.3 and the MCP spec: the metadata's `resource` must name this server: the same origin,
// and its path equal to the server URL's or a prefix of it on a '/' boundary.
bool resource_matches(std::string_view server_url, std::string_view resource);

struct resource_metadata {
    std::string resource;
    std::vector<std::string> authorization_servers;
    std::vector<std::string> scopes_supported;
};
std::optional<resource_metadata> parse_resource_metadata(std::string_view body);

struct server_metadata {
    std::string issuer;
    std::string authorization_endpoint;
    std::string token_endpoint;
    std::string registration_endpoint;  // empty: no dynamic registration
    std::string jwks_uri;
    std::vector<std::string> token_auth_methods;
    std::vector<std::string> grant_types;
    std::vector<std::string> code_challenge_methods;
    std::vector<std::string> scopes_supported;
    bool client_id_metadata_documents = false;
    bool iss_in_response = false;  // authorization_response_iss_parameter_supported (RFC 9207)
};
// nullopt when the body is not metadata (no token endpoint).
std::optional<server_metadata> parse_server_metadata(std::string_view body);
// 2025-03-26: a server without metadata has its endpoints at /authorize, /token, /register of its origin.
server_metadata fallback_metadata(std::string_view origin);

struct pkce {
    std::string verifier;   // 64 characters of [A-Za-z0-9-._~]
    std::string challenge;  // base64url(SHA-256(verifier))
};
pkce make_pkce();
std::string pkce_challenge(std::string_view verifier);

// application/x-www-form-urlencoded (RFC 6749 appendix B).
std::string form_encode(std::vector<std::pair<std::string, std::string>> const& fields);
// `base` with the fields appended to its query.
std::string with_query(std::string_view base, std::vector<std::pair<std::string, std::string>> const& fields);
// The value of one field of a query string ("" when absent), decoded.
std::string query_value(std::string_view query, std::string_view name);

struct token_answer {
    std::string access_token;
    std::string refresh_token;
    std::string scope;  // as granted; empty when the server did not say
    std::optional<std::chrono::seconds> lifetime;
    std::string error;  // empty on success: the OAuth error code and description, for the log
    std::string error_code;  // the OAuth error code alone (invalid_grant, ...), when the server gave one
};
// `any_type`: a token exchange's answer (RFC 8693), whose token_type may be N_A; else it must be Bearer.
token_answer parse_token_answer(int status, std::string_view body, bool any_type = false);

// Scopes as sets of space-separated words.
std::string merge_scopes(std::string_view a, std::string_view b);
bool covers(std::string_view have, std::string_view want);

enum class client_auth { none, secret_basic, secret_post, private_key_jwt };
std::optional<client_auth> parse_client_auth(std::string_view name);
std::string_view to_string(client_auth a);
// The method to use when the registration did not fix one: a key means private_key_jwt; a secret
// means client_secret_basic unless the server lists only client_secret_post; else none.
client_auth choose_client_auth(std::vector<std::string> const& supported, bool have_secret, bool have_key);

}  // namespace toolgate::mcp::oauth
