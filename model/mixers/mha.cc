// Multi-head scaled dot-product attention (the baseline mixer), for all three sites.
//
//   Q = x Wq + bq, K = m Wk + bk, V = m Wv + bv      (m = x for self sites, encoder output
//   head_h = softmax(Q_h K_h^T / sqrt(dh) + M) V_h    for cross; dh = d_model / heads)
//   y = concat_h(head_h) Wo + bo
//
// M is 0 where a key may be attended and -1e9 where not (-65504 in fp16 decoding steps; key
// padding, in decoder self also keys after the query). Scores and softmax are computed in
// fp32 so that fp16/bf16 models neither overflow the mask value nor lose the softmax's
// precision.
//
// Incremental decoding:
//  - decoder self keeps a key/value cache [B, H, max_len, dh]; each row writes its step's key
//    and value at its own position and attends to cache slots <= its position, so rows at
//    different positions (continuous batching) share one call;
//  - decoder cross projects the encoder output to K/V once at InitState.
#include <torch/version.h>

#include <cmath>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "model/token_mixer.h"

namespace mixserve::model {
namespace {

constexpr float kMasked = -1e9f;

// Additive masks of decoding steps: 0 where a key may be attended, Masked(dtype) where not, in
// the model's dtype and [B, 1, 1, W] with W a multiple of kMaskAlign, narrowed to the keys at
// use. A mask in the query's dtype whose rows are aligned is what the fused CUDA attention
// takes as it is; a boolean one, or an unaligned one, costs several operators per call to
// convert or pad, at every layer of every step.
constexpr int64_t kMaskAlign = 16;
int64_t AlignedWidth(int64_t n) { return (n + kMaskAlign - 1) / kMaskAlign * kMaskAlign; }
double Masked(torch::ScalarType dtype) { return dtype == torch::kHalf ? -65504.0 : kMasked; }
torch::Tensor MaskBias(const torch::Tensor& allowed, torch::ScalarType dtype) {  // [B, S] bool
  auto b = torch::full({allowed.size(0), 1, 1, AlignedWidth(allowed.size(1))}, Masked(dtype),
                       allowed.options().dtype(dtype));
  b.narrow(3, 0, allowed.size(1))
      .masked_fill_(allowed.view({allowed.size(0), 1, 1, allowed.size(1)}), 0.0);
  return b;
}

// Key/value cache of decoder self-attention, and the additive mask of the slots each row may
// not attend to yet (kept across steps: a step unblocks its own slot, one operator instead of
// building the mask from the positions at every step and layer).
struct SelfState : MixerState {
  torch::Tensor k, v;  // [B, H, L, dh]
  torch::Tensor bias;  // [B, 1, 1, AlignedWidth(L)]: Masked until the row has written the slot
  void Select(const torch::Tensor& index) override {
    auto i = index.to(k.device(), torch::kLong);
    k = k.index_select(0, i);
    v = v.index_select(0, i);
    bias = bias.index_select(0, i);
  }
  void Append(MixerState& other) override {
    auto* o = dynamic_cast<SelfState*>(&other);
    if (!o) throw std::invalid_argument("mha: Append of a state of another mixer");
    k = torch::cat({k, o->k}, 0);
    v = torch::cat({v, o->v}, 0);
    bias = torch::cat({bias, o->bias}, 0);
  }
  std::vector<torch::Tensor*> Tensors() override { return {&k, &v, &bias}; }
};

// Projected encoder keys/values of decoder cross-attention.
struct CrossState : MixerState {
  torch::Tensor k, v;  // [B, H, S, dh]
  torch::Tensor bias;  // [B, 1, 1, AlignedWidth(S)]: Masked at source padding
  void Select(const torch::Tensor& index) override {
    auto i = index.to(k.device(), torch::kLong);
    k = k.index_select(0, i);
    v = v.index_select(0, i);
    bias = bias.index_select(0, i);
  }
  void Append(MixerState& other) override {
    auto* o = dynamic_cast<CrossState*>(&other);
    if (!o) throw std::invalid_argument("mha: Append of a state of another mixer");
    // Memories of different lengths: pad the shorter along S with masked slots.
    const int64_t s = std::max(k.size(2), o->k.size(2));
    k = torch::cat({PadS(k, s), PadS(o->k, s)}, 0);
    v = torch::cat({PadS(v, s), PadS(o->v, s)}, 0);
    bias = torch::cat({PadBias(bias, s), PadBias(o->bias, s)}, 0);
  }
  std::vector<torch::Tensor*> Tensors() override { return {&k, &v, &bias}; }
  static torch::Tensor PadS(const torch::Tensor& t, int64_t s) {
    if (t.size(2) == s) return t;
    auto pad = torch::zeros({t.size(0), t.size(1), s - t.size(2), t.size(3)}, t.options());
    return torch::cat({t, pad}, 2);
  }
  static torch::Tensor PadBias(const torch::Tensor& m, int64_t s) {
    const int64_t w = AlignedWidth(s);
    if (m.size(3) == w) return m;
    auto pad = torch::full({m.size(0), 1, 1, w - m.size(3)}, Masked(m.scalar_type()),
                           m.options());
    return torch::cat({m, pad}, 3);
  }
};

class MhaMixer : public TokenMixer {
 public:
  explicit MhaMixer(const MixerContext& ctx) : TokenMixer(ctx) {
    RequireNoSize(ctx, "mha");
    const int d = ctx.d_model();
    heads_ = ctx.heads();
    if (heads_ <= 0 || d % heads_ != 0)
      throw std::invalid_argument("mha at " + std::string(SiteName(ctx.site)) + " layer " +
                                  std::to_string(ctx.layer) + ": d_model " +
                                  std::to_string(d) + " is not divisible by heads " +
                                  std::to_string(heads_));
    dh_ = d / heads_;
    q_ = register_module("q", torch::nn::Linear(d, d));
    k_ = register_module("k", torch::nn::Linear(d, d));
    v_ = register_module("v", torch::nn::Linear(d, d));
    o_ = register_module("o", torch::nn::Linear(d, d));
    drop_ = register_module("attn_dropout", torch::nn::Dropout(ctx.dropout()));
  }

