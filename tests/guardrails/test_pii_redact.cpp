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
#include "guardrails/pii_restore.hpp"

#ifndef TOOLGATE_GUARDRAIL_DATA
#define TOOLGATE_GUARDRAIL_DATA "tests/guardrails/data"
#endif

using namespace toolgate::guardrails;

namespace {

std::unique_ptr<guardrail> pii(std::string_view config = "{}") {
    return make_pii_redact(json::parse(config).as_object(), build_context{});
}

std::string pii_config_error(std::string_view config) {
    try {
        pii(config);
    } catch (config_error const& e) {
        return e.key;
    }
    return "(no error)";
}

struct pii_run {
    verdict v;
    std::string text;
    scope s;
};

pii_run redact_one(guardrail const& g, std::string text) {
    pii_run r;
    std::vector<text_part> parts{{part_kind::user, 0, std::move(text)}};
    r.v = g.check(parts, nullptr, r.s);
    r.text = parts[0].text;
    return r;
}

std::string redacted(std::string text, std::string_view config = "{}") {
    auto g = pii(config);
    return redact_one(*g, std::move(text)).text;
}

// Full-width form of printable ASCII (U+FF01-U+FF5E), space as U+3000.
std::string full_width(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == ' ') {
            out += "\xE3\x80\x80";
            continue;
        }
        char32_t cp = static_cast<char32_t>(c) - 0x21 + 0xFF01;
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return out;
}

constexpr char const* zwsp = "\xE2\x80\x8B";  // U+200B
constexpr char const* zwj = "\xE2\x80\x8D";   // U+200D

}  // namespace

TEST(pii_redact, replaces_an_email_with_a_typed_placeholder) {
    auto r = redact_one(*pii(), "write to jane.doe@example.com today");
    EXPECT_EQ(r.v.what, outcome::redact);
    EXPECT_EQ(r.v.rule, "email");
    EXPECT_EQ(r.text, "write to <EMAIL_1> today");
    ASSERT_EQ(r.s.placeholders.size(), 1u);
    EXPECT_EQ(r.s.placeholders[0].first, "<EMAIL_1>");
    EXPECT_EQ(r.s.placeholders[0].second, "jane.doe@example.com");
}

TEST(pii_redact, numbers_placeholders_per_type_and_reuses_one_for_the_same_value) {
    auto r = redact_one(*pii(), "a@x.io, b@x.io, a@x.io; call +14155552671 or +442079460958, card 4111111111111111");
    EXPECT_EQ(r.text, "<EMAIL_1>, <EMAIL_2>, <EMAIL_1>; call <PHONE_1> or <PHONE_2>, card <CREDIT_CARD_1>");
    EXPECT_EQ(r.s.placeholders.size(), 5u);
    EXPECT_EQ(r.s.counters["EMAIL"], 3u);  // the next number
    EXPECT_EQ(r.s.counters["PHONE"], 3u);
}

TEST(pii_redact, the_same_value_in_two_parts_and_two_checks_gets_one_placeholder) {
    auto g = pii();
    scope s;
    std::vector<text_part> parts{{part_kind::user, 0, "mail a@x.io"}, {part_kind::tool, 1, "a@x.io and b@x.io"}};
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.part, 0u);
    EXPECT_EQ(parts[0].text, "mail <EMAIL_1>");
    EXPECT_EQ(parts[1].text, "<EMAIL_1> and <EMAIL_2>");
    std::vector<text_part> later{{part_kind::tool, 2, "again b@x.io, new c@x.io"}};
    g->check(later, nullptr, s);  // a later turn of the same request
    EXPECT_EQ(later[0].text, "again <EMAIL_2>, new <EMAIL_3>");
}

TEST(pii_redact, finds_e164_and_national_phone_formats) {
    for (std::string t :
         {"+14155552671", "+1 415 555 2671", "(415) 555-2671", "415-555-2671", "415.555.2671", "1-800-555-0199",
          "+44 20 7946 0958", "+49 (0)30 1234 5678", "020 7946 0958", "07700 900123", "06 12 34 56 78", "030 12345678",
          "0044 20 7946 0958", "(11) 91234-5678", "+1 (212) 555-0100"})
        EXPECT_EQ(redacted("tel " + t + ", thanks"), "tel <PHONE_1>, thanks") << t;
}

