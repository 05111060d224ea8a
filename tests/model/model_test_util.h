// Shared helpers of the model tests: tiny specs, random sentences, mixer defaults.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "config/model_spec.h"
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

}  // namespace mixserve::model::testing
