// JWT signing: RS256 and ES256 signatures verified with the public key, ES256 in JOSE's raw R||S
// form, keys that do not fit the algorithm refused.
#include <gtest/gtest.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/core_names.h>
#include <openssl/rsa.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "common/jwt.hpp"
#include "common/text.hpp"

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

// A JWK of a generated key's public half, as an issuer publishes it.
std::string jwk_of(EVP_PKEY* key, std::string const& kid) {
    auto b64 = [](std::string const& raw) {
        std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
        int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<unsigned char const*>(raw.data()),
                                static_cast<int>(raw.size()));
        out.resize(static_cast<std::size_t>(n));
        while (!out.empty() && out.back() == '=') out.pop_back();
        for (auto& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
        return out;
    };
    auto bn = [&](char const* name) {
        BIGNUM* v = nullptr;
        EVP_PKEY_get_bn_param(key, name, &v);
        std::string raw(static_cast<std::size_t>(BN_num_bytes(v)), '\0');
        BN_bn2bin(v, reinterpret_cast<unsigned char*>(raw.data()));
        BN_free(v);
        return b64(raw);
    };
    if (EVP_PKEY_base_id(key) == EVP_PKEY_RSA)
        return R"({"kty":"RSA","kid":")" + kid + R"(","n":")" + bn(OSSL_PKEY_PARAM_RSA_N) + R"(","e":")" + bn(OSSL_PKEY_PARAM_RSA_E) + R"("})";
    if (EVP_PKEY_base_id(key) == EVP_PKEY_EC) {
        unsigned char pub[65];
        std::size_t len = 0;
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &len);
        std::string x(reinterpret_cast<char*>(pub + 1), 32), y(reinterpret_cast<char*>(pub + 33), 32);
        return R"({"kty":"EC","crv":"P-256","use":"sig","kid":")" + kid + R"(","x":")" + b64(x) + R"(","y":")" + b64(y) + R"("})";
    }
    unsigned char pub[32];
    std::size_t len = sizeof pub;
    EVP_PKEY_get_raw_public_key(key, pub, &len);
    return R"({"kty":"OKP","crv":"Ed25519","kid":")" + kid + R"(","x":")" + b64(std::string(reinterpret_cast<char*>(pub), 32)) + R"("})";
}

std::string sign_eddsa(EVP_PKEY* key, std::string const& header, std::string const& claims) {
    auto input = base64(header, true) + "." + base64(claims, true);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key);
    std::string sig(64, '\0');
    std::size_t len = sig.size();
    EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, reinterpret_cast<unsigned char const*>(input.data()),
                   input.size());
    return input + "." + base64(sig, true);
}

TEST(Jwt, VerifiesWithTheKeysOfAJwkSetAndOnlyWithTheirOwnAlgorithm) {
    auto rsa = generate(false), ec = generate(true);
    auto ed = std::shared_ptr<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), &EVP_PKEY_free);
    auto small = std::shared_ptr<EVP_PKEY>(EVP_RSA_gen(1024), &EVP_PKEY_free);
    auto set = R"({"keys":[)" + jwk_of(rsa.get(), "r") + "," + jwk_of(ec.get(), "e") + "," + jwk_of(ed.get(), "d") + "," +
               jwk_of(small.get(), "small") + R"(,{"kty":"oct","k":"c2VjcmV0"},)" +
               R"({"kty":"EC","crv":"P-256","use":"enc","x":"AA","y":"AA"}]})";
    auto keys = jwt::parse_jwks(set);
    ASSERT_EQ(keys.size(), 3u) << "the 1024-bit RSA key, the symmetric key and the encryption key are not used";
    EXPECT_EQ(keys[0].alg, "RS256");
    EXPECT_EQ(keys[1].alg, "ES256");
    EXPECT_EQ(keys[2].alg, "EdDSA");
    std::string claims = R"({"iss":"https://idp","sub":"u"})";
    auto rs = jwt::decode(jwt::sign(rsa.get(), "RS256", R"({"alg":"RS256","kid":"r"})", claims));
    auto es = jwt::decode(jwt::sign(ec.get(), "ES256", R"({"alg":"ES256","kid":"e"})", claims));
    auto eddsa = jwt::decode(sign_eddsa(ed.get(), R"({"alg":"EdDSA","kid":"d"})", claims));
    ASSERT_TRUE(rs && es && eddsa);
    EXPECT_EQ(rs->claims_json, claims);
    EXPECT_TRUE(jwt::verify(keys[0], "RS256", *rs));
    EXPECT_TRUE(jwt::verify(keys[1], "ES256", *es));
    EXPECT_TRUE(jwt::verify(keys[2], "EdDSA", *eddsa));
    // Key confusion: a token checked with another key, or claiming another algorithm.
    EXPECT_FALSE(jwt::verify(keys[1], "RS256", *rs));
    EXPECT_FALSE(jwt::verify(keys[0], "ES256", *es));
    EXPECT_FALSE(jwt::verify(keys[0], "none", *rs));
    EXPECT_FALSE(jwt::verify(keys[0], "HS256", *rs));
    // A changed claim breaks the signature.
    auto forged = *rs;
    forged.signing_input[forged.signing_input.size() - 2] ^= 1;
    EXPECT_FALSE(jwt::verify(keys[0], "RS256", forged));
    auto short_sig = *es;
    short_sig.signature.resize(63);
    EXPECT_FALSE(jwt::verify(keys[1], "ES256", short_sig));
}

TEST(Jwt, DecodeRefusesWhatIsNotACompactJws) {
    EXPECT_FALSE(jwt::decode("a.b"));
    EXPECT_FALSE(jwt::decode("a.b.c.d"));
    EXPECT_FALSE(jwt::decode("e30.e30.a+b"));
    EXPECT_FALSE(jwt::decode("e30.e30.abcde"));  // impossible base64url length
    EXPECT_TRUE(jwt::decode("e30.e30."));
    EXPECT_EQ(jwt::base64url_decode("aGk").value(), "hi");
    EXPECT_TRUE(jwt::parse_jwks("not json").empty());
    EXPECT_TRUE(jwt::parse_jwks(R"({"keys":{}})").empty());
}

TEST(Jwt, Es256OnlyOnP256) {
    auto k1 = std::shared_ptr<EVP_PKEY>(EVP_EC_gen("secp256k1"), &EVP_PKEY_free);
    EXPECT_EQ(jwt::algorithm_for(k1.get()), "");
}

}  // namespace
}  // namespace toolgate
