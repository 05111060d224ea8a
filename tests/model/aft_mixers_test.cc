// The AFT mixers (aft_full, aft_simple, aft_local, aft_conv) at every site: the full pass
// against the equation evaluated naively in double precision, causality, padding, incremental
// decoding (Step, Select, Append, rows at different positions), numerical stability and the
// parameter counts of docs/model/aft.md.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "model/mixers/aft_common.h"
#include "model/token_mixer.h"

namespace mixserve::model {
namespace {

constexpr int kD = 16, kHeads = 2, kMaxLen = 12;

const ModelSpec& TinySpec() {
  static const ModelSpec spec = [] {
    ModelSpec s = UniformSpec(kD, 32, kHeads, 1, 1, 50);
    s.max_len = kMaxLen;
    s.dropout = 0;
    return s;
  }();
  return spec;
}

std::shared_ptr<TokenMixer> Make(const std::string& type, Site site, int window = 0) {
  MixerSpec m;
  m.type = type;
  m.window = window;
  MixerContext ctx{&TinySpec(), site, 0, m};
  auto mixer = MixerRegistry::Get().Create(ctx);
  torch::NoGradGuard no_grad;
  for (auto& p : mixer->parameters()) p.normal_(0, 0.3);  // biases too: w must matter
  mixer->eval();
  return mixer;
}

torch::Tensor Mask(const std::vector<int64_t>& lengths, int64_t T) {
  auto m = torch::zeros({static_cast<int64_t>(lengths.size()), T}, torch::kBool);
  for (size_t b = 0; b < lengths.size(); ++b) m[b].narrow(0, 0, lengths[b]).fill_(true);
  return m;
}

torch::Tensor Param(TokenMixer& m, const std::string& name) {
  return m.named_parameters()[name].detach().to(torch::kDouble);
}

// Window the mixer was built with (the default rule of docs/model/aft.md when 0).
int WindowOf(int window) { return window > 0 ? window : std::max(1, kMaxLen / 4); }

// w[t, s] for every feature d ([T, S, D]), from the definitions of docs/model/aft.md.
torch::Tensor BiasTable(TokenMixer& m, const std::string& type, Site site, int window,
                        int64_t T, int64_t S) {
  auto table = torch::zeros({T, S, kD}, torch::kDouble);
  if (type == "aft_simple") return table;
  const auto w = type == "aft_conv" ? Param(m, "kernel") : Param(m, "w");
  auto acc = table.accessor<double, 3>();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t d = 0; d < kD; ++d) {
        const int64_t r = t - s;
        double value = 0;
        if (type == "aft_full") value = w[t][s].item<double>();
        if (type == "aft_local" && std::abs(r) < window) value = w[t][s].item<double>();
        if (type == "aft_conv" && std::abs(r) < window && (site != Site::kDecoderSelf || r >= 0)) {
          const int64_t head = d / (kD / kHeads);
          const int64_t tap = site == Site::kDecoderSelf ? r : r + window - 1;
          value = w[head][tap].item<double>();
        }
        acc[t][s][d] = value;
      }
  return table;
}

// The AFT equation evaluated term by term in double precision, without any max shift.
torch::Tensor Reference(TokenMixer& m, const std::string& type, Site site, int window,
                        const torch::Tensor& x, const torch::Tensor& mask,
                        const torch::Tensor& mem, const torch::Tensor& mem_mask) {
  const auto lin = [&](const std::string& n, const torch::Tensor& in) {
    return torch::linear(in.to(torch::kDouble), Param(m, n + ".weight"), Param(m, n + ".bias"));
  };
  const bool cross = site == Site::kDecoderCross;
  const auto src = cross ? mem : x;
  const auto src_mask = (cross ? mem_mask : mask).to(torch::kBool);
  const auto q = lin("q", x), k = lin("k", src), v = lin("v", src);
  const int64_t B = x.size(0), T = x.size(1), S = src.size(1);
  const auto bias = BiasTable(m, type, site, window, T, S);
  const auto ka = k.accessor<double, 3>(), va = v.accessor<double, 3>();
  const auto wa = bias.accessor<double, 3>();
  const auto ma = src_mask.accessor<bool, 2>();
  auto avg = torch::zeros({B, T, kD}, torch::kDouble);
  auto aa = avg.accessor<double, 3>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < kD; ++d) {
        double num = 0, den = 0;
        for (int64_t s = 0; s < S; ++s) {
          if (!ma[b][s] || (site == Site::kDecoderSelf && s > t)) continue;
          const double e = std::exp(ka[b][s][d] + wa[t][s][d]);
          num += e * va[b][s][d];
          den += e;
        }
        aa[b][t][d] = den > 0 ? num / den : 0.0;
      }
  return lin("out", torch::sigmoid(q) * avg);
}

