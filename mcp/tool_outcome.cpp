#include "mcp/tool_outcome.hpp"

namespace toolgate::mcp {

namespace {

class tool_category_impl final : public boost::system::error_category {
public:
    char const* name() const noexcept override { return "toolgate.tool"; }
    std::string message(int ev) const override { return std::string(to_string(static_cast<tool_errc>(ev))); }
};

}  // namespace

boost::system::error_category const& tool_category() {
    static tool_category_impl const category;
    return category;
}

std::string_view to_string(tool_errc e) {
    switch (e) {
        case tool_errc::failed: return "failed";
        case tool_errc::unknown_tool: return "unknown_tool";
        case tool_errc::invalid_arguments: return "invalid_arguments";
        case tool_errc::unavailable: return "unavailable";
        case tool_errc::busy: return "busy";
        case tool_errc::circuit_open: return "circuit_open";
        case tool_errc::timeout: return "timeout";
        case tool_errc::cancelled: return "cancelled";
        case tool_errc::server_error: return "server_error";
    }
    return "failed";
}

}  // namespace toolgate::mcp
