// alr (Attention Layer Replacement): a shallow feed-forward network over the whole padded,
// flattened sequence in place of the attention computation; the layer keeps its norm and
// residual path (role kMixer: y = x + dropout(alr(norm(x)))). Sizes xs/s/m/l: hidden
// max_len*d_model / 256, 128, 8, 2.
#include "model/mixers/feedforward_net.h"

namespace mixserve::model {
namespace {

class AlrMixer : public FeedForwardMixer {
 public:
  explicit AlrMixer(const MixerContext& ctx)
      : FeedForwardMixer(ctx, "alr", MixerRole::kMixer, FeedForwardFamily::kWhole) {}
};

MIXSERVE_REGISTER_MIXER("alr", (std::set<Site>{Site::kEncoderSelf, Site::kDecoderSelf,
                                               Site::kDecoderCross}),
                        AlrMixer);

}  // namespace
}  // namespace mixserve::model