// Largest |difference| at real target positions.
double MaxDiffReal(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  const auto diff = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs();
  return (diff * mask.unsqueeze(-1).to(torch::kDouble)).max().item<double>();
}

using Case = std::tuple<std::string, Site>;

class AftSiteTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override { torch::manual_seed(7); }
  const std::string& type() const { return std::get<0>(GetParam()); }
  Site site() const { return std::get<1>(GetParam()); }
  bool cross() const { return site() == Site::kDecoderCross; }
  bool decoder() const { return site() != Site::kEncoderSelf; }
};

// The decoder sites only (causality and incremental decoding).
class AftDecoderTest : public AftSiteTest {};

TEST_P(AftSiteTest, ForwardMatchesEquation) {
  auto m = Make(type(), site());
  const auto x = torch::randn({3, 7, kD});
  const auto mask = Mask({7, 4, 2}, 7);
  const auto mem = torch::randn({3, 6, kD});
  const auto mem_mask = Mask({5, 6, 3}, 6);
  const auto y = m->Forward({x, mask, mem, mem_mask});
  const auto ref = Reference(*m, type(), site(), WindowOf(0), x, mask, mem, mem_mask);
  EXPECT_LT(MaxDiffReal(y, ref, mask), 1e-5);
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());  // padded positions too
}

TEST_P(AftSiteTest, PaddedBatchEqualsRowsAlone) {
  auto m = Make(type(), site());
  const std::vector<int64_t> len = {7, 3, 5}, mem_len = {4, 6, 2};
  const auto x = torch::randn({3, 7, kD});
  const auto mem = torch::randn({3, 6, kD});
  const auto mask = Mask(len, 7);
  // Padding holds garbage: it must not leak into real positions.
  const auto y = m->Forward({x.masked_fill(~mask.unsqueeze(-1), 1e3), mask, mem,
                             Mask(mem_len, 6)});
  for (int64_t b = 0; b < 3; ++b) {
    const auto xb = x[b].narrow(0, 0, len[b]).unsqueeze(0);
    const auto mb = mem[b].narrow(0, 0, mem_len[b]).unsqueeze(0);
    const auto yb = m->Forward({xb, torch::ones({1, len[b]}, torch::kBool), mb,
                                torch::ones({1, mem_len[b]}, torch::kBool)});
    EXPECT_TRUE(torch::allclose(y[b].narrow(0, 0, len[b]), yb[0], 1e-5, 1e-5)) << "row " << b;
  }
}

TEST_P(AftDecoderTest, DecoderOutputsDependOnlyOnAllowedInputs) {
  auto m = Make(type(), site());
  const int64_t T = 8;
  const auto x = torch::randn({2, T, kD});
  const auto mask = torch::ones({2, T}, torch::kBool);
  const auto mem = torch::randn({2, 5, kD});
  const auto mem_mask = Mask({5, 4}, 5);
  const auto y = m->Forward({x, mask, mem, mem_mask});
  for (int64_t t = 0; t < T; ++t) {
    auto x2 = x.clone();
    if (cross()) {
      // Cross: output t reads the decoder only at t (and the memory).
      x2.narrow(1, 0, t).normal_();
      x2.narrow(1, t + 1, T - t - 1).normal_();
      const auto y2 = m->Forward({x2, mask, mem, mem_mask});
      EXPECT_TRUE(torch::allclose(y.select(1, t), y2.select(1, t), 1e-6, 1e-6)) << "t " << t;
    } else {
      x2.narrow(1, t + 1, T - t - 1).normal_();
      const auto y2 = m->Forward({x2, mask, mem, mem_mask});
      EXPECT_TRUE(torch::allclose(y.narrow(1, 0, t + 1), y2.narrow(1, 0, t + 1), 1e-6, 1e-6))
          << "t " << t;
      if (t + 1 < T) {
        EXPECT_FALSE(torch::allclose(y, y2, 1e-6, 1e-6)) << "t " << t;
      }
    }
  }
}

