// The layout options of imported architectures (ModelSpec::norm, activation, positions,
// scale_embeddings, final_logits_bias, ids, decoding.suppressed_tokens): each changes what it
// says, incremental decoding agrees with the full forward pass under all of them, and
// mixserve's own layout is what the defaults give.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "model_test_util.h"

namespace mixserve::model {
namespace {

using namespace ::mixserve::model::testing;

// MarianMT's layout over the tiny model: post-norm, swish, halved sinusoids, an output bias,
// EOS 0, pad = decoder start = the last id, and the pad token never generated.
ModelSpec MarianLikeSpec() {
  ModelSpec s = TinySpec();
  s.norm = "post";
  s.activation = "swish";
  s.positions = "halves";
  s.final_logits_bias = true;
  s.ids = SpecialIds{kVocab - 1, 1, kVocab - 1, 0};
  s.decoding.suppressed_tokens = {kVocab - 1};
  return s;
}

torch::Tensor Padded(const std::vector<std::vector<int64_t>>& rows, int64_t pad) {
  size_t n = 0;
  for (const auto& r : rows) n = std::max(n, r.size());
  auto t = torch::full({static_cast<int64_t>(rows.size()), static_cast<int64_t>(n)}, pad,
                       torch::kLong);
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) t[i][j] = rows[i][j];
  return t;
}

TEST(LayoutOptions, HalvesSinusoidsAreMarians) {
  ModelSpec s = MarianLikeSpec();
  Transformer m(s);
  const auto pe = m->named_buffers()["positions"];
  const int d = s.d_model;
  for (int p : {0, 1, 7, s.max_len - 1})
    for (int i = 0; i < d / 2; ++i) {
      const double angle = p / std::pow(10000.0, 2.0 * i / d);
      EXPECT_NEAR(pe[p][i].item<float>(), std::sin(angle), 1e-7) << p << " " << i;
      EXPECT_NEAR(pe[p][d / 2 + i].item<float>(), std::cos(angle), 1e-7) << p << " " << i;
    }
  // The default stays interleaved.
  Transformer own(TinySpec());
  const auto pe2 = own->named_buffers()["positions"];
  EXPECT_NEAR(pe2[3][1].item<float>(), std::cos(3.0), 1e-6);
  EXPECT_NEAR(pe2[3][0].item<float>(), std::sin(3.0), 1e-6);
}

TEST(LayoutOptions, PostNormHasNoFinalNormsAndAnOutputBias) {
  Transformer m(MarianLikeSpec());
  auto params = m->named_parameters();
  EXPECT_EQ(params.find("encoder_norm.weight"), nullptr);
  EXPECT_EQ(params.find("decoder_norm.weight"), nullptr);
  EXPECT_NE(params.find("encoder.0.self.norm.weight"), nullptr);
  const auto buffers = m->named_buffers();
  const auto* bias = buffers.find("final_logits_bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_EQ(bias->sizes(), (std::vector<int64_t>{kVocab}));
  int64_t sum = 0;
  for (const auto& p : m->ParameterBreakdown()) sum += p.count;
  EXPECT_EQ(sum, m->ParameterCount());
}

TEST(LayoutOptions, EachOptionChangesTheOutput) {
  torch::NoGradGuard ng;
  auto src = Padded({{5, 6, 7, 8, 0}, {9, 10, 0}}, kVocab - 1);
  auto tgt = Padded({{kVocab - 1, 11, 12, 13}, {kVocab - 1, 14}}, kVocab - 1);
  torch::manual_seed(3);
  Transformer base(MarianLikeSpec());
  base->eval();
  const auto want = base->Forward(src, tgt);
  auto variant = [&](auto change) {
    ModelSpec s = MarianLikeSpec();
    change(s);
    Transformer m(s);
    m->eval();
    // The same weights wherever the layouts share them.
    auto theirs = m->named_parameters();
    for (const auto& p : base->named_parameters())
      if (auto* t = theirs.find(p.key())) t->copy_(p.value());
    return m->Forward(src, tgt);
  };
  EXPECT_FALSE(torch::allclose(want, variant([](ModelSpec& s) { s.norm = "pre"; })));
  EXPECT_FALSE(torch::allclose(want, variant([](ModelSpec& s) { s.activation = "relu"; })));
  EXPECT_FALSE(torch::allclose(want, variant([](ModelSpec& s) { s.activation = "gelu"; })));
  EXPECT_FALSE(torch::allclose(want, variant([](ModelSpec& s) { s.positions = "interleaved"; })));
  EXPECT_FALSE(torch::allclose(want, variant([](ModelSpec& s) { s.scale_embeddings = false; })));
  EXPECT_TRUE(torch::allclose(want, variant([](ModelSpec&) {})));
  // The output bias is added to every position's logits.
  auto bias = base->named_buffers()["final_logits_bias"];
  bias.copy_(torch::randn({kVocab}));
  EXPECT_TRUE(torch::allclose(base->Forward(src, tgt), want + bias, 1e-5, 1e-5));
}

// Each step's log-probabilities are the full pass's, with the suppressed token at -inf, and
// greedy steps never pick it, even where it is the most probable token.
TEST(LayoutOptions, IncrementalDecodingMatchesTheFullPass) {
  torch::NoGradGuard ng;
  torch::manual_seed(5);
  ModelSpec s = MarianLikeSpec();
  Transformer m(s);
  m->eval();
  const int pad = s.ids.pad;
  auto bias = m->named_buffers()["final_logits_bias"];
  bias.copy_(torch::randn({kVocab}));
  bias[pad] = 30.0f;  // the pad token would win every step
  auto src = Padded({{5, 6, 7, 8, 0}, {9, 10, 0}}, pad);
  auto tgt = Padded({{pad, 11, 12, 13, 14}, {pad, 15, 16, 17, 18}}, pad);
  const auto full = torch::log_softmax(m->Forward(src, tgt), -1);
  auto state = m->InitDecoder(m->Encode(src));
  auto greedy = m->InitDecoder(m->Encode(src));
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < tgt.size(1); ++t) {
    auto tok = tgt.select(1, t).contiguous();
    auto lp = m->DecodeStep(tok, *state);
    auto want = full.select(1, t).clone();
    EXPECT_EQ(lp.select(1, pad)[0].item<float>(), -inf);
    want.select(1, pad).fill_(-inf);
    EXPECT_TRUE(torch::allclose(lp, want, 1e-5, 1e-5)) << "step " << t;
    auto best = m->GreedyStep(tok, *greedy);
    EXPECT_TRUE(torch::equal(best.tokens, std::get<1>(want.max(-1)))) << "step " << t;
    EXPECT_NE(best.tokens[0].item<int64_t>(), pad);
  }
}

// The decoder's first input is never taken for padding, also where it is the pad token.
TEST(LayoutOptions, DecoderStartEqualToPadIsAttended) {
  torch::NoGradGuard ng;
  torch::manual_seed(7);
  ModelSpec s = MarianLikeSpec();
  Transformer m(s);
  m->eval();
  const int pad = s.ids.pad;
  auto src = Padded({{5, 6, 0}}, pad);
  auto one = m->Forward(src, Padded({{pad, 11}}, pad));
  auto two = m->Forward(src, Padded({{pad, 11, pad, pad}}, pad));
  EXPECT_TRUE(torch::allclose(one, two.narrow(1, 0, 2), 1e-5, 1e-5));
  EXPECT_FALSE(torch::isnan(one).any().item<bool>());
}

TEST(LayoutOptions, InvalidOptionsAreNamed) {
  auto bad = [](auto change) {
    ModelSpec s = TinySpec();
    change(s);
    return ValidateSpec(s);
  };
  EXPECT_NE(bad([](ModelSpec& s) { s.norm = "sandwich"; }).find("norm"), std::string::npos);
  EXPECT_NE(bad([](ModelSpec& s) { s.activation = "tanh"; }).find("tanh"), std::string::npos);
  EXPECT_NE(bad([](ModelSpec& s) { s.positions = "learned"; }).find("positions"),
            std::string::npos);
  EXPECT_NE(bad([](ModelSpec& s) { s.ids.eos = kVocab; }).find("eos"), std::string::npos);
  EXPECT_NE(bad([](ModelSpec& s) { s.decoding.suppressed_tokens = {3}; }).find("EOS"),
            std::string::npos);
  EXPECT_NE(bad([](ModelSpec& s) { s.decoding.beam_rule = "fairseq"; }).find("beam_rule"),
            std::string::npos);
  EXPECT_EQ(bad([](ModelSpec&) {}), "");
}

}  // namespace
}  // namespace mixserve::model

