// state.redis.url (state/redis_proto): any text is either an endpoint or std::invalid_argument
// naming the problem, never another exception or a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "state/redis_proto.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string_view url(reinterpret_cast<char const*>(data), size);
    try {
        auto ep = toolgate::state::detail::parse_redis_url(url);
        if (ep.host.empty()) std::abort();
    } catch (std::invalid_argument const&) {
        // Refused with its reason (that it never repeats a password is a unit test in
        // tests/state/test_redis.cpp, with the inputs this target found).
    }
    return 0;
}
