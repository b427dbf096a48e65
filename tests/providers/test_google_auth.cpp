// Google service-account sign-in, the parts without network: the key file, the RS256 JWT assertion
// (its fields, and its signature checked with the public key), the token endpoint's answers and
// when a token is refreshed.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>
#include <string>

#include "providers/google_auth.hpp"

namespace json = boost::json;
namespace ga = toolgate::providers::google_auth;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<EVP_PKEY> new_rsa_key() { return std::shared_ptr<EVP_PKEY>(EVP_RSA_gen(2048), &EVP_PKEY_free); }

std::string private_pem(EVP_PKEY* key) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string key_file(std::string const& pem, std::string token_uri = "https://oauth2.googleapis.com/token") {
    json::object o{{"type", "service_account"},
                   {"project_id", "demo-project"},
                   {"private_key_id", "kid-7"},
                   {"private_key", pem},
                   {"client_email", "gw@demo-project.iam.gserviceaccount.com"},
                   {"token_uri", token_uri}};
    return json::serialize(o);
}

std::string unbase64url(std::string_view in) {
    std::string b64(in);
    for (auto& c : b64) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (b64.size() % 4) b64 += '=';
    std::string out(b64.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<unsigned char const*>(b64.data()),
                            static_cast<int>(b64.size()));
    EXPECT_GE(n, 0);
    std::size_t pad = in.size() % 4 == 2 ? 2 : in.size() % 4 == 3 ? 1 : 0;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

bool verify_rs256(EVP_PKEY* key, std::string_view input, std::string const& sig) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1) return false;
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<unsigned char const*>(sig.data()), sig.size(),
                            reinterpret_cast<unsigned char const*>(input.data()), input.size()) == 1;
}

}  // namespace

