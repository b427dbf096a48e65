#include "gateway/config.hpp"

#include <boost/json/value.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>


namespace toolgate::gateway {

namespace json = boost::json;

std::string listen_address::to_string() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

std::optional<listen_address> parse_listen(std::string const& text) {
    listen_address a;
    std::string port_text;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
        a.host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos) return std::nullopt;
        a.host = text.substr(0, colon);
        if (a.host.find(':') != std::string::npos) return std::nullopt;
        port_text = text.substr(colon + 1);
    }
    if (a.host.empty()) a.host = "127.0.0.1";
    if (port_text.empty() || port_text.size() > 5) return std::nullopt;
    unsigned port = 0;
    for (char c : port_text) {
        if (c < '0' || c > '9') return std::nullopt;
        port = port * 10 + unsigned(c - '0');
    }
    if (port > 65535) return std::nullopt;
    a.port = static_cast<std::uint16_t>(port);
    return a;
}

env_lookup process_env() {
    return [](std::string const& name) -> std::optional<std::string> {
        if (char const* v = std::getenv(name.c_str())) return std::string(v);
        return std::nullopt;
    };
}

}  // namespace toolgate::gateway
