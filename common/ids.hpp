#pragma once
// Random ids and numbers. fast_hex and random_unit come from a per-thread generator (request and
// completion ids, routing's exploration and jitter: unpredictable enough, never secrets);
// secure_hex comes from OpenSSL's generator (session ids that grant access).
#include <cstddef>
#include <string>

namespace toolgate {

std::string fast_hex(std::size_t digits);
std::string secure_hex(std::size_t bytes);  // 2 * bytes hex digits; throws when no randomness is available
double random_unit();                       // uniform in [0, 1)

}  // namespace toolgate
