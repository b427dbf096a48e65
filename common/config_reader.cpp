#include "common/config_reader.hpp"

#include <cctype>

namespace toolgate {

std::string expand_env(std::string const& text, env_lookup const& env) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '$' && i + 1 < text.size() && text[i + 1] == '$') {
            out.push_back('$');
            ++i;
            continue;
        }
        if (c == '$' && i + 1 < text.size() && text[i + 1] == '{') {
            auto close = text.find('}', i + 2);
            if (close == std::string::npos) throw config_error("unterminated ${...} in '" + text + "'");
            std::string inner = text.substr(i + 2, close - i - 2);
            std::string name = inner, fallback;
            bool has_fallback = false;
            if (auto p = inner.find(":-"); p != std::string::npos) {
                name = inner.substr(0, p);
                fallback = inner.substr(p + 2);
                has_fallback = true;
            }
            if (name.empty()) throw config_error("empty variable name in '" + text + "'");
            for (char n : name)
                if (!(std::isalnum(static_cast<unsigned char>(n)) || n == '_'))
                    throw config_error("invalid variable name '" + name + "'");
            auto v = env(name);
            if (v && !v->empty()) out += *v;
            else if (has_fallback) out += fallback;
            i = close;
            continue;
        }
        out.push_back(c);
    }
    return out;
}

}  // namespace toolgate
