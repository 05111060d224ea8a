// Mixed-precision training for train, finetune and distill: --precision (fp32, bf16, fp16,
// auto), autocast for the forward pass, and an optimizer step with dynamic loss scaling for
// fp16 (as torch.cuda.amp.GradScaler does). Weights, optimizer state and checkpoints stay fp32.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "offline/flags.h"

namespace mixserve::offline {

enum class Precision { kFp32, kBf16, kFp16 };

// --precision.
FlagDef PrecisionFlag();
// "auto": bf16 on CUDA, fp32 on CPU. bf16 runs on CPU and CUDA;
// fp16 needs CUDA. Throws UsageError naming the problem.
Precision ParsePrecision(const std::string& flag, const torch::Device& device);
const char* PrecisionName(Precision p);

// Autocast on `device` in `p` for the current thread while alive (nothing for fp32):
// matrix products run in the low precision, reductions and losses in fp32.
class AutocastScope {
 public:
  AutocastScope(Precision p, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

// One optimizer update from a loss: backward, gradient clipping by global norm, step. For
// fp16 the loss is multiplied by a scale before backward and the gradients divided by it
// after; an update whose gradients overflowed is skipped and the scale halved, and the scale
// doubles after `growth_interval` clean updates.
class OptimizerStep {
 public:
  explicit OptimizerStep(Precision p, double init_scale = 65536.0, int64_t growth_interval = 2000);
  // Returns false when the update was skipped (fp16 overflow).
  bool Apply(const torch::Tensor& loss, torch::optim::Optimizer& opt,
             std::vector<torch::Tensor>& params, double clip_norm);
  double scale() const { return scale_; }
  int64_t skipped() const { return skipped_; }
  // Throws when this many updates in a row were skipped: fp16 cannot represent this
  // training's values (use bf16), or it diverges.
  static constexpr int64_t kMaxSkippedInARow = 50;

 private:
  bool scaling_;
  double scale_;
  int64_t growth_interval_;
  int64_t clean_ = 0;
  int64_t skipped_ = 0;
  int64_t skipped_in_a_row_ = 0;
};

}  // namespace mixserve::offline
