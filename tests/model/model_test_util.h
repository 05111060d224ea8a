// Shared helpers of the model tests: tiny specs, random sentences, mixer defaults.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "config/model_spec.h"
#include "model/search.h"
#include "model/token_mixer.h"
#include "model/transformer.h"

namespace mixserve::model::testing {

constexpr int kVocab = 50;
constexpr int kMaxLen = 16;

// d_model 32, 2 heads, ffn 64, 2 + 2 layers, vocab 50, max_len 16, mha everywhere.
inline ModelSpec TinySpec() {
  ModelSpec s = UniformSpec(32, 64, 2, 2, 2, kVocab);
  s.max_len = kMaxLen;
  s.dropout = 0.1f;
  return s;
}

// A spec that builds the mixer `name` at `site` with its default options: tries the plain
// spec, then size "xs", then a window of 4, and returns the first that constructs.
inline MixerSpec DefaultMixerSpec(const std::string& name, Site site) {
  const ModelSpec model = TinySpec();
  std::vector<MixerSpec> tries = {MixerSpec{name, "", 0, 0, 0}, MixerSpec{name, "xs", 0, 0, 0},
                                  MixerSpec{name, "xs", 0, 4, 0}, MixerSpec{name, "", 0, 4, 0}};
  for (const auto& t : tries) {
    try {
      MixerRegistry::Get().Create(MixerContext{&model, site, 0, t});
      return t;
    } catch (const std::invalid_argument&) {
    }
  }
  return tries[1];  // let the caller see the error
}

// TinySpec with `mixer` at `site` in every layer.
inline ModelSpec SpecWith(const std::string& mixer, Site site) {
  ModelSpec s = TinySpec();
  const MixerSpec m = DefaultMixerSpec(mixer, site);
  for (auto& l : s.encoder)
    if (site == Site::kEncoderSelf) l.self = m;
  for (auto& l : s.decoder) {
    if (site == Site::kDecoderSelf) l.self = m;
    if (site == Site::kDecoderCross) l.cross = m;
  }
  return s;
}

// Random non-special tokens (4 .. kVocab-1) of length n, then EOS when `eos`.
inline std::vector<int64_t> RandomTokens(int n, bool eos) {
  auto t = torch::randint(4, kVocab, {n}, torch::kLong);
  std::vector<int64_t> v(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
  if (eos) v.push_back(ModelSpec::kEos);
  return v;
}

// Rows padded with kPad to the longest: [B, max length].
inline torch::Tensor Pad(const std::vector<std::vector<int64_t>>& rows) {
  size_t n = 0;
  for (const auto& r : rows) n = std::max(n, r.size());
  auto t = torch::full({static_cast<int64_t>(rows.size()), static_cast<int64_t>(n)},
                       ModelSpec::kPad, torch::kLong);
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) t[i][j] = rows[i][j];
  return t;
}

// BOS followed by `tokens`: a decoder input row.
inline std::vector<int64_t> WithBos(const std::vector<int64_t>& tokens) {
  std::vector<int64_t> v{ModelSpec::kBos};
  v.insert(v.end(), tokens.begin(), tokens.end());
  return v;
}

// Greedy search keeping answered and removed sentences' rows as dead rows
// (SearchOptions::dead_rows), with and without a step in flight (SearchOptions::lookahead),
// gives the results of dropping them at once: through joins, a removal, the bucket shrinking
// and dead rows that reach max_len. Sentences joining take dead rows' places in the state
// where the memories have one length (always with step graphs enabled: padded to max_len),
// which `in_place` asks to see happen.
inline void ExpectDeadRowsChangeNoResult(Transformer& model, const torch::Device& device,
                                         double score_tol, bool in_place) {
  torch::manual_seed(29);
  std::vector<std::vector<int64_t>> srcs;
  for (int i = 0; i < 26; ++i) srcs.push_back(RandomTokens(2 + i % 9, true));
  bool joined_in_place = false;
  auto run = [&](SearchOptions::DeadRows mode, SearchOptions::Lookahead ahead, bool* saw_dead) {
    SearchOptions o;
    o.dead_rows = mode;
    o.lookahead = ahead;
    IncrementalSearch search(model, o);
    std::map<uint64_t, std::vector<SearchHypothesis>> got;
    auto add = [&](uint64_t first, int n) {
      std::vector<uint64_t> ids;
      std::vector<std::vector<int64_t>> group;
      for (int i = 0; i < n; ++i) {
        ids.push_back(first + i);
        group.push_back(srcs[first + i]);
      }
      search.Add(ids, Pad(group).to(device));
    };
    auto steps = [&](int n) {
      for (int i = 0; i < n && search.active() > 0; ++i) {
        for (auto& r : search.Step()) got[r.id] = r.hyps;
        if (search.rows() > static_cast<int64_t>(search.active())) *saw_dead = true;
      }
    };
    // A busy decode for 40 steps: a sentence joins every other step, so that rows die and
    // dead ones grow old (max_len 16) while the batch goes on.
    add(0, 6);
    uint64_t next = 6;
    for (int k = 0; k < 40; ++k) {
      steps(1);
      if (k == 1) {
        EXPECT_TRUE(search.Remove(0));
      }
      if (k % 2 == 0 && next + 2 < srcs.size()) add(next++, 1);
    }
    steps(200);
    EXPECT_EQ(search.active(), 0u);
    if (search.reused_rows() > 0) joined_in_place = true;
    // Idle, every sentence answered: at most one dead row stays. One more sentence decoded
    // alone leaves exactly one (kKeep), and the next sentence of the idle search takes its
    // place where the state allows (an idle server's next request).
    EXPECT_LE(search.rows(), mode == SearchOptions::DeadRows::kKeep ? 1 : 0);
    add(next++, 1);
    steps(200);
    const bool keep = mode == SearchOptions::DeadRows::kKeep;
    EXPECT_EQ(search.rows(), keep ? 1 : 0);
    const int64_t reused = search.reused_rows();
    add(next++, 1);
    if (in_place && keep) {
      EXPECT_EQ(search.reused_rows(), reused + 1) << "the idle search appended on " << device.str();
    }
    steps(200);
    EXPECT_EQ(search.active(), 0u);
    if (ahead == SearchOptions::Lookahead::kOn) {
      EXPECT_GT(search.steps_ahead(), 40) << "the lookahead never ran";
    } else if (ahead == SearchOptions::Lookahead::kOff || mode == SearchOptions::DeadRows::kDrop) {
      EXPECT_EQ(search.steps_ahead(), 0);
    }
    return got;
  };
  using L = SearchOptions::Lookahead;
  bool dead_kept = false, dead_ahead = false, dead_dropped = false;
  const auto kept = run(SearchOptions::DeadRows::kKeep, L::kOff, &dead_kept);
  const auto ahead = run(SearchOptions::DeadRows::kKeep, L::kOn, &dead_ahead);
  const auto dropped = run(SearchOptions::DeadRows::kDrop, L::kAuto, &dead_dropped);
  EXPECT_TRUE(dead_kept) << "no dead row was ever kept: the test is blind";
  EXPECT_TRUE(dead_ahead);
  EXPECT_FALSE(dead_dropped);
  if (in_place) {
    EXPECT_TRUE(joined_in_place) << "no sentence took a dead row's place on " << device.str();
  }
  ASSERT_EQ(kept.size(), srcs.size() - 1);  // all but the removed one
  ASSERT_EQ(ahead.size(), srcs.size() - 1);
  ASSERT_EQ(dropped.size(), srcs.size() - 1);
  for (const auto* other : {&kept, &ahead}) {
    const char* what = other == &kept ? "dead rows kept" : "dead rows kept, lookahead";
    for (const auto& [id, hyps] : dropped) {
      ASSERT_EQ(other->count(id), 1u) << id << " " << what;
      ASSERT_EQ(other->at(id).size(), hyps.size()) << id;
      EXPECT_EQ(other->at(id)[0].tokens, hyps[0].tokens) << id << " " << what << " on "
                                                         << device.str();
      EXPECT_NEAR(other->at(id)[0].score, hyps[0].score, score_tol) << id << " " << what;
    }
  }
}

}  // namespace mixserve::model::testing
