#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/model_spec_io.h"
#include "model/checkpoint.h"
#include "model_test_util.h"
#include "base/remove_tree.h"

namespace mixserve::model {
namespace {

using namespace ::mixserve::model::testing;
namespace fs = std::filesystem;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mixserve_ckpt_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    mixserve::RemoveTree(dir_);
    torch::manual_seed(5);
  }
  void TearDown() override { mixserve::RemoveTree(dir_); }
  std::string Error(const ModelSpec& other) {
    std::string err;
    EXPECT_TRUE(WriteModelSpec((dir_ / "model.pbtxt").string(), other, &err)) << err;
    try {
      LoadCheckpoint(dir_.string());
    } catch (const CheckpointError& e) {
      return e.what();
    }
    return "no error";
  }
  fs::path dir_;
};

TEST_F(CheckpointTest, RoundTripIsExactWithSeparateEmbeddings) {
  torch::NoGradGuard ng;
  ModelSpec s = TinySpec();
  s.share_embeddings = false;
  Transformer m(s);
  m->eval();
  SaveOptions o;
  o.metadata["origin"] = "unit \"test\"";
  o.numeric_metadata["val_bleu"] = 12.5;
  SaveCheckpoint(m, dir_.string(), o);
  EXPECT_TRUE(fs::exists(dir_ / "model.pt"));
  auto loaded = LoadCheckpoint(dir_.string());
  loaded->eval();
  EXPECT_FALSE(loaded->spec().share_embeddings);
  auto src = Pad({RandomTokens(7, true)});
  auto tgt = Pad({WithBos(RandomTokens(4, false))});
  EXPECT_TRUE(torch::equal(m->Forward(src, tgt), loaded->Forward(src, tgt)));

  std::ifstream f(dir_ / "metadata.json");
  std::stringstream js;
  js << f.rdbuf();
  EXPECT_NE(js.str().find("\"parameters\": " + std::to_string(m->ParameterCount())),
            std::string::npos)
      << js.str();
  EXPECT_NE(js.str().find("\"origin\": \"unit \\\"test\\\"\""), std::string::npos) << js.str();
  EXPECT_NE(js.str().find("\"val_bleu\": 12.5"), std::string::npos) << js.str();
  EXPECT_NE(js.str().find("\"created\": \"20"), std::string::npos) << js.str();

  // metadata.json is a mixserve.v1.ModelMetadata: a key the message lacks is refused.
  SaveOptions unknown;
  unknown.metadata["no_such_field"] = "x";
  try {
    WriteMetadata(m, dir_.string(), unknown);
    ADD_FAILURE() << "a key outside the schema was written";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_field"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointTest, Fp16StorageLoadsBackAsFp32) {
  torch::NoGradGuard ng;
  Transformer m(TinySpec());
  m->eval();
  SaveOptions o;
  o.fp16 = true;
  SaveCheckpoint(m, dir_.string(), o);
  auto loaded = LoadCheckpoint(dir_.string());
  loaded->eval();
  for (const auto& p : loaded->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
  auto src = Pad({RandomTokens(7, true)});
  auto tgt = Pad({WithBos(RandomTokens(4, false))});
  auto a = m->Forward(src, tgt), b = loaded->Forward(src, tgt);
  EXPECT_TRUE(torch::allclose(a, b, 1e-2, 1e-2));
  // fp16 weights take about half the space.
  const auto half = fs::file_size(dir_ / "model.pt");
  SaveWeights(m, (dir_ / "full.pt").string(), false);
  EXPECT_LT(half, fs::file_size(dir_ / "full.pt") * 3 / 4);
}

TEST_F(CheckpointTest, ShapeMismatchNamesTensorAndShapes) {
  Transformer m(TinySpec());
  SaveCheckpoint(m, dir_.string());
  ModelSpec other = TinySpec();
  other.ffn_dim = 48;
  const std::string e = Error(other);
  EXPECT_NE(e.find("ffn.fc1"), std::string::npos) << e;
  EXPECT_NE(e.find("[64, 32]"), std::string::npos) << e;
  EXPECT_NE(e.find("[48, 32]"), std::string::npos) << e;
}

TEST_F(CheckpointTest, MissingAndExtraTensorsAreNamed) {
  Transformer m(TinySpec());
  SaveCheckpoint(m, dir_.string());
  ModelSpec more = TinySpec();
  more.encoder.push_back(more.encoder[0]);
  std::string e = Error(more);
  EXPECT_NE(e.find("encoder.2."), std::string::npos) << e;
  EXPECT_NE(e.find("lack"), std::string::npos) << e;
  ModelSpec fewer = TinySpec();
  fewer.decoder.pop_back();
  e = Error(fewer);
  EXPECT_NE(e.find("decoder.1."), std::string::npos) << e;
}

TEST_F(CheckpointTest, MissingFilesAreNamed) {
  try {
    LoadCheckpoint(dir_.string());
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("model.pbtxt"), std::string::npos) << e.what();
  }
  Transformer m(TinySpec());
  SaveCheckpoint(m, dir_.string());
  fs::remove(dir_ / "model.pt");
  try {
    LoadCheckpoint(dir_.string());
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("model.pt"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixserve::model

namespace mixserve::model {
namespace {

using namespace ::mixserve::model::testing;

class LongerMaxLenTest : public CheckpointTest {};

// Mixers whose weights do not depend on the length run at a longer max_len with the same
// weights: equal outputs on what fits the trained length, and longer inputs accepted.
TEST_F(LongerMaxLenTest, LengthFreeMixersLoadForALongerMaxLen) {
  torch::NoGradGuard ng;
  for (const auto& [mixer, site] :
       std::vector<std::pair<std::string, Site>>{{"mha", Site::kDecoderSelf},
                                                 {"aft_simple", Site::kDecoderSelf},
                                                 {"lstm", Site::kEncoderSelf},
                                                 {"lstm", Site::kDecoderSelf}}) {
    SCOPED_TRACE(mixer);
    mixserve::RemoveTree(dir_);
    Transformer m(SpecWith(mixer, site));
    m->eval();
    SaveCheckpoint(m, dir_.string());
    auto longer = LoadCheckpoint(dir_.string(), 4 * kMaxLen);
    longer->eval();
    EXPECT_EQ(longer->spec().max_len, 4 * kMaxLen);
    auto src = Pad({RandomTokens(7, true)});
    auto tgt = Pad({WithBos(RandomTokens(5, false))});
    EXPECT_TRUE(torch::allclose(m->Forward(src, tgt), longer->Forward(src, tgt), 1e-5, 1e-6));
    auto long_src = Pad({RandomTokens(3 * kMaxLen, true)});
    auto long_tgt = Pad({WithBos(RandomTokens(3 * kMaxLen, false))});
    EXPECT_THROW(m->Forward(long_src, long_tgt), std::invalid_argument);
    auto out = longer->Forward(long_src, long_tgt);
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  }
}

TEST_F(LongerMaxLenTest, FixedLengthMixersAreRefusedNamingTheTensor) {
  torch::NoGradGuard ng;
  for (const auto& [mixer, site] :
       std::vector<std::pair<std::string, Site>>{{"alr", Site::kEncoderSelf},
                                                 {"aft_full", Site::kDecoderSelf}}) {
    SCOPED_TRACE(mixer);
    mixserve::RemoveTree(dir_);
    Transformer m(SpecWith(mixer, site));
    SaveCheckpoint(m, dir_.string());
    try {
      LoadCheckpoint(dir_.string(), 2 * kMaxLen);
      ADD_FAILURE() << "loaded";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("depend on the length"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("tensor '"), std::string::npos) << e.what();
    }
    // Its own length still loads.
    EXPECT_NO_THROW(LoadCheckpoint(dir_.string(), kMaxLen));
  }
}

}  // namespace
}  // namespace mixserve::model