TEST_P(AftDecoderTest, StepSequenceEqualsForward) {
  auto m = Make(type(), site());
  torch::NoGradGuard no_grad;
  const int64_t B = 2, T = kMaxLen;
  const auto x = torch::randn({B, T, kD});
  const auto mem = torch::randn({B, 6, kD});
  const auto mem_mask = Mask({6, 3}, 6);
  const auto y = m->Forward({x, torch::ones({B, T}, torch::kBool), mem, mem_mask});
  auto state = m->InitState(mem, mem_mask, B);
  for (int64_t t = 0; t < T; ++t) {
    const auto yt = m->Step(x.select(1, t), torch::full({B}, t, torch::kLong), *state);
    EXPECT_TRUE(torch::allclose(yt, y.select(1, t), 1e-5, 1e-5)) << "t " << t;
  }
}

TEST_P(AftDecoderTest, SelectAppendWithRowsAtDifferentPositions) {
  auto m = Make(type(), site());
  torch::NoGradGuard no_grad;
  const int64_t T = 8;
  // Four sentences A, B, C, D with their own memories; each one's full pass alone is the truth.
  std::vector<torch::Tensor> xs, mems, want;
  const std::vector<int64_t> mem_len = {3, 6, 4, 5};
  for (int i = 0; i < 4; ++i) {
    xs.push_back(torch::randn({1, T, kD}));
    mems.push_back(torch::randn({1, mem_len[i], kD}));
    want.push_back(m->Forward({xs[i], torch::ones({1, T}, torch::kBool), mems[i],
                               torch::ones({1, mem_len[i]}, torch::kBool)})[0]);
  }
  // Rows A, B, C with memories padded to 6.
  auto mem_abc = torch::zeros({3, 6, kD});
  for (int i = 0; i < 3; ++i) mem_abc[i].narrow(0, 0, mem_len[i]).copy_(mems[i][0]);
  auto state = m->InitState(mem_abc, Mask({3, 6, 4}, 6), 3);
  for (int64_t t = 0; t < 3; ++t) {
    const auto xt = torch::stack({xs[0][0][t], xs[1][0][t], xs[2][0][t]});
    const auto yt = m->Step(xt, torch::full({3}, t, torch::kLong), *state);
    for (int i = 0; i < 3; ++i)
      EXPECT_TRUE(torch::allclose(yt[i], want[i][t], 1e-5, 1e-5)) << "row " << i << " t " << t;
  }
  // Keep C then A (B finished), then D joins at position 0 while C and A are at 3.
  state->Select(torch::tensor({2, 0}, torch::kLong));
  auto state_d = m->InitState(mems[3], torch::ones({1, mem_len[3]}, torch::kBool), 1);
  state->Append(*state_d);
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

TEST_P(AftSiteTest, LargeKeysStayFiniteAndExact) {
  auto m = Make(type(), site());
  {
    torch::NoGradGuard no_grad;
    m->named_parameters()["k.weight"].mul_(40);
    m->named_parameters()["k.bias"].mul_(40);
  }
  const auto x = torch::randn({2, 6, kD});
  const auto mask = Mask({6, 4}, 6);
  const auto mem = torch::randn({2, 5, kD});
  const auto mem_mask = Mask({5, 2}, 5);
  // Keys far beyond float's exp range (exp(89) overflows), within double's (exp(709)).
  const auto k = torch::linear(cross() ? mem : x, Param(*m, "k.weight").to(torch::kFloat),
                               Param(*m, "k.bias").to(torch::kFloat));
  const double kmax = k.abs().max().item<double>();
  ASSERT_GT(kmax, 100);
  ASSERT_LT(kmax, 600);
  const auto y = m->Forward({x, mask, mem, mem_mask});
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  const auto ref = Reference(*m, type(), site(), WindowOf(0), x, mask, mem, mem_mask);
  EXPECT_LT(MaxDiffReal(y, ref, mask), 1e-4);
  if (decoder()) {
    torch::NoGradGuard no_grad;
    const auto full = torch::ones({2, 6}, torch::kBool);
    const auto y_all = m->Forward({x, full, mem, mem_mask});
    auto state = m->InitState(mem, mem_mask, 2);
    for (int64_t t = 0; t < 6; ++t) {
      const auto yt = m->Step(x.select(1, t), torch::full({2}, t, torch::kLong), *state);
      EXPECT_TRUE(torch::isfinite(yt).all().item<bool>());
      EXPECT_TRUE(torch::allclose(yt, y_all.select(1, t), 1e-4, 1e-4)) << "t " << t;
    }
  }
}

TEST_P(AftSiteTest, GradientsAreFinite) {
  auto m = Make(type(), site());
  m->train();
  const auto x = torch::randn({2, 5, kD});
  const auto mask = Mask({5, 0}, 5);  // an empty row must not poison the gradients
  const auto mem = torch::randn({2, 4, kD});
  const auto mem_mask = Mask({4, 0}, 4);
  m->Forward({x, mask, mem, mem_mask}).sum().backward();
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
}

TEST_P(AftSiteTest, ParameterCountFollowsFormula) {
  auto m = Make(type(), site());
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  const int64_t D = kD, L = kMaxLen, H = kHeads, s = WindowOf(0);
  int64_t want = 4 * (D * D + D);  // Q, K, V and output projections
  if (type() == "aft_full" || type() == "aft_local") want += L * L;
  if (type() == "aft_conv") want += H * (site() == Site::kDecoderSelf ? s : 2 * s - 1);
  EXPECT_EQ(n, want);
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return std::get<0>(info.param) + "_" + SiteName(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllVariantsAndSites, AftSiteTest,
                         ::testing::Combine(::testing::Values("aft_full", "aft_simple",
                                                              "aft_local", "aft_conv"),
                                            ::testing::Values(Site::kEncoderSelf,
                                                              Site::kDecoderSelf,
                                                              Site::kDecoderCross)),
                         CaseName);

INSTANTIATE_TEST_SUITE_P(AllVariantsDecoderSites, AftDecoderTest,
                         ::testing::Combine(::testing::Values("aft_full", "aft_simple",
                                                              "aft_local", "aft_conv"),
                                            ::testing::Values(Site::kDecoderSelf,
                                                              Site::kDecoderCross)),
                         CaseName);

TEST(AftSimple, DecodingStateDoesNotGrowWithLength) {
  torch::manual_seed(3);
  auto m = Make("aft_simple", Site::kDecoderSelf);
  torch::NoGradGuard no_grad;
  auto state = m->InitState(torch::Tensor(), torch::Tensor(), 4);
  auto* running = dynamic_cast<AftRunningState*>(state.get());
  ASSERT_NE(running, nullptr);
  const int64_t at_start = running->Numel();
  EXPECT_EQ(at_start, 3 * 4 * kD);  // maximum, numerator and denominator per row and feature
  for (int64_t t = 0; t < 40; ++t) {  // far beyond max_len: no position limit either
    m->Step(torch::randn({4, kD}), torch::full({4}, t, torch::kLong), *state);
    EXPECT_EQ(running->Numel(), at_start) << "t " << t;
  }
  // The cache-based variants, for contrast, hold every past key and value.
  auto full = Make("aft_full", Site::kDecoderSelf);
  auto cache_state = full->InitState(torch::Tensor(), torch::Tensor(), 4);
  for (int64_t t = 0; t < 10; ++t)
    full->Step(torch::randn({4, kD}), torch::full({4}, t, torch::kLong), *cache_state);
  EXPECT_GE(dynamic_cast<AftCacheState&>(*cache_state).Numel(), 2 * 4 * 10 * kD);
}

TEST(AftWindowed, DecodingStateIsBoundedByTheWindow) {
  torch::manual_seed(4);
  for (const char* name : {"aft_local", "aft_conv"}) {
    auto m = Make(name, Site::kDecoderSelf, 3);
    torch::NoGradGuard no_grad;
    auto state = m->InitState(torch::Tensor(), torch::Tensor(), 2);
    auto* window = dynamic_cast<AftWindowState*>(state.get());
    ASSERT_NE(window, nullptr) << name;
    // Ring of 3 keys and values, plus maximum, numerator, denominator, per row and feature.
    EXPECT_EQ(window->Numel(), (2 * 3 + 3) * 2 * kD) << name;
    const int64_t steps = std::string(name) == "aft_conv" ? 30 : kMaxLen;  // conv: no limit
    for (int64_t t = 0; t < steps; ++t) {
      const auto y = m->Step(torch::randn({2, kD}), torch::full({2}, t, torch::kLong), *state);
      EXPECT_TRUE(torch::isfinite(y).all().item<bool>()) << name << " t " << t;
      EXPECT_EQ(window->Numel(), (2 * 3 + 3) * 2 * kD) << name << " t " << t;
    }
  }
}

TEST(AftLocal, WindowCoveringEverythingEqualsFull) {
  torch::manual_seed(5);
  for (Site site : {Site::kEncoderSelf, Site::kDecoderSelf, Site::kDecoderCross}) {
    auto local = Make("aft_local", site, kMaxLen);
    auto full = Make("aft_full", site);
    {
      torch::NoGradGuard no_grad;
      auto dst = full->named_parameters();
      for (const auto& p : local->named_parameters()) dst[p.key()].copy_(p.value());
    }
    const auto x = torch::randn({2, kMaxLen, kD});
    const auto mask = Mask({kMaxLen, 5}, kMaxLen);
    const auto mem = torch::randn({2, kMaxLen, kD});
    const auto mem_mask = Mask({7, kMaxLen}, kMaxLen);
    const auto a = local->Forward({x, mask, mem, mem_mask});
    const auto b = full->Forward({x, mask, mem, mem_mask});
    EXPECT_TRUE(torch::allclose(a, b, 1e-6, 1e-6)) << SiteName(site);
    // And a narrow window really changes the result (the bias is learned, not zero).
    auto narrow = Make("aft_local", site, 2);
    {
      torch::NoGradGuard no_grad;
      auto dst = narrow->named_parameters();
      for (const auto& p : local->named_parameters()) dst[p.key()].copy_(p.value());
    }
    EXPECT_FALSE(torch::allclose(narrow->Forward({x, mask, mem, mem_mask}), a, 1e-4, 1e-4))
        << SiteName(site);
  }
}

TEST(AftFull, LongerThanMaxLenIsAClearError) {
  auto m = Make("aft_full", Site::kEncoderSelf);
  const auto x = torch::randn({1, kMaxLen + 1, kD});
  try {
    m->Forward({x, torch::ones({1, kMaxLen + 1}, torch::kBool), {}, {}});
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("max_len"), std::string::npos) << e.what();
  }
  auto dec = Make("aft_full", Site::kDecoderSelf);
  auto state = dec->InitState({}, {}, 1);
  EXPECT_THROW(dec->Step(torch::randn({1, kD}), torch::full({1}, kMaxLen, torch::kLong), *state),
               std::invalid_argument);
  EXPECT_THROW(dec->Step(torch::randn({2, kD}), torch::zeros({2}, torch::kLong), *state),
               std::invalid_argument);
}

TEST(AftRegistry, EverySiteSupported) {
  for (const char* name : {"aft_full", "aft_simple", "aft_local", "aft_conv"})
    for (Site site : {Site::kEncoderSelf, Site::kDecoderSelf, Site::kDecoderCross})
      EXPECT_TRUE(MixerRegistry::Get().Supports(name, site)) << name << " " << SiteName(site);
}

}  // namespace
}  // namespace mixserve::model
