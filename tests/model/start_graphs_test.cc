// Starting sentences through Transformer::AppendSources with step graphs enabled (the
// encoder and the decoder state's set-up replayed from graphs on CUDA, model/start_graphs.h)
// gives the decoding steps of the eager start, for every encoder mixer and beam rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "model_test_util.h"

namespace mixserve::model {
namespace {

using namespace ::mixserve::model::testing;

// Two groups of sentences join one state (the second with sources long enough for another
// length bucket), each followed by decoding steps fed with seeded random tokens.
std::vector<torch::Tensor> Starts(Transformer& m, const torch::Device& device, int64_t width) {
  torch::manual_seed(21);
  std::vector<std::vector<int64_t>> a, b;
  for (int i = 0; i < 5; ++i) a.push_back(RandomTokens(3 + 2 * i, true));
  for (int i = 0; i < 3; ++i) b.push_back(RandomTokens(17 + i, true));
  auto state = m->EmptyDecoder();
  std::vector<torch::Tensor> out;
  auto steps = [&](int n) {
    for (int i = 0; i < n; ++i) {
      auto tokens = torch::randint(4, kVocab, {state->rows()}, torch::kLong);
      out.push_back(m->DecodeStep(tokens, *state).to(torch::kCPU));
    }
  };
  m->AppendSources(*state, Pad(a).to(device), width);
  steps(2);
  m->AppendSources(*state, Pad(b).to(device), width);
  steps(2);
  return out;
}

// Eager vs graphed starts for a model with `mixer` at `site`; returns how many start graphs
// were captured.
int64_t Compare(const std::string& mixer, Site site, const torch::Device& device, double atol) {
  torch::manual_seed(3);
  auto spec = SpecWith(mixer, site);
  spec.max_len = 40;  // room for two buckets of source length
  Transformer m(spec);
  m->eval();
  m->to(device);
  torch::NoGradGuard no_grad;
  int64_t captured = 0;
  for (int64_t width : {1, 3}) {
    const std::string what = mixer + " at " + SiteName(site) + " on " + device.str() +
                             ", width " + std::to_string(width);
    m->EnableStepGraphs(false);
    const auto eager = Starts(m, device, width);
    m->EnableStepGraphs(true);
    const auto graphed = Starts(m, device, width);
    EXPECT_EQ(eager.size(), graphed.size()) << what;
    for (size_t i = 0; i < std::min(eager.size(), graphed.size()); ++i) {
      EXPECT_EQ(eager[i].sizes(), graphed[i].sizes()) << what << " step " << i;
      if (eager[i].sizes() != graphed[i].sizes()) continue;
      EXPECT_LE((eager[i] - graphed[i]).abs().max().item<double>(), atol)
          << what << " step " << i;
    }
    captured += m->captured_start_graphs();
  }
  return captured;
}

std::vector<std::string> EncoderMixers() {
  std::vector<std::string> out;
  for (const auto& name : MixerRegistry::Get().Names())
    if (MixerRegistry::Get().Supports(name, Site::kEncoderSelf)) out.push_back(name);
  return out;
}

TEST(StartGraphs, StartsLikeTheEagerStartOnCpu) {
  // Nothing is captured on the CPU: this checks the path itself (a state over no rows that
  // the sentences join, beam rows repeated in place).
  for (const auto& name : EncoderMixers())
    EXPECT_EQ(Compare(name, Site::kEncoderSelf, torch::kCPU, 1e-5), 0) << name;
  EXPECT_EQ(Compare("aft_simple", Site::kDecoderSelf, torch::kCPU, 1e-5), 0);
}

TEST(StartGraphs, CudaGraphStartsMatchEagerStarts) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto& name : EncoderMixers()) {
    const auto captured = Compare(name, Site::kEncoderSelf, torch::Device(torch::kCUDA, 0), 2e-4);
    // Two length buckets per width, unless the encoder mixer cannot be captured (eager).
    if (name == "mha" || name == "alr" || name == "aft_simple") {
      EXPECT_EQ(captured, 4) << name;
    }
  }
  EXPECT_EQ(Compare("aft_simple", Site::kDecoderSelf, torch::Device(torch::kCUDA, 0), 2e-4), 4);
}

}  // namespace
}  // namespace mixserve::model
