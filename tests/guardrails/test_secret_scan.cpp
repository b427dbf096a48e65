#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "guardrails/factories.hpp"

#ifndef TOOLGATE_GUARDRAIL_DATA
#define TOOLGATE_GUARDRAIL_DATA "tests/guardrails/data"
#endif

using namespace toolgate::guardrails;

namespace {

// Made up for these tests, in the documented formats (the ghp_ one with a valid checksum).
constexpr char const* ghp_valid = "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";
constexpr char const* ghp_bad_checksum = "ghp_Oool8DklZDOCj2ISaJiHkTj0rLGlko1HPKjA";
constexpr char const* aws_id = "AKIAMXGEDN73U55XTPLP";
constexpr char const* aws_secret = "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";
constexpr char const* pem_body =
    "CdKDFRuNw5GCf+hA6ILI8gJhead6/wJ9kFZJSqgmRB9H+iMb+lk777PZnK8Cl6J5\n"
    "ixaaJLShuQjOud/+yDUA+5zmS1swoPqApryPZBlgvIyxJu2jGjNGkTfi3oYv2Dza\n"
    "KG05Rk+GQV81rkmghzem9yPVUJa/c5q52RYfLWrLoevhZC0x0awirH/juQbLifxz\n"
    "53nCQE28+AJy75fNcTTN6KFAQdEmQg3OMJmYxhcABm6jof8efD0nHCY/1Kgd2vd/\n";

std::unique_ptr<guardrail> scanner(std::string_view config = "{}") {
    return make_secret_scan(json::parse(config).as_object(), build_context{});
}

std::string scan_config_error(std::string_view config) {
    try {
        scanner(config);
    } catch (config_error const& e) {
        return e.key;
    }
    return "(no error)";
}

verdict check_one(guardrail const& g, std::string text) {
    std::vector<text_part> parts{{part_kind::user, 0, std::move(text)}};
    scope s;
    return g.check(parts, nullptr, s);
}

// The rule that blocks `text`, or "" when it passes.
std::string rule_for(std::string text, std::string_view config = "{}") {
    auto v = check_one(*scanner(config), std::move(text));
    return v.what == outcome::block ? v.rule : "";
}

std::string redacted(std::string text, std::string_view config = R"({"action":"redact"})") {
    auto g = scanner(config);
    std::vector<text_part> parts{{part_kind::user, 0, std::move(text)}};
    scope s;
    g->check(parts, nullptr, s);
    return parts[0].text;
}

std::string full_width(std::string_view s) {
    std::string out;
    for (char c : s) {
        char32_t cp = static_cast<char32_t>(c) - 0x21 + 0xFF01;
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return out;
}

constexpr char const* zwj = "\xE2\x80\x8D";   // U+200D
constexpr char const* zwsp = "\xE2\x80\x8B";  // U+200B

}  // namespace

TEST(secret_scan, finds_an_aws_access_key_id) {
    EXPECT_EQ(rule_for(std::string("aws_access_key_id = ") + aws_id), "aws_access_key_id");
    EXPECT_EQ(rule_for(std::string("key ASIA") + (aws_id + 4) + "."), "aws_access_key_id");
    EXPECT_EQ(rule_for(std::string("x") + aws_id), "");  // inside a word
    EXPECT_EQ(rule_for(std::string(aws_id) + "Q"), "");  // 21 characters
    EXPECT_EQ(rule_for("AKIA1234"), "");
}

TEST(secret_scan, does_not_report_the_aws_documentation_example_keys) {
    EXPECT_EQ(rule_for("aws_access_key_id = AKIAIOSFODNN7EXAMPLE"), "");
    EXPECT_EQ(rule_for("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), "");
    EXPECT_EQ(rule_for("AKIAI44QH8DHBEXAMPLE je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"), "");
}

TEST(secret_scan, finds_an_aws_secret_access_key_after_its_key) {
    EXPECT_EQ(rule_for(std::string("aws_secret_access_key = ") + aws_secret), "aws_secret_access_key");
    EXPECT_EQ(rule_for(std::string(R"({"SecretAccessKey": ")") + aws_secret + "\"}"), "aws_secret_access_key");
    EXPECT_EQ(rule_for(std::string("AWS_SECRET_ACCESS_KEY: '") + aws_secret + "'"), "aws_secret_access_key");
    // 40 characters without the key in front are not taken for an AWS secret (git SHAs, hashes).
    EXPECT_EQ(rule_for("commit 3f786850e387550fdab836ed7e6dc881de23001b"), "");
}

TEST(secret_scan, finds_a_classic_github_token_with_a_valid_checksum_only) {
    EXPECT_EQ(rule_for(std::string("GITHUB_TOKEN=") + ghp_valid), "github_token");
    EXPECT_EQ(rule_for(std::string("token ") + ghp_bad_checksum + " here"), "");
    EXPECT_EQ(rule_for("ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), "");
    EXPECT_EQ(rule_for("gho_16C7e42F292c6912E7710c838347Ae178B4a"), "github_token");  // no checksum for gho_
    EXPECT_EQ(rule_for(std::string(ghp_valid) + "0"), "");                            // 37 characters
}

TEST(secret_scan, finds_fine_grained_github_and_gitlab_tokens) {
    EXPECT_EQ(rule_for("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"),
              "github_fine_grained_token");
    EXPECT_EQ(rule_for("PRIVATE-TOKEN: glpat-14ZgTsNOVM14tuoIZWD1"), "gitlab_token");
    EXPECT_EQ(rule_for("glpat-xxxxxxxxxxxxxxxxxxxx"), "");
}

TEST(secret_scan, finds_openai_and_anthropic_keys_but_not_their_placeholders) {
    EXPECT_EQ(rule_for("OPENAI_API_KEY=sk-proj-kQfyy_KV5zjR3j1twdTKWTddB-XhkAS1voQG6yyzyN9zHYIa"), "openai_api_key");
    EXPECT_EQ(rule_for("key sk-ant-api03-4UOrGNATMuDJawTgsu8PO-799nKSNrh9UCauSDmLhuVtcqcYezdZ_tDDj8hY"),
              "anthropic_api_key");
    for (std::string t : {"OPENAI_API_KEY=sk-...xxxx", "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                          "sk-your-api-key-here", "sk-learn", "task-1234567890abcdefghijklmnopqrstuvwxyzABCD",
                          "sk-this-is-a-long-but-made-up-key-name-without-digits"})
        EXPECT_EQ(rule_for(t), "") << t;
}

TEST(secret_scan, finds_slack_tokens_and_webhooks) {
    EXPECT_EQ(rule_for("SLACK_BOT_TOKEN=xoxb-029729975288-2001826330434-gPwlUQia1ID6vW5dql05ha06"), "slack_token");
    EXPECT_EQ(rule_for("https://hooks.slack.com/services/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"),
              "slack_webhook");
    EXPECT_EQ(rule_for("https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"), "");
    EXPECT_EQ(rule_for("xoxb-your-token-here"), "");
}

TEST(secret_scan, finds_stripe_google_sendgrid_twilio_npm_and_hugging_face_keys) {
    EXPECT_EQ(rule_for("curl https://api.stripe.com/v1/charges -u sk_test_4eC39HqLyjWDarjtT1zdp7dc:"),
              "stripe_secret_key");
    EXPECT_EQ(rule_for("sk_live_4mYwUufJSunpJC01t5gobusz"), "stripe_secret_key");
    EXPECT_EQ(rule_for("pk_live_4mYwUufJSunpJC01t5gobusz"), "");  // publishable
    EXPECT_EQ(rule_for("key=AIzaQTC4XATWS8PHp9NHfYjFM5DI4pZj59fhZ5R"), "google_api_key");
    EXPECT_EQ(rule_for("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"), "sendgrid_api_key");
    EXPECT_EQ(rule_for("sid ACbebb2737f6a6f0fb23c6f5da2cec2554"), "twilio_account_sid");
    EXPECT_EQ(rule_for("SKbebb2737f6a6f0fb23c6f5da2cec2554"), "twilio_api_key");
    EXPECT_EQ(rule_for("ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), "");
    EXPECT_EQ(rule_for("//registry.npmjs.org/:_authToken=npm_R8BoFzQFm2OEQ3HdAVja76RnIChtP8HKQDLM"), "npm_token");
    EXPECT_EQ(rule_for("HF_TOKEN=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"), "huggingface_token");
}

TEST(secret_scan, finds_a_jwt_whose_header_decodes_to_json_with_alg) {
    // {"alg":"HS256","typ":"JWT"} . {"sub":"user-42"} . signature
    std::string jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIn0.4mYwUufJSunpJC01t5gobuszgI6hwgk1xY";
    EXPECT_EQ(rule_for("Authorization: Bearer " + jwt), "jwt");
    EXPECT_EQ(rule_for("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."), "jwt");  // alg none, no signature
    EXPECT_EQ(rule_for("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9."), "");    // a signed one without its signature
    EXPECT_EQ(rule_for("eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.4mYwUufJSunpJC01t5gobuszgI6hwgk1"), "");  // no alg
    EXPECT_EQ(rule_for("eyJub3QganNvbg.eyJ4Ijoy.4mYwUufJSunpJC01t5gobuszgI6hwgk1"), "");             // not JSON
    EXPECT_EQ(rule_for("eyJhbGciOiJIUzI1NiJ9 alone"), "");
}

TEST(secret_scan, finds_pem_private_key_blocks_but_not_public_ones_or_placeholders) {
    std::string key = std::string("-----BEGIN RSA PRIVATE KEY-----\n") + pem_body + "-----END RSA PRIVATE KEY-----\n";
    EXPECT_EQ(rule_for("here:\n" + key), "private_key");
    EXPECT_EQ(rule_for(std::string("-----BEGIN OPENSSH PRIVATE KEY-----\n") + pem_body), "private_key");  // truncated
    EXPECT_EQ(rule_for(std::string("-----BEGIN PUBLIC KEY-----\n") + pem_body + "-----END PUBLIC KEY-----"), "");
    EXPECT_EQ(rule_for(std::string("-----BEGIN CERTIFICATE-----\n") + pem_body + "-----END CERTIFICATE-----"), "");
    EXPECT_EQ(rule_for("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----"), "");
    EXPECT_EQ(rule_for("-----BEGIN RSA PRIVATE KEY-----\n<your key>\n-----END RSA PRIVATE KEY-----"), "");
    auto r = redacted("key:\n" + key + "done");
    EXPECT_EQ(r, "key:\n[secret:private_key]\ndone");
}

TEST(secret_scan, finds_credentials_in_urls_but_not_placeholder_passwords) {
    EXPECT_EQ(rule_for("DATABASE_URL=postgres://app_user:Xk9mQ2vL7pRt@db.internal:5432/app"), "url_credentials");
    EXPECT_EQ(rule_for("redis://:9fKq2LxZ7wVb@cache:6379"), "url_credentials");
    for (std::string t : {"postgres://user:password@localhost/db", "https://user:pass@example.com",
                          "redis://localhost:6379", "https://example.com/@someone",
                          "mysql://root:${DB_PASSWORD}@db/app", "ssh://git@github.com/a/b", "https://u:****@host"})
        EXPECT_EQ(rule_for(t), "") << t;
    EXPECT_EQ(redacted("postgres://app_user:Xk9mQ2vL7pRt@db.internal:5432/app"),
              "postgres://app_user:[secret:url_credentials]@db.internal:5432/app");
}

TEST(secret_scan, finds_curl_user_credentials) {
    EXPECT_EQ(rule_for("curl -u admin:Zx8!qLw2Rt https://api.example.com"), "curl_credentials");
    EXPECT_EQ(rule_for("curl -s --user \"ci-bot:Q7v#pL2mXz\" https://ci"), "curl_credentials");
    EXPECT_EQ(rule_for("curl --user=ci:Q7v#pL2mXz https://ci"), "curl_credentials");
    EXPECT_EQ(rule_for("curl -X POST \\\n  -u ci:Q7v#pL2mXz https://ci"), "curl_credentials");
    for (std::string t :
         {"curl -u $USER:$TOKEN https://x", "curl -u user:password https://x", "curl -u admin https://x",
          "git push -u origin main:Zx8qLw2Rt", "curl --user-agent a:bcdefgh https://x"})
        EXPECT_EQ(rule_for(t), "") << t;
    EXPECT_EQ(redacted("curl -u admin:Zx8!qLw2Rt https://x"), "curl -u admin:[secret:curl_credentials] https://x");
}

TEST(secret_scan, finds_high_entropy_values_after_key_words) {
    EXPECT_EQ(rule_for("client_secret: \"4mYwUufJSunpJC01t5gobuszgI6hwgk1\""), "generic_secret");
    EXPECT_EQ(rule_for("API_KEY=5d41402abc4b2a76b9719d911017c592"), "generic_secret");
    EXPECT_EQ(rule_for("Authorization: Bearer 4mYwUufJSunpJC01t5gobuszgI6hwgk1"), "generic_secret");
    EXPECT_EQ(rule_for("mytool --api-key 5d41402abc4b2a76b9719d911017c592 -v"), "generic_secret");
    EXPECT_EQ(rule_for("password: \"Tr0ub4dor&3\""), "password_assignment");
    // Off with entropy: false; the provider rules stay on.
    EXPECT_EQ(rule_for("client_secret: \"4mYwUufJSunpJC01t5gobuszgI6hwgk1\"", R"({"entropy":false})"), "");
    EXPECT_EQ(rule_for(std::string("token: ") + ghp_valid, R"({"entropy":false})"), "github_token");
}

TEST(secret_scan, does_not_take_code_names_or_low_entropy_values_for_secrets) {
    for (std::string t :
         {"password = os.getenv(\"DB_PASSWORD\")", "token = get_token(user_id)", "SECRET_KEY = settings.SECRET_KEY_2",
          "secret_key = MY_APP_SECRET_KEY_V2", "api_key: {{ api_key }}", "secret: ${{ secrets.DEPLOY_KEY }}",
          "token_count = 123456789012345678901234", "password: ********", "api_key = \"your_api_key_here\"",
          "Authorization: Bearer <token>", "the secret to good bread is patience", "max_tokens: 4096",
          "tokenizer = AutoTokenizer.from_pretrained(\"bert-base-uncased\")", "token: aaaaaaaaaaaaaaaaaaaaaaaa1",
          "api_key: abcdefghijklmnopqrstuvwxyz0123456789", "password: \"correct horse battery staple\"", "auth: oauth2",
          "password_min_length: 12"})
        EXPECT_EQ(rule_for(t), "") << t;
}

TEST(secret_scan, an_allowed_literal_is_never_reported) {
    auto cfg = R"({"allow":["AKIAMXGEDN73U55XTPLP","postgres://ci:Xk9mQ2vL7pRt@localhost/test"]})";
    EXPECT_EQ(rule_for(std::string("id ") + aws_id, cfg), "");
    EXPECT_EQ(rule_for("postgres://ci:Xk9mQ2vL7pRt@localhost/test", cfg), "");
    EXPECT_EQ(rule_for("postgres://ci:Xk9mQ2vL7pRt@prod/test", cfg), "url_credentials");
    EXPECT_EQ(rule_for(std::string("GITHUB_TOKEN=") + ghp_valid, cfg), "github_token");
}

TEST(secret_scan, finds_an_aws_key_split_by_a_zero_width_joiner) {
    std::string id(aws_id);
    std::string split = id.substr(0, 10) + zwj + id.substr(10, 5) + zwsp + id.substr(15);
    EXPECT_EQ(rule_for("key " + split + " ok"), "aws_access_key_id");
    EXPECT_EQ(redacted("key " + split + " ok"), "key [secret:aws_access_key_id] ok");
}

TEST(secret_scan, finds_a_token_written_in_full_width_characters) {
    EXPECT_EQ(rule_for("token " + full_width(ghp_valid)), "github_token");
    EXPECT_EQ(redacted("t " + full_width(aws_id) + "!"), "t [secret:aws_access_key_id]!");
}

TEST(secret_scan, block_names_the_rule_and_the_part_but_never_the_text) {
    auto g = scanner();
    std::vector<text_part> parts{{part_kind::user, 0, "hi"}, {part_kind::tool, 2, std::string("out: ") + ghp_valid}};
    scope s;
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.rule, "github_token");
    EXPECT_EQ(v.part, 1u);
    EXPECT_EQ(v.detail.find("ghp_"), std::string::npos);
    EXPECT_EQ(parts[1].text, std::string("out: ") + ghp_valid);
}

TEST(secret_scan, redact_replaces_each_secret_with_its_rule) {
    std::string text = std::string("id=") + aws_id + " and " + ghp_valid + " end";
    auto g = scanner(R"({"action":"redact"})");
    std::vector<text_part> parts{{part_kind::user, 0, text}};
    scope s;
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.what, outcome::redact);
    EXPECT_EQ(v.rule, "aws_access_key_id");
    EXPECT_EQ(parts[0].text, "id=[secret:aws_access_key_id] and [secret:github_token] end");
    EXPECT_EQ(check_one(*g, "nothing here").what, outcome::pass);
}

TEST(secret_scan, finds_a_secret_split_across_two_messages_of_the_same_role) {
    std::string id(aws_id);
    auto g = scanner();
    std::vector<text_part> parts{{part_kind::user, 0, "my key is " + id.substr(0, 9)},
                                 {part_kind::user, 1, id.substr(9) + " thanks"}};
    scope s;
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.rule, "aws_access_key_id");
    EXPECT_EQ(v.part, 0u);
    // Not across two roles.
    std::vector<text_part> mixed{{part_kind::user, 0, "my key is " + id.substr(0, 9)},
                                 {part_kind::assistant, 1, id.substr(9)}};
    EXPECT_EQ(g->check(mixed, nullptr, s).what, outcome::pass);
    // A PEM block whose header ends one message.
    std::vector<text_part> pem{{part_kind::user, 0, "key:\n-----BEGIN RSA PRIVATE KEY-----\n"},
                               {part_kind::user, 1, pem_body}};
    EXPECT_EQ(g->check(pem, nullptr, s).rule, "private_key");
}

TEST(secret_scan, redacts_a_secret_split_across_two_messages_in_both) {
    std::string tok(ghp_valid);
    auto g = scanner(R"({"action":"redact"})");
    std::vector<text_part> parts{{part_kind::tool, 0, "a " + tok.substr(0, 20)},
                                 {part_kind::tool, 1, tok.substr(20) + " b"}};
    scope s;
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.what, outcome::redact);
    EXPECT_EQ(parts[0].text, "a [secret:github_token]");
    EXPECT_EQ(parts[1].text, " b");
}

TEST(secret_scan, refuses_a_bad_config_naming_the_key) {
    EXPECT_EQ(scan_config_error(R"({"action":"mask"})"), "config.action");
    EXPECT_EQ(scan_config_error(R"({"entropy":"yes"})"), "config.entropy");
    EXPECT_EQ(scan_config_error(R"({"allow":["a",""]})"), "config.allow[1]");
    EXPECT_EQ(scan_config_error(R"({"allow":"a"})"), "config.allow");
    EXPECT_EQ(scan_config_error(R"({"rules":[]})"), "config.rules");
    EXPECT_EQ(scan_config_error(R"({"action":"redact","entropy":false,"allow":["x"]})"), "(no error)");
}

TEST(secret_scan, window_covers_a_pem_block) {
    auto g = scanner();
    EXPECT_EQ(g->window(), 4096u);
    EXPECT_EQ(g->name(), "secret-scan");
}

TEST(secret_scan, checks_one_megabyte_in_bounded_time) {
    std::vector<std::string> inputs;
    std::string prose, chunk =
                           "The account team asked for the secret recipe; auth is handled by OAuth and the token "
                           "count is 42. Each acceptance test asks: skip? https://example.com/a?b=c ";
    while (prose.size() < (1u << 20)) prose += chunk;
    inputs.push_back(prose);
    std::string keys;
    while (keys.size() < (1u << 20))
        keys += std::string("key ") + aws_id + " password: \"Tr0ub4dor&3\" " + ghp_valid + " ";
    inputs.push_back(keys);
    std::string triggers;
    while (triggers.size() < (1u << 20)) triggers += "sk-ghp_AKIAeyJ-----BEGIN ://curl token=";
    inputs.push_back(triggers);
    inputs.emplace_back(1u << 20, 'A');
    std::string long_values;
    while (long_values.size() < (1u << 20)) long_values += "secret=" + std::string(300, 'k') + " ";
    inputs.push_back(long_values);
    std::string wide;
    while (wide.size() < (1u << 20)) wide += full_width("token") + zwsp + "=";
    inputs.push_back(wide);
    auto g = scanner(R"({"action":"redact"})");
    for (auto const& input : inputs) {
        std::vector<text_part> parts{{part_kind::user, 0, input}, {part_kind::user, 1, input}};
        scope s;
        auto start = std::chrono::steady_clock::now();
        g->check(parts, nullptr, s);
        auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / 2;
        std::printf("secret-scan 1 MB (%s): %.1f ms\n", input.substr(0, 12).c_str(), ms);
        // Under ASan/UBSan at -O1 on a shared machine: this bound catches super-linear work (seconds);
        // an optimised build takes 2-25 ms per MB here (the most for a MB of dense secrets).
        EXPECT_LT(ms, 300.0);
    }
}

TEST(secret_scan, detection_quality_on_the_labelled_set_meets_its_floors) {
    std::ifstream f(std::string(TOOLGATE_GUARDRAIL_DATA) + "/secrets.tsv");
    ASSERT_TRUE(f) << "cannot read secrets.tsv";
    auto g = scanner(R"({"action":"redact"})");
    int tp = 0, fp = 0, fn = 0, lines = 0;
    std::string line;
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto tab = line.find('\t');
        ASSERT_NE(tab, std::string::npos) << line;
        std::set<std::string> want;  // "rule" or "rule,rule" for a line with two secrets; "none"
        for (std::size_t b = 0; b < tab;) {
            auto c = std::min(line.find(',', b), tab);
            if (line.substr(b, c - b) != "none") want.insert(line.substr(b, c - b));
            b = c + 1;
        }
        std::string text;
        for (std::size_t i = tab + 1; i < line.size(); ++i) {
            if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == 'n') {
                text += '\n';
                ++i;
            } else {
                text += line[i];
            }
        }
        ++lines;
        std::vector<text_part> parts{{part_kind::user, 0, text}};
        scope s;
        g->check(parts, nullptr, s);
        std::set<std::string> found;  // the rules in the redacted text's "[secret:rule]" marks
        for (auto at = parts[0].text.find("[secret:"); at != std::string::npos;
             at = parts[0].text.find("[secret:", at + 1))
            found.insert(parts[0].text.substr(at + 8, parts[0].text.find(']', at) - at - 8));
        for (auto const& r : want) {
            if (found.count(r))
                ++tp;
            else {
                ++fn;
                std::printf("  missed %s: %s\n", r.c_str(), line.c_str() + tab + 1);
            }
        }
        for (auto const& r : found)
            if (!want.count(r)) {
                ++fp;
                std::printf("  false %s: %s\n", r.c_str(), line.c_str() + tab + 1);
            }
    }
    double precision = tp + fp ? double(tp) / (tp + fp) : 1, recall = tp + fn ? double(tp) / (tp + fn) : 1;
    std::printf("secret-scan on %d lines: precision %.3f, recall %.3f (tp %d, fp %d, fn %d)\n", lines, precision,
                recall, tp, fp, fn);
    EXPECT_GE(lines, 80);
    EXPECT_GE(precision, 0.95);
    EXPECT_GE(recall, 0.90);
}
