#pragma once
// JSON Web Signatures in compact form (RFC 7515) with OpenSSL: RS256 and ES256 signing with a PEM
// private key, for JWT assertions sent to token endpoints (RFC 7523: Google service accounts, OAuth
// private_key_jwt); and verification of access tokens with the public keys of a JWK set (RFC 7517:
// RS256, ES256, EdDSA with Ed25519). ES256 signatures are the raw R||S form JOSE wants, not
// OpenSSL's DER. Thread-safe: no state.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

typedef struct evp_pkey_st EVP_PKEY;

namespace toolgate::jwt {

// A PEM private key (PKCS#8 or traditional); throws std::invalid_argument (never quoting the key).
std::shared_ptr<EVP_PKEY> read_private_key(std::string_view pem);
// "RS256" for an RSA key, "ES256" for a P-256 key, "" for any other kind.
std::string algorithm_for(EVP_PKEY* key);
// header.claims.signature, each part base64url; `alg` must be the key's algorithm_for().
// Throws std::invalid_argument for a key that does not fit `alg`, std::runtime_error when signing fails.
std::string sign(EVP_PKEY* key, std::string_view alg, std::string_view header_json, std::string_view claims_json);

// A public key of a JWK set. `alg` is the key's own algorithm ("RS256", "ES256", "EdDSA"): a token
// is verified only with a key whose algorithm is the token's (no key confusion).
struct public_key {
    std::string kid;
    std::string alg;
    std::shared_ptr<EVP_PKEY> key;
};
// The usable keys of a JWK set document ({"keys": [...]}): RSA (2048 bits or more), EC P-256 and
// OKP Ed25519 signing keys; others are skipped. Empty when the text is not a JWK set.
std::vector<public_key> parse_jwks(std::string_view json_text);

// A compact JWS split and decoded (header and claims as JSON text); nullopt when malformed.
struct decoded {
    std::string header_json;
    std::string claims_json;
    std::string signing_input;  // header.claims, as received
    std::string signature;      // raw bytes
};
std::optional<decoded> decode(std::string_view token);
// Checks the signature with `key` for the algorithm `alg` (the token header's); false for an
// algorithm the key does not have, "none" included.
bool verify(public_key const& key, std::string_view alg, decoded const& token);

// base64url without padding, decoded; nullopt for characters outside the alphabet.
std::optional<std::string> base64url_decode(std::string_view in);

}  // namespace toolgate::jwt