TEST(pii_redact, does_not_take_dates_versions_or_plain_ids_for_phone_numbers) {
    for (std::string t : {"2024-01-15", "12.05.2023", "10:30:15", "3.14.159", "4155552671", "978-3-16-148410-0",
                          "94105-1234", "123-456-7890", "INV-2023-000123", "1,234,567.89", "48.8566, 2.3522",
                          "v1.415.555.2671", "415-555-2671-99", "20240115.1"})
        EXPECT_EQ(redacted("x " + t + " y"), "x " + t + " y") << t;
}

TEST(pii_redact, finds_card_numbers_that_pass_luhn_with_spaces_dashes_or_none) {
    for (std::string t : {"4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "5555 5555 5555 4444",
                          "2223003122003222", "3782 822463 10005", "6011000990139424", "3056 930902 5904",
                          "3530111333300000", "6200000000000005", "4222222222222"})
        EXPECT_EQ(redacted("card " + t + " ok"), "card <CREDIT_CARD_1> ok") << t;
    // A year after the number is not part of it; a quantity before it does not hide it.
    EXPECT_EQ(redacted("4111 1111 1111 1111 2028"), "<CREDIT_CARD_1> 2028");
    EXPECT_EQ(redacted("qty 2 4111 1111 1111 1111, exp 12/28 5555 5555 5555 4444"),
              "qty 2 <CREDIT_CARD_1>, exp 12/28 <CREDIT_CARD_2>");
}

TEST(pii_redact, does_not_report_card_numbers_that_fail_luhn_or_have_an_unknown_prefix) {
    for (std::string t : {"4111 1111 1111 1112", "5555555555554440", "1234 5678 9012 3456", "9999999999999995",
                          "4111 11111 1111 1111 1", "41111111111111111111", "4111-1111 1111-1111"})
        EXPECT_EQ(redacted("n " + t + " ."), "n " + t + " .") << t;
}

TEST(pii_redact, finds_ibans_with_and_without_spaces) {
    for (std::string t : {"DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "GB29NWBK60161331926819",
                          "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300", "NO9386011117947",
                          "MT84MALT011000012345MTLCAST001S", "IT60 X054 2811 1010 0000 0123 456"})
        EXPECT_EQ(redacted("pay " + t + ", thanks"), "pay <IBAN_1>, thanks") << t;
}

TEST(pii_redact, does_not_report_ibans_that_fail_mod_97_or_have_the_wrong_length) {
    for (std::string t : {"DE89 3704 0044 0532 0130 01", "DE88370400440532013000", "GB29NWBK6016133192681",
                          "GB29NWBK601613319268190", "XX12 3456 7890 1234 5678", "NL91ABNA0417164301"})
        EXPECT_EQ(redacted("pay " + t + " ."), "pay " + t + " .") << t;
}

TEST(pii_redact, finds_a_us_ssn_and_rejects_invalid_areas_groups_and_serials) {
    EXPECT_EQ(redacted("ssn 123-45-6789."), "ssn <US_SSN_1>.");
    EXPECT_EQ(redacted("employee 536-90-4399 joined"), "employee <US_SSN_1> joined");
    for (std::string t : {"000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000", "123-45-67890"})
        EXPECT_EQ(redacted("id " + t), "id " + t) << t;
}

TEST(pii_redact, finds_an_ssn_without_dashes_only_after_the_word_ssn) {
    EXPECT_EQ(redacted("SSN: 219099998"), "SSN: <US_SSN_1>");
    EXPECT_EQ(redacted("my social security number is 432 12 3456"), "my social security number is <US_SSN_1>");
    EXPECT_EQ(redacted("part 219099998 and 432 12 3456"), "part 219099998 and 432 12 3456");
}

TEST(pii_redact, finds_ipv4_addresses_but_not_version_strings) {
    EXPECT_EQ(redacted("host 192.168.1.10:8080 up"), "host <IP_ADDRESS_1>:8080 up");
    EXPECT_EQ(redacted("ssh root@10.0.0.1."), "ssh root@<IP_ADDRESS_1>.");
    for (std::string t : {"1.2.3", "1.2.3.4.5", "256.1.1.1", "v1.2.3.4", "1.2.3.4a", "192.168.01.1"})
        EXPECT_EQ(redacted("x " + t + " y"), "x " + t + " y") << t;
}

