#include "engine/engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <cmath>
#include <fstream>
#include <map>
#include <thread>

#include "engine/model_factory.h"
#include "base/remove_tree.h"

namespace mixserve {
namespace {

namespace fs = std::filesystem;

constexpr int kVocab = 60;

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("mixserve_engine_" + std::to_string(::getpid())));
    mixserve::RemoveTree(*dir_);
    ModelSpec spec = UniformSpec(32, 64, 2, 2, 2, kVocab);
    spec.max_len = 20;
    const fs::path tok = fs::temp_directory_path() / ("spm_" + std::to_string(::getpid()));
    std::ofstream(tok) << "not a real tokenizer";
    CreateRandomModel(spec, tok.string(), (*dir_ / "1").string(), 42);
    fs::remove(tok);
  }
  static void TearDownTestSuite() {
    mixserve::RemoveTree(*dir_);
    delete dir_;
  }
  void SetUp() override {
    EngineOptions o;
    o.device = "cpu";
    engine_ = Engine::Load((*dir_ / "1").string(), o);
  }
  static std::vector<int> Sentence(int n, int seed) {
    std::vector<int> v;
    for (int i = 0; i < n; ++i) v.push_back(4 + (seed * 7 + i * 13) % (kVocab - 4));
    return v;
  }
  std::vector<Hypothesis> Alone(const std::vector<int>& src, const DecodeOptions& o) {
    return engine_->Translate({src}, o)[0];
  }
  static fs::path* dir_;
  std::unique_ptr<Engine> engine_;
};
fs::path* EngineTest::dir_ = nullptr;

TEST_F(EngineTest, LoadsAndTranslates) {
  EXPECT_TRUE(fs::exists(*dir_ / "1" / "spm.model"));
  EXPECT_TRUE(fs::exists(*dir_ / "1" / "metadata.json"));
  const auto& info = engine_->info();
  EXPECT_EQ(info.device, "cpu");
  EXPECT_EQ(info.dtype, "fp32");
  EXPECT_EQ(info.spec.vocab_size, kVocab);
  EXPECT_GT(info.parameters, 0);
  EXPECT_EQ(engine_->DeviceMemoryBytes(), 0);
  std::vector<std::vector<int>> srcs = {Sentence(5, 1), Sentence(12, 2), Sentence(1, 3), {}};
  auto out = engine_->Translate(srcs, DecodeOptions{});
  ASSERT_EQ(out.size(), srcs.size());
  for (size_t i = 0; i < srcs.size(); ++i) {
    ASSERT_EQ(out[i].size(), 1u);
    EXPECT_LE(out[i][0].tokens.size(), 18u);
    for (int t : out[i][0].tokens) {
      EXPECT_GE(t, 0);
      EXPECT_LT(t, kVocab);
      EXPECT_NE(t, ModelSpec::kEos);
    }
    EXPECT_LE(out[i][0].score, 0.0f);
    // A batch gives what each sentence gives alone.
    auto alone = Alone(srcs[i], DecodeOptions{});
    EXPECT_EQ(alone[0].tokens, out[i][0].tokens) << "sentence " << i;
    EXPECT_NEAR(alone[0].score, out[i][0].score, 1e-4);
  }
  EXPECT_TRUE(engine_->Translate({}, DecodeOptions{}).empty());
}

