// aft_local: AFT with a learned pairwise bias w[t, t'] ([max_len, max_len]) used only inside
// the window |t - t'| < s (s = MixerSpec.window, default max(1, max_len / 4)); outside the
// window the bias is 0: those positions still count, with their plain exp(K) weight.
#include "model/mixers/aft_common.h"

namespace mixserve::model {
namespace {

class AftLocalMixer : public AftMixer {
 public:
  explicit AftLocalMixer(const MixerContext& ctx)
      : AftMixer(ctx, "aft_local", 1), window_(AftWindow(ctx)) {
    const int64_t L = ctx.max_len();
    w_ = register_parameter("w", torch::zeros({L, L}));
  }

 protected:
  torch::Tensor Bias(const torch::Tensor& tq, const torch::Tensor& ts) const override {
    const auto inside = (tq - ts).abs() < window_;  // [N, S]
    const auto flat = (tq * w_.size(1) + ts).reshape({-1});
    const auto w = w_.reshape({-1}).index_select(0, flat).view(tq.sizes());
    return (w * inside.to(w.dtype())).unsqueeze(-1);  // [N, S, 1]
  }
  int64_t MaxPositions() const override { return w_.size(0); }
  int64_t DecodeWindow() const override { return window_; }

 private:
  int64_t window_;
  torch::Tensor w_;
};

}  // namespace

MIXSERVE_REGISTER_MIXER("aft_local",
                        (std::set<Site>{Site::kEncoderSelf, Site::kDecoderSelf,
                                        Site::kDecoderCross}),
                        AftLocalMixer);

}  // namespace mixserve::model