TEST(pii_redact, finds_ipv6_addresses_in_full_and_compressed_forms) {
    for (std::string t : {"2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:db8::8a2e:370:7334", "fe80::1", "::1",
                          "::ffff:192.0.2.128", "2001:db8::"})
        EXPECT_EQ(redacted("addr " + t + " ok"), "addr <IP_ADDRESS_1> ok") << t;
    EXPECT_EQ(redacted("[::1]:443"), "[<IP_ADDRESS_1>]:443");
    for (std::string t : {"12:30:45", "00:1A:2B:3C:4D:5E", "std::vector", "add::bed", "1:2:3:4:5:6:7:8:9", "1::2::3"})
        EXPECT_EQ(redacted("x " + t + " y"), "x " + t + " y") << t;
}

TEST(pii_redact, finds_a_card_number_written_in_full_width_digits_and_replaces_its_bytes) {
    auto fw = full_width("4111 1111 1111 1111");
    EXPECT_EQ(redacted("card " + fw + " ok"), "card <CREDIT_CARD_1> ok");
    auto r = redact_one(*pii(), "card " + fw);
    EXPECT_EQ(r.s.placeholders.at(0).second, fw);  // the original bytes, for restore
}

TEST(pii_redact, finds_numbers_and_emails_split_by_zero_width_characters) {
    auto card = std::string("4111") + zwsp + "1111" + zwj + "1111" + zwsp + "1111";
    EXPECT_EQ(redacted("card " + card + " ok"), "card <CREDIT_CARD_1> ok");
    auto email = std::string("ops") + zwj + "@exam" + zwsp + "ple.org";
    EXPECT_EQ(redacted("mail " + email + "."), "mail <EMAIL_1>.");
    auto iban = std::string("DE89") + zwsp + "370400440532013000";
    EXPECT_EQ(redacted(iban), "<IBAN_1>");
    auto ssn = std::string("123\xE2\x80\x91") + "45\xE2\x80\x93" + "6789";  // non-breaking hyphen, en dash
    EXPECT_EQ(redacted(ssn), "<US_SSN_1>");
}

TEST(pii_redact, finds_an_email_with_a_full_width_at_sign_and_dot) {
    EXPECT_EQ(redacted(full_width("john@example.com") + " wrote"), "<EMAIL_1> wrote");
}

TEST(pii_redact, redacts_only_the_configured_entities) {
    auto text = "a@x.io 4111111111111111 10.0.0.1";
    EXPECT_EQ(redacted(text, R"({"entities":["email"]})"), "<EMAIL_1> 4111111111111111 10.0.0.1");
    EXPECT_EQ(redacted(text, R"({"entities":["ip_address","credit_card"]})"), "a@x.io <CREDIT_CARD_1> <IP_ADDRESS_1>");
}

TEST(pii_redact, block_names_the_entity_and_the_part_but_never_the_text) {
    auto g = pii(R"({"action":"block"})");
    scope s;
    std::vector<text_part> parts{{part_kind::user, 0, "hello"}, {part_kind::tool, 3, "iban DE89370400440532013000"}};
    auto v = g->check(parts, nullptr, s);
    EXPECT_EQ(v.what, outcome::block);
    EXPECT_EQ(v.rule, "iban");
    EXPECT_EQ(v.part, 1u);
    EXPECT_EQ(v.detail.find("DE89"), std::string::npos);
    EXPECT_EQ(parts[1].text, "iban DE89370400440532013000");  // untouched
    EXPECT_TRUE(s.placeholders.empty());
}

TEST(pii_redact, passes_text_without_personal_data_unchanged) {
    auto r = redact_one(*pii(), "Summarise the meeting notes in three bullet points, version 1.2.3, at 10:30.");
    EXPECT_EQ(r.v.what, outcome::pass);
    EXPECT_TRUE(r.s.placeholders.empty());
}

TEST(pii_redact, custom_patterns_get_their_own_placeholders_and_rule) {
    auto cfg = R"({"entities":["email"],"custom":[{"name":"EMPLOYEE_ID","pattern":"EMP-[0-9]{6}"},
                                                  {"name":"TICKET","pattern":"(?i)tkt#[0-9]+"}]})";
    auto r = redact_one(*pii(cfg), "EMP-123456 filed TKT#42, cc a@x.io and EMP-123456 and emp-654321");
    EXPECT_EQ(r.text,
              "<CUSTOM-EMPLOYEE_ID_1> filed <CUSTOM-TICKET_1>, cc <EMAIL_1> and <CUSTOM-EMPLOYEE_ID_1> and emp-654321");
    EXPECT_EQ(r.v.rule, "EMPLOYEE_ID");
    auto b = redact_one(*pii(R"({"action":"block","custom":[{"name":"EMPLOYEE_ID","pattern":"EMP-[0-9]{6}"}]})"),
                        "id EMP-123456");
    EXPECT_EQ(b.v.what, outcome::block);
    EXPECT_EQ(b.v.rule, "EMPLOYEE_ID");
}

