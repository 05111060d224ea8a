#include "server/peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace mixserve {
namespace {

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// "HOST:PORT" -> HOST (the part before the last ':').
bool SplitHost(const std::string& address, std::string* host) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = address.substr(0, colon);
  return true;
}

bool LoopbackV4(const std::string& host) {
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) != 1) return false;
  return (ntohl(a.s_addr) >> 24) == 127;
}

bool LoopbackV6(std::string host) {
  if (StartsWith(host, "%5B") || StartsWith(host, "%5b")) host = "[" + host.substr(3);
  auto end = host.size() >= 3 ? host.substr(host.size() - 3) : "";
  if (end == "%5D" || end == "%5d") host = host.substr(0, host.size() - 3) + "]";
  if (host.size() < 2 || host.front() != '[' || host.back() != ']') return false;
  host = host.substr(1, host.size() - 2);
  if (host.find('%') != std::string::npos) return false;  // zone ids: link-local, not loopback
  in6_addr a{};
  if (inet_pton(AF_INET6, host.c_str(), &a) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
  return IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127;
}

}  // namespace

bool IsLocalPeer(const std::string& peer) {
  if (StartsWith(peer, "unix:") || StartsWith(peer, "unix-abstract:")) return true;
  std::string host;
  if (StartsWith(peer, "ipv4:")) return SplitHost(peer.substr(5), &host) && LoopbackV4(host);
  if (StartsWith(peer, "ipv6:")) return SplitHost(peer.substr(5), &host) && LoopbackV6(host);
  return false;
}

}  // namespace mixserve
