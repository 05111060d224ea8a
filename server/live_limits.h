// The request limits in force, replaceable while the server serves (configuration reload on
// SIGHUP). Readers get a reference that stays valid: every generation is kept (one small
// message per reload), so no reader ever sees a limits message being overwritten.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "mixserve/v1/config.pb.h"

namespace mixserve {

class LiveLimits {
 public:
  explicit LiveLimits(const v1::LimitsConfig& limits) { Set(limits); }
  const v1::LimitsConfig& Get() const { return *current_.load(std::memory_order_acquire); }
  void Set(const v1::LimitsConfig& limits) {
    std::lock_guard<std::mutex> lock(mu_);
    generations_.push_back(std::make_unique<const v1::LimitsConfig>(limits));
    current_.store(generations_.back().get(), std::memory_order_release);
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<const v1::LimitsConfig>> generations_;  // guarded by mu_
  std::atomic<const v1::LimitsConfig*> current_{nullptr};
};

}  // namespace mixserve