  torch::Tensor Forward(const MixerInput& in) override {
    const bool cross = ctx_.site == Site::kDecoderCross;
    const auto& kv_in = cross ? in.memory : in.x;
    const auto& key_mask = cross ? in.memory_mask : in.mask;  // [B, S]
    auto q = Heads(q_(in.x));                                 // [B, H, T, dh]
    auto k = Heads(k_(kv_in));                                // [B, H, S, dh]
    auto v = Heads(v_(kv_in));
    auto allowed = key_mask.to(torch::kBool).unsqueeze(1).unsqueeze(1);  // [B, 1, 1, S]
    if (ctx_.site == Site::kDecoderSelf) {
      const int64_t t = in.x.size(1);
      auto causal = torch::ones({t, t}, key_mask.options().dtype(torch::kBool)).tril();
      allowed = allowed & causal.view({1, 1, t, t});
    }
    auto bias = torch::zeros(allowed.sizes(), q.options().dtype(torch::kFloat))
                    .masked_fill_(allowed.logical_not(), kMasked);
    return o_(Merge(Attend(q, k, v, bias)));
  }

  std::unique_ptr<MixerState> InitState(const torch::Tensor& memory,
                                        const torch::Tensor& memory_mask,
                                        int64_t batch) override {
    auto opts = q_->weight.options();
    if (ctx_.site == Site::kDecoderCross) {
      auto s = std::make_unique<CrossState>();
      s->k = Heads(k_(memory));
      s->v = Heads(v_(memory));
      s->bias = MaskBias(memory_mask.to(torch::kBool), opts.dtype().toScalarType());
      return s;
    }
    if (ctx_.site != Site::kDecoderSelf)
      throw std::logic_error("mha: incremental state exists only at decoder sites");
    auto s = std::make_unique<SelfState>();
    s->k = torch::zeros({batch, heads_, ctx_.max_len(), dh_}, opts);
    s->v = torch::zeros({batch, heads_, ctx_.max_len(), dh_}, opts);
    s->bias = torch::full({batch, 1, 1, AlignedWidth(ctx_.max_len())},
                          Masked(opts.dtype().toScalarType()), opts);
    return s;
  }

  bool StepCapturable() const override { return true; }

  torch::Tensor Step(const torch::Tensor& x_t, const torch::Tensor& pos,
                     MixerState& state) override {
    const int64_t b = x_t.size(0);
    // Q / sqrt(dh) in the projection's own operator: addmm(b, x, W^T, beta, alpha) computes
    // beta*b + alpha*(x W^T).
    const double scale = 1.0 / std::sqrt(static_cast<double>(dh_));
    if (ctx_.site == Site::kDecoderCross) {
      auto q = Heads(torch::addmm(q_->bias, x_t, q_->weight.t(), scale, scale).unsqueeze(1));
      auto& s = static_cast<CrossState&>(state);
      return o_(Merge(AttendOne(q, s.k, s.v, s.bias.narrow(3, 0, s.k.size(2))))).squeeze(1);
    }
    auto& s = static_cast<SelfState&>(state);
    torch::Tensor q, k, v;  // [B, H, 1, dh]
    if (!torch::GradMode::is_enabled()) {
      // Serving: the three projections in one product (FusedQkv).
      const auto w = FusedQkv(scale);
      auto qkv = torch::addmm(w.second, x_t, w.first.t()).unsqueeze(1);  // [B, 1, 3D]
      const int64_t d = heads_ * dh_;
      q = Heads(qkv.narrow(2, 0, d));
      k = Heads(qkv.narrow(2, d, d));
      v = Heads(qkv.narrow(2, 2 * d, d));
    } else {
      q = Heads(torch::addmm(q_->bias, x_t, q_->weight.t(), scale, scale).unsqueeze(1));
      k = Heads(k_(x_t).unsqueeze(1));
      v = Heads(v_(x_t).unsqueeze(1));
    }
    auto p = pos.to(x_t.device(), torch::kLong);
    // Write this step's key/value at each row's own position, and unblock that slot.
    auto slot = p.view({b, 1, 1, 1});
    auto kv_slot = slot.expand({b, heads_, 1, dh_});
    s.k.scatter_(2, kv_slot, k);
    s.v.scatter_(2, kv_slot, v);
    s.bias.scatter_(3, slot, 0.0);
    return o_(Merge(AttendOne(q, s.k, s.v, s.bias.narrow(3, 0, s.k.size(2))))).squeeze(1);
  }

