// JWT signing: RS256 and ES256 signatures verified with the public key, ES256 in JOSE's raw R||S
// form, keys that do not fit the algorithm refused.
#include <gtest/gtest.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "common/jwt.hpp"

namespace toolgate {
namespace {

std::shared_ptr<EVP_PKEY> generate(bool ec) {
    EVP_PKEY* key = ec ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
    return std::shared_ptr<EVP_PKEY>(key, &EVP_PKEY_free);
}

std::string pem_of(EVP_PKEY* key) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    auto n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string unbase64url(std::string s) {
    for (auto& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
    std::size_t pad = (4 - s.size() % 4) % 4;
    s.append(pad, '=');
    std::string out(s.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<unsigned char const*>(s.data()),
                            static_cast<int>(s.size()));
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

bool verify(EVP_PKEY* key, std::string const& token, bool ec) {
    auto dot = token.rfind('.');
    auto input = token.substr(0, dot);
    auto sig = unbase64url(token.substr(dot + 1));
    if (ec) {
        if (sig.size() != 64) return false;
        std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> s(ECDSA_SIG_new(), &ECDSA_SIG_free);
        auto const* p = reinterpret_cast<unsigned char const*>(sig.data());
        ECDSA_SIG_set0(s.get(), BN_bin2bn(p, 32, nullptr), BN_bin2bn(p + 32, 32, nullptr));
        unsigned char* der = nullptr;
        int len = i2d_ECDSA_SIG(s.get(), &der);
        sig.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
        OPENSSL_free(der);
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key);
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<unsigned char const*>(sig.data()), sig.size(),
                            reinterpret_cast<unsigned char const*>(input.data()), input.size()) == 1;
}

TEST(Jwt, Es256IsRawRAndSVerifiableWithThePublicKey) {
    auto key = jwt::read_private_key(pem_of(generate(true).get()));
    EXPECT_EQ(jwt::algorithm_for(key.get()), "ES256");
    for (int i = 0; i < 20; ++i) {  // short R or S values must still be 32 bytes each
        auto t = jwt::sign(key.get(), "ES256", R"({"alg":"ES256"})", R"({"iss":"c","n":)" + std::to_string(i) + "}");
        EXPECT_EQ(t.substr(0, t.find('.')), "eyJhbGciOiJFUzI1NiJ9");
        EXPECT_TRUE(verify(key.get(), t, true)) << t;
        auto tampered = t;
        tampered[t.find('.') + 2] ^= 1;
        EXPECT_FALSE(verify(key.get(), tampered, true));
    }
}

TEST(Jwt, Rs256) {
    auto key = jwt::read_private_key(pem_of(generate(false).get()));
    EXPECT_EQ(jwt::algorithm_for(key.get()), "RS256");
    auto t = jwt::sign(key.get(), "RS256", R"({"alg":"RS256"})", R"({"iss":"c"})");
    EXPECT_TRUE(verify(key.get(), t, false));
}

TEST(Jwt, KeysThatDoNotFitAreRefused) {
    auto ec = generate(true);
    EXPECT_THROW(jwt::sign(ec.get(), "RS256", "{}", "{}"), std::invalid_argument);
    EXPECT_THROW(jwt::read_private_key("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"), std::invalid_argument);
    auto p384 = std::shared_ptr<EVP_PKEY>(EVP_EC_gen("P-384"), &EVP_PKEY_free);
    EXPECT_EQ(jwt::algorithm_for(p384.get()), "");
}

}  // namespace
}  // namespace toolgate
