// Which gRPC peers count as local (server/peer.h): the default admission rule of ModelService.
#include <gtest/gtest.h>

#include "server/peer.h"

namespace mixserve {
namespace {

TEST(Peer, LoopbackAndUnixSocketsAreLocal) {
  for (const char* p : {"ipv4:127.0.0.1:5555", "ipv4:127.10.20.30:1", "ipv6:[::1]:5555",
                        "ipv6:%5B::1%5D:5555", "ipv6:[::ffff:127.0.0.1]:80",
                        "ipv6:%5B::ffff:127.0.0.1%5D:80", "unix:/run/mixserve.sock", "unix:",
                        "unix-abstract:mixserve"})
    EXPECT_TRUE(IsLocalPeer(p)) << p;
}

TEST(Peer, EverythingElseIsRemote) {
  for (const char* p : {"ipv4:192.0.2.2:5555", "ipv4:10.0.0.1:1", "ipv4:128.0.0.1:1",
                        "ipv6:[fd00::2]:5555", "ipv6:%5Bfe80::1%2513%5D:1",
                        "ipv6:[::ffff:192.0.2.2]:80", "ipv6:[::]:1", "ipv4:0.0.0.0:1",
                        "ipv4:127.0.0.1", "ipv4:localhost:1", "ipv6:::1:5555", "127.0.0.1:5",
                        "", "ipv4:", "ipv6:[::1", "vsock:3:5"})
    EXPECT_FALSE(IsLocalPeer(p)) << p;
}

}  // namespace
}  // namespace mixserve
