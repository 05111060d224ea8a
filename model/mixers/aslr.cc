// aslr (Attention Separate heads Layer Replacement): one feed-forward network per head, each
// reading the whole padded, flattened sequence and producing max_len x head_dim; the heads'
// outputs are concatenated like attention heads (role kMixer). Sizes xs/s/m/l: per-head
// hidden max_len*d_model / 32, 16, 8, 4.
#include "model/mixers/feedforward_net.h"

namespace mixserve::model {
namespace {

class AslrMixer : public FeedForwardMixer {
 public:
  explicit AslrMixer(const MixerContext& ctx)
      : FeedForwardMixer(ctx, "aslr", MixerRole::kMixer, FeedForwardFamily::kPerHead) {}
};

MIXSERVE_REGISTER_MIXER("aslr", (std::set<Site>{Site::kEncoderSelf, Site::kDecoderSelf,
                                                Site::kDecoderCross}),
                        AslrMixer);

}  // namespace
}  // namespace mixserve::model
