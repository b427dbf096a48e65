// multipart/form-data without I/O (common/multipart.hpp): boundaries, parts, one field replaced
// with every other byte kept, and the bodies it refuses.
#include <gtest/gtest.h>

#include <string>

#include "common/multipart.hpp"

namespace toolgate {

namespace {

std::string form(std::string const& b) {
    return "--" + b + "\r\n"
           "Content-Disposition: form-data; name=\"file\"; filename=\"a b.wav\"\r\n"
           "Content-Type: audio/wav\r\n\r\n"
           "RIFF\r\n--" + b + "x not a delimiter\r\n\r\n"
           "\r\n--" + b + "\r\n"
           "content-disposition: form-data; name=model\r\n\r\n"
           "stt\r\n--" + b + "  \r\n"
           "Content-Disposition: form-data; name=\"prompt\"\r\n\r\n"
           "line one\r\nline two\r\n--" + b + "--\r\nepilogue";
}

}  // namespace

TEST(multipart, the_boundary_of_a_content_type) {
    EXPECT_EQ(multipart::boundary_of("multipart/form-data; boundary=abc"), "abc");
    EXPECT_EQ(multipart::boundary_of("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a;b c\""), "a;b c");
    EXPECT_FALSE(multipart::boundary_of("application/json"));
    EXPECT_FALSE(multipart::boundary_of("multipart/form-data"));
    EXPECT_FALSE(multipart::boundary_of("multipart/form-data; boundary="));
    EXPECT_FALSE(multipart::boundary_of("multipart/form-data; boundary=\"open"));
    EXPECT_FALSE(multipart::boundary_of("multipart/form-data; boundary=" + std::string(71, 'x')));
    EXPECT_FALSE(multipart::boundary_of("multipart/mixed; boundary=abc"));
}

TEST(multipart, parts_and_a_field_replaced_with_every_other_byte_kept) {
    auto body = form("XyZ");
    auto parts = multipart::parse(body, "XyZ");
    ASSERT_TRUE(parts);
    ASSERT_EQ(parts->size(), 3u);
    EXPECT_EQ((*parts)[0].name, "file");
    EXPECT_EQ((*parts)[0].filename, "a b.wav");
    EXPECT_EQ((*parts)[0].content_type, "audio/wav");
    EXPECT_EQ((*parts)[0].data, "RIFF\r\n--XyZx not a delimiter\r\n\r\n");
    EXPECT_EQ((*parts)[2].data, "line one\r\nline two");
    auto const* model = multipart::field(*parts, "model");
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(model->data, "stt");
    EXPECT_EQ(multipart::field(*parts, "file"), nullptr);  // a file is no field
    auto out = multipart::with_field(body, *parts, "model", "whisper-1");
    auto expected = body;
    expected.replace(expected.find("\r\n\r\nstt\r\n") + 4, 3, "whisper-1");
    EXPECT_EQ(out, expected);
    EXPECT_EQ(multipart::with_field(body, *parts, "absent", "v"), body);
    // A preamble before the first delimiter is allowed.
    EXPECT_TRUE(multipart::parse("preamble\r\n" + body, "XyZ"));
}

TEST(multipart, malformed_bodies_are_refused) {
    auto body = form("b");
    EXPECT_FALSE(multipart::parse(body, "other"));
    EXPECT_FALSE(multipart::parse(body.substr(0, body.size() / 2), "b"));  // cut inside a part
    EXPECT_FALSE(multipart::parse("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", "b"));  // no name
    EXPECT_FALSE(multipart::parse("--b\r\nno colon\r\n\r\nx\r\n--b--", "b"));
    EXPECT_FALSE(multipart::parse("--bjunk\r\n", "b"));
    EXPECT_FALSE(multipart::parse("", "b"));
    EXPECT_TRUE(multipart::parse("--b--", "b"));  // no parts at all
    std::string many;
    for (int i = 0; i < 5; ++i) many += "--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n";
    many += "--b--";
    EXPECT_TRUE(multipart::parse(many, "b", 5));
    EXPECT_FALSE(multipart::parse(many, "b", 4));
}

}  // namespace toolgate
