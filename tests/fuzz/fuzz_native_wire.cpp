// The Anthropic, Gemini and Bedrock (Converse) wire formats (providers/wire): what a provider
// sends back (a whole answer, a stream, an error, embeddings) and what a client sends (an OpenAI
// request to encode).
// The first byte chooses the format (bit 4: Bedrock, else bit 0: Gemini or Anthropic) and what
// to read, the second the read size of a stream.
// Oracles: nothing crashes or trips a sanitizer; what comes out is OpenAI's shape (a chat.completion
// with choices, chat.completion.chunk objects, an error with a 4xx/5xx status); token counts are
// never negative; a stream decodes to the same chunks however its reads were split.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/sse.hpp"
#include "providers/wire.hpp"

namespace json = boost::json;
using namespace toolgate;
using namespace toolgate::providers;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

// 0 Anthropic, 1 Gemini, 2 Bedrock (Converse).
std::unique_ptr<wire_format> make_wire(unsigned format) {
    wire_settings s;
    s.name = "p";
    s.api_key = "k";
    if (format == 2) return make_bedrock_wire(s);
    return format == 1 ? make_google_wire(s) : make_anthropic_wire(s);
}

void check_tokens(usage const& u) { require(u.prompt_tokens >= 0 && u.completion_tokens >= 0); }

void check_decoded(decoded const& d, std::string_view object) {
    check_tokens(d.tokens);
    if (d.error) {
        require(d.error->status >= 400 && d.error->status < 600);
        return;
    }
    auto const* o = d.response.if_contains("object");
    require(o && o->is_string() && o->get_string() == object);
    (void)json::serialize(d.response);
}

// The chunks of a stream, without "created" (a clock reading) and "id", as text, and whether it failed (an
// event too large, or one the decoder refused: which of the two comes first may depend on the reads).
std::pair<bool, std::string> run_stream(wire_format const& w, std::string_view bytes, std::size_t step, bool include_usage) {
    auto dec = w.stream("m", include_usage);
    sse::parser parser(64 * 1024);
    std::vector<sse::event> events;
    std::vector<json::object> out;
    bool ok = true, too_large = false;
    for (std::size_t i = 0; i < bytes.size() && ok && !too_large; i += step) {
        events.clear();
        too_large = !parser.feed(bytes.substr(i, step), events);
        if (too_large) break;  // the gateway fails the stream at once (providers/native.cpp)
        for (auto& ev : events) {
            ok = dec->on_event(ev.type, ev.data, out);
            if (!ok) {
                require(dec->error.has_value());
                break;
            }
        }
    }
    if (ok && !too_large && !dec->on_end(out)) require(dec->error.has_value());
    if (too_large) return {true, ""};
    check_tokens(dec->tokens);
    std::string text;
    for (auto& c : out) {
        auto const* o = c.if_contains("object");
        require(o && o->is_string() && o->get_string() == "chat.completion.chunk");
        require(c.contains("choices"));
        c.erase("created");
        c.erase("id");  // Bedrock's is made up per stream
        text += json::serialize(c);
        text += '\n';
    }
    if (dec->error) require(!dec->error->code.empty());
    return {dec->error.has_value(), text};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 2) return 0;
    unsigned format = (data[0] & 0x10) ? 2 : (data[0] & 1);
    unsigned mode = (data[0] >> 1) & 3;
    bool flag = data[0] & 8;
    std::size_t step = 1 + data[1] % 23;
    std::string_view bytes(reinterpret_cast<char const*>(data + 2), size - 2);
    auto w = make_wire(format);

    switch (mode) {
    case 0:  // a whole 2xx answer (embeddings when flagged and the format has them)
        if (flag && w->has_embeddings()) check_decoded(w->decode_embeddings(bytes, "m"), "list");
        else check_decoded(w->decode_chat(bytes, "m"), "chat.completion");
        break;
    case 1: {  // a stream, read whole and in pieces: the same chunks
        auto whole = run_stream(*w, bytes, bytes.size() + 1, flag);
        auto split = run_stream(*w, bytes, step, flag);
        require(whole.first == split.first);
        if (!whole.first) require(whole.second == split.second);
        break;
    }
    case 2: {  // a non-2xx answer
        int status = 400 + data[1] % 200;
        auto err = w->decode_error(status, bytes, flag ? std::string_view("7") : std::string_view());
        require(err.status >= 400 && err.status < 600);
        require(!err.code.empty());
        (void)err.to_json();
        break;
    }
    default: {  // a client's OpenAI request, encoded for the provider
        boost::system::error_code ec;
        auto v = json::parse(bytes, ec);
        if (ec || !v.is_object()) return 0;
        native_request nr;
        auto err = w->encode_chat(v.get_object(), flag, nr);
        if (err) {
            require(err->status >= 400 && err->status < 500);
            break;
        }
        json::parse(nr.body, ec);  // the body we send is JSON
        require(!ec);
        if (w->has_embeddings()) {
            native_request er;
            (void)w->encode_embeddings(v.get_object(), er);
        }
        break;
    }
    }
    return 0;
}
