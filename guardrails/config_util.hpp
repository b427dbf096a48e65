#pragma once
// Reading a plugin's `config` object with errors that name the key ("config.patterns[2]"), for
// every guardrail's factory. Unknown keys are refused, so a typo is a start-up error.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "guardrails/guardrail.hpp"

namespace toolgate::guardrails::cfg {

inline std::string key_of(std::string_view k) { return "config." + std::string(k); }

inline void only_keys(json::object const& c, std::initializer_list<std::string_view> allowed) {
    for (auto const& kv : c) {
        bool ok = false;
        for (auto a : allowed) ok = ok || kv.key() == a;
        if (!ok) {
            std::string list;
            for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
            throw config_error(key_of(kv.key()), "unknown key '" + std::string(kv.key()) + "' (known: " + list + ")");
        }
    }
}

inline std::optional<std::string> string(json::object const& c, std::string_view k) {
    auto const* v = c.if_contains(k);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string()) throw config_error(key_of(k), "'" + std::string(k) + "' must be a string");
    return std::string(v->get_string());
}

inline std::string string_or(json::object const& c, std::string_view k, std::string def) {
    auto v = string(c, k);
    return v ? *v : def;
}

// One of `choices`; `def` when absent.
inline std::string choice(json::object const& c, std::string_view k, std::initializer_list<std::string_view> choices,
                          std::string def) {
    auto v = string_or(c, k, def);
    for (auto ch : choices)
        if (v == ch) return v;
    std::string list;
    for (auto ch : choices) list += (list.empty() ? "" : " | ") + std::string(ch);
    throw config_error(key_of(k), "'" + std::string(k) + "' must be " + list + " (got '" + v + "')");
}

inline bool boolean(json::object const& c, std::string_view k, bool def) {
    auto const* v = c.if_contains(k);
    if (!v || v->is_null()) return def;
    if (!v->is_bool()) throw config_error(key_of(k), "'" + std::string(k) + "' must be true or false");
    return v->get_bool();
}

inline double number(json::object const& c, std::string_view k, double def, double min, double max) {
    auto const* v = c.if_contains(k);
    if (!v || v->is_null()) return def;
    double d;
    if (v->is_int64()) d = static_cast<double>(v->get_int64());
    else if (v->is_uint64()) d = static_cast<double>(v->get_uint64());
    else if (v->is_double()) d = v->get_double();
    else throw config_error(key_of(k), "'" + std::string(k) + "' must be a number");
    if (d < min || d > max)
        throw config_error(key_of(k), "'" + std::string(k) + "' must be between " + std::to_string(min) + " and " +
                                          std::to_string(max));
    return d;
}

inline std::vector<std::string> strings(json::object const& c, std::string_view k) {
    std::vector<std::string> out;
    auto const* v = c.if_contains(k);
    if (!v || v->is_null()) return out;
    if (!v->is_array()) throw config_error(key_of(k), "'" + std::string(k) + "' must be a list of strings");
    auto const& a = v->get_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!a[i].is_string())
            throw config_error(key_of(k) + "[" + std::to_string(i) + "]", "every entry of '" + std::string(k) + "' must be a string");
        out.emplace_back(a[i].get_string());
    }
    return out;
}

// A file named in the config, relative to the config's folder; its whole text.
inline std::string read_file(build_context const& ctx, std::string const& path, std::string_view k) {
    std::string full = !path.empty() && path[0] == '/' ? path : ctx.base_dir + "/" + path;
    std::ifstream f(full, std::ios::binary);
    if (!f) throw config_error(key_of(k), "cannot read '" + full + "'");
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace toolgate::guardrails::cfg
