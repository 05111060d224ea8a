#include <gtest/gtest.h>

#include "model/token_mixer.h"

namespace mixserve::model {
namespace {

TEST(MixerRegistry, UnknownMixerNamesKnownOnes) {
  ModelSpec spec = UniformSpec(16, 32, 2, 1, 1, 50);
  MixerSpec mixer;
  mixer.type = "no_such_mixer";
  MixerContext ctx{&spec, Site::kEncoderSelf, 0, mixer};
  try {
    MixerRegistry::Get().Create(ctx);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_mixer"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("known:"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixserve::model
