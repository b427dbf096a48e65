// The one translation unit that compiles Boost.Process v2 (separate compilation).
#include <boost/asio/detail/throw_error.hpp>  // Process v2 in 1.81 uses it without including it
#include <boost/process/v2/src.hpp>
