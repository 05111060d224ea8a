#pragma once
// Inference-time tensors computed from a module's parameters (stacked projections, weights
// with a constant folded in, augmented matrices), built once and rebuilt whenever one of
// their source parameters moved (new storage) or was changed in place (version counter), so
// that loading, training or converting the model never leaves them stale.
#include <torch/torch.h>

#include <functional>
#include <mutex>
#include <vector>

namespace mixserve::model {

class DerivedWeights {
 public:
  using Build = std::function<std::vector<torch::Tensor>()>;
  // The tensors `build` returns for the current values of `sources` (built without gradients;
  // cached until a source changes). Thread-safe.
  std::vector<torch::Tensor> Get(const std::vector<const torch::Tensor*>& sources,
                                 const Build& build);

 private:
  std::mutex mu_;
  std::vector<int64_t> key_;
  std::vector<torch::Tensor> cached_;
};

}  // namespace mixserve::model