 private:
  // The weights [3D, D] and biases [3D] of q (divided by sqrt(dh)), k and v stacked, for the
  // decoding steps of decoder self; built on first use without gradients and again whenever
  // one of the six tensors moved or was changed in place (its version counter).
  std::pair<torch::Tensor, torch::Tensor> FusedQkv(double scale) {
    const torch::Tensor* parts[] = {&q_->weight, &k_->weight, &v_->weight,
                                    &q_->bias,   &k_->bias,   &v_->bias};
    std::vector<int64_t> key;
    for (const auto* t : parts) {
      key.push_back(reinterpret_cast<int64_t>(t->data_ptr()));
      key.push_back(t->is_inference() ? -1 : static_cast<int64_t>(t->_version()));
    }
    std::lock_guard<std::mutex> lock(fused_mu_);
    if (key != fused_key_) {
      torch::NoGradGuard no_grad;
      fused_w_ = torch::cat({q_->weight * scale, k_->weight, v_->weight}, 0);
      fused_b_ = torch::cat({q_->bias * scale, k_->bias, v_->bias}, 0);
      fused_key_ = std::move(key);
    }
    return {fused_w_, fused_b_};
  }

 private:
  // [B, T, D] -> [B, H, T, dh]
  torch::Tensor Heads(const torch::Tensor& x) const {
    return x.view({x.size(0), x.size(1), heads_, dh_}).transpose(1, 2);
  }
  // [B, H, T, dh] -> [B, T, D]
  torch::Tensor Merge(const torch::Tensor& x) const {
    return x.transpose(1, 2).contiguous().view({x.size(0), x.size(2), heads_ * dh_});
  }
  // q unscaled (Forward) or already divided by sqrt(dh) (`scaled`, decoding steps).
  torch::Tensor Attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& bias, bool scaled = false) {
    auto probs =
        Probabilities(torch::matmul(q, k.transpose(-2, -1)), bias, v.scalar_type(), scaled);
    return torch::matmul(probs, v);
  }
  // Attend for one query per row (a decoding step: q [B, H, 1, dh]). On the CPU, LibTorch's
  // batched matmul runs B*H tiny products one by one (a few operators each, so a step's cost
  // grows with the batch far faster than its arithmetic); a broadcast product and a sum over
  // the keys do the same in a handful of vectorised operators. CUDA keeps the batched matmul
  // (one kernel there against two), or with LibTorch 2 fuses the whole attention. q comes
  // already divided by sqrt(dh).
  torch::Tensor AttendOne(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const torch::Tensor& bias) {
#if TORCH_VERSION_MAJOR >= 2
    // LibTorch 2 on CUDA: the fused attention kernel (softmax in fp32 inside) in place of the
    // six operators of Attend; without dropout only (eval mode).
    if (q.is_cuda() && !(is_training() && ctx_.dropout() > 0))
      return at::scaled_dot_product_attention(q, k, v, bias, 0.0, false, 1.0);
#endif
    if (q.is_cuda()) return Attend(q, k, v, bias, /*scaled=*/true);
    auto probs = Probabilities((k * q).sum(-1).unsqueeze(2), bias,  // [B, H, 1, L]
                               v.scalar_type(), /*scaled=*/true);
    return (probs.transpose(-2, -1) * v).sum(-2, /*keepdim=*/true);  // [B, H, 1, dh]
  }
  // softmax(QK^T / sqrt(dh) + M) from the products QK^T (or, `scaled`, QK^T / sqrt(dh)) and
  // the additive mask M (`bias`), in fp32, with attention dropout; returned in `dtype` (the
  // values' type).
  torch::Tensor Probabilities(const torch::Tensor& qk, const torch::Tensor& bias,
                              torch::ScalarType dtype, bool scaled) {
    auto scores = qk.to(torch::kFloat);
    if (!scaled) scores = scores / std::sqrt(static_cast<double>(dh_));
    scores = scores + bias;
    return drop_(torch::softmax(scores, -1).to(dtype));
  }

  int heads_ = 0;
  int dh_ = 0;
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, o_{nullptr};
  torch::nn::Dropout drop_{nullptr};
  std::mutex fused_mu_;
  std::vector<int64_t> fused_key_;
  torch::Tensor fused_w_, fused_b_;
};

MIXSERVE_REGISTER_MIXER("mha",
                        (std::set<Site>{Site::kEncoderSelf, Site::kDecoderSelf,
                                        Site::kDecoderCross}),
                        MhaMixer);

}  // namespace
}  // namespace mixserve::model
