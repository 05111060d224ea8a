// alrr (Attention Layer with Residual Replacement): the same network as alr, replacing the
// attention sub-block together with its residual connection and norm (role kBlock:
// y = alrr(x), x the raw block input).
#include "model/mixers/feedforward_net.h"

namespace mixserve::model {
namespace {

class AlrrMixer : public FeedForwardMixer {
 public:
  explicit AlrrMixer(const MixerContext& ctx)
      : FeedForwardMixer(ctx, "alrr", MixerRole::kBlock, FeedForwardFamily::kWhole) {}
};

MIXSERVE_REGISTER_MIXER("alrr", (std::set<Site>{Site::kEncoderSelf, Site::kDecoderSelf,
                                                Site::kDecoderCross}),
                        AlrrMixer);

}  // namespace
}  // namespace mixserve::model
