// elr (Encoder Layer Replacement): one feed-forward network over the flattened, padded layer
// input replaces a whole encoder layer (self-attention, feed-forward, both residual paths
// and norms; role kLayer: y = elr(x)). Encoder self only. Sizes as alr.
#include "model/mixers/feedforward_net.h"

namespace mixserve::model {
namespace {

class ElrMixer : public FeedForwardMixer {
 public:
  explicit ElrMixer(const MixerContext& ctx)
      : FeedForwardMixer(ctx, "elr", MixerRole::kLayer, FeedForwardFamily::kWhole) {}
};

MIXSERVE_REGISTER_MIXER("elr", (std::set<Site>{Site::kEncoderSelf}), ElrMixer);

}  // namespace
}  // namespace mixserve::model