TEST(pii_redact, a_custom_pattern_runs_on_folded_text) {
    auto cfg = R"({"entities":["email"],"custom":[{"name":"CODE","pattern":"AURORA-[0-9]+"}]})";
    EXPECT_EQ(redacted("see " + full_width("AURORA-7") + " now", cfg), "see <CUSTOM-CODE_1> now");
}

TEST(pii_redact, refuses_unknown_keys_entities_names_and_patterns_naming_the_key) {
    EXPECT_EQ(pii_config_error(R"({"entity":["email"]})"), "config.entity");
    EXPECT_EQ(pii_config_error(R"({"entities":["email","passport"]})"), "config.entities[1]");
    EXPECT_EQ(pii_config_error(R"({"entities":"email"})"), "config.entities");
    EXPECT_EQ(pii_config_error(R"({"entities":[]})"), "config.entities");
    EXPECT_EQ(pii_config_error(R"({"action":"mask"})"), "config.action");
    EXPECT_EQ(pii_config_error(R"({"restore":"yes"})"), "config.restore");
    EXPECT_EQ(pii_config_error(R"({"custom":[{"name":"lower","pattern":"x"}]})"), "config.custom[0].name");
    EXPECT_EQ(pii_config_error(R"({"custom":[{"name":"A","pattern":"x"},{"name":"B","pattern":"(unclosed"}]})"),
              "config.custom[1].pattern");
    EXPECT_EQ(pii_config_error(R"({"custom":[{"name":"A","pattern":"x","flags":"i"}]})"), "config.custom[0].flags");
    EXPECT_EQ(pii_config_error(R"({"custom":[{"name":"A","pattern":"x"},{"name":"A","pattern":"y"}]})"),
              "config.custom[1].name");
    EXPECT_EQ(pii_config_error(R"({"entities":[],"custom":[{"name":"A","pattern":"x"}],"restore":true})"),
              "(no error)");
}

TEST(pii_redact, restore_puts_the_originals_back) {
    auto r = redact_one(*pii(), "mail a@x.io or call +14155552671");
    auto answer = "I will mail <EMAIL_1> and call <PHONE_1>; <EMAIL_9> and <b>bold</b> stay.";
    EXPECT_EQ(restore_placeholders(answer, r.s),
              "I will mail a@x.io and call +14155552671; <EMAIL_9> and <b>bold</b> stay.");
    EXPECT_EQ(restore_placeholders("<<EMAIL_1>>", r.s), "<a@x.io>");
    EXPECT_EQ(restore_placeholders("no placeholders", scope{}), "no placeholders");
}

TEST(pii_redact, the_streaming_restorer_restores_a_placeholder_split_at_every_byte) {
    scope s;
    s.placeholders.emplace_back("<EMAIL_1>", "jane@example.com");
    s.placeholders.emplace_back("<CUSTOM-EMPLOYEE_ID_12>", "EMP-1");
    std::string text = "Hi <EMAIL_1>, <x> <EMAIL_1> and <CUSTOM-EMPLOYEE_ID_12>!";
    std::string want = "Hi jane@example.com, <x> jane@example.com and EMP-1!";
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
        placeholder_restorer r(s);
        std::string out = r.feed(text.substr(0, cut));
        out += r.feed(text.substr(cut));
        out += r.finish();
        EXPECT_EQ(out, want) << "cut at " << cut;
    }
    // One byte at a time.
    placeholder_restorer r(s);
    std::string out;
    for (char c : text) out += r.feed(std::string(1, c));
    out += r.finish();
    EXPECT_EQ(out, want);
}

TEST(pii_redact, the_streaming_restorer_releases_text_that_cannot_be_a_placeholder_at_once) {
    scope s;
    s.placeholders.emplace_back("<EMAIL_1>", "a@x.io");
    placeholder_restorer r(s);
    EXPECT_EQ(r.feed("plain text "), "plain text ");
    EXPECT_EQ(r.feed("x < y "), "x < y ");
    EXPECT_EQ(r.feed("<b>"), "<b>");
    EXPECT_EQ(r.feed("<EMA"), "");  // could still become <EMAIL_1>
    EXPECT_EQ(r.feed("IL_1> hi"), "a@x.io hi");
    EXPECT_EQ(r.feed("<EMAILS_LONGER"), "<EMAILS_LONGER");  // longer than any placeholder
    EXPECT_EQ(r.feed("<EMAIL_"), "");
    EXPECT_EQ(r.feed("2> "), "<EMAIL_2> ");  // complete but unknown: as it is
    EXPECT_EQ(r.feed("<EM"), "");
    EXPECT_EQ(r.finish(), "<EM");  // the end of the stream releases the tail
}

