// Golden wire tests: every fixture in tests/golden (written from the providers' API documentation)
// checked in both directions through the sans-io wire formats. See tests/golden/README.md.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/sse.hpp"
#include "providers/wire.hpp"

using namespace toolgate;
using namespace toolgate::providers;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

json::object load(fs::path const& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str()).as_object();
}

std::unique_ptr<wire_format> wire_for(std::string_view adapter) {
    wire_settings s;
    s.name = "p";
    if (adapter == "anthropic") {
        s.api_key = "sk-ant-test";
        return make_anthropic_wire(s);
    }
    if (adapter == "bedrock") return make_bedrock_wire(s);
    if (adapter == "vertex") {
        s.vertex_location_path = "/projects/test-project/locations/us-central1";
        return make_vertex_wire(s);
    }
    s.api_key = "gm-test";
    return make_google_wire(s);
}

// Without "created" (a clock reading), and without an "id" the gateway made up (Bedrock's bodies
// carry none: "chatcmpl-" and 24 random hex digits).
json::value without_created(json::value v) {
    if (auto* o = v.if_object()) {
        o->erase("created");
        auto const* id = o->if_contains("id");
        if (id && id->is_string() && id->get_string().starts_with("chatcmpl-") && id->get_string().size() == 9 + 24)
            o->erase("id");
    }
    return v;
}

struct stream_result {
    json::array chunks;
    std::optional<api_error> error;
    usage tokens;
};

// Feeds the events as SSE text in 7-byte pieces, as a socket might deliver them.
stream_result run_stream(wire_format const& w, json::array const& events, bool include_usage,
                         std::string const& model = "requested-model") {
    std::string text;
    for (auto const& e : events) {
        auto const& o = e.as_object();
        if (auto const* t = o.if_contains("event")) text += "event: " + std::string(t->as_string()) + "\n";
        auto const& data = o.at("data");  // a string: raw bytes, for malformed events
        text += "data: " + (data.is_string() ? std::string(data.as_string()) : json::serialize(data)) + "\n\n";
    }
    auto dec = w.stream(model, include_usage);
    sse::parser parser;
    std::vector<sse::event> evs;
    std::vector<json::object> out;
    stream_result r;
    bool ok = true;
    for (std::size_t i = 0; i < text.size() && ok; i += 7) {
        evs.clear();
        parser.feed(std::string_view(text).substr(i, 7), evs);
        for (auto& ev : evs) {
            ok = dec->on_event(ev.type, ev.data, out);
            if (!ok) break;
        }
    }
    if (ok) dec->on_end(out);
    for (auto& c : out) r.chunks.push_back(without_created(c));
    r.error = dec->error;
    r.tokens = dec->tokens;
    return r;
}

