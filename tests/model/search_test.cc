#include <gtest/gtest.h>

#include <map>

#include "model/search.h"
#include "model_test_util.h"

namespace mixserve::model {
namespace {

using namespace ::mixserve::model::testing;

class SearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(3);
    model_ = Transformer(TinySpec());
    // Larger weights give peaked, sentence-dependent distributions: more varied outputs.
    for (auto& p : model_->parameters()) p.data().mul_(3.0);
    model_->eval();
  }
  std::vector<SearchHypothesis> Alone(const std::vector<int64_t>& src, const SearchOptions& o) {
    return Search(model_, Pad({src}), o)[0];
  }
  // log P(tokens + EOS | src) by teacher forcing, independent of the search code.
  float TeacherForcedLogProb(const std::vector<int64_t>& src, const SearchHypothesis& h) {
    std::vector<int64_t> out = h.tokens;
    if (h.ended_with_eos) out.push_back(ModelSpec::kEos);
    auto in = WithBos(h.tokens);
    in.resize(out.size());
    auto lp = torch::log_softmax(model_->Forward(Pad({src}), Pad({in})), -1)[0];
    float sum = 0;
    for (size_t t = 0; t < out.size(); ++t) sum += lp[t][out[t]].item<float>();
    return sum;
  }
  torch::NoGradGuard no_grad_;
  Transformer model_{nullptr};
};

TEST_F(SearchTest, ScoresAreTeacherForcedLogProbs) {
  SearchOptions o;
  o.beam_size = 4;
  o.n_best = 3;
  o.length_penalty = 0.6f;
  for (int i = 0; i < 3; ++i) {
    auto src = RandomTokens(3 + 3 * i, true);
    auto hyps = Alone(src, o);
    ASSERT_EQ(hyps.size(), 3u);
    for (size_t j = 0; j < hyps.size(); ++j) {
      const auto& h = hyps[j];
      EXPECT_NEAR(h.log_prob, TeacherForcedLogProb(src, h), 1e-3);
      const int len = static_cast<int>(h.tokens.size()) + (h.ended_with_eos ? 1 : 0);
      EXPECT_NEAR(h.score, h.log_prob / std::pow((5.0f + len) / 6.0f, 0.6f), 1e-5);
      if (j > 0) {
        EXPECT_GE(hyps[j - 1].score, h.score);
      }
    }
  }
  auto greedy = Alone(RandomTokens(5, true), SearchOptions{});
  ASSERT_EQ(greedy.size(), 1u);
}

TEST_F(SearchTest, MaxOutputTokensIsRespected) {
  SearchOptions o;
  o.max_output_tokens = 3;
  for (int beam : {1, 3}) {
    o.beam_size = beam;
    for (const auto& hyps : Search(model_, Pad({RandomTokens(4, true), RandomTokens(9, true)}), o))
      for (const auto& h : hyps) EXPECT_LE(h.tokens.size(), 3u);
  }
  o.max_output_tokens = 0;  // the model's limit: max_len - 2
  o.beam_size = 1;
  auto h = Alone(RandomTokens(4, true), o);
  EXPECT_LE(h[0].tokens.size(), static_cast<size_t>(kMaxLen - 2));
}

TEST_F(SearchTest, SentencesJoiningMidDecodeMatchDecodingAlone) {
  for (int beam : {1, 3}) {
    SearchOptions o;
    o.beam_size = beam;
    o.n_best = beam;
    std::vector<std::vector<int64_t>> srcs = {RandomTokens(5, true), RandomTokens(10, true),
                                              RandomTokens(2, true)};
    IncrementalSearch search(model_, o);
    std::map<uint64_t, std::vector<SearchHypothesis>> got;
    auto run = [&](int steps) {
      for (int i = 0; i < steps && search.active() > 0; ++i)
        for (auto& r : search.Step()) got[r.id] = r.hyps;
    };
    search.Add({10}, Pad({srcs[0]}));
    run(2);
    search.Add({11, 12}, Pad({srcs[1], srcs[2]}));
    EXPECT_EQ(search.active(), 3u);
    EXPECT_EQ(search.rows(), 3 * beam);
    run(100);
    ASSERT_EQ(got.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      auto alone = Alone(srcs[i], o);
      ASSERT_EQ(got[10 + i].size(), alone.size()) << "beam " << beam << " sentence " << i;
      for (size_t j = 0; j < alone.size(); ++j) {
        EXPECT_EQ(got[10 + i][j].tokens, alone[j].tokens) << "beam " << beam << " sentence " << i;
        EXPECT_NEAR(got[10 + i][j].score, alone[j].score, 1e-4);
      }
    }
    // All answered: no rows, but for the one dead row a greedy search keeps on the CPU for
    // the next sentence to take (SearchOptions::dead_rows).
    EXPECT_LE(search.rows(), beam == 1 ? 1 : 0);
  }
}

// Greedy search may keep answered and removed sentences' rows as dead rows
// (SearchOptions::dead_rows) without changing any result (ExpectDeadRowsChangeNoResult,
// model_test_util.h); on CUDA the same again with step graphs (kAuto keeps dead rows there).
TEST_F(SearchTest, DeadRowsChangeNoResult) {
  ExpectDeadRowsChangeNoResult(model_, torch::kCPU, 1e-4, /*in_place=*/false);  // may happen
  model_->EnableStepGraphs(true);  // on the CPU: eager steps over memory padded to max_len
  ExpectDeadRowsChangeNoResult(model_, torch::kCPU, 1e-4, /*in_place=*/true);
  if (!torch::cuda::is_available()) return;
  model_->to(torch::Device(torch::kCUDA, 0));
  ASSERT_TRUE(model_->EnableStepGraphs(true));
  ExpectDeadRowsChangeNoResult(model_, torch::Device(torch::kCUDA, 0), 1e-3, /*in_place=*/true);
  EXPECT_GE(model_->captured_step_graphs(), 2);
}

TEST_F(SearchTest, RemoveDropsOnlyThatSentence) {
  SearchOptions o;
  o.beam_size = 2;
  o.max_output_tokens = 12;
  auto a = RandomTokens(6, true), b = RandomTokens(4, true);
  IncrementalSearch search(model_, o);
  search.Add({1, 2}, Pad({a, b}));
  search.Step();
  if (search.active() == 2) {
    EXPECT_TRUE(search.Remove(1));
    EXPECT_EQ(search.rows(), 2);
  }
  EXPECT_FALSE(search.Remove(99));
  std::vector<SearchResult> results;
  while (search.active() > 0)
    for (auto& r : search.Step()) results.push_back(r);
  for (const auto& r : results) EXPECT_NE(r.id, 1u);
  auto alone = Alone(b, o);
  for (const auto& r : results)
    if (r.id == 2) {
      EXPECT_EQ(r.hyps[0].tokens, alone[0].tokens);
    }
}

TEST_F(SearchTest, BadOptionsAreRejected) {
  SearchOptions o;
  o.beam_size = 0;
  EXPECT_THROW(IncrementalSearch(model_, o), std::invalid_argument);
  o.beam_size = 2;
  o.n_best = 3;
  try {
    IncrementalSearch s(model_, o);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("n_best"), std::string::npos);
  }
  IncrementalSearch s(model_, SearchOptions{});
  s.Add({1}, Pad({RandomTokens(3, true)}));
  EXPECT_THROW(s.Add({1}, Pad({RandomTokens(3, true)})), std::invalid_argument);
}

}  // namespace
}  // namespace mixserve::model
