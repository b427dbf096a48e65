#pragma once
#include <algorithm>
#include <string>
#include <string_view>

namespace toolgate {

// ASCII lower case (HTTP header names, config words); not locale-aware on purpose.
inline std::string ascii_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
    return out;
}

}  // namespace toolgate