int check_case(fs::path const& file) {
    SCOPED_TRACE(file.string());
    auto c = load(file);
    auto adapter = c.at("adapter").as_string();
    auto w = wire_for(adapter);
    int checks = 0;
    std::string model = "requested-model";
    if (auto const* req = c.if_contains("openai_request")) {
        model = std::string(req->at("model").as_string());
        bool stream = c.at("stream").as_bool();
        native_request nr;
        auto err = w->encode_chat(req->as_object(), stream, nr);
        EXPECT_FALSE(err) << (err ? err->message : "");
        auto const& want = c.at("native_request").as_object();
        EXPECT_EQ(nr.path, want.at("path").as_string());
        EXPECT_EQ(json::parse(nr.body), want.at("body")) << nr.body;
        for (auto const& [k, v] : want.at("headers").as_object()) {
            bool found = false;
            for (auto const& [hk, hv] : nr.headers) found = found || (hk == k && hv == v.as_string());
            EXPECT_TRUE(found) << "header " << k;
        }
        if (auto const* absent = want.if_contains("headers_absent"))
            for (auto const& name : absent->as_array()) {
                for (auto const& h : nr.headers) {
                    EXPECT_NE(h.first, name.as_string()) << "header sent";
                }
            }
        ++checks;
    }
    if (auto const* resp = c.if_contains("native_response")) {
        auto d = w->decode_chat(json::serialize(*resp), model);
        EXPECT_FALSE(d.error) << (d.error ? d.error->message : "");
        EXPECT_EQ(without_created(d.response), c.at("openai_response")) << json::serialize(d.response);
        ++checks;
    }
    if (auto const* events = c.if_contains("native_stream")) {
        auto const* sm = c.if_contains("stream_model");
        auto r = run_stream(*w, events->as_array(), c.at("include_usage").as_bool(),
                            sm ? std::string(sm->as_string()) : std::string("requested-model"));
        EXPECT_EQ(json::value(r.chunks), c.at("openai_chunks")) << json::serialize(r.chunks);
        if (auto const* e = c.if_contains("error")) {
            EXPECT_TRUE(r.error);
            if (r.error) {
                EXPECT_EQ(r.error->status, e->at("status").as_int64());
                EXPECT_EQ(r.error->code, e->at("code").as_string());
            }
        } else {
            EXPECT_FALSE(r.error) << (r.error ? r.error->message : "");
            EXPECT_TRUE(r.tokens.present);
        }
        ++checks;
    }
    if (auto const* errors = c.if_contains("errors")) {
        for (auto const& e : errors->as_array()) {
            auto const& ne = e.at("native_error").as_object();
            auto const* ra = ne.if_contains("retry_after");
            auto err = w->decode_error(static_cast<int>(ne.at("status").as_int64()), json::serialize(ne.at("body")),
                                       ra ? std::string_view(ra->as_string()) : std::string_view());
            auto const& want = e.at("openai_error").as_object();
            EXPECT_EQ(err.status, want.at("status").as_int64());
            EXPECT_EQ(err.code, want.at("code").as_string());
            auto const* want_ra = want.if_contains("retry_after");
            EXPECT_EQ(err.retry_after, want_ra ? std::string(want_ra->as_string()) : std::string());
            if (auto const* mc = want.if_contains("message_contains")) {
                EXPECT_NE(err.message.find(std::string(mc->as_string())), std::string::npos) << err.message;
            }
            ++checks;
        }
    }
    if (auto const* refused = c.if_contains("refused_requests")) {
        for (auto const& r : refused->as_array()) {
            native_request nr;
            auto err = w->encode_chat(r.at("request").as_object(), false, nr);
            EXPECT_TRUE(err) << json::serialize(r.at("request"));
            if (err) {
                EXPECT_EQ(err->status, 400);
                EXPECT_EQ(err->code, r.at("code").as_string());
            }
            ++checks;
        }
    }
    if (auto const* responses = c.if_contains("responses")) {
        for (auto const& r : responses->as_array()) {
            auto const& nr = r.at("native_response");
            auto d = w->decode_chat(nr.is_string() ? std::string(nr.as_string()) : json::serialize(nr), model);
            EXPECT_TRUE(d.error);
            if (d.error) {
                EXPECT_EQ(d.error->code, r.at("code").as_string());
                EXPECT_EQ(d.error->status, r.at("status").as_int64());
            }
            ++checks;
        }
    }
    auto check_embeddings = [&](json::object const& emb) {
        // One native request and answer ("native_request", "native_response"), or several
        // ("native_requests", "native_responses": APIs that embed one text per call).
        std::vector<native_request> calls;
        auto err = w->encode_embeddings_calls(emb.at("openai_request").as_object(), calls);
        EXPECT_FALSE(err) << (err ? err->message : "");
        json::array want = emb.contains("native_requests") ? emb.at("native_requests").as_array()
                                                           : json::array{emb.at("native_request")};
        ASSERT_EQ(calls.size(), want.size());
        for (std::size_t i = 0; i < calls.size(); ++i) {
            EXPECT_EQ(calls[i].path, want[i].at("path").as_string());
            EXPECT_EQ(json::parse(calls[i].body), want[i].at("body"));
        }
        json::array answers = emb.contains("native_responses") ? emb.at("native_responses").as_array()
                                                               : json::array{emb.at("native_response")};
        std::vector<std::string> bodies;
        for (auto const& a : answers) bodies.push_back(json::serialize(a));
        auto const& req_model = emb.at("openai_request").at("model").as_string();
        auto d = w->decode_embeddings_calls(bodies, std::string(req_model));
        EXPECT_FALSE(d.error) << (d.error ? d.error->message : "");
        EXPECT_EQ(json::value(d.response), emb.at("openai_response"));
        ++checks;
    };
    if (auto const* emb = c.if_contains("embeddings")) {
        if (emb->is_array()) {
            for (auto const& e : emb->as_array()) check_embeddings(e.as_object());
        } else {
            check_embeddings(emb->as_object());
        }
    }
    EXPECT_GT(checks, 0) << "fixture checks nothing";
    return checks;
}

