#pragma once
// The HTTP front's limits and timeouts: one set of defaults, read from the config's `server`
// section and handed to the server as they are.
#include <chrono>
#include <cstddef>

namespace toolgate::gateway {

struct server_limits {
    std::size_t max_body_bytes = 8 * 1024 * 1024;
    std::size_t max_upload_bytes = 32 * 1024 * 1024;  // a multipart/form-data body (audio, image uploads)
    std::chrono::milliseconds request_timeout{300'000};   // whole request; its cancel_token fires (reason timeout)
    std::chrono::milliseconds shutdown_grace{10'000};     // in-flight requests may finish after SIGTERM
    std::chrono::milliseconds header_timeout{30'000};     // to receive a request's head
    std::chrono::milliseconds keepalive_timeout{75'000};  // idle time between requests
    std::chrono::milliseconds body_timeout{60'000};       // to receive a request's body
    std::chrono::milliseconds write_timeout{60'000};      // a client not reading for this long is dropped
    // Overload: past these, new work gets a fast 503 `overloaded` with Retry-After instead of a queue.
    std::size_t max_connections = 10'000;  // open client connections (one more is answered 503 and closed)
    std::size_t max_inflight = 4'096;      // requests being handled at once, over all workers
};

}  // namespace toolgate::gateway
