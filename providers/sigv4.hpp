#pragma once
// AWS Signature Version 4 (the documented algorithm, for services other than S3), sans-io: the
// canonical request, the string to sign, the signing key and the Authorization header of one HTTP
// request. The Bedrock provider signs every request with it; tests/providers/test_aws.cpp checks
// it against AWS's published test vectors. Secrets never leave this module except as the HMAC.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace toolgate::providers::sigv4 {

struct credentials {
    std::string access_key_id;
    std::string secret_access_key;
    std::string session_token;  // temporary credentials; empty otherwise
};

struct request {
    std::string method;
    std::string path;   // as sent on the wire (already percent-encoded once), e.g. /model/a%3A0/converse
    std::string query;  // as sent, without '?'; "" for none
    // The headers to sign (host included), as they will be sent; names in any case.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string_view body;
};

struct scope {
    std::string region;   // us-east-1
    std::string service;  // the signing name: "bedrock" for bedrock-runtime
    std::string amz_date; // 20150830T123600Z (UTC)
};

// What signing adds to the request: X-Amz-Date, X-Amz-Security-Token (with a session token) and
// Authorization, in that order.
std::vector<std::pair<std::string, std::string>> sign(request const& r, scope const& s, credentials const& c);

// The steps, for tests and for the log of a refused signature (none of them holds a secret). A
// session token is signed as the x-amz-security-token header (Bedrock requires it signed).
std::string canonical_request(request const& r, scope const& s, std::string_view session_token);
std::string string_to_sign(std::string_view canonical, scope const& s);
std::string signing_key_hex(std::string_view secret, scope const& s);
std::string signature(std::string_view secret, std::string_view to_sign, scope const& s);

// Pieces: the canonical URI of a wire path (dot segments and empty segments removed, then every
// byte but unreserved ones and '/' percent-encoded again), the canonical query string, the hex
// SHA-256 of a payload, and the UTC time as an amz date.
std::string canonical_uri(std::string_view wire_path);
std::string canonical_query(std::string_view query);
std::string sha256_hex(std::string_view data);
std::string amz_date_now();
// RFC 3986 unreserved characters kept, everything else %XX (upper case): a path label on the wire.
std::string uri_encode(std::string_view text, bool keep_slash);

}  // namespace toolgate::providers::sigv4
