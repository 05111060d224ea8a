#pragma once
// y = x W^T + b as one product over the rows of x ([..., in] -> [..., out]): addmm with the
// bias in the product's epilogue. torch::nn::Linear on input of more than two dimensions runs
// a product and a separate addition of the bias; at small batches on a GPU every operator is
// a kernel launch, so the difference shows in each layer of each decoding step.
#include <torch/torch.h>

namespace mixserve::model {

inline torch::Tensor Affine(const torch::Tensor& x, const torch::Tensor& weight,
                            const torch::Tensor& bias) {
  if (!bias.defined()) return torch::matmul(x, weight.t());
  if (x.dim() == 2) return torch::addmm(bias, x, weight.t());
  auto sizes = x.sizes().vec();
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < sizes.size(); ++i) rows *= sizes[i];
  auto y = torch::addmm(bias, x.reshape({rows, sizes.back()}), weight.t());
  sizes.back() = weight.size(0);
  return y.view(sizes);
}

inline torch::Tensor Affine(const torch::Tensor& x, const torch::nn::Linear& l) {
  return Affine(x, l->weight, l->bias);
}

}  // namespace mixserve::model