// dtype int8: the CPU's products with int8 weights and inputs. Random weights give flat
// distributions, where rounding may tip a token, so most (not all) sentences must agree with
// fp32; scores stay near fp32's; "auto" is the CPU; a unknown dtype lists int8.
TEST_F(EngineTest, Int8TranslatesOnTheCpu) {
  EngineOptions o;
  o.dtype = "int8";  // device "auto": the CPU for int8, GPU or not
  auto q = Engine::Load((*dir_ / "1").string(), o);
  EXPECT_EQ(q->info().dtype, "int8");
  EXPECT_EQ(q->info().device, "cpu");
  EXPECT_TRUE(q->info().cpu_kernel == "avx512vnni" || q->info().cpu_kernel == "portable")
      << q->info().cpu_kernel;
  const std::string fp32_kernel = engine_->info().cpu_kernel;
  EXPECT_TRUE(fp32_kernel == "avx512" || fp32_kernel == "avx2" || fp32_kernel == "blas")
      << fp32_kernel;
  int same = 0, n = 0;
  for (int seed = 1; seed <= 20; ++seed) {
    const auto src = Sentence(4 + seed % 9, seed);
    const auto want = Alone(src, DecodeOptions{})[0];
    const auto got = q->Translate({src}, DecodeOptions{})[0][0];
    ++n;
    same += got.tokens == want.tokens;
    if (got.tokens == want.tokens) {
      EXPECT_NEAR(got.score, want.score, 0.05 + 0.05 * std::abs(want.score));
    }
  }
  EXPECT_GE(same, n * 3 / 4) << same << " of " << n << " sentences as in fp32";
  EngineOptions bad;
  bad.dtype = "int4";
  try {
    Engine::Load((*dir_ / "1").string(), bad);
    ADD_FAILURE() << "int4 loaded";
  } catch (const EngineError& e) {
    EXPECT_NE(std::string(e.what()).find("int8"), std::string::npos) << e.what();
  }
}

TEST_F(EngineTest, BeamReturnsNBestInOrder) {
  DecodeOptions o;
  o.beam_size = 4;
  o.n_best = 3;
  o.max_output_tokens = 6;
  auto out = engine_->Translate({Sentence(6, 4), Sentence(3, 5)}, o);
  for (const auto& hyps : out) {
    ASSERT_EQ(hyps.size(), 3u);
    EXPECT_GE(hyps[0].score, hyps[1].score);
    EXPECT_GE(hyps[1].score, hyps[2].score);
    for (const auto& h : hyps) EXPECT_LE(h.tokens.size(), 6u);
  }
}

TEST_F(EngineTest, SessionAddMidDecodeMatchesDecodingAlone) {
  for (int beam : {1, 3}) {
    DecodeOptions o;
    o.beam_size = beam;
    auto session = engine_->NewSession(o);
    std::vector<std::vector<int>> srcs = {Sentence(8, 6), Sentence(2, 7), Sentence(15, 8)};
    std::map<uint64_t, std::vector<Hypothesis>> got;
    session->Add(100, srcs[0]);
    for (int i = 0; i < 3; ++i)
      for (auto& f : session->Step()) got[f.id] = f.hyps;
    session->AddBatch({101, 102}, {srcs[1], srcs[2]});
    while (session->active() > 0)
      for (auto& f : session->Step()) got[f.id] = f.hyps;
    ASSERT_EQ(got.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      auto alone = Alone(srcs[i], o);
      EXPECT_EQ(got[100 + i][0].tokens, alone[0].tokens) << "beam " << beam << " sentence " << i;
    }
  }
}

TEST_F(EngineTest, RemovedSentenceNeverFinishes) {
  DecodeOptions o;
  o.max_output_tokens = 10;
  auto session = engine_->NewSession(o);
  session->AddBatch({1, 2, 3}, {Sentence(4, 9), Sentence(7, 10), Sentence(9, 11)});
  session->Remove(2);
  EXPECT_EQ(session->active(), 2u);
  session->Remove(77);  // unknown: nothing happens
  std::vector<uint64_t> finished;
  while (session->active() > 0)
    for (auto& f : session->Step()) finished.push_back(f.id);
  EXPECT_EQ(finished.size(), 2u);
  for (auto id : finished) EXPECT_NE(id, 2u);
}

