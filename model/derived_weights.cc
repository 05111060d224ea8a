#include "model/derived_weights.h"

#include <cstdint>
#include <utility>

namespace mixserve::model {

std::vector<torch::Tensor> DerivedWeights::Get(const std::vector<const torch::Tensor*>& sources,
                                               const Build& build) {
  std::vector<int64_t> key;
  key.reserve(2 * sources.size());
  for (const auto* t : sources) {
    key.push_back(reinterpret_cast<int64_t>(t->data_ptr()));
    key.push_back(t->is_inference() ? -1 : static_cast<int64_t>(t->_version()));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (key != key_) {
    torch::NoGradGuard no_grad;
    cached_ = build();
    key_ = std::move(key);
  }
  return cached_;
}

}  // namespace mixserve::model
