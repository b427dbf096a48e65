#pragma once
// What every config parser shares without YAML: the error type (its message names the file, line
// and key) and ${ENV} expansion.
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

namespace toolgate {

struct config_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using env_lookup = std::function<std::optional<std::string>(std::string const&)>;

// Expands ${NAME} and ${NAME:-default}; "$$" is a literal '$'. Unset names without a default
// expand to the empty string.
std::string expand_env(std::string const& text, env_lookup const& env);

}  // namespace toolgate
