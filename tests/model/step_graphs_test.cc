// Decoding with step graphs enabled (model/step_graphs.h) gives the log-probabilities of the
// eager decoder: on the CPU that checks the padded encoder memory of every decoder mixer; on
// CUDA also the captured graphs themselves, through joins, reorders and removals of rows.
#include <gtest/gtest.h>

#include <exception>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "model/search.h"
#include "model_test_util.h"

namespace mixserve::model {
namespace {

using namespace ::mixserve::model::testing;

struct Case {
  std::string mixer;
  Site site;
};

std::vector<Case> DecoderCases() {
  std::vector<Case> cases{{"mha", Site::kDecoderSelf}};
  for (const auto& name : MixerRegistry::Get().Names())
    for (Site site : {Site::kDecoderSelf, Site::kDecoderCross})
      if (name != "mha" && MixerRegistry::Get().Supports(name, site)) cases.push_back({name, site});
  return cases;
}

// Steps fed with seeded random tokens over a changing set of rows: 3 sentences, 2 more
// joining (longer sources), then a reorder that drops two. Returns every step's log-probs.
std::vector<torch::Tensor> Scenario(Transformer& m, const torch::Device& device) {
  torch::manual_seed(11);
  auto src_a = Pad({RandomTokens(5, true), RandomTokens(7, true), RandomTokens(3, true)});
  auto src_b = Pad({RandomTokens(12, true), RandomTokens(9, true)});
  auto state = m->InitDecoder(m->Encode(src_a.to(device)));
  std::vector<torch::Tensor> out;
  auto steps = [&](int n) {
    for (int i = 0; i < n; ++i) {
      auto tokens = torch::randint(4, kVocab, {state->rows()}, torch::kLong);
      out.push_back(m->DecodeStep(tokens, *state).to(torch::kCPU));
    }
  };
  steps(3);
  auto joining = m->InitDecoder(m->Encode(src_b.to(device)));
  // The joining rows start at position 0 while the others are at 3.
  state->Append(*joining);
  steps(3);
  state->Select(torch::tensor({4, 0, 2}, torch::kLong));
  steps(3);
  return out;
}

// Two live states of one model stepping in turns with the same number of rows (two sessions
// with different decoding options): each must keep its own state. Then the second, alone,
// grows to a bucket that Scenario did not use, so that its graph is captured with rows at
// position 7 (windowed AFT steps fold old positions there).
std::vector<torch::Tensor> TwoStates(Transformer& m, const torch::Device& device) {
  torch::manual_seed(13);
  auto src_a = Pad({RandomTokens(4, true), RandomTokens(8, true)});
  auto src_b = Pad({RandomTokens(9, true), RandomTokens(2, true)});
  std::vector<std::vector<int64_t>> more;
  for (int i = 0; i < 7; ++i) more.push_back(RandomTokens(3 + i, true));
  auto a = m->InitDecoder(m->Encode(src_a.to(device)));
  auto b = m->InitDecoder(m->Encode(src_b.to(device)));
  std::vector<torch::Tensor> out;
  auto step = [&](DecoderState& st) {
    auto tokens = torch::randint(4, kVocab, {st.rows()}, torch::kLong);
    out.push_back(m->DecodeStep(tokens, st).to(torch::kCPU));
  };
  for (int i = 0; i < 4; ++i) {
    step(*a);
    step(*b);
  }
  a.reset();  // the first state ends; the second goes on alone
  for (int i = 0; i < 3; ++i) step(*b);
  b->Append(*m->InitDecoder(m->Encode(Pad(more).to(device))));  // 9 rows: bucket 16
  for (int i = 0; i < 3; ++i) step(*b);
  return out;
}

void ExpectSameSteps(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b,
                     double atol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].sizes(), b[i].sizes()) << what << " step " << i;
    const double diff = (a[i] - b[i]).abs().max().item<double>();
    EXPECT_LE(diff, atol) << what << " step " << i;
  }
}

// Eager steps vs steps with graphs enabled, for one decoder mixer; returns whether the
// model said it would capture graphs.
bool Compare(const Case& c, const torch::Device& device, double atol) {
  const std::string what = c.mixer + " at " + SiteName(c.site) + " on " + device.str();
  torch::manual_seed(5);
  Transformer m(SpecWith(c.mixer, c.site));
  m->eval();
  m->to(device);
  torch::NoGradGuard no_grad;
  const auto eager = Scenario(m, device);
  const auto eager_two = TwoStates(m, device);
  const bool graphed = m->EnableStepGraphs(true) && device.is_cuda();
  EXPECT_TRUE(m->step_graphs_enabled());
  const auto with_graphs = Scenario(m, device);
  ExpectSameSteps(eager, with_graphs, atol, what);
  ExpectSameSteps(eager_two, TwoStates(m, device), atol, what + ", two states in turns");
  if (graphed) {
    EXPECT_GE(m->captured_step_graphs(), 2) << what;  // buckets of 4 and 8 rows
  } else {
    EXPECT_EQ(m->captured_step_graphs(), 0) << what;
  }
  // And the search on top: the same translations.
  m->EnableStepGraphs(false);
  auto src = Pad({RandomTokens(6, true), RandomTokens(10, true)}).to(device);
  SearchOptions beam;
  beam.beam_size = 3;
  const auto plain = BeamSearch(m, src, beam);
  m->EnableStepGraphs(true);
  const auto graphed_beam = BeamSearch(m, src, beam);
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(plain[i].size(), graphed_beam[i].size()) << what;
    if (plain[i].empty() || graphed_beam[i].empty()) continue;
    EXPECT_EQ(plain[i][0].tokens, graphed_beam[i][0].tokens) << what << " sentence " << i;
    EXPECT_NEAR(plain[i][0].score, graphed_beam[i][0].score, 1e-3) << what;
  }
  return graphed;
}