TEST(pii_redact, the_streaming_restorer_sees_placeholders_added_after_it_was_made) {
    scope s;
    placeholder_restorer r(s);
    EXPECT_EQ(r.feed("<EMAIL_1>"), "<EMAIL_1>");
    s.placeholders.emplace_back("<EMAIL_1>", "a@x.io");
    EXPECT_EQ(r.feed("<EMAIL_1>"), "a@x.io");
}

TEST(pii_redact, window_bounds_every_built_in_entity) {
    auto g = pii();
    EXPECT_GE(g->window(), 64u);
    EXPECT_LE(g->window(), 256u);
    EXPECT_EQ(g->name(), "pii-redact");
}

TEST(pii_redact, checks_one_megabyte_in_bounded_time) {
    std::string prose;
    std::string chunk =
        "The quarterly report (v2.3.1) was sent on 2024-01-15 at 10:30; see ticket 4155552671 and std::vector usage. ";
    while (prose.size() < (1u << 20)) prose += chunk;
    std::string mixed;
    std::string pii_chunk =
        "Mail jane.doe@example.com, call +1 415 555 2671, card 4111 1111 1111 1111, host 10.0.0.1. ";
    while (mixed.size() < (1u << 20)) mixed += pii_chunk;
    std::string digits(1u << 20, '7');
    std::string ats(1u << 20, '@');
    std::string dotted;
    while (dotted.size() < (1u << 20)) dotted += "1.";
    std::string hexes;
    while (hexes.size() < (1u << 20)) hexes += "fe80:";
    std::string wide;
    while (wide.size() < (1u << 20)) wide += full_width("4111 ") + zwsp;
    auto g = pii();
    for (auto const* input : {&prose, &mixed, &digits, &ats, &dotted, &hexes, &wide}) {
        auto start = std::chrono::steady_clock::now();
        auto r = redact_one(*g, *input);
        auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        std::printf("pii-redact 1 MB (%s): %.1f ms, %zu placeholders\n", input->substr(0, 12).c_str(), ms,
                    r.s.placeholders.size());
        // Under ASan/UBSan at -O1 on a shared machine: this bound catches super-linear work (seconds);
        // an optimised build takes 3-15 ms per MB here.
        EXPECT_LT(ms, 300.0);
    }
}

TEST(pii_redact, detection_quality_on_the_labelled_set_meets_its_floors) {
    std::ifstream f(std::string(TOOLGATE_GUARDRAIL_DATA) + "/pii.tsv");
    ASSERT_TRUE(f) << "cannot read pii.tsv";
    auto g = pii();
    std::map<std::string, std::string> entity_of{
        {"EMAIL", "email"}, {"PHONE", "phone"},   {"CREDIT_CARD", "credit_card"},
        {"IBAN", "iban"},   {"US_SSN", "us_ssn"}, {"IP_ADDRESS", "ip_address"}};
    int tp = 0, fp = 0, fn = 0, lines = 0;
    std::string line;
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto tab = line.find('\t');
        ASSERT_NE(tab, std::string::npos) << line;
        std::string label = line.substr(0, tab);
        ++lines;
        auto r = redact_one(*g, line.substr(tab + 1));
        std::set<std::string> found;
        for (auto const& [ph, original] : r.s.placeholders) found.insert(entity_of[ph.substr(1, ph.rfind('_') - 1)]);
        if (label != "none") {
            if (found.count(label))
                ++tp;
            else {
                ++fn;
                std::printf("  missed %s: %s\n", label.c_str(), line.c_str() + tab + 1);
            }
        }
        for (auto const& e : found)
            if (e != label) {
                ++fp;
                std::printf("  false %s: %s\n", e.c_str(), line.c_str() + tab + 1);
            }
    }
    double precision = tp + fp ? double(tp) / (tp + fp) : 1, recall = tp + fn ? double(tp) / (tp + fn) : 1;
    std::printf("pii-redact on %d lines: precision %.3f, recall %.3f (tp %d, fp %d, fn %d)\n", lines, precision, recall,
                tp, fp, fn);
    EXPECT_GE(lines, 80);
    EXPECT_GE(precision, 0.95);
    EXPECT_GE(recall, 0.90);
}
