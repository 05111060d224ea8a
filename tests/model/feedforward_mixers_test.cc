// The feed-forward token mixers (alr, alrr, aslr, elr) at every site they support, checked
// against a plain per-position reference written here from the network's definition
// (docs/model/feedforward.md), plus causality, padding, incremental decoding and sizes.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "model/mixers/feedforward_net.h"
#include "model/token_mixer.h"

namespace mixserve::model {
namespace {

constexpr int kD = 16;
constexpr int kLen = 12;
constexpr int kHeads = 2;

const ModelSpec& TinySpec() {
  static const ModelSpec spec = [] {
    ModelSpec s = UniformSpec(kD, 32, kHeads, 1, 1, 50);
    s.max_len = kLen;
    return s;
  }();
  return spec;
}

struct Case {
  std::string name;
  Site site;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name << " at " << SiteName(c.site); }

std::string CaseName(const testing::TestParamInfo<Case>& info) {
  return info.param.name + "_" + SiteName(info.param.site);
}

// Relative error ||a - b|| / ||b|| (b nonzero in every use).
double RelErr(const torch::Tensor& a, const torch::Tensor& b) {
  auto ad = a.to(torch::kFloat64), bd = b.to(torch::kFloat64);
  return ((ad - bd).norm() / bd.norm()).item<double>();
}

std::shared_ptr<FeedForwardMixer> Make(const std::string& name, Site site,
                                       const std::string& size = "s", int hidden = 0,
                                       const ModelSpec* spec = nullptr) {
  MixerSpec ms;
  ms.type = name;
  ms.size = size;
  ms.hidden = hidden;
  MixerContext ctx{spec ? spec : &TinySpec(), site, 1, ms};
  auto m = std::dynamic_pointer_cast<FeedForwardMixer>(MixerRegistry::Get().Create(ctx));
  if (!m) throw std::runtime_error(name + " is not a FeedForwardMixer");
  m->eval();
  return m;
}

// Moves every parameter away from its initial value (norm gains != 1, biases != 0) so that
// no term of the network is trivially zero or one in the comparisons.
void Randomize(FeedForwardMixer& m) {
  torch::NoGradGuard guard;
  auto& n = m.net();
  n.in_norm_weight.copy_(1 + 0.5 * torch::randn_like(n.in_norm_weight));
  n.in_norm_bias.copy_(0.3 * torch::randn_like(n.in_norm_bias));
  n.hidden_norm_weight.copy_(1 + 0.5 * torch::randn_like(n.hidden_norm_weight));
  n.hidden_norm_bias.copy_(0.3 * torch::randn_like(n.hidden_norm_bias));
  n.fc1_bias.add_(0.3 * torch::randn_like(n.fc1_bias));
  n.fc2_bias.add_(0.3 * torch::randn_like(n.fc2_bias));
}

std::shared_ptr<FeedForwardMixer> MakeRandom(const Case& c, const std::string& size = "m") {
  auto m = Make(c.name, c.site, size);
  Randomize(*m);
  return m;
}

// --- The reference: the network of the study applied literally, in float64 ---------------

// One flattened input vector v [W_in] -> [max_len, groups * out_dim].
torch::Tensor ReferenceNet(FeedForwardNet& net, const torch::Tensor& v) {
  const auto& o = net.options();
  auto p = [](const torch::Tensor& t) { return t.detach().to(torch::kFloat64); };
  std::vector<torch::Tensor> groups;
  for (int64_t g = 0; g < o.groups; ++g) {
    auto a = torch::layer_norm(v, {v.size(0)}, p(net.in_norm_weight[g]), p(net.in_norm_bias[g]),
                               o.eps);
    auto h = torch::linear(a, p(net.fc1_weight[g]), p(net.fc1_bias[g]));
    h = torch::leaky_relu(h, 0.01);
    h = torch::layer_norm(h, {o.hidden}, p(net.hidden_norm_weight[g]),
                          p(net.hidden_norm_bias[g]), o.eps);
    auto y = torch::linear(h, p(net.fc2_weight[g]), p(net.fc2_bias[g]));
    groups.push_back(y.view({o.out_blocks, o.out_dim}));
  }
  return torch::cat(groups, 1);
}

// Zero-pads rows [n, D] to [max_len, D] and flattens.
torch::Tensor PadFlat(const torch::Tensor& rows) {
  auto out = torch::zeros({kLen, rows.size(1)}, rows.options());
  if (rows.size(0) > 0) out.narrow(0, 0, rows.size(0)).copy_(rows);
  return out.reshape({-1});
}

// Reference output of one sentence x [T, D] (all real tokens) with memory [S, D] (cross):
// the network once per output position i, its input holding only positions 0..i in the
// decoder sites (future positions zeroed), all positions in the encoder site.
torch::Tensor Reference(FeedForwardMixer& m, const torch::Tensor& x, const torch::Tensor& memory) {
  const Site site = m.context().site;
  auto xd = x.to(torch::kFloat64);
  const int64_t t = x.size(0);
  if (site == Site::kEncoderSelf) return ReferenceNet(m.net(), PadFlat(xd)).narrow(0, 0, t);
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < t; ++i) {
    auto v = PadFlat(xd.narrow(0, 0, i + 1));
    if (site == Site::kDecoderCross) v = torch::cat({PadFlat(memory.to(torch::kFloat64)), v});
    rows.push_back(ReferenceNet(m.net(), v)[i]);
  }
  return torch::stack(rows);
}

// A padded batch: rows of `lens` real tokens followed by garbage (it must not matter).
struct Batch {
  torch::Tensor x, mask, memory, memory_mask;
  std::vector<int64_t> lens, mem_lens;
};

Batch RandomBatch(std::vector<int64_t> lens, std::vector<int64_t> mem_lens, int64_t t = kLen,
                  int64_t s = kLen) {
  Batch b;
  const int64_t n = static_cast<int64_t>(lens.size());
  b.x = torch::randn({n, t, kD});
  b.memory = torch::randn({n, s, kD});
  b.mask = torch::zeros({n, t}, torch::kBool);
  b.memory_mask = torch::zeros({n, s}, torch::kBool);
  for (int64_t i = 0; i < n; ++i) {
    b.mask[i].narrow(0, 0, lens[i]).fill_(true);
    b.memory_mask[i].narrow(0, 0, mem_lens[i]).fill_(true);
  }
  b.lens = std::move(lens);
  b.mem_lens = std::move(mem_lens);
  return b;
}

MixerInput Input(const Batch& b) { return {b.x, b.mask, b.memory, b.memory_mask}; }

// Row i of the batch alone, unpadded.
MixerInput RowInput(const Batch& b, int64_t i) {
  auto x = b.x[i].narrow(0, 0, b.lens[i]).unsqueeze(0);
  auto mem = b.memory[i].narrow(0, 0, b.mem_lens[i]).unsqueeze(0);
  return {x, torch::ones({1, b.lens[i]}, torch::kBool), mem,
          torch::ones({1, b.mem_lens[i]}, torch::kBool)};
}

const std::vector<Case>& AllCases() {
  static const std::vector<Case> cases = {
      {"alr", Site::kEncoderSelf},   {"alr", Site::kDecoderSelf},   {"alr", Site::kDecoderCross},
      {"alrr", Site::kEncoderSelf},  {"alrr", Site::kDecoderSelf},  {"alrr", Site::kDecoderCross},
      {"aslr", Site::kEncoderSelf},  {"aslr", Site::kDecoderSelf},  {"aslr", Site::kDecoderCross},
      {"elr", Site::kEncoderSelf}};
  return cases;
}

std::vector<Case> DecoderCases() {
  std::vector<Case> out;
  for (const auto& c : AllCases())
    if (c.site != Site::kEncoderSelf) out.push_back(c);
  return out;
}

class FeedForwardAllSites : public testing::TestWithParam<Case> {};
class FeedForwardDecoderSites : public testing::TestWithParam<Case> {};

// --- Every site -----------------------------------------------------------------------------

// The fast path (prefix sums in the decoder) equals the network applied per position.
TEST_P(FeedForwardAllSites, MatchesPerPositionReference) {
  torch::manual_seed(1);
  auto m = MakeRandom(GetParam());
  auto b = RandomBatch({kLen, 7, 1}, {5, kLen, 3});
  auto y = m->Forward(Input(b));
  ASSERT_EQ(y.sizes(), b.x.sizes());
  for (int64_t i = 0; i < 3; ++i) {
    auto r = RowInput(b, i);
    auto want = Reference(*m, r.x[0], r.memory[0]);
    auto got = y[i].narrow(0, 0, b.lens[i]);
    EXPECT_LT(RelErr(got, want), 1e-5) << "row " << i;
  }
}

// A padded batch of different lengths (garbage in the padding) equals each row alone.
TEST_P(FeedForwardAllSites, PaddingNeverReachesRealPositions) {
  torch::manual_seed(2);
  auto m = MakeRandom(GetParam());
  auto b = RandomBatch({9, 4, 6}, {kLen, 2, 7}, /*t=*/9, /*s=*/kLen);
  auto y = m->Forward(Input(b));
  for (int64_t i = 0; i < 3; ++i) {
    auto alone = m->Forward(RowInput(b, i));
    EXPECT_LT(RelErr(y[i].narrow(0, 0, b.lens[i]), alone[0]), 1e-6) << "row " << i;
    EXPECT_TRUE(torch::isfinite(y[i]).all().item<bool>());
  }
}

TEST_P(FeedForwardAllSites, RejectsSequencesLongerThanMaxLen) {
  auto m = Make(GetParam().name, GetParam().site);
  auto b = RandomBatch({kLen + 1}, {4}, kLen + 1, 4);
  try {
    m->Forward(Input(b));
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(GetParam().name + " at " + SiteName(GetParam().site) + " layer 1"),
              std::string::npos) << msg;
    EXPECT_NE(msg.find("13 tokens exceeds max_len 12"), std::string::npos) << msg;
  }
  auto ok = RandomBatch({kLen}, {4}, kLen, 4);
  EXPECT_NO_THROW(m->Forward(Input(ok)));
}

