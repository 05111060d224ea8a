#pragma once
// Inference-time values computed from a module's parameters (stacked projections, weights
// with a constant folded in, weights packed for the CPU's products), built once and rebuilt
// whenever one of their source parameters moved (new storage) or was changed in place
// (version counter), so that loading, training or converting the model never leaves them
// stale.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace mixserve::model {

// Identifies the current values of `sources`: storage address and version counter of each.
std::vector<int64_t> DerivedKey(const std::vector<const torch::Tensor*>& sources);

template <typename T>
class Derived {
 public:
  using Build = std::function<T()>;
  // What `build` returns for the current values of `sources` (built without gradients;
  // cached until a source or `tag`, a setting the build reads, changes). Thread-safe.
  T Get(const std::vector<const torch::Tensor*>& sources, const Build& build, int64_t tag = 0) {
    auto key = DerivedKey(sources);
    key.push_back(tag);
    std::lock_guard<std::mutex> lock(mu_);
    if (key != key_) {
      torch::NoGradGuard no_grad;
      cached_ = build();
      key_ = std::move(key);
    }
    return cached_;
  }

 private:
  std::mutex mu_;
  std::vector<int64_t> key_;
  T cached_{};
};

using DerivedWeights = Derived<std::vector<torch::Tensor>>;

}  // namespace mixserve::model
