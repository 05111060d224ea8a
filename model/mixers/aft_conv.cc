// aft_conv: the depth-wise convolution form of AFT with heads. Each head h has a learned 1-D
// kernel k_h over relative positions r = t - t' inside the window |r| < s, used as a position
// bias shared by all positions: w_h[t, t'] = k_h[r] for |r| < s, else 0. This is the paper's
//   Y_t = sigmoid(Q_t) * (conv(exp(K) * V, exp(k_h) - 1)_t + sum_t' exp(K_t') * V_t')
//                      / (conv(exp(K), exp(k_h) - 1)_t + sum_t' exp(K_t'))
// written as one weighted average. Kernel taps: 2s - 1 (r = -(s-1)..s-1) in the encoder-self
// and cross sites, s (r = 0..s-1) in the causal decoder-self site.
#include "model/mixers/aft_common.h"

namespace mixserve::model {
namespace {

class AftConvMixer : public AftMixer {
 public:
  explicit AftConvMixer(const MixerContext& ctx)
      : AftMixer(ctx, "aft_conv", ctx.heads()), window_(AftWindow(ctx)) {
    const int64_t taps = causal() ? window_ : 2 * window_ - 1;
    offset_ = causal() ? 0 : window_ - 1;  // tap index of relative position r is r + offset
    kernel_ = register_parameter("kernel", torch::zeros({static_cast<int64_t>(groups()), taps}));
  }

 protected:
  torch::Tensor Bias(const torch::Tensor& tq, const torch::Tensor& ts) const override {
    const auto r = tq - ts;  // [N, S]
    // Causal: r < 0 never reaches the average (masked), so only |r| < s matters here too.
    const auto inside = (r.abs() < window_) & (r + offset_ >= 0);
    const auto tap = (r + offset_).clamp(0, kernel_.size(1) - 1);
    const auto w = kernel_.index_select(1, tap.reshape({-1})).t().reshape(
        {r.size(0), r.size(1), kernel_.size(0)});  // [N, S, H]
    return w * inside.to(w.dtype()).unsqueeze(-1);
  }
  int64_t DecodeWindow() const override { return window_; }

 private:
  int64_t window_;
  int64_t offset_;
  torch::Tensor kernel_;
};

}  // namespace

MIXSERVE_REGISTER_MIXER("aft_conv",
                        (std::set<Site>{Site::kEncoderSelf, Site::kDecoderSelf,
                                        Site::kDecoderCross}),
                        AftConvMixer);

}  // namespace mixserve::model