// Parameter counts per size, from the formula of docs/model/feedforward.md:
//   per network: 2 W_in + W_in H + H + 2 H + W_out H + W_out
TEST_P(FeedForwardAllSites, ParameterCountsFollowTheFormula) {
  const Case c = GetParam();
  const int64_t w = kLen * kD;
  const int64_t w_in = c.site == Site::kDecoderCross ? 2 * w : w;
  const bool per_head = c.name == "aslr";
  const int64_t groups = per_head ? kHeads : 1;
  const int64_t w_out = w / groups;
  struct Size { std::string name; int64_t k_whole, k_head; };
  const std::vector<Size> sizes = {{"xs", 256, 32}, {"s", 128, 16}, {"m", 8, 8}, {"l", 2, 4}};
  auto formula = [&](int64_t h) {
    return groups * (2 * w_in + w_in * h + h + 2 * h + w_out * h + w_out);
  };
  auto count = [](const FeedForwardMixer& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel();
    return n;
  };
  for (const auto& s : sizes) {
    const int64_t h = std::max<int64_t>(1, w / (per_head ? s.k_head : s.k_whole));
    auto m = Make(c.name, c.site, s.name);
    EXPECT_EQ(m->hidden(), h) << s.name;
    EXPECT_EQ(count(*m), formula(h)) << s.name;
  }
  auto m = Make(c.name, c.site, "xs", /*hidden=*/37);  // explicit hidden wins over the size
  EXPECT_EQ(count(*m), formula(37));
  EXPECT_EQ(Make(c.name, c.site, "")->hidden(), Make(c.name, c.site, "m")->hidden());
}

