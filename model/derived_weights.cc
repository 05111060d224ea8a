#include "model/derived_weights.h"

namespace mixserve::model {

std::vector<int64_t> DerivedKey(const std::vector<const torch::Tensor*>& sources) {
  std::vector<int64_t> key;
  key.reserve(2 * sources.size());
  for (const auto* t : sources) {
    key.push_back(reinterpret_cast<int64_t>(t->data_ptr()));
    key.push_back(t->is_inference() ? -1 : static_cast<int64_t>(t->_version()));
  }
  return key;
}

}  // namespace mixserve::model
