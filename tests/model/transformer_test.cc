#include <gtest/gtest.h>

#include "model_test_util.h"

namespace mixserve::model {
namespace {

using namespace ::mixserve::model::testing;

// Parameters of the tiny mha Transformer, counted from the architecture:
//   mha block: 4 (d^2 + d) + LayerNorm 2d;  FFN block: d f + f + f d + d + LayerNorm 2d
int64_t ExpectedParameters(const ModelSpec& s) {
  const int64_t d = s.d_model, f = s.ffn_dim, v = s.vocab_size;
  const int64_t mha = 4 * (d * d + d) + 2 * d;
  const int64_t ffn = 2 * d * f + f + d + 2 * d;
  const int64_t embed = s.share_embeddings ? v * d : 3 * v * d;
  return embed + s.encoder.size() * (mha + ffn) + s.decoder.size() * (2 * mha + ffn) + 4 * d;
}

TEST(Transformer, ParameterCountMatchesFormula) {
  ModelSpec s = TinySpec();
  Transformer shared(s);
  EXPECT_EQ(shared->ParameterCount(), ExpectedParameters(s));
  s.share_embeddings = false;
  Transformer separate(s);
  EXPECT_EQ(separate->ParameterCount(), ExpectedParameters(s));
  int64_t sum = 0;
  for (const auto& p : separate->ParameterBreakdown()) sum += p.count;
  EXPECT_EQ(sum, separate->ParameterCount());
}

TEST(Transformer, ParametersAreRegisteredByPath) {
  Transformer m(TinySpec());
  auto named = m->named_parameters();
  for (const char* name : {"embed.weight", "encoder.1.self.mixer.q.weight",
                           "encoder.0.self.norm.weight", "encoder.0.ffn.fc1.weight",
                           "decoder.1.cross.mixer.o.bias", "decoder.0.self.mixer.k.weight",
                           "decoder_norm.weight"})
    EXPECT_NE(named.find(name), nullptr) << name;
  EXPECT_NE(m->named_buffers().find("positions"), nullptr);
}

TEST(Transformer, ShapesAndProbabilities) {
  torch::NoGradGuard ng;
  Transformer m(TinySpec());
  m->eval();
  auto src = Pad({RandomTokens(5, true), RandomTokens(2, true)});
  auto tgt = Pad({WithBos(RandomTokens(3, false)), WithBos(RandomTokens(1, false))});
  auto logits = m->Forward(src, tgt);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 4, kVocab}));
  auto state = m->InitDecoder(m->Encode(src));
  auto lp = m->DecodeStep(torch::tensor({ModelSpec::kBos, ModelSpec::kBos}), *state);
  EXPECT_EQ(lp.sizes(), (std::vector<int64_t>{2, kVocab}));
  EXPECT_TRUE(torch::allclose(lp.exp().sum(-1), torch::ones({2}), 1e-5, 1e-5));
}

// GreedyStep and DecodeStep on two states of the same sources, fed the same tokens: each row's
// best token and its log-probability are the maxima of DecodeStep's log-probabilities.
void ExpectGreedyStepsAreMaxima(Transformer& m, const torch::Tensor& src,
                                const torch::Tensor& tgt) {
  {
    auto greedy = m->InitDecoder(m->Encode(src));
    auto full = m->InitDecoder(m->Encode(src));
    for (int64_t t = 0; t < tgt.size(1); ++t) {
      auto tok = tgt.select(1, t).contiguous();
      auto best = m->GreedyStep(tok, *greedy);
      auto want = m->DecodeStep(tok, *full).cpu().max(-1);
      ASSERT_TRUE(best.tokens.device().is_cpu() && best.log_probs.device().is_cpu());
      ASSERT_EQ(best.tokens.scalar_type(), torch::kLong);
      EXPECT_TRUE(torch::equal(best.tokens, std::get<1>(want))) << "step " << t;
      EXPECT_TRUE(torch::allclose(best.log_probs, std::get<0>(want), 1e-6, 1e-6)) << "step " << t;
    }
  }
  // Launched steps chained on the device (each launched from the previous one's best tokens
  // before that one's results are read) follow greedy steps fed from the host. (The chained
  // state comes first: on CUDA it owns the step graph, the other one steps eagerly.)
  auto chained = m->InitDecoder(m->Encode(src));
  auto hosted = m->InitDecoder(m->Encode(src));
  auto bos = tgt.select(1, 0).contiguous();
  auto launched = m->LaunchGreedyStep(bos, *chained);
  auto want = m->GreedyStep(bos, *hosted);
  for (int t = 1; t <= 6; ++t) {
    auto next = m->LaunchGreedyStep(launched.next_tokens(), *chained);
    auto got = launched.Wait();
    EXPECT_TRUE(torch::equal(got.tokens, want.tokens)) << "step " << t;
    EXPECT_TRUE(torch::allclose(got.log_probs, want.log_probs, 1e-6, 1e-6)) << "step " << t;
    want = m->GreedyStep(want.tokens, *hosted);
    launched = std::move(next);
  }
  EXPECT_TRUE(torch::equal(launched.Wait().tokens, want.tokens));
}