TEST(google_auth, assertion_carries_the_claims_and_verifies_with_the_public_key) {
    auto key = new_rsa_key();
    auto sa = ga::parse_service_account(key_file(private_pem(key.get())));
    EXPECT_EQ(sa.client_email, "gw@demo-project.iam.gserviceaccount.com");
    EXPECT_EQ(sa.project_id, "demo-project");
    auto jwt = ga::make_assertion(sa, 1'700'000'000);
    auto d1 = jwt.find('.'), d2 = jwt.rfind('.');
    ASSERT_NE(d1, std::string::npos);
    ASSERT_NE(d1, d2);
    EXPECT_EQ(jwt.find_first_of("+/="), std::string::npos) << "base64url without padding";
    auto header = json::parse(unbase64url(jwt.substr(0, d1))).as_object();
    EXPECT_EQ(header, (json::object{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "kid-7"}}));
    auto claims = json::parse(unbase64url(jwt.substr(d1 + 1, d2 - d1 - 1))).as_object();
    EXPECT_EQ(claims.at("iss"), "gw@demo-project.iam.gserviceaccount.com");
    EXPECT_EQ(claims.at("scope"), "https://www.googleapis.com/auth/cloud-platform");
    EXPECT_EQ(claims.at("aud"), "https://oauth2.googleapis.com/token");
    EXPECT_EQ(claims.at("iat").as_int64(), 1'700'000'000);
    EXPECT_EQ(claims.at("exp").as_int64(), 1'700'003'600);
    auto sig = unbase64url(jwt.substr(d2 + 1));
    EXPECT_EQ(sig.size(), 256u);
    EXPECT_TRUE(verify_rs256(key.get(), std::string_view(jwt).substr(0, d2), sig));
    // Another key's public half does not verify it; a changed claim breaks it.
    auto other = new_rsa_key();
    EXPECT_FALSE(verify_rs256(other.get(), std::string_view(jwt).substr(0, d2), sig));
    auto tampered = jwt.substr(0, d2);
    tampered[d1 + 3] = tampered[d1 + 3] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(verify_rs256(key.get(), tampered, sig));
    EXPECT_EQ(ga::token_request_body("a.b.c"),
              "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c");
}

TEST(google_auth, key_files_are_checked_without_quoting_the_key) {
    auto pem = private_pem(new_rsa_key().get());
    auto fails = [](std::string const& text, std::string const& says) {
        try {
            ga::parse_service_account(text);
            ADD_FAILURE() << "accepted: " << says;
        } catch (std::invalid_argument const& e) {
            EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
            EXPECT_EQ(std::string(e.what()).find("PRIVATE KEY"), std::string::npos) << e.what();
        }
    };
    fails("not json", "JSON object");
    fails(R"({"type":"authorized_user","client_id":"x"})", "only service_account");
    auto o = json::parse(key_file(pem)).as_object();
    auto without = [&](char const* k) {
        auto c = o;
        c.erase(k);
        return json::serialize(c);
    };
    fails(without("client_email"), "client_email");
    fails(without("private_key"), "private_key");
    auto bad = o;
    bad["private_key"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    fails(json::serialize(bad), "not a PEM private key");
    fails(key_file(pem, "http://oauth.example.com/token"), "not https");
    fails(key_file(pem, "ftp://x/token"), "not an http(s) URL");
    // http is allowed to a loopback address only (tests), and token_uri defaults to Google's.
    EXPECT_EQ(ga::parse_service_account(key_file(pem, "http://127.0.0.1:9/token")).token_uri, "http://127.0.0.1:9/token");
    EXPECT_EQ(ga::parse_service_account(without("token_uri")).token_uri, "https://oauth2.googleapis.com/token");
    try {
        ga::load_service_account("/nonexistent/sa.json");
        ADD_FAILURE();
    } catch (std::invalid_argument const& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/sa.json"), std::string::npos);
    }
}

TEST(google_auth, token_answers) {
    auto ok = ga::parse_token_answer(200, R"({"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer"})");
    EXPECT_EQ(ok.error, "");
    EXPECT_EQ(ok.access_token, "ya29.abc");
    EXPECT_EQ(ok.lifetime, 3599s);
    auto no_expiry = ga::parse_token_answer(200, R"({"access_token":"t"})");
    EXPECT_EQ(no_expiry.error, "");
    EXPECT_EQ(no_expiry.lifetime, 3600s);
    auto refused = ga::parse_token_answer(400, R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})");
    EXPECT_EQ(refused.error, "status 400: invalid_grant: Invalid JWT Signature.");
    EXPECT_NE(ga::parse_token_answer(500, "<html>oops</html>").error.find("status 500"), std::string::npos);
    EXPECT_NE(ga::parse_token_answer(200, "[]").error, "");
    EXPECT_NE(ga::parse_token_answer(200, R"({"expires_in":10})").error.find("no access_token"), std::string::npos);
    EXPECT_NE(ga::parse_token_answer(200, R"({"access_token":"a\r\nX-Evil: 1"})").error, "");
    EXPECT_NE(ga::parse_token_answer(200, R"({"access_token":"a","token_type":"mac"})").error, "");
    EXPECT_NE(ga::parse_token_answer(200, R"({"access_token":"a","expires_in":0})").error, "");
    EXPECT_NE(ga::parse_token_answer(200, R"({"access_token":"a","expires_in":-5})").error, "");
    EXPECT_EQ(ga::parse_token_answer(200, R"({"access_token":"a","expires_in":1e300})").lifetime, 7 * 24 * 3600s);
}

TEST(google_auth, refresh_before_expiry) {
    // An hour's token: refreshed after 55 minutes, sent until 30 s before its end.
    auto hour = ga::times_for(3600s);
    EXPECT_EQ(hour.refresh_after, 3300s);
    EXPECT_EQ(hour.usable_for, 3570s);
    // Short ones: refreshed at half time, sent until the last tenth.
    auto minute = ga::times_for(60s);
    EXPECT_EQ(minute.refresh_after, 30s);
    EXPECT_EQ(minute.usable_for, 54s);
    auto second = ga::times_for(1s);
    EXPECT_EQ(second.refresh_after, 500ms);
    EXPECT_EQ(second.usable_for, 900ms);
}
