// The multi-head LSTM mixer: the bidirectional encoder form against LibTorch's own
// bidirectional LSTM run sentence by sentence, padding, head independence, the causal decoder
// form with incremental decoding, the unsupported cross site and the parameter counts of
// docs/model/lstm.md.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/token_mixer.h"

namespace mixserve::model {
namespace {

constexpr int kD = 16, kHeads = 2, kMaxLen = 12, kHeadDim = kD / kHeads;

const ModelSpec& TinySpec() {
  static const ModelSpec spec = [] {
    ModelSpec s = UniformSpec(kD, 32, kHeads, 1, 1, 50);
    s.max_len = kMaxLen;
    s.dropout = 0;
    return s;
  }();
  return spec;
}

std::shared_ptr<TokenMixer> Make(Site site, int heads = 0) {
  MixerSpec m;
  m.type = "lstm";
  m.heads = heads;
  MixerContext ctx{&TinySpec(), site, 0, m};
  auto mixer = MixerRegistry::Get().Create(ctx);
  torch::NoGradGuard no_grad;
  for (auto& p : mixer->parameters()) p.uniform_(-0.5, 0.5);
  mixer->eval();
  return mixer;
}

torch::Tensor Mask(const std::vector<int64_t>& lengths, int64_t T) {
  auto m = torch::zeros({static_cast<int64_t>(lengths.size()), T}, torch::kBool);
  for (size_t b = 0; b < lengths.size(); ++b) m[b].narrow(0, 0, lengths[b]).fill_(true);
  return m;
}

// One sentence [1, T, D] through LibTorch's bidirectional LSTM, one per head, with the
// mixer's weights (forward direction = head<h>_fwd, reverse direction = head<h>_bwd).
torch::Tensor EncoderReference(TokenMixer& m, const torch::Tensor& x) {
  auto params = m.named_parameters();
  std::vector<torch::Tensor> outs;
  for (int h = 0; h < kHeads; ++h) {
    torch::nn::LSTM ref(
        torch::nn::LSTMOptions(kHeadDim, kHeadDim / 2).batch_first(true).bidirectional(true));
    {
      torch::NoGradGuard no_grad;
      auto dst = ref->named_parameters();
      const std::string head = "head" + std::to_string(h);
      for (const char* n : {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}) {
        dst[n].copy_(params[head + "_fwd." + n]);
        dst[std::string(n) + "_reverse"].copy_(params[head + "_bwd." + n]);
      }
    }
    outs.push_back(std::get<0>(ref->forward(x.narrow(2, h * kHeadDim, kHeadDim).contiguous())));
  }
  return torch::linear(torch::cat(outs, 2), params["out.weight"], params["out.bias"]);
}

TEST(LstmMixer, EncoderEqualsBidirectionalLstmPerSentence) {
  torch::manual_seed(1);
  auto m = Make(Site::kEncoderSelf);
  torch::NoGradGuard no_grad;
  const std::vector<int64_t> len = {9, 4, 1, 6};
  const int64_t T = 9;
  const auto x = torch::randn({4, T, kD});
  const auto mask = Mask(len, T);
  // Garbage in the padding must not reach the backward direction of real tokens.
  const auto y = m->Forward({x.masked_fill(~mask.unsqueeze(-1), 50.0), mask, {}, {}});
  ASSERT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  for (int64_t b = 0; b < 4; ++b) {
    const auto xb = x[b].narrow(0, 0, len[b]).unsqueeze(0);
    const auto want = EncoderReference(*m, xb)[0];
    EXPECT_TRUE(torch::allclose(y[b].narrow(0, 0, len[b]), want, 1e-5, 1e-5)) << "row " << b;
    // The mixer alone on the unpadded sentence agrees too.
    const auto alone = m->Forward({xb, torch::ones({1, len[b]}, torch::kBool), {}, {}})[0];
    EXPECT_TRUE(torch::allclose(alone, want, 1e-5, 1e-5)) << "row " << b;
  }
}

TEST(LstmMixer, EncoderSeesBothDirections) {
  torch::manual_seed(2);
  auto m = Make(Site::kEncoderSelf);
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({1, 6, kD});
  const auto mask = torch::ones({1, 6}, torch::kBool);
  const auto y = m->Forward({x, mask, {}, {}});
  auto later = x.clone();
  later[0][5].normal_();
  auto earlier = x.clone();
  earlier[0][0].normal_();
  EXPECT_FALSE(torch::allclose(y[0][0], m->Forward({later, mask, {}, {}})[0][0], 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(y[0][5], m->Forward({earlier, mask, {}, {}})[0][5], 1e-6, 1e-6));
}

TEST(LstmMixer, HeadsAreIndependent) {
  torch::manual_seed(3);
  for (Site site : {Site::kEncoderSelf, Site::kDecoderSelf}) {
    auto m = Make(site);
    torch::NoGradGuard no_grad;
    // Identity output projection exposes the heads' outputs.
    m->named_parameters()["out.weight"].copy_(torch::eye(kD));
    m->named_parameters()["out.bias"].zero_();
    const auto x = torch::randn({2, 5, kD});
    const auto mask = torch::ones({2, 5}, torch::kBool);
    auto x2 = x.clone();
    x2.narrow(2, 0, kHeadDim).normal_();  // only head 0's input changes
    const auto y = m->Forward({x, mask, {}, {}}), y2 = m->Forward({x2, mask, {}, {}});
    EXPECT_TRUE(torch::equal(y.narrow(2, kHeadDim, kHeadDim), y2.narrow(2, kHeadDim, kHeadDim)))
        << SiteName(site);
    EXPECT_FALSE(torch::allclose(y.narrow(2, 0, kHeadDim), y2.narrow(2, 0, kHeadDim)))
        << SiteName(site);
  }
}

TEST(LstmMixer, DecoderIsCausal) {
  torch::manual_seed(4);
  auto m = Make(Site::kDecoderSelf);
  torch::NoGradGuard no_grad;
  const int64_t T = 7;
  const auto x = torch::randn({2, T, kD});
  const auto mask = torch::ones({2, T}, torch::kBool);
  const auto y = m->Forward({x, mask, {}, {}});
  for (int64_t t = 0; t + 1 < T; ++t) {
    auto x2 = x.clone();
    x2.narrow(1, t + 1, T - t - 1).normal_();
    const auto y2 = m->Forward({x2, mask, {}, {}});
    EXPECT_TRUE(torch::allclose(y.narrow(1, 0, t + 1), y2.narrow(1, 0, t + 1), 1e-6, 1e-6));
    EXPECT_FALSE(torch::allclose(y, y2, 1e-6, 1e-6));
  }
}

TEST(LstmMixer, DecoderPaddedBatchEqualsRowsAlone) {
  torch::manual_seed(5);
  auto m = Make(Site::kDecoderSelf);
  torch::NoGradGuard no_grad;
  const std::vector<int64_t> len = {6, 2, 4};
  const auto x = torch::randn({3, 6, kD});
  const auto mask = Mask(len, 6);
  const auto y = m->Forward({x.masked_fill(~mask.unsqueeze(-1), 50.0), mask, {}, {}});
  for (int64_t b = 0; b < 3; ++b) {
    const auto xb = x[b].narrow(0, 0, len[b]).unsqueeze(0);
    const auto yb = m->Forward({xb, torch::ones({1, len[b]}, torch::kBool), {}, {}})[0];
    EXPECT_TRUE(torch::allclose(y[b].narrow(0, 0, len[b]), yb, 1e-5, 1e-5)) << "row " << b;
  }
}

// Inference off CUDA runs every head and direction as one batched recurrence; with gradients
// on, the mixer runs torch::nn::LSTM per head. Both must give the same outputs on real tokens.
TEST(LstmMixer, BatchedInferenceEqualsPerHeadLstm) {
  torch::manual_seed(8);
  for (Site site : {Site::kEncoderSelf, Site::kDecoderSelf}) {
    auto m = Make(site);
    const std::vector<int64_t> len = {7, 3, 1, 5};
    const int64_t T = 7;
    const auto x = torch::randn({4, T, kD});
    const auto mask = Mask(len, T);
    const auto padded = x.masked_fill(~mask.unsqueeze(-1), 50.0);
    const auto per_head = m->Forward({padded, mask, {}, {}}).detach();  // grad mode on
    ASSERT_TRUE(torch::GradMode::is_enabled());
    torch::Tensor batched;
    {
      torch::NoGradGuard no_grad;
      batched = m->Forward({padded, mask, {}, {}});
    }
    ASSERT_EQ(batched.sizes(), per_head.sizes());
    for (int64_t b = 0; b < 4; ++b)
      EXPECT_TRUE(torch::allclose(batched[b].narrow(0, 0, len[b]),
                                  per_head[b].narrow(0, 0, len[b]), 1e-5, 1e-5))
          << SiteName(site) << " row " << b;
  }
}

TEST(LstmMixer, StepSequenceEqualsForward) {
  torch::manual_seed(6);
  auto m = Make(Site::kDecoderSelf);
  torch::NoGradGuard no_grad;
  const int64_t B = 3, T = kMaxLen;
  const auto x = torch::randn({B, T, kD});
  const auto y = m->Forward({x, torch::ones({B, T}, torch::kBool), {}, {}});
  auto state = m->InitState({}, {}, B);
  for (int64_t t = 0; t < T; ++t) {
    const auto yt = m->Step(x.select(1, t), torch::full({B}, t, torch::kLong), *state);
    EXPECT_TRUE(torch::allclose(yt, y.select(1, t), 1e-5, 1e-5)) << "t " << t;
  }
}

TEST(LstmMixer, SelectAppendWithRowsAtDifferentPositions) {
  torch::manual_seed(7);
  auto m = Make(Site::kDecoderSelf);
  torch::NoGradGuard no_grad;
  const int64_t T = 8;
  std::vector<torch::Tensor> xs, want;
  for (int i = 0; i < 4; ++i) {
    xs.push_back(torch::randn({1, T, kD}));
    want.push_back(m->Forward({xs[i], torch::ones({1, T}, torch::kBool), {}, {}})[0]);
  }
  auto state = m->InitState({}, {}, 3);
  for (int64_t t = 0; t < 3; ++t) {
    const auto xt = torch::stack({xs[0][0][t], xs[1][0][t], xs[2][0][t]});
    const auto yt = m->Step(xt, torch::full({3}, t, torch::kLong), *state);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(torch::allclose(yt[i], want[i][t], 1e-5, 1e-5));
  }
  state->Select(torch::tensor({2, 0}, torch::kLong));
  auto joining = m->InitState({}, {}, 1);
  state->Append(*joining);
  const std::vector<int> row_of = {2, 0, 3};
  for (int64_t i = 0; i < 5; ++i) {
    const std::vector<int64_t> pos = {3 + i, 3 + i, i};
    std::vector<torch::Tensor> rows;
    for (int r = 0; r < 3; ++r) rows.push_back(xs[row_of[r]][0][pos[r]]);
    const auto yt = m->Step(torch::stack(rows), torch::tensor(pos, torch::kLong), *state);
    for (int r = 0; r < 3; ++r)
      EXPECT_TRUE(torch::allclose(yt[r], want[row_of[r]][pos[r]], 1e-5, 1e-5))
          << "row " << r << " pos " << pos[r];
  }
}

TEST(LstmMixer, CrossSiteIsRejectedClearly) {
  EXPECT_TRUE(MixerRegistry::Get().Supports("lstm", Site::kEncoderSelf));
  EXPECT_TRUE(MixerRegistry::Get().Supports("lstm", Site::kDecoderSelf));
  EXPECT_FALSE(MixerRegistry::Get().Supports("lstm", Site::kDecoderCross));
  MixerSpec spec;
  spec.type = "lstm";
  MixerContext ctx{&TinySpec(), Site::kDecoderCross, 2, spec};
  try {
    MixerRegistry::Get().Create(ctx);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("lstm"), std::string::npos) << what;
    EXPECT_NE(what.find("decoder_cross"), std::string::npos) << what;
  }
}

TEST(LstmMixer, OddHeadDimInEncoderIsRejected) {
  // 16 heads of 1 feature: a bidirectional head cannot split 1 feature into two halves.
  EXPECT_THROW(Make(Site::kEncoderSelf, 16), std::invalid_argument);
  EXPECT_NO_THROW(Make(Site::kDecoderSelf, 16));
  EXPECT_THROW(Make(Site::kDecoderSelf, 3), std::invalid_argument);  // 16 % 3 != 0
}

TEST(LstmMixer, ParameterCountFollowsFormula) {
  for (int heads : {1, 2, 4}) {
    const int64_t D = kD, n = kD / heads;
    for (Site site : {Site::kEncoderSelf, Site::kDecoderSelf}) {
      auto m = Make(site, heads);
      int64_t count = 0;
      for (const auto& p : m->parameters()) count += p.numel();
      // One LSTM of input i, hidden k: 4k(i + k) weights + 8k biases (two bias vectors).
      const auto lstm = [](int64_t i, int64_t k) { return 4 * k * (i + k) + 8 * k; };
      const int64_t per_head = site == Site::kEncoderSelf ? 2 * lstm(n, n / 2) : lstm(n, n);
      EXPECT_EQ(count, heads * per_head + D * D + D) << SiteName(site) << " heads " << heads;
      // The closed forms of docs/model/lstm.md.
      const int64_t closed = site == Site::kEncoderSelf ? heads * (6 * n * n + 8 * n)
                                                        : heads * (8 * n * n + 8 * n);
      EXPECT_EQ(count, closed + D * D + D);
    }
  }
}

}  // namespace
}  // namespace mixserve::model
