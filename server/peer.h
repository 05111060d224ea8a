// What the server knows of a caller from gRPC's peer string: whether it is on this host.
#pragma once

#include <string>

namespace mixserve {

// True for callers on the local host: a loopback address (IPv4 127.0.0.0/8, IPv6 ::1, and
// IPv4-mapped ::ffff:127.x.y.z) or a Unix domain socket. Accepts gRPC's peer strings, e.g.
// "ipv4:127.0.0.1:5555", "ipv6:[::1]:5555" (also URI-encoded, "ipv6:%5B::1%5D:5555"),
// "unix:/run/mixserve.sock". Anything else, unparsable strings included, is not local.
bool IsLocalPeer(const std::string& peer);

}  // namespace mixserve
