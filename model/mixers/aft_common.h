// Shared machinery of the Attention Free Transformer mixers (aft_full, aft_simple, aft_local,
// aft_conv); the equations, masks and decoding costs are in docs/model/aft.md.
//
//   Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w[t,t']) * V_t' / sum_t' exp(K_t' + w[t,t'])
//
// element-wise over features, the sums over allowed source positions t' only (real tokens;
// t' <= t in the decoder-self site), followed by an output projection. A variant differs only
// in its position bias w (none, a full matrix, a banded matrix, per-head relative kernels),
// which it supplies through Bias().
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>

#include "model/token_mixer.h"

namespace mixserve::model {

// The AFT weighted average for every (row, target, feature):
//   out[b,t,d] = sum_s e[b,t,s,d] * v[b,s,d] / sum_s e[b,t,s,d],
//   e[b,t,s,d] = allowed[b,t,s] ? exp(k[b,s,d] + bias[b,t,s,g(d)] - m[b,t,d]) : 0,
// where m is the maximum over allowed s of the exponent (so the largest term is exp(0) = 1 and
// nothing overflows, however large K is) and g(d) = d / (D / G) the feature group (head) of d.
//   k, v:    [B, S, D]
//   bias:    [Bb, T, S, G] with Bb in {1, B}, or undefined (no bias; G = 1)
//   allowed: bool [Ba, T, S] with Ba in {1, B}
// Returns [B, T, D]. A target with no allowed source gets 0 (finite).
torch::Tensor AftWeightedAverage(const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& bias, const torch::Tensor& allowed);

// Decoder self: cached keys and values per row, [B, C, D] with C >= every row's position + 1.
// Entry s of row b is valid while s <= that row's current position.
class AftCacheState : public MixerState {
 public:
  torch::Tensor k, v;
  void Select(const torch::Tensor& index) override;
  void Append(MixerState& other) override;
  int64_t rows() const { return k.size(0); }
  int64_t Numel() const { return k.numel() + v.numel(); }
  void Reserve(int64_t capacity);  // grows C to at least `capacity` (zeros)
};

// Decoder cross: the rows' encoder memory projected to keys and values once, with its mask.
class AftMemoryState : public MixerState {
 public:
  torch::Tensor k, v;  // [B, S, D]
  torch::Tensor mask;  // bool [B, S]
  void Select(const torch::Tensor& index) override;
  void Append(MixerState& other) override;
  std::vector<torch::Tensor*> Tensors() override { return {&k, &v, &mask}; }
  int64_t rows() const { return k.size(0); }
};

// Decoder self with a window s (aft_local, aft_conv): the keys and values of the last s
// positions in a ring (slot = position mod s), and running sums over all older positions,
// whose bias is 0: m = max K, num = sum exp(K - m) * V, den = sum exp(K - m). O(s D) per row.
class AftWindowState : public MixerState {
 public:
  torch::Tensor k, v;          // [B, s, D]
  torch::Tensor m, num, den;   // [B, D]
  void Select(const torch::Tensor& index) override;
  void Append(MixerState& other) override;
  std::vector<torch::Tensor*> Tensors() override { return {&k, &v, &m, &num, &den}; }
  int64_t rows() const { return k.size(0); }
  int64_t Numel() const { return k.numel() + v.numel() + m.numel() + num.numel() + den.numel(); }
};

// aft_simple, decoder self: running maximum and sums over the prefix (O(D) per row).
class AftRunningState : public MixerState {
 public:
  torch::Tensor m, num, den;  // [B, D]
  void Select(const torch::Tensor& index) override {
    const auto i = index.to(m.device());
    m = m.index_select(0, i);
    num = num.index_select(0, i);
    den = den.index_select(0, i);
  }
  void Append(MixerState& other) override {
    auto* o = dynamic_cast<AftRunningState*>(&other);
    if (!o) throw std::invalid_argument(
          "aft_simple decoder-self state: cannot append a state of another mixer kind");
    m = torch::cat({m, o->m}, 0);
    num = torch::cat({num, o->num}, 0);
    den = torch::cat({den, o->den}, 0);
  }
  std::vector<torch::Tensor*> Tensors() override { return {&m, &num, &den}; }
  int64_t Numel() const { return m.numel() + num.numel() + den.numel(); }
};

// aft_simple, decoder cross: the per-row context, independent of the target position.
class AftContextState : public MixerState {
 public:
  torch::Tensor context;  // [B, D]
  void Select(const torch::Tensor& index) override {
    context = context.index_select(0, index.to(context.device()));
  }
  void Append(MixerState& other) override {
    auto* o = dynamic_cast<AftContextState*>(&other);
    if (!o) throw std::invalid_argument(
          "aft_simple decoder-cross state: cannot append a state of another mixer kind");
    context = torch::cat({context, o->context}, 0);
  }
  std::vector<torch::Tensor*> Tensors() override { return {&context}; }
};

// The AFT mixer; a variant overrides Bias() (and aft_simple the decoding state).
class AftMixer : public TokenMixer {
 public:
  // `groups`: how many feature groups have their own bias (1, or the heads of aft_conv).
  AftMixer(const MixerContext& ctx, const char* name, int groups);

  torch::Tensor Forward(const MixerInput& in) override;
  std::unique_ptr<MixerState> InitState(const torch::Tensor& memory,
                                        const torch::Tensor& memory_mask,
                                        int64_t batch) override;
  torch::Tensor Step(const torch::Tensor& x_t, const torch::Tensor& pos,
                     MixerState& state) override;

  // Cross steps and windowed self steps keep fixed shapes; the cache of aft_full's self
  // steps grows with the longest position.
  bool StepCapturable() const override { return cross() || DecodeWindow() > 0; }

  bool causal() const { return ctx_.site == Site::kDecoderSelf; }
  bool cross() const { return ctx_.site == Site::kDecoderCross; }
  int groups() const { return groups_; }

 protected:
  // Position bias w[tq, ts] for pairs of target and source positions given as two int64
  // tensors of the same shape [N, S]: [N, S, G] (G = groups()), or an undefined tensor when
  // the variant has none.
  virtual torch::Tensor Bias(const torch::Tensor& tq, const torch::Tensor& ts) const = 0;
  // Largest number of positions the bias covers (targets and sources alike).
  virtual int64_t MaxPositions() const { return std::numeric_limits<int64_t>::max(); }
  // Decoder self: s > 0 when the bias is zero for t - t' >= s (aft_local, aft_conv); decoding
  // then keeps only the last s keys and values and folds older ones into running sums.
  virtual int64_t DecodeWindow() const { return 0; }

  // sigmoid(Q) * average, then the output projection. avg [.., D] like q.
  torch::Tensor Finish(const torch::Tensor& q, const torch::Tensor& avg);
  // Checks x_t [B, D] and pos [B] against a state of `rows` rows; returns the largest position.
  int64_t CheckStep(const torch::Tensor& x_t, const torch::Tensor& pos, int64_t rows) const;
  torch::Tensor StepCache(const torch::Tensor& x_t, const torch::Tensor& pos, AftCacheState& st);
  torch::Tensor StepWindow(const torch::Tensor& x_t, const torch::Tensor& pos,
                           class AftWindowState& st);
  void CheckLength(int64_t n, const char* what) const;

  const char* name_;
  int groups_;
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, out_{nullptr};
};

// The window s of aft_local / aft_conv: MixerSpec.window, or max(1, max_len / 4) when 0.
int AftWindow(const MixerContext& ctx);

}  // namespace mixserve::model
