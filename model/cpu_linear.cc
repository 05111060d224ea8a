#include "model/cpu_linear.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "model/affine.h"
#include "model/kernels/packed_gemm.h"

namespace mixserve::model {
namespace {

namespace K = kernels;

// Below this many multiply-adds a product runs on one thread: waking the others costs a few
// microseconds, what about 250k multiply-adds take on one core of a 2-core x86-64 (AVX-512).
constexpr int64_t kParallelMacs = int64_t{1} << 18;
// Rows per task when a product is split between threads (with pairs of panels).
constexpr int64_t kRowBlock = 48;

std::string Shape(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace

const char* CpuLinear::Kernel() { return K::PackedGemmKernel() ? K::PackedGemmIsa() : "blas"; }

torch::Tensor CpuLinear::Pack(const torch::Tensor& weight) {
  const int64_t out = weight.size(0), in = weight.size(1);
  const int64_t panels = (out + K::kPanel - 1) / K::kPanel;
  auto padded = torch::zeros({panels * K::kPanel, in}, weight.options());
  padded.narrow(0, 0, out).copy_(weight);
  // [panels * 16, in] -> [panels, 16, in] -> [panels, in, 16]
  return padded.view({panels, K::kPanel, in}).transpose(1, 2).contiguous();
}

CpuLinear::CpuLinear(const torch::Tensor& weight, const torch::Tensor& bias) {
  if (weight.dim() != 2)
    throw std::invalid_argument("CpuLinear: weight must be [out, in], got " + Shape(weight));
  torch::NoGradGuard no_grad;
  out_ = weight.size(0);
  in_ = weight.size(1);
  auto w = weight.detach().to(torch::kCPU, torch::kFloat);
  if (bias.defined()) {
    if (bias.dim() != 1 || bias.size(0) != out_)
      throw std::invalid_argument("CpuLinear: bias " + Shape(bias) + " for a weight " +
                                  Shape(weight));
    bias_ = bias.detach().to(torch::kCPU, torch::kFloat).contiguous();
  }
  if (K::PackedGemmKernel()) {
    panels_ = Pack(w);
  } else {
    wt_ = w.t().contiguous();
  }
}

void CpuLinear::Run(const float* x, int64_t ldx, int64_t rows, float* y, bool accumulate,
                    bool relu) const {
  K::PackedGemmArgs a;
  a.x = x;
  a.ldx = ldx;
  a.in = in_;
  a.panels = panels_.data_ptr<float>();
  a.out = out_;
  a.bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
  a.y = y;
  a.ldy = out_;
  a.accumulate = accumulate;
  a.relu = relu;
  const auto kernel = K::PackedGemmKernel();
  const int64_t panels = panels_.size(0);
  const int64_t macs = rows * panels * K::kPanel * in_;
  if (macs < kParallelMacs || at::get_num_threads() < 2 || at::in_parallel_region()) {
    kernel(a, 0, rows, 0, panels);
    return;
  }
  // Tasks of (pair of panels, block of rows), panel-major so that a thread's consecutive
  // tasks reuse the panels in its cache.
  const int64_t pairs = (panels + 1) / 2, blocks = (rows + kRowBlock - 1) / kRowBlock;
  const int64_t task_macs = std::min(rows, kRowBlock) * 2 * K::kPanel * in_;
  const int64_t grain = std::max<int64_t>(1, kParallelMacs / 4 / std::max<int64_t>(1, task_macs));
  at::parallel_for(0, pairs * blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t pair = t / blocks, block = t % blocks;
      kernel(a, block * kRowBlock, std::min(rows, (block + 1) * kRowBlock), 2 * pair,
             std::min(panels, 2 * pair + 2));
    }
  });
}

torch::Tensor CpuLinear::operator()(const torch::Tensor& x, bool relu) const {
  if (x.dim() < 1 || x.size(-1) != in_)
    throw std::invalid_argument("CpuLinear: input " + Shape(x) + " for a weight of " +
                                std::to_string(in_) + " inputs");
  auto sizes = x.sizes().vec();
  sizes.back() = out_;
  const int64_t rows = in_ > 0 ? x.numel() / in_ : 0;
  if (!panels_.defined()) {  // BLAS
    auto x2 = x.reshape({rows, in_});
    torch::Tensor y;
    if (OneRowOnCpu(x2, wt_))
      y = (bias_.defined() ? torch::addmv(bias_, wt_.t(), x2[0]) : torch::mv(wt_.t(), x2[0]))
              .unsqueeze(0);
    else
      y = bias_.defined() ? torch::addmm(bias_, x2, wt_) : torch::mm(x2, wt_);
    if (relu) y.relu_();
    return y.view(sizes);
  }
  auto xc = x.contiguous();
  auto y = torch::empty(sizes, x.options());
  if (rows > 0) Run(xc.data_ptr<float>(), in_, rows, y.data_ptr<float>(), false, relu);
  return y;
}

torch::Tensor& CpuLinear::AddTo(torch::Tensor& y, const torch::Tensor& x) const {
  if (x.dim() != 2 || x.size(1) != in_ || y.dim() != 2 || y.size(1) != out_ ||
      y.size(0) != x.size(0) || !y.is_contiguous())
    throw std::invalid_argument("CpuLinear::AddTo: input " + Shape(x) + ", output " + Shape(y) +
                                " for a weight [" + std::to_string(out_) + ", " +
                                std::to_string(in_) + "] (output contiguous)");
  if (!panels_.defined()) {
    if (OneRowOnCpu(x, wt_))
      y.select(0, 0).addmv_(wt_.t(), x[0]);
    else
      y.addmm_(x, wt_);
    if (bias_.defined()) y.add_(bias_);
    return y;
  }
  auto xc = x.contiguous();
  if (x.size(0) > 0) Run(xc.data_ptr<float>(), in_, x.size(0), y.data_ptr<float>(), true, false);
  return y;
}

}  // namespace mixserve::model
