#pragma once
// Reading the config's YAML: typed values with errors that name the file, line and key path, for
// the section parsers beside each feature (parse_* in mcp/, providers/, agentloop/, gateway/...;
// gateway/config.cpp only dispatches the sections). Only config parsers include this header.
#include <boost/json/value.hpp>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

#include "common/config_env.hpp"
#include "common/duration.hpp"

namespace toolgate {

namespace json = boost::json;


class reader {
public:
    reader(std::string source, env_lookup const& env) : source_(std::move(source)), env_(env) {}
    // `expand` false: text is taken as written, ${...} included (definitions that come through the
    // admin API, not from the operator's file, never read the process's environment).
    reader(std::string source, env_lookup const& env, bool expand) : source_(std::move(source)), env_(env), expand_(expand) {}

    [[noreturn]] void fail(YAML::Node const& n, std::string const& path, std::string const& what) const {
        std::ostringstream os;
        os << source_;
        if (n.IsDefined() && n.Mark().line >= 0) os << ':' << (n.Mark().line + 1);
        os << ": " << path << ": " << what;
        throw config_error(os.str());
    }

    // A mapping's key as text; a key that is itself a list or a mapping is refused.
    std::string key(YAML::Node const& k, std::string const& path) const {
        if (!k.IsScalar()) fail(k, path, k.IsNull() ? "a key must not be empty" : "a key must be a plain name, not a list or a mapping");
        return k.Scalar();
    }

    void check_keys(YAML::Node const& map, std::string const& path, std::set<std::string> const& known) const {
        if (!map.IsMap()) fail(map, path, "must be a mapping");
        std::set<std::string> seen;
        for (auto const& kv : map) {
            auto key = this->key(kv.first, path);
            // yaml-cpp keeps the first of two equal keys silently; a typo'd duplicate must not pass.
            if (!seen.insert(key).second) fail(kv.first, path.empty() ? key : path + "." + key, "duplicate key");
            if (!known.count(key)) {
                std::string list;
                for (auto const& k : known) list += (list.empty() ? "" : ", ") + k;
                fail(kv.first, path.empty() ? key : path + "." + key, "unknown key (known: " + list + ")");
            }
        }
    }

    std::string str(YAML::Node const& n, std::string const& path) const {
        if (!n.IsScalar()) fail(n, path, "must be a string");
        return expand_ ? expand_env(n.Scalar(), env_) : n.Scalar();
    }

    bool boolean(YAML::Node const& n, std::string const& path) const {
        auto s = str(n, path);
        if (s == "true" || s == "yes" || s == "on") return true;
        if (s == "false" || s == "no" || s == "off") return false;
        fail(n, path, "must be true or false");
    }

    std::uint64_t integer(YAML::Node const& n, std::string const& path, std::uint64_t min, std::uint64_t max) const {
        auto s = str(n, path);
        if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
            fail(n, path, "must be a whole number");
        auto v = std::stoull(s);
        if (v < min || v > max)
            fail(n, path, "must be between " + std::to_string(min) + " and " + std::to_string(max));
        return v;
    }

    double number(YAML::Node const& n, std::string const& path, double min, double max) const {
        auto s = str(n, path);
        char* end = nullptr;
        double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size() || !(v >= min && v <= max))
            fail(n, path, "must be a number between " + std::to_string(min) + " and " + std::to_string(max));
        return v;
    }

    // A size: a whole number of bytes, or one with a unit (KiB, MiB, GiB; KB, MB, GB are 1000s).
    std::uint64_t bytes(YAML::Node const& n, std::string const& path, std::uint64_t min, std::uint64_t max) const {
        auto s = str(n, path);
        auto digits = s.find_first_not_of("0123456789");
        auto unit = digits == std::string::npos ? std::string() : s.substr(digits);
        auto number = s.substr(0, digits);
        while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
        std::uint64_t scale = 0;
        if (unit.empty() || unit == "B") scale = 1;
        else if (unit == "KiB") scale = 1ull << 10;
        else if (unit == "MiB") scale = 1ull << 20;
        else if (unit == "GiB") scale = 1ull << 30;
        else if (unit == "KB" || unit == "kB") scale = 1000;
        else if (unit == "MB") scale = 1000 * 1000;
        else if (unit == "GB") scale = 1000 * 1000 * 1000;
        if (number.empty() || number.size() > 12 || scale == 0)
            fail(n, path, "must be a size such as 1048576, 64KiB, 256MiB or 1GiB");
        auto v = std::stoull(number) * scale;
        if (v < min || v > max)
            fail(n, path, "must be between " + std::to_string(min) + " and " + std::to_string(max) + " bytes");
        return v;
    }

    std::chrono::milliseconds duration(YAML::Node const& n, std::string const& path) const {
        auto d = parse_duration(str(n, path));
        if (!d) fail(n, path, "must be a duration such as 30s, 1500ms, 5m or 30d");
        return *d;
    }

    // Type-specific sub-trees become JSON so that providers validate them without YAML.
    json::value to_json(YAML::Node const& n, std::string const& path) const {
        switch (n.Type()) {
            case YAML::NodeType::Map: {
                json::object o;
                for (auto const& kv : n) {
                    auto key = this->key(kv.first, path);
                    o[key] = to_json(kv.second, path + "." + key);
                }
                return o;
            }
            case YAML::NodeType::Sequence: {
                json::array a;
                std::size_t i = 0;
                for (auto const& item : n) a.push_back(to_json(item, path + "[" + std::to_string(i++) + "]"));
                return a;
            }
            case YAML::NodeType::Scalar: {
                auto s = expand_ ? expand_env(n.Scalar(), env_) : n.Scalar();
                if (n.Tag() == "!") return json::value(s);  // quoted in the file: always a string
                if (s == "true") return true;
                if (s == "false") return false;
                if (s == "null" || s == "~") return nullptr;
                if (!s.empty() && s.find_first_not_of("-0123456789") == std::string::npos && s.size() < 19 &&
                    s != "-")
                    return std::stoll(s);
                if (!s.empty() && s.find_first_not_of("-+.0123456789eE") == std::string::npos &&
                    s.find_first_of("0123456789") != std::string::npos && s.find('.') != std::string::npos) {
                    char* end = nullptr;
                    double d = std::strtod(s.c_str(), &end);
                    if (end == s.c_str() + s.size()) return d;  // 0.7, -1.5e3
                }
                return json::value(s);
            }
            default:
                return nullptr;
        }
    }

private:
    std::string source_;
    env_lookup const& env_;
    bool expand_ = true;
};

inline bool valid_name(std::string const& s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' ||
              c == '_'))
            return false;
    return true;
}


}  // namespace toolgate
