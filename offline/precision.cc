#include "offline/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace mixserve::offline {

// LibTorch 2.4 replaced the per-device autocast setters by ones that take the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define MIXSERVE_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace {

bool AutocastEnabled(bool cuda) {
#ifdef MIXSERVE_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void SetAutocast(bool cuda, bool enabled, at::ScalarType dtype) {
#ifdef MIXSERVE_AUTOCAST_BY_DEVICE_TYPE
  const auto type = cuda ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_enabled(type, enabled);
  at::autocast::set_autocast_dtype(type, dtype);
#else
  if (cuda) {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

at::ScalarType AutocastDtype(bool cuda) {
#ifdef MIXSERVE_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

}  // namespace

FlagDef PrecisionFlag() {
  return {"precision", "auto",
          "fp32, bf16 (CPU or CUDA), fp16 (CUDA, with loss scaling), auto (bf16 on CUDA, fp32 "
          "on CPU): autocast of the forward pass; weights stay fp32"};
}

Precision ParsePrecision(const std::string& flag, const torch::Device& device) {
  if (flag == "fp32") return Precision::kFp32;
  if (flag == "bf16") return Precision::kBf16;
  if (flag == "fp16") {
    if (!device.is_cuda())
      throw UsageError("--precision=fp16 needs a CUDA device (use bf16 or fp32 on " +
                       device.str() + ")");
    return Precision::kFp16;
  }
  if (flag == "auto") return device.is_cuda() ? Precision::kBf16 : Precision::kFp32;
  throw UsageError("--precision: unknown value '" + flag + "' (fp32, bf16, fp16, auto)");
}

const char* PrecisionName(Precision p) {
  switch (p) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp16:
      return "fp16";
  }
  return "?";
}

AutocastScope::AutocastScope(Precision p, const torch::Device& device) {
  if (p == Precision::kFp32) return;
  active_ = true;
  cuda_ = device.is_cuda();
  was_enabled_ = AutocastEnabled(cuda_);
  was_dtype_ = AutocastDtype(cuda_);
  at::autocast::increment_nesting();
  SetAutocast(cuda_, true, p == Precision::kFp16 ? at::kHalf : at::kBFloat16);
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // Casts of weights are cached while autocast is on; the outermost scope drops them.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetAutocast(cuda_, was_enabled_, was_dtype_);
}

OptimizerStep::OptimizerStep(Precision p, double init_scale, int64_t growth_interval)
    : scaling_(p == Precision::kFp16),
      scale_(scaling_ ? init_scale : 1.0),
      growth_interval_(growth_interval) {}

bool OptimizerStep::Apply(const torch::Tensor& loss, torch::optim::Optimizer& opt,
                          std::vector<torch::Tensor>& params, double clip_norm) {
  opt.zero_grad();
  (scaling_ ? loss * scale_ : loss).backward();
  if (scaling_) {
    torch::NoGradGuard ng;
    for (auto& p : params)
      if (p.grad().defined()) p.grad().mul_(1.0 / scale_);
  }
  // clip_grad_norm_ returns the norm before clipping: non-finite exactly when some gradient
  // overflowed (an infinite limit only measures it).
  double norm = 0;
  if (clip_norm > 0 || scaling_)
    norm = torch::nn::utils::clip_grad_norm_(
        params, clip_norm > 0 ? clip_norm : std::numeric_limits<double>::infinity());
  if (scaling_ && !std::isfinite(norm)) {
    opt.zero_grad();
    scale_ = std::max(scale_ * 0.5, 1.0);
    clean_ = 0;
    ++skipped_;
    if (++skipped_in_a_row_ >= kMaxSkippedInARow)
      throw std::runtime_error("fp16: " + std::to_string(skipped_in_a_row_) +
                               " updates in a row had overflowing gradients (loss scale " +
                               std::to_string(scale_) +
                               "); use --precision=bf16 or fp32, or lower --lr");
    return false;
  }
  skipped_in_a_row_ = 0;
  opt.step();
  if (scaling_ && ++clean_ >= growth_interval_) {
    scale_ *= 2;
    clean_ = 0;
  }
  return true;
}

}  // namespace mixserve::offline
