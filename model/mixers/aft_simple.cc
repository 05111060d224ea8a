// aft_simple: AFT without position bias. Decoding needs O(1) state per row:
//   decoder self:  running maximum m, running sums  num = sum exp(K - m) * V,
//                  den = sum exp(K - m)  (rescaled when m grows), all [B, D];
//   decoder cross: the average over the memory does not depend on the target, so it is
//                  computed once at InitState ([B, D]) and each step only applies the gate.
#include <stdexcept>
#include <string>

#include "model/mixers/aft_common.h"

namespace mixserve::model {

namespace {

class AftSimpleMixer : public AftMixer {
 public:
  explicit AftSimpleMixer(const MixerContext& ctx) : AftMixer(ctx, "aft_simple", 1) {}

  std::unique_ptr<MixerState> InitState(const torch::Tensor& memory,
                                        const torch::Tensor& memory_mask,
                                        int64_t batch) override {
    if (cross()) {
      auto mem = AftMixer::InitState(memory, memory_mask, batch);
      auto& ms = dynamic_cast<AftMemoryState&>(*mem);
      auto st = std::make_unique<AftContextState>();
      st->context = AftWeightedAverage(ms.k, ms.v, torch::Tensor(), ms.mask.unsqueeze(1))
                        .squeeze(1);
      return st;
    }
    if (ctx_.site != Site::kDecoderSelf) return AftMixer::InitState(memory, memory_mask, batch);
    const auto opts = q_->weight.options();
    auto st = std::make_unique<AftRunningState>();
    const int64_t D = ctx_.d_model();
    st->m = torch::full({batch, D}, -std::numeric_limits<float>::infinity(), opts);
    st->num = torch::zeros({batch, D}, opts);
    st->den = torch::zeros({batch, D}, opts);
    return st;
  }

  bool StepCapturable() const override { return true; }

  torch::Tensor Step(const torch::Tensor& x_t, const torch::Tensor& pos,
                     MixerState& state) override {
    if (cross()) {
      auto* st = dynamic_cast<AftContextState*>(&state);
      if (!st) throw std::invalid_argument("aft_simple: state of another mixer");
      CheckStep(x_t, pos, st->context.size(0));
      return Finish(q_(x_t), st->context);
    }
    auto* st = dynamic_cast<AftRunningState*>(&state);
    if (!st) throw std::invalid_argument("aft_simple: state of another mixer");
    CheckStep(x_t, pos, st->m.size(0));
    const auto k = k_(x_t), v = v_(x_t);
    // Rescale the sums to the new maximum; exp(-inf) = 0 clears the empty start.
    const auto m_new = torch::max(st->m, k);
    const auto decay = torch::exp(st->m - m_new);
    const auto e = torch::exp(k - m_new);
    st->num = st->num * decay + e * v;
    st->den = st->den * decay + e;
    st->m = m_new;
    return Finish(q_(x_t), st->num / st->den);
  }

 protected:
  torch::Tensor Bias(const torch::Tensor&, const torch::Tensor&) const override {
    return torch::Tensor();
  }
};

}  // namespace

MIXSERVE_REGISTER_MIXER("aft_simple",
                        (std::set<Site>{Site::kEncoderSelf, Site::kDecoderSelf,
                                        Site::kDecoderCross}),
                        AftSimpleMixer);

}  // namespace mixserve::model