TEST_P(FeedForwardAllSites, GradientsReachEveryParameter) {
  torch::manual_seed(3);
  auto m = MakeRandom(GetParam());
  m->train();
  auto b = RandomBatch({kLen, 5}, {kLen, 4});
  auto y = m->Forward(Input(b));
  (y * torch::randn_like(y)).sum().backward();
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
}

INSTANTIATE_TEST_SUITE_P(Mixers, FeedForwardAllSites, testing::ValuesIn(AllCases()), CaseName);

// --- Decoder sites ----------------------------------------------------------------------------

// Changing the input at position k never changes outputs before k (and does change k).
TEST_P(FeedForwardDecoderSites, IsCausal) {
  torch::manual_seed(4);
  auto m = MakeRandom(GetParam());
  auto b = RandomBatch({kLen, kLen}, {6, kLen});
  auto y = m->Forward(Input(b));
  for (int64_t k : {0, 5, kLen - 1}) {
    Batch c = b;
    c.x = b.x.clone();
    c.x.narrow(1, k, 1).add_(torch::randn({2, 1, kD}));
    auto y2 = m->Forward(Input(c));
    if (k > 0) {
      EXPECT_TRUE(torch::equal(y.narrow(1, 0, k), y2.narrow(1, 0, k))) << "changed at " << k;
    }
    EXPECT_GT((y.narrow(1, k, 1) - y2.narrow(1, k, 1)).abs().max().item<double>(), 1e-4) << k;
  }
  if (GetParam().site == Site::kDecoderCross) {  // the encoder half is seen by every position
    Batch c = b;
    c.memory = b.memory.clone();
    c.memory.narrow(1, 3, 1).add_(1.0);
    auto y2 = m->Forward(Input(c));
    EXPECT_GT((y.narrow(1, 0, 1) - y2.narrow(1, 0, 1)).abs().max().item<double>(), 1e-4);
  }
}

