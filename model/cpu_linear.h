#pragma once
// A linear layer's weight and bias prepared for inference on the CPU in fp32: y = x W^T + b
// without per-call packing or layout work. Where the CPU has a packed kernel
// (model/kernels/packed_gemm.h: AVX-512 or AVX2 with FMA) the weight is kept in 16-column
// panels and the bias, the ReLU and an accumulation into the output happen in the product's
// last pass over each tile; elsewhere it is kept transposed ([in, out] contiguous, the layout
// OpenBLAS multiplies rows with fastest) and products go through BLAS (single rows of large
// weights through a matrix-vector product: BLAS's matrix product packs the whole weight even
// for one row).
//
// With CpuPrecision::kInt8 the weight is quantized instead, each row (output column) with its
// own scale, and each product quantizes its input rows as it runs (model/kernels/int8_gemm.h):
// int8 products accumulated in int32, bias, ReLU and accumulation in fp32.
//
// Built from the parameters by the modules that use it (through Derived<CpuLinear>, which
// rebuilds it when they change), used only where Applies(): CPU, fp32, no gradients. It is a
// copy: the parameters stay what training, checkpoints and CUDA use.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/derived_weights.h"

namespace mixserve::model {

// How a model's products on the CPU are computed: fp32, or int8 weights and inputs.
enum class CpuPrecision { kFp32, kInt8 };
const char* CpuPrecisionName(CpuPrecision p);  // "fp32", "int8"

// Modules that keep CpuLinear products implement this; TransformerImpl::SetCpuPrecision sets it
// on all of them. They keep their products through CpuProducts (below), which rebuilds them
// when the precision changes.
class CpuPrecisionUser {
 public:
  virtual ~CpuPrecisionUser() = default;
  void SetCpuPrecision(CpuPrecision p) { cpu_precision_ = p; }
  CpuPrecision cpu_precision() const { return cpu_precision_; }

 private:
  CpuPrecision cpu_precision_ = CpuPrecision::kFp32;
};

class CpuLinear {
 public:
  CpuLinear() = default;
  // weight [out, in], bias [out] or undefined.
  CpuLinear(const torch::Tensor& weight, const torch::Tensor& bias,
            CpuPrecision precision = CpuPrecision::kFp32);

  // `weight` [out, in] as the packed kernel reads it: [panels, in, 16], the last panel
  // zero-padded (model/kernels/packed_gemm.h).
  static torch::Tensor Pack(const torch::Tensor& weight);
  // `weight` [out, in] quantized for the int8 kernel: {panels [panels, quads, 16, 4] int8,
  // shift [panels * 16] int32, scale [panels * 16] fp32} (model/kernels/int8_gemm.h).
  static std::vector<torch::Tensor> QuantizeInt8(const torch::Tensor& weight);

  // Whether products of `x` may take this path: on the CPU, fp32, without gradients.
  static bool Applies(const torch::Tensor& x) {
    return x.is_cpu() && x.scalar_type() == torch::kFloat && !torch::GradMode::is_enabled();
  }
  // fp32: "avx512", "avx2" (packed kernels) or "blas"; int8: "avx512vnni" or "portable".
  static const char* Kernel(CpuPrecision precision = CpuPrecision::kFp32);
  CpuPrecision precision() const { return precision_; }

  bool defined() const { return out_ > 0 || in_ > 0; }
  int64_t in() const { return in_; }
  int64_t out() const { return out_; }

  // max(0, x W^T + b) with `relu`, else x W^T + b: x [..., in] -> [..., out].
  torch::Tensor operator()(const torch::Tensor& x, bool relu = false) const;
  // y += x W^T + b in place: x [rows, in], y [rows, out] contiguous.
  torch::Tensor& AddTo(torch::Tensor& y, const torch::Tensor& x) const;

 private:
  void Run(const float* x, int64_t ldx, int64_t rows, float* y, bool accumulate,
           bool relu) const;
  void RunInt8(const float* x, int64_t ldx, int64_t rows, float* y, bool accumulate,
               bool relu) const;
  // The output side of either kernel's arguments (the same fields in both): bias, y [rows,
  // out] contiguous, accumulation, ReLU.
  template <typename Args>
  void SetOutput(Args* a, float* y, bool accumulate, bool relu) const {
    a->out = out_;
    a->bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
    a->y = y;
    a->ldy = out_;
    a->accumulate = accumulate;
    a->relu = relu;
  }

  CpuPrecision precision_ = CpuPrecision::kFp32;
  torch::Tensor panels_;  // fp32: [panels, in, 16] for the packed kernel, else undefined;
                          // int8: [panels, quads, 16, 4] int8
  torch::Tensor shift_;   // int8: [panels * 16] int32, 128 times each column's weight sum
  torch::Tensor scale_;   // int8: [panels * 16] fp32, each column's weight scale
  torch::Tensor wt_;      // [in, out] for BLAS, else undefined
  torch::Tensor bias_;    // [out] or undefined
  int64_t in_ = 0, out_ = 0;
};

// Products kept in `cached` for the current values of `sources` and `precision`:
// build(precision) when a source or the precision changed since they were built.
template <typename T, typename Build>
T CpuProducts(Derived<T>& cached, const std::vector<const torch::Tensor*>& sources,
              CpuPrecision precision, const Build& build) {
  return cached.Get(sources, [&] { return build(precision); }, static_cast<int64_t>(precision));
}

}  // namespace mixserve::model
