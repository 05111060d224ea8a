#include "server/rate_limiter.h"

#include <algorithm>

namespace mixserve {

std::string RateLimiter::ClientOf(const std::string& peer) {
  auto colon = peer.rfind(':');
  auto first = peer.find(':');
  if (colon == std::string::npos || colon == first) return peer;
  return peer.substr(0, colon);
}

void RateLimiter::SetRate(double rps) {
  std::lock_guard<std::mutex> lock(mu_);
  rps_ = rps;
  burst_ = rps < 1 ? 1 : rps;
}

bool RateLimiter::Allow(const std::string& peer, double cost) {
  if (!enabled()) return true;
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  const double rps = rps_.load();
  if (buckets_.size() > 100000) buckets_.clear();  // bounded memory under address churn
  auto [it, fresh] = buckets_.try_emplace(ClientOf(peer), Bucket{burst_, now});
  Bucket& b = it->second;
  if (!fresh) {
    double dt = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(burst_, b.tokens + dt * rps);
    b.last = now;
  }
  if (b.tokens < cost) return false;
  b.tokens -= cost;
  return true;
}

}  // namespace mixserve