TEST(StepGraphs, PaddedMemoryDecodesLikeTheEagerDecoderOnCpu) {
  for (const auto& c : DecoderCases()) {
    // On the CPU nothing is captured: steps stay eager, over memory padded to max_len.
    EXPECT_FALSE(Compare(c, torch::kCPU, 1e-5)) << c.mixer;
    if (!StepGraphs::Available()) {
      EXPECT_FALSE(Transformer(SpecWith(c.mixer, c.site))->EnableStepGraphs(true)) << c.mixer;
    }
  }
}

TEST(StepGraphs, BaselineAndAftSimpleStepsAreCapturable) {
  // The serving variants' decoders (docs/performance.md) must not fall back to eager steps.
  for (const auto& c : std::vector<Case>{{"mha", Site::kDecoderSelf},
                                         {"mha", Site::kDecoderCross},
                                         {"aft_simple", Site::kDecoderSelf},
                                         {"aft_simple", Site::kDecoderCross},
                                         {"lstm", Site::kDecoderSelf}}) {
    Transformer m(SpecWith(c.mixer, c.site));
    for (int layer = 0; layer < 2; ++layer)
      EXPECT_TRUE(m->mixer(c.site, layer)->StepCapturable()) << c.mixer;
  }
}

TEST(StepGraphs, CudaGraphStepsMatchEagerSteps) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  ASSERT_TRUE(StepGraphs::Available()) << "CUDA device but a build without CUDA graphs";
  int graphed = 0;
  for (const auto& c : DecoderCases()) graphed += Compare(c, torch::Device(torch::kCUDA, 0), 2e-4);
  EXPECT_GE(graphed, 5);  // mha, aft_simple (2 sites), lstm, the AFT cross steps...
}

// Continuous-batching greedy search over groups of sentences that join a running decode one
// step apart (rows 1 to 17: start and step graphs of several buckets). Tokens by sentence id.
std::map<uint64_t, std::vector<int64_t>> Translate(Transformer m,
                                                   const std::vector<torch::Tensor>& groups,
                                                   const torch::Device& device) {
  torch::NoGradGuard no_grad;  // per thread
  SearchOptions o;
  o.max_output_tokens = 8;
  IncrementalSearch search(m, o);
  std::map<uint64_t, std::vector<int64_t>> out;
  auto take = [&](std::vector<SearchResult> done) {
    for (auto& r : done) out[r.id] = r.hyps.at(0).tokens;
  };
  uint64_t next = 0;
  for (const auto& src : groups) {
    std::vector<uint64_t> ids;
    for (int64_t i = 0; i < src.size(0); ++i) ids.push_back(next++);
    search.Add(ids, src.to(device));
    take(search.Step());
  }
  while (search.active() > 0) take(search.Step());
  return out;
}

// Two models on one device decoding at the same time from two threads, as two variants of the
// server do (a version loaded while another one serves): each captures start and step graphs
// for new buckets while the other one runs and captures its own (captures take turns,
// StepGraphs::CaptureTurn). Each must translate as a twin of it (same weights) did alone,
// with the same graphs captured.
TEST(StepGraphs, TwoModelsCaptureAndDecodeFromTwoThreadsAtOnce) {
  const auto device = torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0)
                                                  : torch::Device(torch::kCPU);
  torch::manual_seed(21);
  std::vector<std::vector<torch::Tensor>> groups(2);
  for (auto& g : groups)
    for (int rows : {1, 3, 2, 6, 11, 1, 4}) {
      std::vector<std::vector<int64_t>> srcs;
      for (int i = 0; i < rows; ++i) srcs.push_back(RandomTokens(2 + (rows + i) % 13, true));
      g.push_back(Pad(srcs));
    }
  auto make = [&](int seed) {
    torch::manual_seed(seed);
    Transformer m(SpecWith("mha", Site::kDecoderSelf));
    m->eval();
    m->to(device);
    m->EnableStepGraphs(true);
    return m;
  };
  std::vector<Transformer> alone{make(1), make(2)}, together{make(1), make(2)};
  std::vector<std::map<uint64_t, std::vector<int64_t>>> expected, got(2);
  for (int i = 0; i < 2; ++i) expected.push_back(Translate(alone[i], groups[i], device));
  std::vector<std::exception_ptr> errors(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] {
      try {
        got[i] = Translate(together[i], groups[i], device);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 2; ++i) {
    if (errors[i]) {
      try {
        std::rethrow_exception(errors[i]);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "model " << i << ": " << e.what();
      }
      continue;
    }
    EXPECT_EQ(got[i].size(), 28u) << "model " << i;
    EXPECT_EQ(got[i], expected[i]) << "model " << i;
    EXPECT_EQ(together[i]->captured_step_graphs(), alone[i]->captured_step_graphs());
    EXPECT_EQ(together[i]->captured_start_graphs(), alone[i]->captured_start_graphs());
    if (device.is_cuda()) {
      EXPECT_GE(alone[i]->captured_step_graphs(), 3) << "model " << i;
      EXPECT_GE(alone[i]->captured_start_graphs(), 3) << "model " << i;
    }
  }
}

}  // namespace
}  // namespace mixserve::model
