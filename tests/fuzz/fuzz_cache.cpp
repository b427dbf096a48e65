// What the response cache reads that it did not write in this process: entries from a store shared
// with other replicas (Redis), and the chunks and bodies it keys and replays. Oracles: nothing
// crashes; an entry that decodes encodes back to one that decodes alike; a canonical form is valid
// JSON and does not depend on the order of an object's members.
#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/policy/cache_parts.hpp"

namespace cd = toolgate::gateway::policy::cache_detail;
namespace json = boost::json;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1 || size > 64 * 1024) return 0;
    std::string_view in(reinterpret_cast<char const*>(data + 1), size - 1);
    switch (data[0] % 3) {
        case 0: {  // a stored entry
            auto a = cd::decode(in);
            if (!a) return 0;
            auto again = cd::decode(cd::encode(*a));
            check(again && again->chunks == a->chunks && again->response == a->response);
            for (bool usage : {false, true}) {
                auto chunks = cd::replay_chunks(*a, usage);
                // Recorded chunks are replayed as stored (the filter refuses one that does not
                // read back); chunks built from an answer, and the usage chunk, are objects.
                for (std::size_t i = a->chunks.empty() ? 0 : a->chunks.size(); i < chunks.size(); ++i) {
                    boost::system::error_code ec;
                    auto v = json::parse(chunks[i], ec);
                    check(!ec && v.is_object());
                }
            }
            auto r = cd::replay_response(*a);
            (void)cd::storable(r);
            return 0;
        }
        case 1: {  // a request body: its key, and its semantic part
            boost::system::error_code ec;
            auto v = json::parse(in, ec);
            if (ec || !v.is_object()) return 0;
            auto const& body = v.get_object();
            auto fp = cd::request_fingerprint(body, false);
            (void)json::parse(fp, ec);
            check(!ec);  // valid JSON (NaN cannot come from a parser; infinities are written as 1e999)
            // Key order does not matter: the same members inserted the other way round key alike.
            json::object reversed;
            for (auto it = body.end(); it != body.begin();) {
                --it;
                reversed.emplace(it->key(), it->value());
            }
            check(cd::request_fingerprint(reversed, false) == fp);
            (void)cd::request_fingerprint(v.get_object(), true);
            (void)cd::semantic_text(v.get_object(), 3);
            (void)cd::storable(v.get_object());
            return 0;
        }
        default: {  // a recorded stream
            cd::cached_answer a;
            std::size_t start = 0;
            while (start <= in.size() && a.chunks.size() < 256) {
                auto nl = in.find('\n', start);
                a.chunks.emplace_back(in.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
                if (nl == std::string_view::npos) break;
                start = nl + 1;
            }
            auto r = cd::replay_response(a);
            (void)cd::storable(r);
            (void)cd::replay_chunks(a, true);
            (void)cd::parse_cache_control(in.substr(0, 256));
            return 0;
        }
    }
}
