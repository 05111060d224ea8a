#pragma once
// y = x W^T + b as one product over the rows of x ([..., in] -> [..., out]): addmm with the
// bias in the product's epilogue. torch::nn::Linear on input of more than two dimensions runs
// a product and a separate addition of the bias; at small batches on a GPU every operator is
// a kernel launch, so the difference shows in each layer of each decoding step.
#include <torch/torch.h>

namespace mixserve::model {

// On the CPU (where model/cpu_linear.h does not serve: other mixers, other dtypes) a single
// row (a decoding step at batch 1) times a large weight goes through a matrix-vector
// product: BLAS's matrix product packs the whole weight for that one row, which costs
// several times the product itself (2-core x86-64, OpenBLAS, one row: a 4,000 x 128
// output projection 84 us against 21, 2,048 x 512 157 against 35, 512 x 2,048 361 against
// 32; below about 128k weights the two are even).
inline bool OneRowOnCpu(const torch::Tensor& x, const torch::Tensor& weight) {
  return x.dim() == 2 && x.size(0) == 1 && x.is_cpu() && weight.numel() >= (int64_t{1} << 17);
}

inline torch::Tensor Affine(const torch::Tensor& x, const torch::Tensor& weight,
                            const torch::Tensor& bias) {
  if (OneRowOnCpu(x, weight))
    return (bias.defined() ? torch::addmv(bias, weight, x[0]) : torch::mv(weight, x[0]))
        .unsqueeze(0);
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
