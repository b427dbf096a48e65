// AWS request signing (SigV4) against AWS's published test vectors (aws-sig-v4-test-suite, as in
// awslabs/aws-c-auth tests/aws-signing-test-suite/v4: AKIDEXAMPLE, us-east-1, service "service",
// 2015-08-30T12:36:00Z) and Bedrock requests signed by botocore's SigV4Auth with the same
// credentials; the event stream decoder against the SDKs' encoded vectors (smithy-typescript
// eventstream-codec test vectors), fed whole and byte by byte, with bad checksums and cut frames.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "providers/eventstream.hpp"
#include "providers/sigv4.hpp"

using namespace toolgate::providers;

namespace {

sigv4::credentials example_credentials(std::string token = {}) {
    sigv4::credentials c;
    c.access_key_id = "AKIDEXAMPLE";
    c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    c.session_token = std::move(token);
    return c;
}

sigv4::scope example_scope(std::string service = "service") {
    sigv4::scope s;
    s.region = "us-east-1";
    s.service = std::move(service);
    s.amz_date = "20150830T123600Z";
    return s;
}

sigv4::request get(std::string path, std::string query = {}) {
    sigv4::request r;
    r.method = "GET";
    r.path = std::move(path);
    r.query = std::move(query);
    r.headers.emplace_back("Host", "example.amazonaws.com");
    return r;
}

std::string authorization(sigv4::request const& r, sigv4::scope const& s, sigv4::credentials const& c) {
    for (auto const& [k, v] : sigv4::sign(r, s, c))
        if (k == "Authorization") return v;
    return {};
}

constexpr char empty_hash[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

}  // namespace

TEST(sigv4, get_vanilla_every_step) {
    auto r = get("/");
    auto s = example_scope();
    auto canonical = sigv4::canonical_request(r, s, "");
    EXPECT_EQ(canonical, std::string("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n") +
                             empty_hash);
    auto sts = sigv4::string_to_sign(canonical, s);
    EXPECT_EQ(sts, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                   "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
    EXPECT_EQ(sigv4::signature(example_credentials().secret_access_key, sts, s),
              "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    auto added = sigv4::sign(r, s, example_credentials());
    ASSERT_EQ(added.size(), 2u);
    EXPECT_EQ(added[0], (std::pair<std::string, std::string>{"X-Amz-Date", "20150830T123600Z"}));
    EXPECT_EQ(added[1].second,
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
              "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(sigv4, the_published_signing_key_example) {
    // The docs' example derives the key for iam on 20150830 in us-east-1.
    EXPECT_EQ(sigv4::signing_key_hex("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", example_scope("iam")),
              "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
}

TEST(sigv4, query_parameters_are_sorted_and_encoded) {
    auto r = get("/", "Param2=value2&Param1=value1");
    auto s = example_scope();
    EXPECT_EQ(sigv4::canonical_request(r, s, ""),
              std::string("GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                          "host;x-amz-date\n") + empty_hash);
    EXPECT_EQ(authorization(r, s, example_credentials()),
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
              "SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
    EXPECT_EQ(sigv4::canonical_query("\xe1\x88\xb4=bar"), "%E1%88%B4=bar");
    EXPECT_EQ(sigv4::canonical_query("b=2&a=&c"), "a=&b=2&c=");
}

TEST(sigv4, post_vanilla_and_post_with_a_query) {
    auto r = get("/");
    r.method = "POST";
    auto s = example_scope();
    EXPECT_NE(authorization(r, s, example_credentials()).find("Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
              std::string::npos);
    r.query = "Param1=value1";
    EXPECT_NE(authorization(r, s, example_credentials()).find("Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
              std::string::npos);
}

TEST(sigv4, a_signed_body_and_its_hash_header) {
    sigv4::request r;
    r.method = "POST";
    r.path = "/";
    r.body = "Param1=value1";
    r.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    r.headers.emplace_back("Host", "example.amazonaws.com");
    r.headers.emplace_back("Content-Length", "13");
    r.headers.emplace_back("x-amz-content-sha256", sigv4::sha256_hex(r.body));
    EXPECT_EQ(sigv4::sha256_hex(r.body), "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
    EXPECT_EQ(authorization(r, example_scope(), example_credentials()),
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
              "SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, "
              "Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b");
}

TEST(sigv4, a_session_token_is_signed) {
    auto r = get("/");
    auto added = sigv4::sign(r, example_scope(),
                             example_credentials("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"));
    ASSERT_EQ(added.size(), 3u);
    EXPECT_EQ(added[1].first, "X-Amz-Security-Token");
    EXPECT_EQ(added[2].second,
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
              "SignedHeaders=host;x-amz-date;x-amz-security-token, "
              "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8");
}

TEST(sigv4, paths_are_normalized_then_encoded_a_second_time) {
    EXPECT_EQ(sigv4::canonical_uri("/"), "/");
    EXPECT_EQ(sigv4::canonical_uri("/example/.."), "/");
    EXPECT_EQ(sigv4::canonical_uri("//"), "/");
    EXPECT_EQ(sigv4::canonical_uri("//example//"), "/example/");
    EXPECT_EQ(sigv4::canonical_uri("/./example"), "/example");
    EXPECT_EQ(sigv4::canonical_uri("/example space/"), "/example%20space/");
    EXPECT_EQ(sigv4::canonical_uri("/\xe1\x88\xb4"), "/%E1%88%B4");
    EXPECT_EQ(sigv4::canonical_uri("/model/a.b-v1%3A0/converse"), "/model/a.b-v1%253A0/converse");
    EXPECT_EQ(sigv4::uri_encode("anthropic.claude-3-5-sonnet-20240620-v1:0", false),
              "anthropic.claude-3-5-sonnet-20240620-v1%3A0");
    // Header values: trimmed, inner runs of spaces made one, duplicates joined in order.
    auto r = get("/");
    r.headers.emplace_back("My-Header1", "  a   b   c  ");
    r.headers.emplace_back("my-header2", "v2");
    r.headers.emplace_back("MY-HEADER2", "v1");
    auto canonical = sigv4::canonical_request(r, example_scope(), "");
    EXPECT_NE(canonical.find("my-header1:a b c\nmy-header2:v2,v1\n"), std::string::npos) << canonical;
}

// Bedrock: the signing name is "bedrock", the model id (with its ':') is one path label on the
// wire and encoded once more in the canonical URI. Signatures computed by botocore's SigV4Auth.
TEST(sigv4, bedrock_requests_as_botocore_signs_them) {
    sigv4::request r;
    r.method = "POST";
    r.path = "/model/" + sigv4::uri_encode("anthropic.claude-3-5-sonnet-20240620-v1:0", false) + "/converse-stream";
    r.body = R"({"messages":[{"role":"user","content":[{"text":"hi"}]}]})";
    r.headers.emplace_back("Content-Type", "application/json");
    r.headers.emplace_back("Host", "bedrock-runtime.us-east-1.amazonaws.com");
    auto s = example_scope("bedrock");
    EXPECT_EQ(sigv4::sha256_hex(r.body), "c3335e07d6e89650bf94cb98664be69f8774dbc3198df221f113db0a59ea14f0");
    EXPECT_EQ(sigv4::string_to_sign(sigv4::canonical_request(r, s, ""), s),
              "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/bedrock/aws4_request\n"
              "4d9d67964a3ec0555a7cad67eaf46b0227baf50f25747086338db3eee071961b");
    EXPECT_EQ(authorization(r, s, example_credentials()),
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
              "SignedHeaders=content-type;host;x-amz-date, Signature=241ddace8db14678b79a54880644946e3441b02d221456c731f67b4228d0e875");
    EXPECT_NE(authorization(r, s, example_credentials("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"))
                  .find("Signature=677f8d1212de6e56b3182882da69b3df876687a1b3e90bf4f160c0715e713623"),
              std::string::npos);
    // An inference-profile ARN as the model.
    r.path = "/model/" +
             sigv4::uri_encode("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
                               false) +
             "/converse";
    EXPECT_NE(authorization(r, s, example_credentials()).find("Signature=a04110ff05e624b45828bd8d180d6c198bec5b01156d90f0da512376bcdf5248"),
              std::string::npos);
}

// ---- event stream ------------------------------------------------------------------------------

namespace {

std::string unhex(std::string_view h) {
    std::string out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    return out;
}

std::vector<eventstream::message> decode_whole(std::string const& bytes, eventstream::error expect = eventstream::error::none) {
    eventstream::decoder d;
    std::vector<eventstream::message> out;
    EXPECT_EQ(d.feed(bytes, out), expect == eventstream::error::none);
    EXPECT_EQ(d.failure(), expect);
    return out;
}

constexpr char all_headers[] =
    "000000cc000000af0fae64ca0a6576656e742d74797065040000a00c0c636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0a626f"
    "6f6c2066616c73650109626f6f6c207472756500046279746502cf08627974652062756606001449276d2061206c6974746c6520746561706f74210974696d"
    "657374616d70080000000000845fed05696e74313603002a05696e7436340500000000028757b20475756964090102030405060708090a0b0c0d0e0f107b27"
    "666f6f273a27626172277daba5f10c";

constexpr char bedrock_delta[] =
    "0000009700000057f30be03e0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d747970650700106170"
    "706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74426c6f636b496e646578223a302c2264656c"
    "7461223a7b2274657874223a2248656c6c6f227d7d67623831";

constexpr char bedrock_throttled[] =
    "000000b2000000613590d5d30f3a657863657074696f6e2d747970650700137468726f74746c696e67457863657074696f6e0d3a636f6e74656e742d74797065"
    "0700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d74797065070009657863657074696f6e7b226d657373616765223a22546f6f206d616e"
    "792072657175657374732c20706c656173652077616974206265666f726520747279696e6720616761696e2e227de8ffb26a";

void put32(std::string& out, std::uint32_t v) {
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// A prelude with its valid CRC.
std::string prelude(std::uint32_t total, std::uint32_t headers) {
    std::string out;
    put32(out, total);
    put32(out, headers);
    put32(out, eventstream::crc32(out));
    return out;
}

// Any header bytes and payload, framed with valid checksums.
std::string frame(std::string const& headers, std::string const& payload) {
    auto out = prelude(static_cast<std::uint32_t>(16 + headers.size() + payload.size()), static_cast<std::uint32_t>(headers.size()));
    out += headers + payload;
    put32(out, eventstream::crc32(out));
    return out;
}

}  // namespace

TEST(eventstream, the_sdk_vectors_decode) {
    auto empty = decode_whole(unhex("000000100000000005c248eb7d98c8ff"));
    ASSERT_EQ(empty.size(), 1u);
    EXPECT_TRUE(empty[0].headers.empty());
    EXPECT_TRUE(empty[0].payload.empty());
    auto plain = decode_whole(unhex("0000001d00000000fd528c5a7b27666f6f273a27626172277dc3653936"));
    ASSERT_EQ(plain.size(), 1u);
    EXPECT_EQ(plain[0].payload, "{'foo':'bar'}");
    auto one = decode_whole(unhex("0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b27666f"
                                  "6f273a27626172277d8d9c08b1"));
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0].header("content-type"), "application/json");
    auto all = decode_whole(unhex(all_headers));
    ASSERT_EQ(all.size(), 1u);
    auto const& h = all[0].headers;
    ASSERT_EQ(h.size(), 10u);
    using kind = eventstream::header_value::kind;
    EXPECT_EQ(h[0].first, "event-type");
    EXPECT_EQ(h[0].second.number, 40972);
    EXPECT_EQ(h[2].second.type, kind::bool_false);
    EXPECT_EQ(h[3].second.type, kind::bool_true);
    EXPECT_EQ(h[4].second.number, -49);
    EXPECT_EQ(h[5].second.text, "I'm a little teapot!");
    EXPECT_EQ(h[6].second.type, kind::timestamp);
    EXPECT_EQ(h[6].second.number, 8675309);
    EXPECT_EQ(h[7].second.number, 42);
    EXPECT_EQ(h[8].second.number, 42424242);
    EXPECT_EQ(h[9].second.text, unhex("0102030405060708090a0b0c0d0e0f10"));
    EXPECT_EQ(all[0].payload, "{'foo':'bar'}");
    // Encoding gives back the same bytes.
    EXPECT_EQ(eventstream::encode(all[0]), unhex(all_headers));
}

TEST(eventstream, bedrock_events_byte_by_byte) {
    auto bytes = unhex(bedrock_delta) + unhex(bedrock_throttled);
    eventstream::decoder d;
    std::vector<eventstream::message> out;
    for (char c : bytes) ASSERT_TRUE(d.feed(std::string_view(&c, 1), out));
    EXPECT_FALSE(d.has_partial());
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].header(":event-type"), "contentBlockDelta");
    EXPECT_EQ(out[0].header(":message-type"), "event");
    EXPECT_EQ(out[0].payload, R"({"contentBlockIndex":0,"delta":{"text":"Hello"}})");
    EXPECT_EQ(out[1].header(":message-type"), "exception");
    EXPECT_EQ(out[1].header(":exception-type"), "throttlingException");
}

TEST(eventstream, bad_checksums_lengths_headers_and_cut_frames) {
    auto good = unhex(bedrock_delta);
    auto bad_payload = good;
    bad_payload[good.size() - 10] ^= 1;
    decode_whole(bad_payload, eventstream::error::bad_message_crc);
    auto bad_prelude = good;
    bad_prelude[3] ^= 1;  // the length, under the prelude CRC
    decode_whole(bad_prelude, eventstream::error::bad_prelude_crc);
    // Headers that do not parse, framed with valid checksums: a zero name length, a type past
    // uuid, a string longer than the headers.
    decode_whole(frame(std::string(1, '\0'), "x"), eventstream::error::bad_header);
    decode_whole(frame(std::string{'\x01', 'a', '\x0a'}, "x"), eventstream::error::bad_header);
    decode_whole(frame(std::string{'\x01', 'a', '\x07', '\x00', '\x09', 'a', 'b', 'c'}, "x"), eventstream::error::bad_header);
    decode_whole(frame(std::string{'\x01', 'a', '\x07', '\x00', '\x03', 'a', 'b', 'c'}, "x"));  // the same, well formed
    // Lengths that cannot be: a total below the 16 bytes of framing, headers past the total.
    decode_whole(prelude(8, 0), eventstream::error::bad_length);
    decode_whole(prelude(20, 8), eventstream::error::bad_length);
    // Too large for the limit: refused from the prelude, before the body is buffered.
    eventstream::decoder small(64);
    std::vector<eventstream::message> out;
    EXPECT_FALSE(small.feed(good.substr(0, 12), out));
    EXPECT_EQ(small.failure(), eventstream::error::too_large);
    // A cut frame: nothing yet, and the stream knows it stopped mid-message.
    eventstream::decoder d;
    EXPECT_TRUE(d.feed(good.substr(0, good.size() - 1), out));
    EXPECT_TRUE(out.empty());
    EXPECT_TRUE(d.has_partial());
}