int check_adapter(std::string const& adapter) {
    int total = 0, files = 0;
    for (auto const& entry : fs::directory_iterator(fs::path(TOOLGATE_GOLDEN_DIR) / adapter)) {
        if (entry.path().extension() != ".json") continue;
        ++files;
        total += check_case(entry.path());
    }
    EXPECT_GE(files, 4);
    return total;
}

}  // namespace

TEST(golden_wire, anthropic) { EXPECT_GE(check_adapter("anthropic"), 12); }

TEST(golden_wire, google) { EXPECT_GE(check_adapter("google"), 12); }

TEST(golden_wire, bedrock) { EXPECT_GE(check_adapter("bedrock"), 10); }

TEST(golden_wire, vertex) { EXPECT_GE(check_adapter("vertex"), 14); }

TEST(golden_wire, anthropic_defaults_max_tokens_and_maps_tool_choice) {
    wire_settings s;
    s.name = "p";
    s.api_key = "k";
    s.default_max_tokens = 1234;
    auto w = make_anthropic_wire(s);
    auto body = json::parse(R"({"model":"m","messages":[{"role":"user","content":"x"}],
        "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}}})")
                    .as_object();
    native_request nr;
    ASSERT_FALSE(w->encode_chat(body, false, nr));
    auto sent = json::parse(nr.body).as_object();
    EXPECT_EQ(sent.at("max_tokens"), 1234);
    EXPECT_EQ(sent.at("tool_choice"), json::parse(R"({"type":"tool","name":"f"})"));
    body["tool_choice"] = "none";
    ASSERT_FALSE(w->encode_chat(body, false, nr));
    EXPECT_EQ(json::parse(nr.body).at("tool_choice"), json::parse(R"({"type":"none"})"));
}

// An upstream's token counts can never credit a budget or overflow a sum: negative counts are 0,
// absurd ones are cut at max_token_count, fractions dropped, non-numbers 0.
TEST(usage, counts_are_clamped_whatever_the_upstream_sends) {
    json::value v = json::parse(R"({"prompt_tokens": -5000, "completion_tokens": 1e300})");
    auto u = usage_from_json(&v);
    EXPECT_EQ(u.prompt_tokens, 0);
    EXPECT_EQ(u.completion_tokens, max_token_count);
    v = json::parse(R"({"prompt_tokens": 18446744073709551615, "completion_tokens": 7.9})");
    u = usage_from_json(&v);
    EXPECT_EQ(u.prompt_tokens, max_token_count);
    EXPECT_EQ(u.completion_tokens, 7);
    v = json::parse(R"({"prompt_tokens": "12", "completion_tokens": null})");
    u = usage_from_json(&v);
    EXPECT_EQ(u.prompt_tokens, 0);
    EXPECT_EQ(u.completion_tokens, 0);
    // The native formats read their own fields the same way.
    wire_settings s;
    s.name = "p";
    auto w = make_anthropic_wire(s);
    auto d = w->decode_chat(R"({"id":"m","type":"message","role":"assistant","content":[{"type":"text","text":"x"}],
        "stop_reason":"end_turn","usage":{"input_tokens":-10,"output_tokens":-3,"cache_read_input_tokens":1e40}})", "m");
    ASSERT_FALSE(d.error);
    EXPECT_EQ(d.tokens.prompt_tokens, max_token_count);
    EXPECT_EQ(d.tokens.completion_tokens, 0);
}
