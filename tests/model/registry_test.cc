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

// Mixers without the feed-forward sizes refuse a size instead of ignoring it; the
// feed-forward replacements accept one. Every registered mixer falls in one group.
TEST(MixerRegistry, SizeIsRefusedByMixersWithoutSizes) {
  ModelSpec spec = UniformSpec(16, 32, 2, 1, 1, 50);
  spec.max_len = 8;
  int sized = 0, unsized = 0;
  for (const auto& name : MixerRegistry::Get().Names()) {
    const Site site = *MixerRegistry::Get().Sites(name).begin();
    MixerContext plain{&spec, site, 0, MixerSpec{name, "", 0, 0, 0}};
    MixerContext with_size{&spec, site, 0, MixerSpec{name, "xs", 0, 0, 0}};
    bool takes_size = true;
    try {
      MixerRegistry::Get().Create(with_size);
    } catch (const std::invalid_argument& e) {
      takes_size = false;
      EXPECT_NE(std::string(e.what()).find("has no sizes"), std::string::npos) << name << ": " << e.what();
    }
    EXPECT_NO_THROW(MixerRegistry::Get().Create(plain)) << name;
    EXPECT_EQ(MixerRegistry::Get().TakesSize(name, spec), takes_size) << name;
    ++(takes_size ? sized : unsized);
  }
  EXPECT_TRUE(MixerRegistry::Get().TakesSize("alr", spec));
  EXPECT_TRUE(MixerRegistry::Get().TakesSize("elr", spec));  // encoder only
  EXPECT_FALSE(MixerRegistry::Get().TakesSize("lstm", spec));
  EXPECT_FALSE(MixerRegistry::Get().TakesSize("no_such_mixer", spec));
  EXPECT_GT(sized, 0);
  EXPECT_GT(unsized, 0);
  EXPECT_THROW(MixerRegistry::Get().Create(MixerContext{&spec, Site::kEncoderSelf, 0,
                                                        MixerSpec{"aft_simple", "m", 0, 0, 0}}),
               std::invalid_argument);
  EXPECT_THROW(MixerRegistry::Get().Create(MixerContext{&spec, Site::kEncoderSelf, 0,
                                                        MixerSpec{"mha", "", 64, 0, 0}}),
               std::invalid_argument);
}

}  // namespace
}  // namespace mixserve::model