namespace mixserve::model {
namespace {

// On the CPU the self-attention cache starts small and grows with the longest row: steps far
// beyond its first size, and rows that join a state whose cache has grown, still give the
// full pass's log-probabilities.
TEST(LayoutOptions, GrowingCpuCacheMatchesTheFullPass) {
  torch::NoGradGuard ng;
  torch::manual_seed(11);
  ModelSpec s = TinySpec();
  s.max_len = 100;
  Transformer m(s);
  m->eval();
  const int64_t n = 80;
  auto src = torch::randint(4, kVocab, {2, 6}, torch::kLong);
  src.select(1, 5).fill_(ModelSpec::kEos);
  auto tgt = torch::randint(4, kVocab, {2, n}, torch::kLong);
  tgt.select(1, 0).fill_(ModelSpec::kBos);
  const auto full = torch::log_softmax(m->Forward(src, tgt), -1);
  // Row 0 decodes alone for 50 steps (its cache grows past 32 and 64 slots); row 1 joins
  // then, with a fresh cache of its own size, and both go on in one state.
  auto state = m->InitDecoder(m->Encode(src.narrow(0, 0, 1)));
  int64_t t0 = 0;
  for (; t0 < 50; ++t0) {
    auto lp = m->DecodeStep(tgt.narrow(0, 0, 1).select(1, t0).contiguous(), *state);
    ASSERT_TRUE(torch::allclose(lp, full.narrow(0, 0, 1).select(1, t0), 1e-4, 1e-5)) << t0;
  }
  auto late = m->InitDecoder(m->Encode(src.narrow(0, 1, 1)));
  state->Append(*late);
  for (int64_t t1 = 0; t0 < n; ++t0, ++t1) {
    auto tok = torch::stack({tgt[0][t0], tgt[1][t1]});
    auto lp = m->DecodeStep(tok, *state);
    EXPECT_TRUE(torch::allclose(lp[0], full[0][t0], 1e-4, 1e-5)) << "row 0 step " << t0;
    EXPECT_TRUE(torch::allclose(lp[1], full[1][t1], 1e-4, 1e-5)) << "row 1 step " << t1;
  }
}

}  // namespace
}  // namespace mixserve::model
