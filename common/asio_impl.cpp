// The one translation unit that compiles Asio, Asio's SSL layer and Beast (separate compilation).
// Everything else includes their headers with BOOST_*_SEPARATE_COMPILATION defined.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
