#include "common/jwt.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <stdexcept>
#include <string>

#include "common/text.hpp"

namespace toolgate::jwt {

std::shared_ptr<EVP_PKEY> read_private_key(std::string_view pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
    if (!bio) throw std::invalid_argument("out of memory reading the private key");
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
    if (key == nullptr) throw std::invalid_argument("not a PEM private key");
    return std::shared_ptr<EVP_PKEY>(key, &EVP_PKEY_free);
}

std::string algorithm_for(EVP_PKEY* key) {
    if (EVP_PKEY_base_id(key) == EVP_PKEY_RSA) return "RS256";
    if (EVP_PKEY_base_id(key) == EVP_PKEY_EC && EVP_PKEY_bits(key) == 256) return "ES256";
    return {};
}

namespace {

std::string digest_sign(EVP_PKEY* key, std::string_view input) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    std::size_t len = 0;
    auto const* in = reinterpret_cast<unsigned char const*>(input.data());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, in, input.size()) != 1)
        throw std::runtime_error("JWT signing failed");
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, input.size()) != 1)
        throw std::runtime_error("JWT signing failed");
    sig.resize(len);
    return sig;
}

// OpenSSL's ECDSA signature is a DER SEQUENCE of two INTEGERs; JOSE wants both as 32 bytes.
std::string der_to_raw(std::string const& der) {
    auto const* p = reinterpret_cast<unsigned char const*>(der.data());
    std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())),
                                                             &ECDSA_SIG_free);
    if (!sig) throw std::runtime_error("JWT signing failed (bad ECDSA signature)");
    BIGNUM const* r = nullptr;
    BIGNUM const* s = nullptr;
    ECDSA_SIG_get0(sig.get(), &r, &s);
    std::string out(64, '\0');
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    if (BN_bn2binpad(r, o, 32) != 32 || BN_bn2binpad(s, o + 32, 32) != 32)
        throw std::runtime_error("JWT signing failed (bad ECDSA signature)");
    return out;
}

}  // namespace

std::string sign(EVP_PKEY* key, std::string_view alg, std::string_view header_json, std::string_view claims_json) {
    if (algorithm_for(key) != alg) throw std::invalid_argument("the key does not fit the algorithm " + std::string(alg));
    std::string input = base64(header_json, true) + '.' + base64(claims_json, true);
    auto sig = digest_sign(key, input);
    if (alg == "ES256") sig = der_to_raw(sig);
    return input + '.' + base64(sig, true);
}

}  // namespace toolgate::jwt
