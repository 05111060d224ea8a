// Properties every registered mixer must have at every site it supports, checked inside a
// tiny Transformer (the other sites hold mha). New mixers join this suite by registering.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "model/checkpoint.h"
#include "model/search.h"
#include "model_test_util.h"
#include "base/remove_tree.h"

namespace mixserve::model {
namespace {

using namespace ::mixserve::model::testing;
using torch::indexing::Slice;

struct MixerSite {
  std::string mixer;
  Site site;
};

std::vector<MixerSite> AllMixerSites() {
  std::vector<MixerSite> out;
  for (const auto& name : MixerRegistry::Get().Names())
    for (Site site : MixerRegistry::Get().Sites(name)) out.push_back({name, site});
  return out;
}

std::string ParamName(const ::testing::TestParamInfo<MixerSite>& info) {
  std::string s = info.param.mixer + "_" + SiteName(info.param.site);
  for (auto& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

class MixerProperty : public ::testing::TestWithParam<MixerSite> {
 protected:
  void SetUp() override {
    torch::manual_seed(17);
    model_ = Transformer(SpecWith(GetParam().mixer, GetParam().site));
    model_->eval();
  }
  // Log-probabilities of a teacher-forced pass: [B, T, V].
  torch::Tensor FullLogProbs(const torch::Tensor& src, const torch::Tensor& tgt) {
    return torch::log_softmax(model_->Forward(src, tgt), -1);
  }
  // Step-by-step log-probabilities of one sentence: [T, V].
  torch::Tensor StepLogProbs(const std::vector<int64_t>& src, const std::vector<int64_t>& tgt) {
    auto state = model_->InitDecoder(model_->Encode(Pad({src})));
    std::vector<torch::Tensor> out;
    for (int64_t tok : tgt) out.push_back(model_->DecodeStep(torch::tensor({tok}), *state)[0]);
    return torch::stack(out);
  }

  torch::NoGradGuard no_grad_;
  Transformer model_{nullptr};
};

TEST_P(MixerProperty, DecoderIsCausal) {
  auto src = Pad({RandomTokens(6, true), RandomTokens(9, true)});
  auto tgt = Pad({WithBos(RandomTokens(9, false)), WithBos(RandomTokens(9, false))});
  auto a = FullLogProbs(src, tgt);
  auto changed = tgt.clone();
  changed.index_put_({Slice(), 6}, (tgt.index({Slice(), 6}) - 4 + 7) % (kVocab - 4) + 4);
  auto b = FullLogProbs(src, changed);
  EXPECT_TRUE(torch::allclose(a.index({Slice(), Slice(0, 6)}), b.index({Slice(), Slice(0, 6)}),
                              1e-5, 1e-5))
      << "changing target token 6 changed an earlier output";
  EXPECT_FALSE(torch::allclose(a.index({Slice(), 6}), b.index({Slice(), 6}), 1e-5, 1e-5))
      << "changing target token 6 left its own output unchanged: the test is blind";
}

TEST_P(MixerProperty, IncrementalEqualsFull) {
  std::vector<std::vector<int64_t>> srcs = {RandomTokens(4, true), RandomTokens(11, true)};
  std::vector<std::vector<int64_t>> tgts = {WithBos(RandomTokens(7, false)),
                                            WithBos(RandomTokens(7, false))};
  auto full = FullLogProbs(Pad(srcs), Pad(tgts));
  auto state = model_->InitDecoder(model_->Encode(Pad(srcs)));
  auto tgt = Pad(tgts);
  for (int64_t t = 0; t < tgt.size(1); ++t) {
    auto lp = model_->DecodeStep(tgt.index({Slice(), t}).contiguous(), *state);
    ASSERT_TRUE(torch::allclose(lp, full.index({Slice(), t}), 1e-4, 1e-4))
        << "step " << t << " max diff "
        << (lp - full.index({Slice(), t})).abs().max().item<float>();
  }
  EXPECT_EQ(state->positions()[0].item<int64_t>(), tgt.size(1));
}

// What mixers and layers derive from their weights for inference (mha's stacked projections,
// the feed-forward's augmented products) computes the model the parameters define: without
// gradients (serving) the teacher-forced pass and the decoding steps equal the teacher-forced
// pass with gradients, the one training runs.
TEST_P(MixerProperty, InferenceEqualsTraining) {
  std::vector<std::vector<int64_t>> srcs = {RandomTokens(6, true), RandomTokens(9, true)};
  std::vector<std::vector<int64_t>> tgts = {WithBos(RandomTokens(5, false)),
                                            WithBos(RandomTokens(5, false))};
  torch::Tensor training;
  {
    torch::AutoGradMode grad(true);
    training = torch::log_softmax(model_->Forward(Pad(srcs), Pad(tgts)), -1).detach();
  }
  auto inference = FullLogProbs(Pad(srcs), Pad(tgts));
  EXPECT_TRUE(torch::allclose(inference, training, 1e-4, 1e-4))
      << "max diff " << (inference - training).abs().max().item<float>();
  auto steps = StepLogProbs(srcs[1], tgts[1]);
  EXPECT_TRUE(torch::allclose(steps, training[1], 1e-4, 1e-4))
      << "max diff " << (steps - training[1]).abs().max().item<float>();
}

// Whatever a mixer derives from its weights for decoding steps (mha's stacked projections)
// follows the weights when they change in place, as an optimiser step or loading does.
TEST_P(MixerProperty, IncrementalFollowsWeightChanges) {
  std::vector<int64_t> src = RandomTokens(5, true), tgt = WithBos(RandomTokens(4, false));
  auto before = StepLogProbs(src, tgt);
  for (auto& p : model_->parameters()) p.mul_(1.25).add_(0.01);
  auto full = FullLogProbs(Pad({src}), Pad({tgt}))[0];
  auto after = StepLogProbs(src, tgt);
  EXPECT_TRUE(torch::allclose(after, full, 1e-4, 1e-4))
      << "max diff " << (after - full).abs().max().item<float>();
  EXPECT_FALSE(torch::allclose(before, full, 1e-4, 1e-4)) << "the change changed nothing";
}

TEST_P(MixerProperty, BatchEqualsSingleSentence) {
  std::vector<std::vector<int64_t>> srcs = {RandomTokens(3, true), RandomTokens(12, true),
                                            RandomTokens(7, true)};
  std::vector<std::vector<int64_t>> tgts = {WithBos(RandomTokens(2, false)),
                                            WithBos(RandomTokens(10, false)),
                                            WithBos(RandomTokens(5, false))};
  auto batch = FullLogProbs(Pad(srcs), Pad(tgts));
  for (size_t i = 0; i < srcs.size(); ++i) {
    auto single = FullLogProbs(Pad({srcs[i]}), Pad({tgts[i]}))[0];
    auto rows = batch[i].narrow(0, 0, static_cast<int64_t>(tgts[i].size()));
    EXPECT_TRUE(torch::allclose(rows, single, 1e-4, 1e-4))
        << "sentence " << i << " max diff " << (rows - single).abs().max().item<float>();
  }
}

TEST_P(MixerProperty, AppendedRowsAtDifferentPositions) {
  auto src_a = RandomTokens(5, true), src_b = RandomTokens(10, true);
  auto tgt_a = WithBos(RandomTokens(5, false)), tgt_b = WithBos(RandomTokens(3, false));
  auto ref_a = StepLogProbs(src_a, tgt_a), ref_b = StepLogProbs(src_b, tgt_b);

  auto state = model_->InitDecoder(model_->Encode(Pad({src_a})));
  for (int t = 0; t < 2; ++t) model_->DecodeStep(torch::tensor({tgt_a[t]}), *state);
  auto other = model_->InitDecoder(model_->Encode(Pad({src_b})));
  state->Append(*other);
  ASSERT_EQ(state->rows(), 2);
  EXPECT_EQ(state->positions()[0].item<int64_t>(), 2);
  EXPECT_EQ(state->positions()[1].item<int64_t>(), 0);
  for (int t = 0; t < 4; ++t) {
    auto lp = model_->DecodeStep(torch::tensor({tgt_a[t + 2], tgt_b[t]}), *state);
    EXPECT_TRUE(torch::allclose(lp[0], ref_a[t + 2], 1e-4, 1e-4)) << "row a, step " << t;
    EXPECT_TRUE(torch::allclose(lp[1], ref_b[t], 1e-4, 1e-4)) << "row b, step " << t;
  }
}

TEST_P(MixerProperty, SelectKeepsRows) {
  std::vector<std::vector<int64_t>> srcs = {RandomTokens(4, true), RandomTokens(9, true),
                                            RandomTokens(6, true)};
  std::vector<std::vector<int64_t>> tgts;
  for (int i = 0; i < 3; ++i) tgts.push_back(WithBos(RandomTokens(4, false)));
  auto state = model_->InitDecoder(model_->Encode(Pad(srcs)));
  auto tgt = Pad(tgts);
  for (int t = 0; t < 2; ++t) model_->DecodeStep(tgt.index({Slice(), t}).contiguous(), *state);
  state->Select(torch::tensor({2, 0}, torch::kLong));
  ASSERT_EQ(state->rows(), 2);
  auto ref2 = StepLogProbs(srcs[2], tgts[2]), ref0 = StepLogProbs(srcs[0], tgts[0]);
  for (int t = 2; t < 5; ++t) {
    auto lp = model_->DecodeStep(torch::tensor({tgts[2][t], tgts[0][t]}), *state);
    EXPECT_TRUE(torch::allclose(lp[0], ref2[t], 1e-4, 1e-4)) << "kept row 2, step " << t;
    EXPECT_TRUE(torch::allclose(lp[1], ref0[t], 1e-4, 1e-4)) << "kept row 0, step " << t;
  }
}

TEST_P(MixerProperty, BeamOfOneEqualsGreedy) {
  auto src = Pad({RandomTokens(5, true), RandomTokens(8, true), RandomTokens(2, true)});
  SearchOptions opt;
  opt.beam_size = 1;
  auto greedy = GreedySearch(model_, src, opt);
  auto beam = BeamSearch(model_, src, opt);
  ASSERT_EQ(greedy.size(), 3u);
  ASSERT_EQ(beam.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(greedy[i].size(), 1u);
    ASSERT_EQ(beam[i].size(), 1u);
    EXPECT_EQ(greedy[i][0].tokens, beam[i][0].tokens) << "sentence " << i;
    EXPECT_EQ(greedy[i][0].log_prob, beam[i][0].log_prob) << "sentence " << i;
    EXPECT_EQ(greedy[i][0].score, beam[i][0].score) << "sentence " << i;
  }
}

// Dead rows and joins into them (model/search.h) change no translation, for every mixer;
// with memories padded to max_len (step graphs enabled, eager on the CPU) joins go in place
// wherever every decoder mixer's state lists all its tensors.
TEST_P(MixerProperty, DeadRowsChangeNoResult) {
  model_->EnableStepGraphs(true);
  bool listed = true;
  for (int layer = 0; layer < 2; ++layer)
    for (Site site : {Site::kDecoderSelf, Site::kDecoderCross})
      listed = listed && model_->mixer(site, layer)->StepCapturable();
  ExpectDeadRowsChangeNoResult(model_, torch::kCPU, 1e-4, /*in_place=*/listed);
}

TEST_P(MixerProperty, SaveLoadRoundTrip) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("mixserve_prop_" + std::to_string(::getpid()) + "_" +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
  mixserve::RemoveTree(dir);
  for (int i = 0; i < 3; ++i) {  // leave the trained-looking defaults behind
    for (auto& p : model_->parameters()) p.add_(torch::randn_like(p) * 0.01);
  }
  SaveCheckpoint(model_, dir.string());
  auto loaded = LoadCheckpoint(dir.string());
  loaded->eval();
  EXPECT_EQ(loaded->spec().encoder[0].self, model_->spec().encoder[0].self);
  EXPECT_EQ(loaded->spec().decoder[1].cross, model_->spec().decoder[1].cross);
  EXPECT_EQ(loaded->ParameterCount(), model_->ParameterCount());
  auto src = Pad({RandomTokens(6, true), RandomTokens(3, true)});
  auto tgt = Pad({WithBos(RandomTokens(5, false)), WithBos(RandomTokens(2, false))});
  EXPECT_TRUE(torch::equal(model_->Forward(src, tgt), loaded->Forward(src, tgt)));
  mixserve::RemoveTree(dir);
}

INSTANTIATE_TEST_SUITE_P(AllMixers, MixerProperty, ::testing::ValuesIn(AllMixerSites()),
                         ParamName);

}  // namespace
}  // namespace mixserve::model
