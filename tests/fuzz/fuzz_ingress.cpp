// What the Messages and Responses ingresses read: a client's request body (any JSON) translated to
// a chat body, and a chat stream (the bytes the chat machinery writes, which carry an upstream's
// text) translated to Messages and Responses events. The first byte chooses the read size.
// Oracles: no crash or sanitizer report; the events do not depend on how the stream was split;
// every event's data line is JSON; a translated request has a model and messages; a multipart
// body's parts lie inside it, and replacing its model field changes nothing else.
#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/multipart.hpp"
#include "gateway/api/messages_wire.hpp"
#include "gateway/api/responses_wire.hpp"

namespace json = boost::json;
using namespace toolgate::gateway;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

template <class Translator>
std::string translate(Translator& t, std::string_view bytes, std::size_t step) {
    std::string out;
    for (std::size_t i = 0; i < bytes.size(); i += step) out += t.feed(bytes.substr(i, step));
    out += t.finish();
    return out;
}

// Every "data: " line of an event stream is JSON.
void check_events(std::string const& text) {
    std::size_t pos = 0;
    while ((pos = text.find("data: ", pos)) != std::string::npos) {
        auto end = text.find('\n', pos);
        require(end != std::string::npos);
        boost::system::error_code ec;
        auto v = json::parse(std::string_view(text).substr(pos + 6, end - pos - 6), ec);
        require(!ec && v.is_object());
        pos = end;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size == 0) return 0;
    std::size_t step = 1 + data[0] % 64;
    std::string_view bytes(reinterpret_cast<char const*>(data) + 1, size - 1);

    boost::system::error_code ec;
    auto v = json::parse(bytes, ec);
    if (!ec && v.is_object()) {
        auto m = messages_wire::to_chat(v.get_object());
        if (auto* chat = std::get_if<json::object>(&m)) {
            require(chat->contains("model") && chat->at("messages").is_array());
            (void)messages_wire::count_tokens(*chat);
        }
        responses_wire::mcp_offer offer;
        offer.servers.push_back("fs");
        auto r = responses_wire::to_chat(v.get_object(), "resp_fuzz", offer);
        if (auto* t = std::get_if<responses_wire::translated>(&r)) {
            require(t->chat.contains("model"));
            require(!t->chat.at("messages").get_array().empty() || !t->view.approved.empty());
            auto resp = responses_wire::to_response(v.get_object(), "resp_fuzz", t->view, 1);
            (void)responses_wire::output_messages(resp, offer);
        }
        (void)messages_wire::to_message(v.get_object(), "msg_fuzz");
    }

    messages_wire::stream_translator whole_m("msg_fuzz", "m"), split_m("msg_fuzz", "m");
    auto a = translate(whole_m, bytes, bytes.size() + 1);
    require(a == translate(split_m, bytes, step));
    check_events(a);

    responses_wire::request_view view;
    responses_wire::stream_translator whole_r("resp_fuzz", view, 1), split_r("resp_fuzz", view, 1);
    auto b = translate(whole_r, bytes, bytes.size() + 1);
    require(b == translate(split_r, bytes, step));
    check_events(b);

    // The upload routes' reading of a multipart body (boundary "b").
    if (auto parts = toolgate::multipart::parse(bytes, "b", 64)) {
        for (auto const& p : *parts) require(p.data.data() >= bytes.data() && p.data_begin + p.data.size() <= bytes.size());
        auto changed = toolgate::multipart::with_field(bytes, *parts, "model", "upstream-model");
        auto again = toolgate::multipart::parse(changed, "b", 64);
        require(again && again->size() == parts->size());
        if (auto const* m = toolgate::multipart::field(*parts, "model"); m && m->data.find("\r\n--b") == std::string_view::npos)
            require(toolgate::multipart::field(*again, "model")->data == "upstream-model");
    }
    return 0;
}
