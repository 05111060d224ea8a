#include "clients/cli/retry.h"

#include <algorithm>
#include <cmath>

namespace mixserve::cli {

bool IsRetryable(int status_code) { return status_code == 8 || status_code == 14; }

Backoff::Backoff(const RetryPolicy& policy) : policy_(policy), rng_(std::random_device{}()) {}

std::chrono::milliseconds Backoff::Delay(int retry) {
  const double base = static_cast<double>(policy_.initial.count()) *
                      std::pow(policy_.multiplier, std::max(0, retry - 1));
  const double cap = std::min(base, static_cast<double>(policy_.max.count()));
  std::uniform_real_distribution<double> half(cap / 2, cap);
  return std::chrono::milliseconds(static_cast<long>(std::max(1.0, half(rng_))));
}

}  // namespace mixserve::cli