TEST(Transformer, GreedyStepGivesTheMaxima) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(9);
  Transformer m(TinySpec());
  m->eval();
  ExpectGreedyStepsAreMaxima(m, Pad({RandomTokens(4, true), RandomTokens(9, true)}),
                             Pad({WithBos(RandomTokens(5, false)), WithBos(RandomTokens(5, false))}));
}

// On a machine with CUDA: the baseline's inference path there (stacked projections, the fused
// attention kernel with additive masks, the feed-forward's augmented products; fp32) gives
// the CPU training pass's log-probabilities, teacher-forced and step by step.
TEST(Transformer, CudaInferenceMatchesCpuTraining) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(5);
  Transformer m(TinySpec());
  m->eval();
  auto src = Pad({RandomTokens(5, true), RandomTokens(13, true)});
  auto tgt = Pad({WithBos(RandomTokens(6, false)), WithBos(RandomTokens(6, false))});
  auto want = torch::log_softmax(m->Forward(src, tgt), -1).detach();  // gradients on
  torch::NoGradGuard no_grad;
  m->to(torch::kCUDA);
  const torch::Device cuda(torch::kCUDA);
  auto got = torch::log_softmax(m->Forward(src.to(cuda), tgt.to(cuda)), -1).cpu();
  EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4))
      << "max diff " << (got - want).abs().max().item<float>();
  auto state = m->InitDecoder(m->Encode(src.to(cuda)));
  for (int64_t t = 0; t < tgt.size(1); ++t) {
    auto lp = m->DecodeStep(tgt.select(1, t).contiguous(), *state).cpu();
    ASSERT_TRUE(torch::allclose(lp, want.select(1, t), 1e-4, 1e-4))
        << "step " << t << " max diff " << (lp - want.select(1, t)).abs().max().item<float>();
  }
  // With step graphs: GreedyStep's tokens and log-probabilities are DecodeStep's maxima.
  m->EnableStepGraphs(true);
  ExpectGreedyStepsAreMaxima(m, src.to(cuda), tgt);
  EXPECT_GT(m->captured_step_graphs(), 1);
}

// A failed Append (here the joining state's second decoder layer has another mixer, so that
// the first layer has already taken the new row) leaves the state as it was: the same rows,
// and the next step gives what it would have given.
TEST(Transformer, FailedAppendLeavesTheStateAsItWas) {
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  ModelSpec other = TinySpec();
  other.decoder[1].self = DefaultMixerSpec("aft_simple", Site::kDecoderSelf);
  Transformer m(TinySpec()), o(other);
  m->eval();
  o->eval();
  auto enc = m->Encode(Pad({RandomTokens(5, true), RandomTokens(3, true)}));
  auto state = m->InitDecoder(enc), reference = m->InitDecoder(enc);
  auto bos = torch::tensor({ModelSpec::kBos, ModelSpec::kBos});
  m->DecodeStep(bos, *state);
  m->DecodeStep(bos, *reference);
  auto joining = o->InitDecoder(o->Encode(Pad({RandomTokens(4, true)})));
  EXPECT_THROW(state->Append(*joining), std::invalid_argument);
  EXPECT_EQ(state->rows(), 2);
  EXPECT_TRUE(torch::equal(state->positions(), reference->positions()));
  auto next = torch::tensor({7L, 9L});
  EXPECT_TRUE(torch::allclose(m->DecodeStep(next, *state), m->DecodeStep(next, *reference)));
}

