#include "common/sse.hpp"

#include <algorithm>

namespace toolgate::sse {

bool parser::feed(std::string_view bytes, std::vector<event>& out) {
    if (failed_) return false;
    std::size_t i = 0;
    if (skip_lf_ && !bytes.empty()) {
        if (bytes[0] == '\n') i = 1;
        skip_lf_ = false;
    }
    while (i < bytes.size()) {
        auto rest = bytes.substr(i);
        auto pos = rest.find_first_of("\r\n");
        if (pos == std::string_view::npos) {
            line_.append(rest);
            if (line_.size() + current_.data.size() > max_event_bytes_) return !(failed_ = true);
            break;
        }
        std::string_view line;
        if (line_.empty()) {
            line = rest.substr(0, pos);
        } else {
            line_.append(rest.substr(0, pos));
            line = line_;
        }
        if (line.size() + current_.data.size() > max_event_bytes_) return !(failed_ = true);
        process_line(line, out);
        line_.clear();
        i += pos + 1;
        if (rest[pos] == '\r') {
            if (i < bytes.size()) {
                if (bytes[i] == '\n') ++i;
            } else {
                skip_lf_ = true;
            }
        }
    }
    return true;
}

void parser::process_line(std::string_view line, std::vector<event>& out) {
    if (line.empty()) {
        if (has_data_) {
            out.push_back(std::move(current_));
        }
        current_ = event{};
        has_data_ = false;
        return;
    }
    if (line.front() == ':') return;  // comment
    auto colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
        value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
        if (has_data_) current_.data.push_back('\n');
        current_.data.append(value);
        has_data_ = true;
    } else if (field == "event") {
        current_.type = std::string(value);
    } else if (field == "id") {
        if (value.find('\0') == std::string_view::npos) last_id_ = current_.id = std::string(value);
    } else if (field == "retry") {
        // Only ASCII digits; anything else is ignored, as the spec says.
        bool digits = !value.empty() && value.size() <= 12;
        for (char c : value) digits = digits && c >= '0' && c <= '9';
        if (digits) retry_ms_ = std::min<std::int64_t>(std::stoll(std::string(value)), 600'000);
    }
    // Unknown fields are ignored, as the spec says.
}

}  // namespace toolgate::sse
