#pragma once
// The gateway's HTTP application: the route table in front of gateway/api/. Built once from a
// validated config; handle() runs concurrently on all worker threads. Shared state is read-only
// except where app_state (gateway/api/state.hpp) says how it is guarded: the metrics, the
// injected-tool cache and the hybrid store take short locks, the router's targets their own.
#include <memory>
#include <string>
#include <string_view>

#include "gateway/config.hpp"
#include "gateway/server.hpp"

namespace toolgate::gateway {

std::unique_ptr<request_handler> make_app(gateway_config const& cfg);

// What the route table answers for a method and path: a route (found), 405 with the path's
// methods (`allow`), or 404 (not found, `allow` empty).
struct route_match {
    bool found = false;
    std::string allow;
};
route_match match_route_table(std::string_view path, std::string_view method);

}  // namespace toolgate::gateway
