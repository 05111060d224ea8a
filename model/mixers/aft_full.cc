// aft_full: AFT with a learned pairwise position bias w[t, t'] of shape [max_len, max_len]
// (target position t, source position t'; in the cross site t' is the encoder position).
#include "model/mixers/aft_common.h"

namespace mixserve::model {
namespace {

class AftFullMixer : public AftMixer {
 public:
  explicit AftFullMixer(const MixerContext& ctx) : AftMixer(ctx, "aft_full", 1) {
    const int64_t L = ctx.max_len();
    // Zero: at initialisation the mixer equals aft_simple.
    w_ = register_parameter("w", torch::zeros({L, L}));
  }

 protected:
  torch::Tensor Bias(const torch::Tensor& tq, const torch::Tensor& ts) const override {
    const auto flat = (tq * w_.size(1) + ts).reshape({-1});
    return w_.reshape({-1}).index_select(0, flat).view(tq.sizes()).unsqueeze(-1);  // [N, S, 1]
  }
  int64_t MaxPositions() const override { return w_.size(0); }

 private:
  torch::Tensor w_;
};

}  // namespace

MIXSERVE_REGISTER_MIXER("aft_full",
                        (std::set<Site>{Site::kEncoderSelf, Site::kDecoderSelf,
                                        Site::kDecoderCross}),
                        AftFullMixer);

}  // namespace mixserve::model
