#include <gtest/gtest.h>

#include "common/sse.hpp"
#include "common/text.hpp"

using toolgate::sse::event;
using toolgate::sse::parser;

namespace {
std::vector<event> feed_all(parser& p, std::vector<std::string> const& pieces) {
    std::vector<event> out;
    for (auto const& piece : pieces) EXPECT_TRUE(p.feed(piece, out));
    return out;
}
}  // namespace

TEST(sse, events_split_at_every_byte) {
    std::string text = "data: {\"a\":1}\n\nevent: x\ndata: two\ndata: lines\nid: 7\n\n: comment\n\ndata: [DONE]\n\n";
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
        parser p;
        auto evs = feed_all(p, {text.substr(0, cut), text.substr(cut)});
        ASSERT_EQ(evs.size(), 3u) << "cut at " << cut;
        EXPECT_EQ(evs[0].data, "{\"a\":1}");
        EXPECT_EQ(evs[1].type, "x");
        EXPECT_EQ(evs[1].data, "two\nlines");
        EXPECT_EQ(evs[1].id, "7");
        EXPECT_EQ(evs[2].data, "[DONE]");
        EXPECT_FALSE(p.has_partial());
    }
}

TEST(sse, crlf_and_cr_line_ends_split_anywhere) {
    std::string text = "data: a\r\n\r\ndata: b\r\rdata:c\n\n";
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
        parser p;
        auto evs = feed_all(p, {text.substr(0, cut), text.substr(cut)});
        ASSERT_EQ(evs.size(), 3u) << "cut at " << cut;
        EXPECT_EQ(evs[0].data, "a");
        EXPECT_EQ(evs[1].data, "b");
        EXPECT_EQ(evs[2].data, "c");
    }
}

TEST(sse, byte_by_byte) {
    std::string text = "data: hello\r\n\r\ndata: world\n\n";
    parser p;
    std::vector<event> out;
    for (char c : text) ASSERT_TRUE(p.feed(std::string_view(&c, 1), out));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[1].data, "world");
}

// The reconnection time (SEP-1699's priming event: an id, a retry, empty data); only digits count.
TEST(sse, retry_field_sets_the_reconnection_time) {
    parser p;
    EXPECT_EQ(p.retry_ms(), -1);
    auto evs = feed_all(p, {"id: event-1\nretry: 500\ndata: \n\n"});
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_EQ(evs[0].id, "event-1");
    EXPECT_EQ(evs[0].data, "");
    EXPECT_EQ(p.retry_ms(), 500);
    feed_all(p, {"retry: 1.5\n", "retry: -3\n", "retry:\n", "retry: 12x\n\n"});
    EXPECT_EQ(p.retry_ms(), 500);
    feed_all(p, {"retry: 99999999999\n\n"});
    EXPECT_EQ(p.retry_ms(), 600'000);  // at most ten minutes
    // An id without data dispatches nothing but is the stream's last event ID all the same.
    EXPECT_TRUE(feed_all(p, {"id: event-2\nretry: 250\n\n"}).empty());
    EXPECT_EQ(p.last_event_id(), "event-2");
    EXPECT_EQ(p.retry_ms(), 250);
}

TEST(sse, partial_event_is_reported) {
    parser p;
    std::vector<event> out;
    ASSERT_TRUE(p.feed("data: {\"unfinished\"", out));
    EXPECT_TRUE(out.empty());
    EXPECT_TRUE(p.has_partial());
}

TEST(sse, oversized_event_fails) {
    parser p(64);
    std::vector<event> out;
    EXPECT_FALSE(p.feed("data: " + std::string(100, 'x'), out));
    EXPECT_FALSE(p.feed("\n\n", out));
    parser q(64);
    std::vector<event> out2;
    for (int i = 0; i < 10; ++i) {
        if (!q.feed("data: 0123456789\n", out2)) return;  // accumulated data lines are bounded too
    }
    FAIL() << "many data lines exceeded the bound without failing";
}

TEST(sse, format_data) { EXPECT_EQ(toolgate::sse::format_data("{}"), "data: {}\n\n"); }

// Text echoed to a client in JSON (a path, a model name) is made valid UTF-8 first.
TEST(text, utf8_valid_replaces_every_bad_byte_and_keeps_the_rest) {
    using toolgate::utf8_valid;
    EXPECT_EQ(utf8_valid("plain ascii"), "plain ascii");
    EXPECT_EQ(utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"), "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
    EXPECT_EQ(utf8_valid("/v1;chat/co\xedpletions"), "/v1;chat/co\xef\xbf\xbdpletions");
    EXPECT_EQ(utf8_valid("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd") << "overlong";
    EXPECT_EQ(utf8_valid("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") << "a surrogate";
    EXPECT_EQ(utf8_valid("\xf4\x90\x80\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") << "past U+10FFFF";
    EXPECT_EQ(utf8_valid("ab\xe2\x82"), "ab\xef\xbf\xbd\xef\xbf\xbd") << "cut short";
}
