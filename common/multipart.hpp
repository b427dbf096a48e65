#pragma once
// multipart/form-data (RFC 7578) without I/O: the boundary of a Content-Type, the parts of a body,
// and the same body with one text field's value replaced (every other byte kept as it was sent),
// for the upload routes that route by their `model` field and pass the rest through.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace toolgate::multipart {

struct part {
    std::string name;          // the Content-Disposition's name
    std::string filename;      // empty for a plain field
    std::string content_type;  // the part's own Content-Type, if it has one
    std::string_view data;     // the part's bytes, inside the body given to parse()
    std::size_t data_begin = 0;  // where `data` starts in the body
};

// The boundary of "multipart/form-data; boundary=..." (quoted or not); nullopt when the type is
// not multipart/form-data or the boundary is missing or longer than RFC 2046's 70 characters.
std::optional<std::string> boundary_of(std::string_view content_type);

// The parts of `body`, in order; nullopt when the body is not well-formed (no opening or closing
// delimiter, a part without a Content-Disposition name, more than `max_parts` parts). The views
// point into `body`.
std::optional<std::vector<part>> parse(std::string_view body, std::string_view boundary, std::size_t max_parts = 256);

// The value of the first plain field named `name` (nullptr when there is none).
part const* field(std::vector<part> const& parts, std::string_view name);

// `body` with the data of the plain field `name` replaced by `value` (the body as it is when the
// field is absent).
std::string with_field(std::string_view body, std::vector<part> const& parts, std::string_view name,
                       std::string_view value);

}  // namespace toolgate::multipart
