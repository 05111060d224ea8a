// aft_simple: AFT without position bias. Decoding needs O(1) state per row:
//   decoder self:  running maximum m, running sums  num = sum exp(K - m) * V,
//                  den = sum exp(K - m)  (rescaled when m grows), all [B, D];
//   decoder cross: the average over the memory does not depend on the target, so it is
//                  computed once at InitState ([B, D]) and each step only applies the gate.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/affine.h"
#include "model/cpu_linear.h"
#include "model/derived_weights.h"
#include "model/mixers/aft_common.h"

namespace mixserve::model {

namespace {

class AftSimpleMixer : public AftMixer, public CpuPrecisionUser {
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
      if (LeanCpu(x_t)) return CrossStepCpu(x_t.contiguous(), *st);
      return Finish(q_(x_t), st->context);
    }
    auto* st = dynamic_cast<AftRunningState*>(&state);
    if (!st) throw std::invalid_argument("aft_simple: state of another mixer");
    CheckStep(x_t, pos, st->m.size(0));
    if (LeanCpu(x_t)) return SelfStepCpu(x_t.contiguous(), *st);
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

 private:
  // Steps on the CPU in fp32 without gradients: q, k and v from one product (weights stacked,
  // model/cpu_linear.h), the running sums and the gate in one loop over raw memory, then the
  // output projection; a dozen operators fewer per step than the path above, which on the CPU
  // costs more than the arithmetic (docs/performance.md).
  static bool LeanCpu(const torch::Tensor& x) { return CpuLinear::Applies(x); }
  static float* Contiguous(torch::Tensor& t) {
    if (!t.is_contiguous()) t = t.contiguous();
    return t.data_ptr<float>();
  }
  static float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

  torch::Tensor SelfStepCpu(const torch::Tensor& x, AftRunningState& st) {
    const auto w = Cpu();
    const int64_t b = x.size(0), d = ctx_.d_model();
    const auto qkv = w[0](x);  // [B, 3D]: q, k, v
    auto gated = torch::empty({b, d}, x.options());
    const float* in = qkv.data_ptr<float>();
    float* m = Contiguous(st.m);
    float* num = Contiguous(st.num);
    float* den = Contiguous(st.den);
    float* g = gated.data_ptr<float>();
    for (int64_t r = 0; r < b; ++r) {
      const float* q = in + r * 3 * d;
      const float* k = q + d;
      const float* v = k + d;
      for (int64_t i = r * d, j = 0; j < d; ++i, ++j) {
        // Rescaled to the new maximum; exp(-inf) = 0 clears the empty start.
        const float top = std::max(m[i], k[j]);
        const float decay = std::exp(m[i] - top), e = std::exp(k[j] - top);
        num[i] = num[i] * decay + e * v[j];
        den[i] = den[i] * decay + e;
        m[i] = top;
        g[i] = Sigmoid(q[j]) * (num[i] / den[i]);
      }
    }
    return w[2](gated);
  }

  torch::Tensor CrossStepCpu(const torch::Tensor& x, AftContextState& st) {
    const auto w = Cpu();
    const int64_t b = x.size(0), d = ctx_.d_model();
    const auto q = w[1](x);
    auto gated = torch::empty({b, d}, x.options());
    const float* qp = q.data_ptr<float>();
    const float* c = Contiguous(st.context);
    float* g = gated.data_ptr<float>();
    for (int64_t i = 0; i < b * d; ++i) g[i] = Sigmoid(qp[i]) * c[i];
    return w[2](gated);
  }

  // [0] q, k and v stacked ([3D, D]), [1] q alone (cross steps), [2] the output projection.
  std::vector<CpuLinear> Cpu() {
    return CpuProducts(cpu_,
                       {&q_->weight, &k_->weight, &v_->weight, &out_->weight, &q_->bias,
                        &k_->bias, &v_->bias, &out_->bias},
                       cpu_precision(), [this](CpuPrecision p) {
                         std::vector<CpuLinear> c(3);
                         if (ctx_.site == Site::kDecoderCross)
                           c[1] = CpuLinear(q_->weight, q_->bias, p);
                         else
                           c[0] = CpuLinear(torch::cat({q_->weight, k_->weight, v_->weight}, 0),
                                            torch::cat({q_->bias, k_->bias, v_->bias}), p);
                         c[2] = CpuLinear(out_->weight, out_->bias, p);
                         return c;
                       });
  }

  Derived<std::vector<CpuLinear>> cpu_;
};

}  // namespace

MIXSERVE_REGISTER_MIXER("aft_simple",
                        (std::set<Site>{Site::kEncoderSelf, Site::kDecoderSelf,
                                        Site::kDecoderCross}),
                        AftSimpleMixer);

}  // namespace mixserve::model