// Decoding step by step gives Forward's outputs.
TEST_P(FeedForwardDecoderSites, StepsEqualForward) {
  torch::manual_seed(5);
  auto m = MakeRandom(GetParam());
  auto b = RandomBatch({kLen, kLen, kLen}, {kLen, 3, 8});
  auto y = m->Forward(Input(b));
  torch::NoGradGuard guard;
  auto state = m->InitState(b.memory, b.memory_mask, 3);
  for (int64_t t = 0; t < kLen; ++t) {
    auto out = m->Step(b.x.select(1, t), torch::full({3}, t, torch::kLong), *state);
    EXPECT_LT(RelErr(out, y.select(1, t)), 1e-5) << "position " << t;
  }
  // Beyond max_len: a clear error, not an out-of-range read.
  try {
    m->Step(b.x.select(1, 0), torch::full({3}, kLen, torch::kLong), *state);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("max_len 12"), std::string::npos) << e.what();
  }
}

// Rows reordered (beam search), dropped, and joined by new rows at other positions
// (continuous batching) each keep decoding as if alone.
TEST_P(FeedForwardDecoderSites, SelectAndAppendKeepRowsIndependent) {
  torch::manual_seed(6);
  auto m = MakeRandom(GetParam());
  auto b = RandomBatch({kLen, kLen, kLen, kLen}, {kLen, 4, 9, 6});
  auto y = m->Forward(Input(b));
  torch::NoGradGuard guard;
  auto rows = [&](std::vector<int64_t> r) { return torch::tensor(r, torch::kLong); };
  // Rows 0, 1, 2 start together.
  auto first = rows({0, 1, 2});
  auto state = m->InitState(b.memory.index_select(0, first),
                            b.memory_mask.index_select(0, first), 3);
  std::vector<int64_t> who = {0, 1, 2}, at = {0, 0, 0};
  auto step = [&]() {
    auto idx = torch::tensor(who, torch::kLong);
    auto pos = torch::tensor(at, torch::kLong);
    std::vector<torch::Tensor> xs;
    for (size_t r = 0; r < who.size(); ++r) xs.push_back(b.x[who[r]][at[r]]);
    auto out = m->Step(torch::stack(xs), pos, *state);
    for (size_t r = 0; r < who.size(); ++r) {
      EXPECT_LT(RelErr(out[r], y[who[r]][at[r]]), 1e-5)
          << "sentence " << who[r] << " position " << at[r];
      ++at[r];
    }
  };
  for (int i = 0; i < 3; ++i) step();
  state->Select(rows({2, 0}));  // reorder and drop sentence 1
  who = {2, 0};
  at = {3, 3};
  step();
  auto fresh = m->InitState(b.memory.narrow(0, 3, 1), b.memory_mask.narrow(0, 3, 1), 1);
  state->Append(*fresh);  // sentence 3 joins at position 0
  who.push_back(3);
  at.push_back(0);
  for (int i = 0; i < 4; ++i) step();
  state->Select(rows({2, 1}));
  who = {3, 0};
  at = {4, 8};
  for (int i = 0; i < 4; ++i) step();
  EXPECT_EQ(at[1], kLen);
}

INSTANTIATE_TEST_SUITE_P(Mixers, FeedForwardDecoderSites, testing::ValuesIn(DecoderCases()),
                         CaseName);

// --- Accelerator ------------------------------------------------------------------------------

