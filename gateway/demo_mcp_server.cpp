// `toolgate demo-mcp-server`: a tiny MCP server over stdio with a few harmless tools, so the
// offline default config shows a complete agent loop without Node, Python or the network.
#include "gateway/demo_mcp_server.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

namespace toolgate::gateway {

namespace json = boost::json;

namespace {

json::array tool_list() {
    return json::array{
        json::object{
            {"name", "get_current_time"},
            {"description", "The current date and time in a time zone (IANA name such as Europe/Paris; default UTC)."},
            {"inputSchema",
             json::object{{"type", "object"},
                          {"properties", json::object{{"timezone", json::object{{"type", "string"},
                                                                               {"description", "IANA time zone name"}}}}}}}},
        json::object{{"name", "add"},
                     {"description", "Adds two numbers."},
                     {"inputSchema", json::object{{"type", "object"},
                                                  {"properties", json::object{{"a", json::object{{"type", "number"}}},
                                                                              {"b", json::object{{"type", "number"}}}}},
                                                  {"required", json::array{"a", "b"}}}}},
        json::object{{"name", "echo"},
                     {"description", "Returns the text it is given."},
                     {"inputSchema", json::object{{"type", "object"},
                                                  {"properties", json::object{{"text", json::object{{"type", "string"}}}}},
                                                  {"required", json::array{"text"}}}}},
    };
}

json::object text_result(std::string text, bool is_error = false) {
    return json::object{{"content", json::array{json::object{{"type", "text"}, {"text", std::move(text)}}}},
                        {"isError", is_error}};
}

bool valid_zone(std::string const& tz) {
    if (tz.empty() || tz.size() > 64 || tz.find("..") != std::string::npos || tz.front() == '/') return false;
    for (char c : tz)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' || c == '+')) return false;
    return tz == "UTC" || std::filesystem::exists("/usr/share/zoneinfo/" + tz);
}

json::object call_tool(std::string const& name, json::object const& args) {
    if (name == "get_current_time") {
        std::string tz = "UTC";
        if (auto const* t = args.if_contains("timezone"); t && t->is_string() && !t->get_string().empty())
            tz = std::string(t->get_string());
        if (!valid_zone(tz)) return text_result("unknown time zone '" + tz + "'", true);
        ::setenv("TZ", tz == "UTC" ? "UTC0" : tz.c_str(), 1);  // one thread: safe
        ::tzset();
        std::time_t now = std::time(nullptr);
        std::tm tm{};
        localtime_r(&now, &tm);
        char buf[64];
        std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &tm);
        return text_result(std::string(buf) + " (" + tz + ")");
    }
    if (name == "add") {
        auto const* a = args.if_contains("a");
        auto const* b = args.if_contains("b");
        if (!a || !b || !a->is_number() || !b->is_number()) return text_result("a and b must be numbers", true);
        double sum = a->to_number<double>() + b->to_number<double>();
        return text_result(fmt::format("{}", sum));
    }
    if (name == "echo") {
        auto const* t = args.if_contains("text");
        if (!t || !t->is_string()) return text_result("text must be a string", true);
        return text_result(std::string(t->get_string()));
    }
    return {};
}

json::object response(json::value const& id, json::object result) {
    return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json::object error(json::value const& id, int code, std::string message) {
    return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"error", json::object{{"code", code}, {"message", std::move(message)}}}};
}

std::optional<json::object> handle(json::object const& msg) {
    auto const* method = msg.if_contains("method");
    auto const* id = msg.if_contains("id");
    if (!method || !method->is_string() || !id) return std::nullopt;  // notifications and responses: nothing to say
    std::string_view m = method->get_string();
    json::object params;
    if (auto const* p = msg.if_contains("params"); p && p->is_object()) params = p->get_object();
    if (m == "initialize") {
        std::string version = "2025-11-25";
        if (auto const* v = params.if_contains("protocolVersion"); v && v->is_string()) {
            std::string_view asked = v->get_string();
            if (asked == "2025-06-18" || asked == "2025-03-26") version = std::string(asked);
        }
        return response(*id, json::object{{"protocolVersion", version},
                                          {"capabilities", json::object{{"tools", json::object()}}},
                                          {"serverInfo", json::object{{"name", "toolgate-demo"}, {"version", TOOLGATE_VERSION}}}});
    }
    if (m == "ping") return response(*id, json::object());
    if (m == "tools/list") return response(*id, json::object{{"tools", tool_list()}});
    if (m == "tools/call") {
        auto const* name = params.if_contains("name");
        json::object args;
        if (auto const* a = params.if_contains("arguments"); a && a->is_object()) args = a->get_object();
        if (!name || !name->is_string()) return error(*id, -32602, "tools/call needs a name");
        auto result = call_tool(std::string(name->get_string()), args);
        if (result.empty()) return error(*id, -32602, "unknown tool: " + std::string(name->get_string()));
        return response(*id, std::move(result));
    }
    return error(*id, -32601, "method not found: " + std::string(m));
}

}  // namespace

int run_demo_mcp_server() {
    std::ios::sync_with_stdio(false);
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line.size() > (1u << 20)) continue;
        boost::system::error_code ec;
        auto v = json::parse(line, ec);
        if (ec || !v.is_object()) {
            std::cout << json::serialize(error(nullptr, -32700, "parse error")) << '\n' << std::flush;
            continue;
        }
        if (auto out = handle(v.get_object())) std::cout << json::serialize(*out) << '\n' << std::flush;
    }
    return 0;
}

}  // namespace toolgate::gateway
