#include "common/jwt.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

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
    if (EVP_PKEY_base_id(key) == EVP_PKEY_ED25519) return "EdDSA";
    if (EVP_PKEY_base_id(key) == EVP_PKEY_EC) {
        // ES256 is P-256 only (not secp256k1 or a brainpool curve of the same size).
        char group[64] = {};
        std::size_t len = 0;
        if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) == 1 &&
            std::string_view(group, len) == "prime256v1")
            return "ES256";
    }
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
    if (algorithm_for(key) != alg || alg == "EdDSA")
        throw std::invalid_argument("the key does not fit the algorithm " + std::string(alg));
    std::string input = base64(header_json, true) + '.' + base64(claims_json, true);
    auto sig = digest_sign(key, input);
    if (alg == "ES256") sig = der_to_raw(sig);
    return input + '.' + base64(sig, true);
}

std::optional<std::string> base64url_decode(std::string_view in) {
    static constexpr auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '-') return 62;
        if (c == '_') return 63;
        return -1;
    };
    if (in.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(in.size() * 3 / 4);
    unsigned buf = 0;
    int bits = 0;
    for (char c : in) {
        int v = value(c);
        if (v < 0) return std::nullopt;
        buf = (buf << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((buf >> bits) & 0xff);
        }
    }
    return out;
}

namespace {

namespace json = boost::json;

using pkey_ptr = std::shared_ptr<EVP_PKEY>;

std::string field(json::object const& o, std::string_view k) {
    auto const* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::unique_ptr<BIGNUM, decltype(&BN_free)> bignum(std::string const& bytes) {
    return {BN_bin2bn(reinterpret_cast<unsigned char const*>(bytes.data()), static_cast<int>(bytes.size()), nullptr), &BN_free};
}

pkey_ptr from_params(char const* type, OSSL_PARAM_BLD* bld) {
    std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(OSSL_PARAM_BLD_to_param(bld), &OSSL_PARAM_free);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr),
                                                                   &EVP_PKEY_CTX_free);
    EVP_PKEY* key = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
        return nullptr;
    return pkey_ptr(key, &EVP_PKEY_free);
}

pkey_ptr rsa_key(std::string const& n, std::string const& e) {
    auto bn = bignum(n), be = bignum(e);
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(), &OSSL_PARAM_BLD_free);
    if (!bn || !be || !bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, be.get()) != 1)
        return nullptr;
    auto key = from_params("RSA", bld.get());
    if (key && EVP_PKEY_bits(key.get()) < 2048) return nullptr;
    return key;
}

pkey_ptr p256_key(std::string const& x, std::string const& y) {
    if (x.size() != 32 || y.size() != 32) return nullptr;
    std::string point = "\x04" + x + y;
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(), &OSSL_PARAM_BLD_free);
    char group[] = "prime256v1";
    if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1)
        return nullptr;
    return from_params("EC", bld.get());
}

pkey_ptr ed25519_key(std::string const& x) {
    if (x.size() != 32) return nullptr;
    EVP_PKEY* key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<unsigned char const*>(x.data()), x.size());
    return key ? pkey_ptr(key, &EVP_PKEY_free) : nullptr;
}

std::optional<public_key> jwk(json::object const& o) {
    auto use = field(o, "use");
    if (!use.empty() && use != "sig") return std::nullopt;
    auto b = [&](char const* k) { return base64url_decode(field(o, k)).value_or(std::string()); };
    public_key k;
    k.kid = field(o, "kid");
    auto kty = field(o, "kty");
    auto alg = field(o, "alg");
    if (kty == "RSA" && (alg.empty() || alg == "RS256")) {
        k.alg = "RS256";
        k.key = rsa_key(b("n"), b("e"));
    } else if (kty == "EC" && field(o, "crv") == "P-256" && (alg.empty() || alg == "ES256")) {
        k.alg = "ES256";
        k.key = p256_key(b("x"), b("y"));
    } else if (kty == "OKP" && field(o, "crv") == "Ed25519" && (alg.empty() || alg == "EdDSA")) {
        k.alg = "EdDSA";
        k.key = ed25519_key(b("x"));
    }
    if (!k.key) return std::nullopt;
    return k;
}

// JOSE's raw R||S back to the DER OpenSSL verifies.
std::optional<std::string> raw_to_der(std::string const& raw) {
    if (raw.size() != 64) return std::nullopt;
    std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(ECDSA_SIG_new(), &ECDSA_SIG_free);
    auto const* p = reinterpret_cast<unsigned char const*>(raw.data());
    BIGNUM* r = BN_bin2bn(p, 32, nullptr);
    BIGNUM* s = BN_bin2bn(p + 32, 32, nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        return std::nullopt;
    }
    unsigned char* der = nullptr;
    int len = i2d_ECDSA_SIG(sig.get(), &der);
    if (len <= 0) return std::nullopt;
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    return out;
}

}  // namespace

std::vector<public_key> parse_jwks(std::string_view text) {
    std::vector<public_key> out;
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object()) return out;
    auto const* keys = v.get_object().if_contains("keys");
    if (!keys || !keys->is_array()) return out;
    for (auto const& k : keys->get_array())
        if (k.is_object())
            if (auto key = jwk(k.get_object())) out.push_back(std::move(*key));
    return out;
}

std::optional<decoded> decode(std::string_view token) {
    auto a = token.find('.');
    auto b = a == std::string_view::npos ? a : token.find('.', a + 1);
    if (b == std::string_view::npos || token.find('.', b + 1) != std::string_view::npos) return std::nullopt;
    auto header = base64url_decode(token.substr(0, a));
    auto claims = base64url_decode(token.substr(a + 1, b - a - 1));
    auto sig = base64url_decode(token.substr(b + 1));
    if (!header || !claims || !sig) return std::nullopt;
    decoded d;
    d.header_json = std::move(*header);
    d.claims_json = std::move(*claims);
    d.signing_input = std::string(token.substr(0, b));
    d.signature = std::move(*sig);
    return d;
}

bool verify(public_key const& key, std::string_view alg, decoded const& token) {
    if (!key.key || alg != key.alg) return false;
    std::string sig = token.signature;
    if (alg == "ES256") {
        auto der = raw_to_der(sig);
        if (!der) return false;
        sig = std::move(*der);
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_MD const* md = alg == "EdDSA" ? nullptr : EVP_sha256();
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key.key.get()) != 1) return false;
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<unsigned char const*>(sig.data()), sig.size(),
                            reinterpret_cast<unsigned char const*>(token.signing_input.data()),
                            token.signing_input.size()) == 1;
}

}  // namespace toolgate::jwt
