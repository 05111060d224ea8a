#include "model/cpu_linear.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/affine.h"
#include "model/kernels/int8_gemm.h"
#include "model/kernels/packed_gemm.h"

namespace mixserve::model {
namespace {

namespace K = kernels;

// Below this many multiply-adds a product runs on one thread: waking the others costs a few
// microseconds, what about 250k multiply-adds take on one core of a 2-core x86-64 (AVX-512).
constexpr int64_t kParallelMacs = int64_t{1} << 18;
// Rows per task when a product is split between threads (with groups of panels: pairs in
// fp32, fours in int8, the kernels' widest tiles of several rows).
constexpr int64_t kRowBlock = 48;

// Runs kernel(args, row_begin, row_end, panel_begin, panel_end) over `rows` x `panels`: on
// this thread for small products (fewer than `serial` multiply-adds), else as tasks of (group
// of panels, block of rows), panel-major so that a thread's consecutive tasks reuse the panels
// in its cache.
template <typename Args>
void Split(void (*kernel)(const Args&, int64_t, int64_t, int64_t, int64_t), const Args& args,
           int64_t rows, int64_t panels, int64_t group, int64_t in, int64_t serial) {
  const int64_t macs = rows * panels * K::kPanel * in;
  if (macs < serial || at::get_num_threads() < 2 || at::in_parallel_region()) {
    kernel(args, 0, rows, 0, panels);
    return;
  }
  const int64_t groups = (panels + group - 1) / group,
                blocks = (rows + kRowBlock - 1) / kRowBlock;
  const int64_t task_macs = std::min(rows, kRowBlock) * group * K::kPanel * in;
  const int64_t grain = std::max<int64_t>(1, serial / 4 / std::max<int64_t>(1, task_macs));
  at::parallel_for(0, groups * blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t g = t / blocks, block = t % blocks;
      kernel(args, block * kRowBlock, std::min(rows, (block + 1) * kRowBlock), group * g,
             std::min(panels, group * g + group));
    }
  });
}

std::string Shape(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace

const char* CpuPrecisionName(CpuPrecision p) { return p == CpuPrecision::kInt8 ? "int8" : "fp32"; }

const char* CpuLinear::Kernel(CpuPrecision precision) {
  if (precision == CpuPrecision::kInt8) return K::Int8GemmIsa();
  return K::PackedGemmKernel() ? K::PackedGemmIsa() : "blas";
}

torch::Tensor CpuLinear::Pack(const torch::Tensor& weight) {
  const int64_t out = weight.size(0), in = weight.size(1);
  const int64_t panels = (out + K::kPanel - 1) / K::kPanel;
  auto padded = torch::zeros({panels * K::kPanel, in}, weight.options());
  padded.narrow(0, 0, out).copy_(weight);
  // [panels * 16, in] -> [panels, 16, in] -> [panels, in, 16]
  return padded.view({panels, K::kPanel, in}).transpose(1, 2).contiguous();
}

std::vector<torch::Tensor> CpuLinear::QuantizeInt8(const torch::Tensor& weight) {
  torch::NoGradGuard no_grad;
  const int64_t out = weight.size(0), in = weight.size(1);
  const int64_t panels = (out + K::kInt8Panel - 1) / K::kInt8Panel;
  const int64_t quads = (in + K::kInt8Quad - 1) / K::kInt8Quad;
  auto w = torch::zeros({panels * K::kInt8Panel, quads * K::kInt8Quad}, torch::kFloat);
  w.narrow(0, 0, out).narrow(1, 0, in).copy_(weight);
  auto scale = std::get<0>(w.abs().max(1)) / 127.0f;  // [panels * 16]; 0 for zero rows
  auto q = (w / scale.clamp_min(std::numeric_limits<float>::min()).unsqueeze(1))
               .round()
               .clamp(-127, 127)
               .to(torch::kChar);
  auto shift = q.sum(1, /*keepdim=*/false, torch::kInt) * K::kInt8Shift;
  // [panels * 16, quads * 4] -> [panels, 16, quads, 4] -> [panels, quads, 16, 4]
  auto panels_t =
      q.view({panels, K::kInt8Panel, quads, K::kInt8Quad}).permute({0, 2, 1, 3}).contiguous();
  return {panels_t, shift.contiguous(), scale.contiguous()};
}

CpuLinear::CpuLinear(const torch::Tensor& weight, const torch::Tensor& bias,
                     CpuPrecision precision)
    : precision_(precision) {
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
  if (precision_ == CpuPrecision::kInt8) {
    auto q = QuantizeInt8(w);
    panels_ = q[0];
    shift_ = q[1];
    scale_ = q[2];
  } else if (K::PackedGemmKernel()) {
    panels_ = Pack(w);
  } else {
    wt_ = w.t().contiguous();
  }
}

void CpuLinear::Run(const float* x, int64_t ldx, int64_t rows, float* y, bool accumulate,
                    bool relu) const {
  if (precision_ == CpuPrecision::kInt8) return RunInt8(x, ldx, rows, y, accumulate, relu);
  K::PackedGemmArgs a;
  a.x = x;
  a.ldx = ldx;
  a.in = in_;
  a.panels = panels_.data_ptr<float>();
  SetOutput(&a, y, accumulate, relu);
  Split(K::PackedGemmKernel(), a, rows, panels_.size(0), 2, in_, kParallelMacs);
}

void CpuLinear::RunInt8(const float* x, int64_t ldx, int64_t rows, float* y, bool accumulate,
                        bool relu) const {
  // The quantized inputs: per thread, reused across products.
  thread_local std::vector<uint8_t> xq;
  thread_local std::vector<float> xs;
  const int64_t quads = panels_.size(1), ldq = quads * K::kInt8Quad;
  if (static_cast<int64_t>(xq.size()) < rows * ldq) xq.resize(rows * ldq);
  if (static_cast<int64_t>(xs.size()) < rows) xs.resize(rows);
  K::QuantizeRows(x, ldx, rows, in_, xq.data(), ldq, xs.data());
  K::Int8GemmArgs a;
  a.x = xq.data();
  a.ldx = ldq;
  a.x_scale = xs.data();
  a.quads = quads;
  a.panels = panels_.data_ptr<int8_t>();
  a.shift = shift_.data_ptr<int32_t>();
  a.w_scale = scale_.data_ptr<float>();
  SetOutput(&a, y, accumulate, relu);
  // int8 multiply-adds run about four times as fast: four times as many stay on one thread.
  Split(K::Int8GemmKernel(), a, rows, panels_.size(0), 4, in_, 4 * kParallelMacs);
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
