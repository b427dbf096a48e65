#pragma once
// Parsing untrusted JSON with the gateway's one nesting bound (64 levels: deeper is refused, so a
// crafted body cannot exhaust the stack).
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <string_view>

namespace toolgate {

inline constexpr std::size_t max_json_depth = 64;

inline boost::json::value parse_bounded(std::string_view text, boost::system::error_code& ec) {
    boost::json::parse_options po;
    po.max_depth = max_json_depth;
    return boost::json::parse(text, ec, {}, po);
}

}  // namespace toolgate
