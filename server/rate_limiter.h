// Per-client token buckets (limits.rate_limit_rps): a client is its peer address without
// the port, so every connection of one host shares a bucket.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>

namespace mixserve {

class RateLimiter {
 public:
  // rps <= 0: unlimited. The bucket holds at most max(1, rps) tokens (one second's burst).
  explicit RateLimiter(double rps) : rps_(rps), burst_(rps < 1 ? 1 : rps) {}
  bool enabled() const { return rps_.load() > 0; }
  // A new rate (configuration reload); buckets keep their tokens, capped at the new burst.
  void SetRate(double rps);
  // Takes `cost` tokens from the client's bucket; false when it has too few.
  bool Allow(const std::string& peer, double cost = 1);
  // "ipv4:127.0.0.1:5555" -> "ipv4:127.0.0.1"; "ipv6:[::1]:5555" -> "ipv6:[::1]".
  static std::string ClientOf(const std::string& peer);

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point last;
  };
  std::atomic<double> rps_;
  std::mutex mu_;
  double burst_;  // guarded by mu_
  std::map<std::string, Bucket> buckets_;
};

}  // namespace mixserve
