#include <gtest/gtest.h>

#include "config/model_spec_io.h"

namespace mixserve {
namespace {

TEST(ModelSpecIo, ParsesDefaultsAndOverrides) {
  const std::string text = R"pb(
    source_language: "en" target_language: "de"
    d_model: 64 ffn_dim: 128 heads: 4 encoder_layers: 3 decoder_layers: 2 vocab_size: 500
    encoder_self { type: "mha" }
    decoder_self { type: "aft_simple" }
    overrides { site: SITE_ENCODER_SELF layer: 1 mixer { type: "alr" size: "m" } }
    overrides { site: SITE_DECODER_CROSS layer: 0 mixer { type: "alr" size: "s" } }
  )pb";
  ModelSpec s;
  std::string err;
  ASSERT_TRUE(ParseModelSpec(text, &s, &err)) << err;
  ASSERT_EQ(s.encoder.size(), 3u);
  ASSERT_EQ(s.decoder.size(), 2u);
  EXPECT_EQ(s.encoder[0].self.type, "mha");
  EXPECT_EQ(s.encoder[1].self.type, "alr");
  EXPECT_EQ(s.encoder[1].self.size, "m");
  EXPECT_EQ(s.decoder[1].self.type, "aft_simple");
  EXPECT_EQ(s.decoder[0].cross.type, "alr");
  EXPECT_EQ(s.decoder[1].cross.type, "mha");
}

TEST(ModelSpecIo, FormatThenParseRoundTrips) {
  ModelSpec s = UniformSpec(32, 64, 4, 2, 3, 100);
  s.source_language = "de";
  s.target_language = "en";
  s.decoder[2].cross = MixerSpec{"aft_local", "", 0, 8, 0};
  ModelSpec back;
  std::string err;
  ASSERT_TRUE(ParseModelSpec(FormatModelSpec(s), &back, &err)) << err;
  EXPECT_EQ(back.d_model, 32);
  EXPECT_EQ(back.decoder.size(), 3u);
  EXPECT_EQ(back.decoder[2].cross, s.decoder[2].cross);
  EXPECT_EQ(back.decoder[1].cross.type, "mha");
  EXPECT_EQ(back.source_language, "de");
}

TEST(ModelSpecIo, BadInputNamesTheProblem) {
  ModelSpec s;
  std::string err;
  EXPECT_FALSE(ParseModelSpec("d_model: 64 encoder_layers: 1 decoder_layers: 1 heads: 5", &s, &err));
  EXPECT_NE(err.find("divisible"), std::string::npos) << err;
  EXPECT_FALSE(ParseModelSpec("d_modle: 64", &s, &err));
  EXPECT_NE(err.find("line 1"), std::string::npos) << err;
  EXPECT_NE(err.find("d_modle"), std::string::npos) << err;
  EXPECT_FALSE(ParseModelSpec(
      "encoder_layers: 2 decoder_layers: 1 overrides { site: SITE_ENCODER_SELF layer: 2 }", &s,
      &err));
  EXPECT_NE(err.find("out of range"), std::string::npos) << err;
  EXPECT_FALSE(ReadModelSpec("/nonexistent/model.pbtxt", &s, &err));
  EXPECT_NE(err.find("/nonexistent/model.pbtxt"), std::string::npos) << err;
}

}  // namespace
}  // namespace mixserve
