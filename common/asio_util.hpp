#pragma once
// The completion token every coroutine here awaits I/O with: results as a tuple (error_code
// first), never an exception, so a failed read or a cancelled timer is a value to look at.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace toolgate {

inline constexpr auto nothrow_awaitable = boost::asio::as_tuple(boost::asio::use_awaitable);

}  // namespace toolgate