// On a machine with CUDA: every mixer and site gives the CPU's outputs there, in Forward and in
// Step with rows at different positions (the gather path).
TEST(FeedForwardMixers, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Device cuda(torch::kCUDA);
  for (const auto& c : AllCases()) {
    torch::manual_seed(7);
    auto m = MakeRandom(c);
    auto b = RandomBatch({kLen, kLen, kLen}, {4, kLen, 9});
    auto want = m->Forward(Input(b));
    m->to(cuda);
    Batch g = b;
    g.x = b.x.to(cuda);
    g.mask = b.mask.to(cuda);
    g.memory = b.memory.to(cuda);
    g.memory_mask = b.memory_mask.to(cuda);
    auto got = m->Forward(Input(g));
    ASSERT_TRUE(got.is_cuda());
    EXPECT_LT(RelErr(got.cpu(), want), 1e-5) << c.name << " " << SiteName(c.site);
    if (c.site == Site::kEncoderSelf) continue;
    torch::NoGradGuard guard;
    // Sentence 0 decodes alone for two steps, then 1 joins, then 2: rows at different positions.
    auto state = m->InitState(g.memory, g.memory_mask, 3);
    state->Select(torch::tensor(std::vector<int64_t>{0}, torch::kLong).to(cuda));
    std::vector<int64_t> at = {0, 0, 0};
    std::vector<int64_t> who = {0};
    for (int64_t t = 0; t < kLen; ++t) {
      if (t == 2 || t == 4) {
        const int64_t s = t == 2 ? 1 : 2;
        auto fresh = m->InitState(g.memory.narrow(0, s, 1), g.memory_mask.narrow(0, s, 1), 1);
        state->Append(*fresh);
        who.push_back(s);
      }
      std::vector<torch::Tensor> xs;
      std::vector<int64_t> pos;
      for (int64_t r : who) {
        xs.push_back(b.x[r][at[r]]);
        pos.push_back(at[r]);
      }
      auto out = m->Step(torch::stack(xs).to(cuda), torch::tensor(pos, torch::kLong).to(cuda),
                         *state);
      for (size_t i = 0; i < who.size(); ++i) {
        const int64_t r = who[i];
        EXPECT_LT(RelErr(out[i].cpu(), want[r][at[r]]), 1e-5)
            << c.name << " " << SiteName(c.site) << " sentence " << r << " position " << at[r];
        ++at[r];
      }
    }
  }
}

// --- Registration and roles -------------------------------------------------------------------

TEST(FeedForwardMixers, RolesAndSites) {
  EXPECT_EQ(Make("alr", Site::kEncoderSelf)->role(), MixerRole::kMixer);
  EXPECT_EQ(Make("aslr", Site::kDecoderSelf)->role(), MixerRole::kMixer);
  EXPECT_EQ(Make("alrr", Site::kDecoderCross)->role(), MixerRole::kBlock);
  EXPECT_EQ(Make("elr", Site::kEncoderSelf)->role(), MixerRole::kLayer);
  auto& reg = MixerRegistry::Get();
  for (const char* n : {"alr", "alrr", "aslr"}) {
    for (Site s : {Site::kEncoderSelf, Site::kDecoderSelf, Site::kDecoderCross}) {
      EXPECT_TRUE(reg.Supports(n, s)) << n << " " << SiteName(s);
    }
  }
  EXPECT_TRUE(reg.Supports("elr", Site::kEncoderSelf));
  EXPECT_FALSE(reg.Supports("elr", Site::kDecoderSelf));
  EXPECT_FALSE(reg.Supports("elr", Site::kDecoderCross));
  EXPECT_THROW(Make("elr", Site::kDecoderSelf), std::invalid_argument);
}

TEST(FeedForwardMixers, BadOptionsAndMisuseAreClearErrors) {
  try {
    Make("alr", Site::kEncoderSelf, "xxl");
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown feed-forward size 'xxl'"), std::string::npos);
  }
  ModelSpec odd = TinySpec();
  odd.heads = 3;  // 16 is not divisible by 3
  EXPECT_THROW(Make("aslr", Site::kEncoderSelf, "s", 0, &odd), std::invalid_argument);
  auto enc = Make("alr", Site::kEncoderSelf);
  EXPECT_THROW(enc->InitState({}, {}, 1), std::logic_error);
  auto cross = Make("alr", Site::kDecoderCross);
  auto b = RandomBatch({3}, {kLen + 2}, 3, kLen + 2);  // encoder memory too long
  try {
    cross->Forward(Input(b));
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("encoder memory of 14 tokens exceeds max_len 12"),
              std::string::npos) << e.what();
  }
  auto self = Make("alr", Site::kDecoderSelf);
  auto state = self->InitState({}, {}, 2);
  EXPECT_THROW(self->Step(torch::randn({3, kD}), torch::zeros({3}, torch::kLong), *state),
               std::invalid_argument);
  auto aslr_state = Make("aslr", Site::kDecoderSelf)->InitState({}, {}, 1);
  EXPECT_THROW(state->Append(*aslr_state), std::invalid_argument);
}

}  // namespace
}  // namespace mixserve::model
