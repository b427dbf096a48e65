#pragma once
// JSON Web Signatures in compact form (RFC 7515) with OpenSSL: RS256 and ES256 signing with a PEM
// private key, for JWT assertions sent to token endpoints (RFC 7523: Google service accounts, OAuth
// private_key_jwt). ES256 signatures are the raw R||S form JOSE wants, not OpenSSL's DER.
#include <memory>
#include <string>
#include <string_view>

typedef struct evp_pkey_st EVP_PKEY;

namespace toolgate::jwt {

// A PEM private key (PKCS#8 or traditional); throws std::invalid_argument (never quoting the key).
std::shared_ptr<EVP_PKEY> read_private_key(std::string_view pem);
// "RS256" for an RSA key, "ES256" for a P-256 key, "" for any other kind.
std::string algorithm_for(EVP_PKEY* key);
// header.claims.signature, each part base64url; `alg` must be the key's algorithm_for().
// Throws std::invalid_argument for a key that does not fit `alg`, std::runtime_error when signing fails.
std::string sign(EVP_PKEY* key, std::string_view alg, std::string_view header_json, std::string_view claims_json);

}  // namespace toolgate::jwt
