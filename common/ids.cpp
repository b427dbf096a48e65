#include "common/ids.hpp"

#include <openssl/rand.h>

#include <random>
#include <stdexcept>
#include <vector>

namespace toolgate {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

std::mt19937_64& thread_rng() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return rng;
}

}  // namespace

std::string fast_hex(std::size_t digits) {
    std::string out;
    out.reserve(digits);
    auto& rng = thread_rng();
    while (out.size() < digits) {
        auto bits = rng();
        for (int i = 0; i < 16 && out.size() < digits; ++i) out += hex_digits[(bits >> (i * 4)) & 15];
    }
    return out;
}

std::string secure_hex(std::size_t bytes) {
    std::vector<unsigned char> raw(bytes);
    if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) throw std::runtime_error("no randomness available");
    std::string out;
    out.reserve(bytes * 2);
    for (unsigned char c : raw) {
        out += hex_digits[c >> 4];
        out += hex_digits[c & 15];
    }
    return out;
}

double random_unit() { return std::uniform_real_distribution<double>(0.0, 1.0)(thread_rng()); }

}  // namespace toolgate
