// What mixserve-cli retries and how long it waits between attempts: RESOURCE_EXHAUSTED (a
// full queue, a rate limit) and UNAVAILABLE (a restart, a drain, a variant out of service)
// are tried again after a jittered exponential backoff, as long as the deadline allows.
#pragma once

#include <chrono>
#include <random>

namespace mixserve::cli {

struct RetryPolicy {
  std::chrono::milliseconds initial{50};  // first backoff (before jitter)
  std::chrono::milliseconds max{2000};    // backoff cap
  double multiplier = 2;
};

// RESOURCE_EXHAUSTED and UNAVAILABLE (gRPC status codes 8 and 14).
bool IsRetryable(int status_code);

// The wait before retry number `retry` (1 for the first): min(max, initial * multiplier^(retry-1)),
// drawn uniformly from its upper half, so that refused clients do not come back in step.
class Backoff {
 public:
  explicit Backoff(const RetryPolicy& policy);
  std::chrono::milliseconds Delay(int retry);

 private:
  RetryPolicy policy_;
  std::mt19937_64 rng_;
};

}  // namespace mixserve::cli
