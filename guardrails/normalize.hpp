#pragma once
// Text as a detector should see it: the tricks that hide a match from a naive scan are undone.
// Full-width ASCII (U+FF01-U+FF5E) becomes ASCII, zero-width characters and the soft hyphen are
// dropped, Unicode spaces become ' ', dash and dot look-alikes become '-' and '.', and U+FF20 '@'.
// Everything else is kept byte for byte (invalid UTF-8 too). `origin[i]` is the byte offset in the
// input where output byte i came from, and origin[size] == input size, so a match found in the
// folded text maps back to the input's bytes (for redaction).
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace toolgate::guardrails {

struct folded {
    std::string text;
    std::vector<std::size_t> origin;  // text.size() + 1 entries
    bool changed = false;             // text differs from the input
};

folded fold(std::string_view in);

// ASCII lower case of a folded text (for case-insensitive rules); other bytes unchanged.
std::string ascii_lower_copy(std::string_view s);

}  // namespace toolgate::guardrails