// The search modes of a CUDA variant (dead rows, one step in flight), forced on the CPU for
// tests (EngineOptions::cuda_search_modes): sentences joining and leaving a running greedy
// decode come out as with the default engine.
TEST_F(EngineTest, CudaSearchModesChangeNoResult) {
  EXPECT_FALSE(engine_->info().step_lookahead);
  EngineOptions forced;
  forced.device = "cpu";
  forced.cuda_search_modes = true;
  auto engine = Engine::Load((*dir_ / "1").string(), forced);
  EXPECT_TRUE(engine->info().step_lookahead);
  DecodeOptions o;
  o.max_output_tokens = 12;
  auto run = [&](Engine& e) {
    auto session = e.NewSession(o);
    std::map<uint64_t, std::vector<int>> got;
    auto take = [&] {
      for (auto& f : session->Step()) got[f.id] = f.hyps.at(0).tokens;
    };
    session->AddBatch({1, 2, 3}, {Sentence(4, 30), Sentence(9, 31), Sentence(2, 32)});
    take();
    session->Remove(2);
    take();
    session->AddBatch({4, 5}, {Sentence(11, 33), Sentence(6, 34)});
    while (session->active() > 0) take();
    return got;
  };
  const auto expected = run(*engine_);
  EXPECT_EQ(expected.size(), 4u);
  EXPECT_EQ(expected.count(2), 0u);
  EXPECT_EQ(run(*engine), expected);
}

TEST_F(EngineTest, SessionsOnSeveralThreadsAgree) {
  std::vector<std::vector<int>> srcs;
  for (int i = 0; i < 6; ++i) srcs.push_back(Sentence(3 + i, 20 + i));
  DecodeOptions o;
  o.beam_size = 2;
  const auto expected = engine_->Translate(srcs, o);
  std::vector<std::vector<std::vector<Hypothesis>>> got(3);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] { got[t] = engine_->Translate(srcs, o); });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 3; ++t)
    for (size_t i = 0; i < srcs.size(); ++i)
      EXPECT_EQ(got[t][i][0].tokens, expected[i][0].tokens) << "thread " << t << " sentence " << i;
}

TEST_F(EngineTest, BadInputGetsClearErrors) {
  auto expect_error = [](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "expected an EngineError mentioning " << needle;
    } catch (const EngineError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { engine_->Translate({Sentence(19, 1)}, DecodeOptions{}); }, "at most 18");
  expect_error([&] { engine_->Translate({{5, kVocab}}, DecodeOptions{}); }, "token id 60");
  expect_error([&] { engine_->Translate({{5, -1}}, DecodeOptions{}); }, "token id -1");
  DecodeOptions bad;
  bad.n_best = 2;
  expect_error([&] { engine_->NewSession(bad); }, "n_best");
  expect_error([&] { Engine::Load((*dir_ / "missing").string(), EngineOptions{}); },
               "model.pbtxt");
  EngineOptions half;
  half.device = "cpu";
  half.dtype = "fp16";
  expect_error([&] { Engine::Load((*dir_ / "1").string(), half); }, "CUDA");
  EngineOptions dev;
  dev.device = "tpu";
  expect_error([&] { Engine::Load((*dir_ / "1").string(), dev); }, "tpu");
  auto session = engine_->NewSession(DecodeOptions{});
  session->Add(1, Sentence(3, 1));
  expect_error([&] { session->Add(1, Sentence(3, 1)); }, "already active");
}

TEST(ModelFactory, InvalidSpecIsReported) {
  ModelSpec spec = UniformSpec(30, 64, 4, 1, 1, kVocab);  // 30 not divisible by 4
  const auto dir = fs::temp_directory_path() / ("mixserve_bad_" + std::to_string(::getpid()));
  try {
    CreateRandomModel(spec, "", dir.string(), 1);
    FAIL();
  } catch (const EngineError& e) {
    EXPECT_NE(std::string(e.what()).find("divisible"), std::string::npos) << e.what();
  }
  mixserve::RemoveTree(dir);
}

}  // namespace
}  // namespace mixserve