// ReplaceRows writes a new sentence's rows over others in place; where it cannot (memories
// of other lengths, eager), it says so and leaves the state alone; bad rows are errors.
TEST(Transformer, ReplaceRowsInPlaceOrNotAtAll) {
  torch::NoGradGuard ng;
  torch::manual_seed(4);
  Transformer m(TinySpec());
  m->eval();
  auto src = Pad({RandomTokens(5, true), RandomTokens(3, true)});
  auto state = m->InitDecoder(m->Encode(src)), reference = m->InitDecoder(m->Encode(src));
  auto bos = torch::tensor({ModelSpec::kBos, ModelSpec::kBos});
  m->DecodeStep(bos, *state);
  m->DecodeStep(bos, *reference);
  auto longer = m->InitDecoder(m->Encode(Pad({RandomTokens(9, true)})));
  EXPECT_FALSE(state->ReplaceRows({1}, *longer));  // memory of 10 positions, not 6
  EXPECT_TRUE(torch::equal(state->positions(), reference->positions()));
  EXPECT_THROW(state->ReplaceRows({0, 1}, *longer), std::invalid_argument);
  EXPECT_THROW(state->ReplaceRows({2}, *longer), std::out_of_range);
  // Same length: row 1 becomes the new sentence at position 0, row 0 goes on unchanged.
  auto fresh_src = Pad({RandomTokens(5, true)});
  auto same = m->InitDecoder(m->Encode(fresh_src));
  ASSERT_TRUE(state->ReplaceRows({1}, *same));
  EXPECT_EQ(state->positions()[0].item<int64_t>(), 1);
  EXPECT_EQ(state->positions()[1].item<int64_t>(), 0);
  auto alone = m->InitDecoder(m->Encode(fresh_src));
  auto lp = m->DecodeStep(torch::tensor({7L, static_cast<int64_t>(ModelSpec::kBos)}), *state);
  auto lp_ref = m->DecodeStep(torch::tensor({7L, 9L}), *reference);
  auto lp_alone = m->DecodeStep(torch::tensor({static_cast<int64_t>(ModelSpec::kBos)}), *alone);
  EXPECT_TRUE(torch::allclose(lp[0], lp_ref[0], 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(lp[1], lp_alone[0], 1e-5, 1e-5));
  // The same from source tokens (the new rows' start computed for them): row 0 now.
  EXPECT_THROW(m->ReplaceRowsWithSources(*state, {0, 1}, fresh_src), std::invalid_argument);
  auto declined = m->ReplaceRowsWithSources(*state, {0}, Pad({RandomTokens(9, true)}));
  ASSERT_NE(declined, nullptr);  // memory of 10 positions: the new row comes back
  EXPECT_EQ(declined->rows(), 1);
  EXPECT_EQ(state->positions()[0].item<int64_t>(), 2);
  ASSERT_EQ(m->ReplaceRowsWithSources(*state, {0}, fresh_src), nullptr);
  EXPECT_EQ(state->positions()[0].item<int64_t>(), 0);
  EXPECT_EQ(state->positions()[1].item<int64_t>(), 1);
  auto again = m->InitDecoder(m->Encode(fresh_src));
  auto lp2 = m->DecodeStep(torch::tensor({static_cast<int64_t>(ModelSpec::kBos), 5L}), *state);
  auto lp2_alone = m->DecodeStep(torch::tensor({static_cast<int64_t>(ModelSpec::kBos)}), *again);
  EXPECT_TRUE(torch::allclose(lp2[0], lp2_alone[0], 1e-5, 1e-5));
}

TEST(Transformer, TooLongInputIsRejected) {
  Transformer m(TinySpec());
  auto src = Pad({RandomTokens(kMaxLen, true)});  // max_len + 1 tokens
  try {
    m->Encode(src);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("max_len 16"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("17"), std::string::npos) << e.what();
  }
  auto state = m->InitDecoder(m->Encode(Pad({RandomTokens(3, true)})));
  torch::NoGradGuard ng;
  for (int t = 0; t < kMaxLen; ++t) m->DecodeStep(torch::tensor({5L}), *state);
  EXPECT_THROW(m->DecodeStep(torch::tensor({5L}), *state), std::invalid_argument);
}

TEST(Transformer, TapsSeeEverySite) {
  torch::NoGradGuard ng;
  Transformer m(TinySpec());
  m->eval();
  int enc = 0, self = 0, cross = 0;
  m->SetTap([&](const SiteActivations& a) {
    if (a.site == Site::kEncoderSelf) {
      ++enc;
      EXPECT_TRUE(a.layer_out.defined());
    }
    if (a.site == Site::kDecoderSelf) ++self;
    if (a.site == Site::kDecoderCross) {
      ++cross;
      EXPECT_TRUE(a.mixer_in.memory.defined());
    }
    // A kMixer block: block_out = block_in + mixer(norm(block_in)) (dropout off).
    EXPECT_TRUE(torch::allclose(a.block_out, a.block_in + a.mixer_out, 1e-5, 1e-5));
  });
  m->Forward(Pad({RandomTokens(4, true)}), Pad({WithBos(RandomTokens(3, false))}));
  EXPECT_EQ(enc, 2);
  EXPECT_EQ(self, 2);
  EXPECT_EQ(cross, 2);
}

TEST(Transformer, ReplaceMixerChecksSiteAndUpdatesSpec) {
  ModelSpec s = TinySpec();
  Transformer m(s);
  MixerSpec ms{"mha", "", 0, 0, 1};  // one head
  auto replacement = MixerRegistry::Get().Create(MixerContext{&m->spec(), Site::kDecoderSelf, 1, ms});
  m->ReplaceMixer(Site::kDecoderSelf, 1, replacement, ms);
  EXPECT_EQ(m->spec().decoder[1].self.heads, 1);
  EXPECT_EQ(m->mixer(Site::kDecoderSelf, 1), replacement);
  EXPECT_EQ(m->ParameterCount(), ExpectedParameters(s));
  EXPECT_THROW(m->ReplaceMixer(Site::kDecoderSelf, 1, replacement, MixerSpec{"no_such", "", 0, 0, 0}),
               std::invalid_argument);
  EXPECT_THROW(m->mixer(Site::kEncoderSelf, 5), std::out_of_range);
}

TEST(Transformer, InvalidSpecIsRejected) {
  ModelSpec s = TinySpec();
  s.heads = 5;
  EXPECT_THROW(Transformer{s}, std::invalid_argument);
}

}  // namespace
}  // namespace mixserve::model
