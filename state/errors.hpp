#pragma once
// Errors of the state stores. A store that cannot answer (Redis down, a query timed out, the SQLite
// file unwritable) returns one of these in a boost::system::result; the caller decides, per
// feature, whether that admits (`on_unavailable: open`) or refuses (`closed`).
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace toolgate::state {

enum class errc {
    unavailable = 1,  // the store cannot be reached (connection refused or lost)
    timeout,          // no answer within the store's timeout
    protocol,         // the store answered something this code cannot read
    storage,          // the store refused the operation (a disk full, a constraint)
    overloaded,       // a bounded queue is full
};

boost::system::error_category const& category() noexcept;
inline boost::system::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

template <class T>
using result = boost::system::result<T>;

}  // namespace toolgate::state

template <>
struct boost::system::is_error_code_enum<toolgate::state::errc> : std::true_type {};
