// The decoding rules a model's spec brings to search (model/search.h): the huggingface beam
// rule, eos_at_max_len and special ids of another layout, against plain references written
// here that rescore whole prefixes with Transformer::Forward (no decoder state, no batching).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "model/search.h"
#include "model_test_util.h"

namespace mixserve::model {
namespace {

using namespace ::mixserve::model::testing;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// MarianMT's layout: EOS 0, UNK 1, pad = decoder start = another id.
SpecialIds MarianIds() { return SpecialIds{9, 1, 9, 0}; }

// A TinySpec model (output projection not tied to the embeddings) with large random weights
// (peaked, sentence-dependent distributions) whose last hidden dimension is a constant 1 after
// the final norm, so that that column of the output projection is a bias over the
// vocabulary: EOS is raised by `eos_bias` (hypotheses end at varied lengths, not only at the
// length limit) and the pad, unk and decoder start tokens are never generated.
Transformer RulesModel(uint64_t seed, const std::string& rule, bool eos_at_max_len,
                       const SpecialIds& ids = {}, float eos_bias = 4.0f) {
  ModelSpec spec = TinySpec();
  spec.share_embeddings = false;
  spec.ids = ids;
  spec.decoding.beam_rule = rule;
  spec.decoding.eos_at_max_len = eos_at_max_len;
  torch::manual_seed(seed);
  Transformer m(spec);
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.mul_(3.0);
  auto params = m->named_parameters();
  const int64_t d = spec.d_model - 1;
  params["decoder_norm.weight"][d].fill_(0);
  params["decoder_norm.bias"][d].fill_(1);
  auto bias = params["out_proj.weight"].select(1, d);
  bias.zero_();
  bias[ids.eos].fill_(eos_bias);
  for (int t : {ids.pad, ids.unk, ids.decoder_start}) bias[t].fill_(-30.0);
  m->eval();
  return m;
}

// Random tokens of length n outside the ids 0..9 (special in either layout), then EOS.
std::vector<int64_t> Source(int n, int64_t eos) {
  auto t = torch::randint(10, kVocab, {n}, torch::kLong);
  std::vector<int64_t> v(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
  v.push_back(eos);
  return v;
}

torch::Tensor PadWith(const std::vector<std::vector<int64_t>>& rows, int64_t pad) {
  size_t n = 0;
  for (const auto& r : rows) n = std::max(n, r.size());
  std::vector<int64_t> flat(rows.size() * n, pad);
  for (size_t i = 0; i < rows.size(); ++i) std::copy(rows[i].begin(), rows[i].end(), &flat[i * n]);
  return torch::tensor(flat, torch::kLong).view({static_cast<int64_t>(rows.size()),
                                                 static_cast<int64_t>(n)});
}

// log-probabilities [N, V] (fp32) of the token after each prefix (all of one length),
// decoding the decoder start and the whole prefix by teacher forcing.
torch::Tensor NextLogProbs(Transformer& m, const std::vector<int64_t>& src,
                           const std::vector<std::vector<int64_t>>& prefixes) {
  std::vector<std::vector<int64_t>> in;
  for (const auto& p : prefixes) {
    in.push_back({m->spec().ids.decoder_start});
    in.back().insert(in.back().end(), p.begin(), p.end());
  }
  const int64_t n = static_cast<int64_t>(prefixes.size());
  const int64_t pad = m->spec().ids.pad;
  auto logits = m->Forward(PadWith({src}, pad).repeat({n, 1}), PadWith(in, pad));
  return torch::log_softmax(logits.select(1, logits.size(1) - 1).to(torch::kFloat), -1);
}

// transformers' length penalty: an fp32 score divided by (double) len ** alpha.
float HfPenalty(int len, float alpha) {
  return static_cast<float>(std::pow(static_cast<double>(len), static_cast<double>(alpha)));
}

struct Rules {
  int beam = 1;
  float alpha = 1.0f;
  int max_out = kMaxLen - 2;  // tokens without EOS
  bool eos_at_max_len = false;
};

// transformers' beam search (early_stopping=False) for one sentence, step by step as its
// documentation and code describe it; returns the finished hypotheses best first.
std::vector<SearchHypothesis> ReferenceBeam(Transformer& m, const std::vector<int64_t>& src,
                                            const Rules& r) {
  const int64_t eos = m->spec().ids.eos, v = m->spec().vocab_size;
  const int k = r.beam;
  const int limit = r.max_out + (r.eos_at_max_len ? 1 : 0);  // max_new_tokens
  struct Live {
    std::vector<int64_t> tokens;
    float score;
  };
  struct Candidate {
    float score;
    size_t parent;
    int64_t token;
  };
  std::vector<Live> running = {{{}, 0.0f}};
  std::vector<SearchHypothesis> finished;
  auto by_score = [](const SearchHypothesis& a, const SearchHypothesis& b) {
    return a.score > b.score;
  };
  for (int t = 0; t < limit; ++t) {
    const bool at_limit = t + 1 == limit;
    torch::Tensor lp;
    if (r.eos_at_max_len && at_limit) {  // forced EOS: -inf everywhere, 0 at EOS
      lp = torch::full({static_cast<int64_t>(running.size()), v}, kNegInf);
      lp.select(1, eos).fill_(0);
    } else {
      std::vector<std::vector<int64_t>> prefixes;
      for (const auto& l : running) prefixes.push_back(l.tokens);
      lp = NextLogProbs(m, src, prefixes);
    }
    auto a = lp.accessor<float, 2>();
    std::vector<Candidate> cand;
    for (size_t p = 0; p < running.size(); ++p)
      for (int64_t tok = 0; tok < v; ++tok) {
        const float s = running[p].score + a[p][tok];
        if (s != kNegInf) cand.push_back({s, p, tok});
      }
    std::stable_sort(cand.begin(), cand.end(),
                     [](const Candidate& x, const Candidate& y) { return x.score > y.score; });
    if (cand.size() > static_cast<size_t>(2 * k)) cand.resize(2 * k);
    for (size_t j = 0; j < cand.size() && j < static_cast<size_t>(k); ++j) {
      const auto& c = cand[j];
      if (c.token != eos && !at_limit) continue;
      SearchHypothesis h;
      h.tokens = running[c.parent].tokens;
      if (c.token != eos) h.tokens.push_back(c.token);
      h.ended_with_eos = c.token == eos;
      h.log_prob = c.score;
      h.score = c.score / HfPenalty(t + 1, r.alpha);
      finished.push_back(h);
    }
    std::stable_sort(finished.begin(), finished.end(), by_score);
    if (finished.size() > static_cast<size_t>(k)) finished.resize(k);
    if (at_limit) break;
    std::vector<Live> next;
    for (const auto& c : cand) {
      if (c.token == eos || next.size() == static_cast<size_t>(k)) continue;
      next.push_back({running[c.parent].tokens, c.score});
      next.back().tokens.push_back(c.token);
    }
    running = std::move(next);
    if (finished.size() == static_cast<size_t>(k) &&
        !(running[0].score / HfPenalty(t + 1, r.alpha) > finished.back().score))
      break;
  }
  return finished;
}

// Greedy decoding (argmax) of one sentence; score left 0.
SearchHypothesis ReferenceGreedy(Transformer& m, const std::vector<int64_t>& src,
                                 const Rules& r) {
  SearchHypothesis h;
  while (true) {
    if (static_cast<int>(h.tokens.size()) == r.max_out) {
      h.ended_with_eos = r.eos_at_max_len;  // forced EOS: log-probability 0
      return h;
    }
    auto lp = NextLogProbs(m, src, {h.tokens})[0];
    const int64_t tok = lp.argmax().item<int64_t>();
    h.log_prob += lp[tok].item<float>();
    if (tok == m->spec().ids.eos) {
      h.ended_with_eos = true;
      return h;
    }
    h.tokens.push_back(tok);
  }
}

// IncrementalSearch over `srcs`, sentence i joining before step join[i] (sentences joining
// at one step in one Add, padded); results by sentence.
std::map<uint64_t, std::vector<SearchHypothesis>> Joining(
    Transformer& m, const SearchOptions& o, const std::vector<std::vector<int64_t>>& srcs,
    const std::vector<int>& join) {
  IncrementalSearch search(m, o);
  std::map<uint64_t, std::vector<SearchHypothesis>> got;
  const int last = *std::max_element(join.begin(), join.end());
  for (int step = 0; step <= last || search.active() > 0; ++step) {
    std::vector<uint64_t> ids;
    std::vector<std::vector<int64_t>> group;
    for (size_t i = 0; i < srcs.size(); ++i)
      if (join[i] == step) {
        ids.push_back(i);
        group.push_back(srcs[i]);
      }
    if (!ids.empty()) search.Add(ids, PadWith(group, m->spec().ids.pad));
    for (auto& r : search.Step()) got[r.id] = std::move(r.hyps);
    if (step > 1000) ADD_FAILURE() << "the search never ends";
    if (step > 1000) break;
  }
  // All answered: no rows, but for the one dead row a greedy search keeps on the CPU for the
  // next sentence to take (SearchOptions::dead_rows).
  EXPECT_LE(search.rows(), search.beam() ? 0 : 1);
  return got;
}

SearchOptions BeamOptions(const Rules& r) {
  SearchOptions o;
  o.algorithm = SearchOptions::Algorithm::kBeam;
  o.beam_size = r.beam;
  o.n_best = r.beam;
  o.length_penalty = r.alpha;
  o.max_output_tokens = r.max_out;
  return o;
}

std::string Describe(uint64_t seed, const Rules& r, size_t sentence) {
  return "seed " + std::to_string(seed) + " beam " + std::to_string(r.beam) + " alpha " +
         std::to_string(r.alpha) + " max_out " + std::to_string(r.max_out) +
         (r.eos_at_max_len ? " eos_at_max_len" : "") + " sentence " + std::to_string(sentence);
}

void ExpectSameHyps(const std::vector<SearchHypothesis>& got,
                    const std::vector<SearchHypothesis>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t j = 0; j < want.size(); ++j) {
    EXPECT_EQ(got[j].tokens, want[j].tokens) << what << " hypothesis " << j;
    EXPECT_EQ(got[j].ended_with_eos, want[j].ended_with_eos) << what << " hypothesis " << j;
    EXPECT_NEAR(got[j].log_prob, want[j].log_prob, 1e-3) << what << " hypothesis " << j;
    EXPECT_NEAR(got[j].score, want[j].score, 1e-3) << what << " hypothesis " << j;
  }
}

// How the best hypotheses of a test ended: with EOS at each length, or at the length limit.
struct Endings {
  std::map<size_t, int> eos_at;  // by token count without EOS
  int at_limit = 0;               // max_out tokens (then EOS with eos_at_max_len)
  int total = 0;
  void Count(const SearchHypothesis& h, int max_out) {
    ++total;
    if (h.tokens.size() == static_cast<size_t>(max_out)) ++at_limit;
    else if (h.ended_with_eos) ++eos_at[h.tokens.size()];
  }
  int eos() const {
    int n = 0;
    for (const auto& [len, c] : eos_at) n += c;
    return n;
  }
  std::string Text() const {
    std::string s = std::to_string(total) + " best hypotheses: " + std::to_string(at_limit) +
                    " at the length limit, with EOS after";
    for (const auto& [len, c] : eos_at) s += " " + std::to_string(len) + ":" + std::to_string(c);
    return s;
  }
};

// The huggingface rule: beam 2..5, alpha 0, 1 and 0.6, with and without eos_at_max_len, the
// model's length limit and a short one, sentences joining at different steps. With these
// models about two thirds of the best hypotheses reach the length limit (most of them the
// short one) and the others end with EOS after 0 to 13 tokens (printed below; the test fails
// if either kind is rare).
TEST(SearchRulesTest, HuggingFaceBeamMatchesReference) {
  torch::NoGradGuard no_grad;
  Endings endings;
  for (uint64_t seed : {1, 2, 3}) {
    for (bool eos_at_max_len : {false, true}) {
      auto m = RulesModel(seed, "huggingface", eos_at_max_len);
      torch::manual_seed(100 + seed);
      std::vector<std::vector<int64_t>> srcs;
      for (int i = 0; i < 5; ++i) srcs.push_back(Source(2 + 3 * i, m->spec().ids.eos));
      const std::vector<int> join = {0, 0, 1, 3, 3};
      for (int beam = 2; beam <= 5; ++beam)
        for (float alpha : {0.0f, 1.0f, 0.6f})
          for (int max_out : {kMaxLen - 2, 5}) {
            Rules r{beam, alpha, max_out, eos_at_max_len};
            auto got = Joining(m, BeamOptions(r), srcs, join);
            ASSERT_EQ(got.size(), srcs.size());
            for (size_t i = 0; i < srcs.size(); ++i) {
              auto want = ReferenceBeam(m, srcs[i], r);
              ExpectSameHyps(got[i], want, Describe(seed, r, i));
              if (!want.empty()) endings.Count(want[0], max_out);
            }
          }
    }
  }
  std::cout << "[   INFO   ] " << endings.Text() << "\n";
  EXPECT_GE(endings.at_limit, endings.total / 10) << endings.Text();
  EXPECT_GE(endings.eos(), endings.total / 4) << endings.Text();
  EXPECT_GE(endings.eos_at.size(), 6u) << endings.Text();
}

// Greedy search with eos_at_max_len (under both beam rules, with dead rows and a step in
// flight too): a sentence reaching the length limit ends with EOS at log-probability 0.
TEST(SearchRulesTest, GreedyEosAtMaxLen) {
  torch::NoGradGuard no_grad;
  for (const char* rule : {"gnmt", "huggingface"}) {
    for (bool eos_at_max_len : {false, true}) {
      auto m = RulesModel(5, rule, eos_at_max_len);
      torch::manual_seed(7);
      std::vector<std::vector<int64_t>> srcs;
      for (int i = 0; i < 8; ++i) srcs.push_back(Source(2 + i, m->spec().ids.eos));
      const std::vector<int> join = {0, 0, 0, 1, 2, 2, 4, 5};
      int forced = 0;
      for (int max_out : {kMaxLen - 2, 4}) {
        Rules r{1, 0.6f, max_out, eos_at_max_len};
        SearchOptions o = BeamOptions(r);
        o.algorithm = SearchOptions::Algorithm::kGreedy;
        auto got = Joining(m, o, srcs, join);
        ASSERT_EQ(got.size(), srcs.size());
        for (size_t i = 0; i < srcs.size(); ++i) {
          const auto want = ReferenceGreedy(m, srcs[i], r);
          const std::string what = std::string(rule) + " " + Describe(5, r, i);
          ASSERT_EQ(got[i].size(), 1u) << what;
          const auto& h = got[i][0];
          EXPECT_EQ(h.tokens, want.tokens) << what;
          EXPECT_EQ(h.ended_with_eos, want.ended_with_eos) << what;
          EXPECT_NEAR(h.log_prob, want.log_prob, 1e-3) << what;
          const int len = static_cast<int>(h.tokens.size()) + (h.ended_with_eos ? 1 : 0);
          EXPECT_NEAR(h.score, h.log_prob / LengthPenalty(len, 0.6f, BeamRuleOf(m->spec())),
                      1e-5);
          if (eos_at_max_len && h.tokens.size() == static_cast<size_t>(max_out)) ++forced;
        }
      }
      if (eos_at_max_len) {
        EXPECT_GE(forced, 3) << rule << ": too few sentences reach the length limit";
        ExpectDeadRowsChangeNoResult(m, torch::kCPU, 1e-4, /*in_place=*/false);
      }
    }
  }
}

// Beam size 1 under the huggingface rule picks greedy's tokens, and its scores.
TEST(SearchRulesTest, HuggingFaceBeamOneIsGreedy) {
  torch::NoGradGuard no_grad;
  for (uint64_t seed : {1, 4}) {
    for (bool eos_at_max_len : {false, true}) {
      auto m = RulesModel(seed, "huggingface", eos_at_max_len);
      torch::manual_seed(200 + seed);
      std::vector<std::vector<int64_t>> srcs;
      for (int i = 0; i < 6; ++i) srcs.push_back(Source(2 + 2 * i, m->spec().ids.eos));
      const auto src = PadWith(srcs, m->spec().ids.pad);
      for (float alpha : {0.0f, 1.0f, 0.6f})
        for (int max_out : {kMaxLen - 2, 3}) {
          Rules r{1, alpha, max_out, eos_at_max_len};
          auto beam = BeamSearch(m, src, BeamOptions(r));
          auto greedy = GreedySearch(m, src, BeamOptions(r));
          for (size_t i = 0; i < srcs.size(); ++i)
            ExpectSameHyps(beam[i], greedy[i], Describe(seed, r, i));
        }
    }
  }
}

// MarianMT's special ids: decoding starts from token 9 (also the pad) and ends at token 0.
// Sentences join one at a time: a padded batch needs the model's masks to follow ids.pad.
TEST(SearchRulesTest, OtherSpecialIds) {
  torch::NoGradGuard no_grad;
  int eos_ends = 0, hyps = 0;
  for (uint64_t seed : {1, 2}) {
    for (bool eos_at_max_len : {false, true}) {
      auto m = RulesModel(seed, "huggingface", eos_at_max_len, MarianIds());
      torch::manual_seed(300 + seed);
      std::vector<std::vector<int64_t>> srcs;
      for (int i = 0; i < 4; ++i) srcs.push_back(Source(3 + 3 * i, m->spec().ids.eos));
      const std::vector<int> join = {0, 1, 2, 4};
      for (int beam : {1, 3}) {
        Rules r{beam, 0.6f, kMaxLen - 2, eos_at_max_len};
        auto got = Joining(m, BeamOptions(r), srcs, join);
        ASSERT_EQ(got.size(), srcs.size());
        for (size_t i = 0; i < srcs.size(); ++i) {
          ExpectSameHyps(got[i], ReferenceBeam(m, srcs[i], r), Describe(seed, r, i));
          for (const auto& h : got[i]) {
            ++hyps;
            if (h.ended_with_eos) ++eos_ends;
            for (int64_t t : h.tokens) EXPECT_NE(t, 0) << "EOS inside a hypothesis";
          }
        }
      }
    }
  }
  EXPECT_GE(eos_ends, hyps / 3) << "token 0 rarely ends a hypothesis";
}

// eos_at_max_len under the gnmt rule: the hypotheses that reach the length limit end with EOS
// at log-probability 0, the search is otherwise the same (alpha 0: the same ranking).
TEST(SearchRulesTest, GnmtEosAtMaxLen) {
  torch::NoGradGuard no_grad;
  auto plain = RulesModel(6, "gnmt", false);
  auto forced = RulesModel(6, "gnmt", true);  // the same weights
  torch::manual_seed(8);
  std::vector<std::vector<int64_t>> srcs;
  for (int i = 0; i < 6; ++i) srcs.push_back(Source(2 + 2 * i, ModelSpec::kEos));
  const auto src = PadWith(srcs, ModelSpec::kPad);
  int at_limit = 0;
  for (int beam : {1, 3}) {
    Rules r{beam, 0.0f, 4, false};
    auto a = Search(plain, src, BeamOptions(r));
    auto b = Search(forced, src, BeamOptions(r));
    for (size_t i = 0; i < srcs.size(); ++i) {
      ASSERT_EQ(a[i].size(), b[i].size());
      for (size_t j = 0; j < a[i].size(); ++j) {
        EXPECT_EQ(b[i][j].tokens, a[i][j].tokens);
        EXPECT_EQ(b[i][j].log_prob, a[i][j].log_prob);
        const bool limit = a[i][j].tokens.size() == 4u && !a[i][j].ended_with_eos;
        at_limit += limit;
        EXPECT_EQ(b[i][j].ended_with_eos, a[i][j].ended_with_eos || limit);
      }
    }
  }
  EXPECT_GE(at_limit, 3);
}

}  // namespace
}  // namespace mixserve::model
