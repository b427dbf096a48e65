#pragma once
// A free TCP port on 127.0.0.1, for the store tests that start a real server (redis-server,
// PostgreSQL) of their own.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace toolgate::testing {

inline int free_port() {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    bool ok = s >= 0 && ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
              ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    if (s >= 0) ::close(s);
    if (!ok) throw std::runtime_error("no free port");
    return ntohs(a.sin_port);
}

}  // namespace toolgate::testing
