// Multi-head scaled dot-product attention (the baseline mixer), for all three sites.
//
//   Q = x Wq + bq, K = m Wk + bk, V = m Wv + bv      (m = x for self sites, encoder output
//   head_h = softmax(Q_h K_h^T / sqrt(dh) + M) V_h    for cross; dh = d_model / heads)
//   y = concat_h(head_h) Wo + bo
//
// M is 0 where a key may be attended and -1e9 where not (-65504 in fp16; key padding, in
// decoder self also keys after the query). Scores and softmax are computed in fp32 so that
// fp16/bf16 models neither overflow the mask value nor lose the softmax's precision.
//
// Without gradients (serving, evaluation) the projections run from stacked weights (see
// Stacked): q already divided by sqrt(dh), and each head's key and value side by side, so that
// one product yields q, k and v (self sites) or k and v (the encoder output at cross), and
// a decoding step writes its key and value into the cache with one operator. On CUDA with
// LibTorch 2 the attention itself is the fused scaled_dot_product_attention.
//
// Incremental decoding:
//  - decoder self keeps a key/value cache [B, H, L, 2 dh] (per head: key, then value; L =
//    max_len on CUDA, growing with the longest row on the CPU: kCpuInitialSlots below);
//    each row writes its step's key and value at its own position and attends to cache slots
//    <= its position, so rows at different positions (continuous batching) share one call;
//  - decoder cross projects the encoder output to keys/values (same layout) once at InitState.
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "model/affine.h"
#include "model/cpu_linear.h"
#include "model/derived_weights.h"
#include "model/mixers/cpu_attention.h"
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

// Keys and values side by side ([B, H, L, 2 dh]) as the two views attention reads.
torch::Tensor Keys(const torch::Tensor& kv) { return kv.narrow(3, 0, kv.size(3) / 2); }
torch::Tensor Values(const torch::Tensor& kv) {
  return kv.narrow(3, kv.size(3) / 2, kv.size(3) / 2);
}

// `t` [B, H, L, n] with zero slots up to `s`; an additive mask [B, 1, 1, W] with masked slots
// up to AlignedWidth(s).
torch::Tensor PadSlots(const torch::Tensor& t, int64_t s) {
  if (t.size(2) == s) return t;
  auto pad = torch::zeros({t.size(0), t.size(1), s - t.size(2), t.size(3)}, t.options());
  return torch::cat({t, pad}, 2);
}
torch::Tensor PadBias(const torch::Tensor& m, int64_t s) {
  const int64_t w = AlignedWidth(s);
  if (m.size(3) == w) return m;
  auto pad = torch::full({m.size(0), 1, 1, w - m.size(3)}, Masked(m.scalar_type()), m.options());
  return torch::cat({m, pad}, 3);
}

// Slots a CPU cache starts with. On CUDA the cache holds max_len slots from the start (the
// step graphs need fixed shapes, and growing would need the positions on the host); on the
// CPU it grows with the longest row, so that a model of a long max_len (512 for imported
// MarianMT models) does not attend over and copy hundreds of empty slots at every step.
constexpr int64_t kCpuInitialSlots = 32;

// Key/value cache of decoder self-attention, and the additive mask of the slots each row may
// not attend to yet (kept across steps: a step unblocks its own slot, one operator instead of
// building the mask from the positions at every step and layer).
struct SelfState : MixerState {
  torch::Tensor kv;    // [B, H, L, 2 dh]
  torch::Tensor bias;  // [B, 1, 1, AlignedWidth(L)]: Masked until the row has written the slot
  void Select(const torch::Tensor& index) override {
    auto i = index.to(kv.device(), torch::kLong);
    kv = kv.index_select(0, i);
    bias = bias.index_select(0, i);
  }
  void Append(MixerState& other) override {
    auto* o = dynamic_cast<SelfState*>(&other);
    if (!o) throw std::invalid_argument("mha: Append of a state of another mixer");
    const int64_t l = std::max(kv.size(2), o->kv.size(2));  // CPU caches grow apart
    kv = torch::cat({PadSlots(kv, l), PadSlots(o->kv, l)}, 0);
    bias = torch::cat({PadBias(bias, l), PadBias(o->bias, l)}, 0);
  }
  // Room for `need` slots (at most `max_len`), doubling.
  void Grow(int64_t need, int64_t max_len) {
    if (kv.size(2) >= need) return;
    const int64_t l = std::min(max_len, std::max(need, 2 * kv.size(2)));
    kv = PadSlots(kv, l);
    bias = PadBias(bias, l);
  }
  std::vector<torch::Tensor*> Tensors() override { return {&kv, &bias}; }
};

// Projected encoder keys/values of decoder cross-attention.
struct CrossState : MixerState {
  torch::Tensor kv;    // [B, H, S, 2 dh]
  torch::Tensor bias;  // [B, 1, 1, AlignedWidth(S)]: Masked at source padding
  void Select(const torch::Tensor& index) override {
    auto i = index.to(kv.device(), torch::kLong);
    kv = kv.index_select(0, i);
    bias = bias.index_select(0, i);
  }
  void Append(MixerState& other) override {
    auto* o = dynamic_cast<CrossState*>(&other);
    if (!o) throw std::invalid_argument("mha: Append of a state of another mixer");
    // Memories of different lengths: pad the shorter along S with masked slots.
    const int64_t s = std::max(kv.size(2), o->kv.size(2));
    kv = torch::cat({PadSlots(kv, s), PadSlots(o->kv, s)}, 0);
    bias = torch::cat({PadBias(bias, s), PadBias(o->bias, s)}, 0);
  }
  std::vector<torch::Tensor*> Tensors() override { return {&kv, &bias}; }
};

class MhaMixer : public TokenMixer, public CpuPrecisionUser {
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
    auto allowed = key_mask.to(torch::kBool).unsqueeze(1).unsqueeze(1);  // [B, 1, 1, S]
    if (ctx_.site == Site::kDecoderSelf) {
      const int64_t t = in.x.size(1);
      auto causal = torch::ones({t, t}, key_mask.options().dtype(torch::kBool)).tril();
      allowed = allowed & causal.view({1, 1, t, t});
    }
    if (torch::GradMode::is_enabled()) {  // training: the projections as the parameters are
      auto q = Heads(q_(in.x));           // [B, H, T, dh]
      auto k = Heads(k_(kv_in));          // [B, H, S, dh]
      auto v = Heads(v_(kv_in));
      auto bias = torch::zeros(allowed.sizes(), q.options().dtype(torch::kFloat))
                      .masked_fill_(allowed.logical_not(), kMasked);
      return o_(Merge(Attend(q, k, v, bias)));
    }
    // Inference: stacked projections, q divided by sqrt(dh) already.
    const int64_t d = heads_ * dh_;
    if (CpuLinear::Applies(in.x) && !(is_training() && ctx_.dropout() > 0))
      return ForwardCpu(in.x, kv_in, key_mask);
    const auto w = Stacked();
    torch::Tensor q, kv;
    if (cross) {
      q = Affine(in.x, w[0].narrow(0, 0, d), w[1].narrow(0, 0, d));
      kv = KeysValues(kv_in, w);
    } else {
      auto qkv = Affine(in.x, w[0], w[1]);  // [B, T, 3D]
      q = qkv.narrow(2, 0, d);
      kv = SplitHeads(qkv.narrow(2, d, 2 * d), 2 * dh_);
    }
    q = Heads(q);
    torch::Tensor ctx;
#if TORCH_VERSION_MAJOR >= 2
    if (q.is_cuda() && !(is_training() && ctx_.dropout() > 0)) {
      auto bias = torch::zeros(allowed.sizes(), q.options())
                      .masked_fill_(allowed.logical_not(), Masked(q.scalar_type()));
      ctx = at::scaled_dot_product_attention(q, Keys(kv), Values(kv), bias, 0.0, false, 1.0);
    }
#endif
    if (!ctx.defined()) {
      auto bias = torch::zeros(allowed.sizes(), q.options().dtype(torch::kFloat))
                      .masked_fill_(allowed.logical_not(), kMasked);
      ctx = Attend(q, Keys(kv), Values(kv), bias, /*scaled=*/true);
    }
    return Affine(Merge(ctx), o_);
  }

  std::unique_ptr<MixerState> InitState(const torch::Tensor& memory,
                                        const torch::Tensor& memory_mask,
                                        int64_t batch) override {
    auto opts = q_->weight.options();
    if (ctx_.site == Site::kDecoderCross) {
      auto s = std::make_unique<CrossState>();
      if (torch::GradMode::is_enabled())
        s->kv = torch::cat({Heads(k_(memory)), Heads(v_(memory))}, 3);
      else if (CpuLinear::Applies(memory))
        s->kv = SplitHeads(Cpu()[1](memory), 2 * dh_).contiguous();
      else
        s->kv = KeysValues(memory, Stacked()).contiguous();
      s->bias = MaskBias(memory_mask.to(torch::kBool), opts.dtype().toScalarType());
      return s;
    }
    if (ctx_.site != Site::kDecoderSelf)
      throw std::logic_error("mha: incremental state exists only at decoder sites");
    auto s = std::make_unique<SelfState>();
    const int64_t slots = opts.device().is_cpu()
                              ? std::min<int64_t>(ctx_.max_len(), kCpuInitialSlots)
                              : ctx_.max_len();
    s->kv = torch::zeros({batch, heads_, slots, 2 * dh_}, opts);
    s->bias = torch::full({batch, 1, 1, AlignedWidth(slots)},
                          Masked(opts.dtype().toScalarType()), opts);
    return s;
  }

  bool StepCapturable() const override { return true; }

  torch::Tensor Step(const torch::Tensor& x_t, const torch::Tensor& pos,
                     MixerState& state) override {
    const int64_t b = x_t.size(0), d = heads_ * dh_;
    const bool grad = torch::GradMode::is_enabled();
    // Q / sqrt(dh): with gradients addmm(b, x, W^T, beta, alpha) = beta*b + alpha*(x W^T);
    // without, the stacked weights have it folded in.
    const double scale = 1.0 / std::sqrt(static_cast<double>(dh_));
    if (!grad && x_t.is_cpu() && x_t.scalar_type() == torch::kFloat &&
        !(is_training() && ctx_.dropout() > 0))
      return StepCpu(x_t.contiguous(), pos, state);
    std::vector<torch::Tensor> w;
    if (!grad) w = Stacked();
    auto project_q = [&] {
      return grad ? torch::addmm(q_->bias, x_t, q_->weight.t(), scale, scale)
                  : torch::addmm(w[1].narrow(0, 0, d), x_t, w[0].narrow(0, 0, d).t());
    };
    if (ctx_.site == Site::kDecoderCross) {
      auto& s = static_cast<CrossState&>(state);
      auto q = Heads(project_q().unsqueeze(1));
      auto ctx = AttendOne(q, Keys(s.kv), Values(s.kv), s.bias.narrow(3, 0, s.kv.size(2)));
      return Affine(ctx.reshape({b, d}), o_);
    }
    auto& s = static_cast<SelfState&>(state);
    torch::Tensor q, kv;  // [B, H, 1, dh], [B, H, 1, 2 dh]
    if (!grad) {
      auto qkv = torch::addmm(w[1], x_t, w[0].t());  // [B, 3D]: one product
      q = Heads(qkv.narrow(1, 0, d).unsqueeze(1));
      kv = qkv.narrow(1, d, 2 * d).view({b, heads_, 1, 2 * dh_});
    } else {
      q = Heads(project_q().unsqueeze(1));
      kv = torch::cat({Heads(k_(x_t).unsqueeze(1)), Heads(v_(x_t).unsqueeze(1))}, 3);
    }
    auto p = pos.to(x_t.device(), torch::kLong);
    if (p.is_cpu() && b > 0) s.Grow(p.max().item<int64_t>() + 1, ctx_.max_len());
    // Write this step's key and value at each row's own position, and unblock that slot.
    auto slot = p.view({b, 1, 1, 1});
    s.kv.scatter_(2, slot.expand({b, heads_, 1, 2 * dh_}), kv);
    s.bias.scatter_(3, slot, 0.0);
    auto ctx = AttendOne(q, Keys(s.kv), Values(s.kv), s.bias.narrow(3, 0, s.kv.size(2)));
    return Affine(ctx.reshape({b, d}), o_);
  }

 private:
  // Step on the CPU in fp32 without gradients: the projections as in Step, the cache write and
  // the attention in one loop over raw memory (model/mixers/cpu_attention.h) instead of the
  // twenty-odd operators of AttendOne and the scatters.
  torch::Tensor StepCpu(const torch::Tensor& x, const torch::Tensor& pos, MixerState& state) {
    const int64_t b = x.size(0), d = heads_ * dh_;
    const auto w = Cpu();
    CacheAttention a;
    a.rows = b;
    a.heads = heads_;
    a.head_dim = dh_;
    torch::Tensor q;  // holds the queries a.q points into
    std::vector<int64_t> limit;
    auto fp32_contiguous = [](torch::Tensor& t) {
      if (!t.is_contiguous()) t = t.contiguous();
      return t.data_ptr<float>();
    };
    if (ctx_.site == Site::kDecoderCross) {
      auto& s = static_cast<CrossState&>(state);
      q = w[0](x);
      a.q_stride = d;
      a.kv = fp32_contiguous(s.kv);
      a.slots = s.kv.size(2);
      a.bias = fp32_contiguous(s.bias);
      a.bias_stride = s.bias.size(3);
    } else {
      auto& s = static_cast<SelfState&>(state);
      q = w[0](x);  // [B, 3D]: q, then per head key and value
      a.q_stride = 3 * d;
      const auto p = pos.to(torch::kCPU, torch::kLong).contiguous();
      const int64_t* at = p.data_ptr<int64_t>();
      int64_t need = 0;
      for (int64_t r = 0; r < b; ++r) need = std::max(need, at[r] + 1);
      if (b > 0) s.Grow(need, ctx_.max_len());
      float* kv = fp32_contiguous(s.kv);
      float* bias = fp32_contiguous(s.bias);
      const int64_t slots = s.kv.size(2), width = s.bias.size(3), pair = 2 * dh_;
      const float* qkv = q.data_ptr<float>();
      limit.resize(static_cast<size_t>(b));
      for (int64_t r = 0; r < b; ++r) {  // this step's key and value at the row's position
        for (int64_t h = 0; h < heads_; ++h)
          std::copy_n(qkv + r * 3 * d + d + h * pair, pair,
                      kv + ((r * heads_ + h) * slots + at[r]) * pair);
        bias[r * width + at[r]] = 0.0f;
        limit[static_cast<size_t>(r)] = at[r] + 1;
      }
      a.kv = kv;
      a.slots = slots;
      a.limit = limit.data();  // slots after the row's position are masked anyway
    }
    a.q = q.data_ptr<float>();
    auto ctx = torch::empty({b, d}, x.options());
    a.out = ctx.data_ptr<float>();
    a.out_stride = d;
    AttendCache(a);
    return w[2](ctx);
  }

  // Forward on the CPU in fp32 without gradients: the products of model/cpu_linear.h and the
  // attention in one loop over their raw output (cpu_attention.h), each query a row that
  // shares its sequence's keys and values; a handful of operators per call instead of about
  // twenty. x [B, T, D], kv_in [B, S, D], key_mask [B, S].
  torch::Tensor ForwardCpu(const torch::Tensor& x, const torch::Tensor& kv_in,
                           const torch::Tensor& key_mask) {
    const bool cross = ctx_.site == Site::kDecoderCross;
    const int64_t b = x.size(0), t = x.size(1), s = kv_in.size(1), d = heads_ * dh_;
    const auto c = Cpu();
    const auto q = c[0](x);                             // [B, T, 3D] or [B, T, D] (cross)
    const auto kv = cross ? c[1](kv_in) : torch::Tensor();  // [B, S, 2D]
    const auto bias = torch::zeros({b, s}, x.options())
                          .masked_fill_(key_mask.to(torch::kBool).logical_not(), kMasked);
    std::vector<int64_t> limit;
    CacheAttention a;
    a.rows = b * t;
    a.heads = heads_;
    a.head_dim = dh_;
    a.q = q.data_ptr<float>();
    a.q_stride = q.size(2);
    a.kv = cross ? kv.data_ptr<float>() : a.q + d;
    a.slots = s;
    a.rows_per_kv = t;
    a.kv_stride = cross ? s * 2 * d : t * 3 * d;
    a.head_stride = 2 * dh_;
    a.slot_stride = cross ? 2 * d : 3 * d;
    a.bias = bias.data_ptr<float>();
    a.bias_stride = s;
    if (ctx_.site == Site::kDecoderSelf) {  // causal: position i sees positions [0, i]
      limit.resize(static_cast<size_t>(b * t));
      for (int64_t r = 0; r < b * t; ++r) limit[static_cast<size_t>(r)] = r % t + 1;
      a.limit = limit.data();
    }
    auto ctx = torch::empty({b, t, d}, x.options());
    a.out = ctx.data_ptr<float>();
    a.out_stride = d;
    AttendCache(a);
    return c[2](ctx);
  }

  // The products on the CPU without gradients, in the model's CPU precision
  // (model/cpu_linear.h), from Stacked(): [0] q, k and v (self sites) or q alone (cross),
  // [1] k and v (cross: over the memory), [2] the output projection.
  std::vector<CpuLinear> Cpu() {
    return CpuProducts(cpu_,
                       {&q_->weight, &k_->weight, &v_->weight, &o_->weight, &q_->bias,
                        &k_->bias, &v_->bias, &o_->bias},
                       cpu_precision(), [this](CpuPrecision p) {
                         const auto w = Stacked();
                         const int64_t d = heads_ * dh_;
                         std::vector<CpuLinear> c(3);
                         if (ctx_.site == Site::kDecoderCross) {
                           c[0] = CpuLinear(w[0].narrow(0, 0, d), w[1].narrow(0, 0, d), p);
                           c[1] = CpuLinear(w[0].narrow(0, d, 2 * d), w[1].narrow(0, d, 2 * d),
                                            p);
                         } else {
                           c[0] = CpuLinear(w[0], w[1], p);
                         }
                         c[2] = CpuLinear(o_->weight, o_->bias, p);
                         return c;
                       });
  }

  // Inference weights [3D, D] and biases [3D]: q's divided by sqrt(dh), then per head the
  // key's rows and the value's rows (so that the product's k/v part, split by heads, holds
  // each head's key and value side by side, the caches' layout). Derived without gradients
  // from the four projections and rebuilt whenever one of them changes.
  std::vector<torch::Tensor> Stacked() {
    return stacked_.Get(
        {&q_->weight, &k_->weight, &v_->weight, &q_->bias, &k_->bias, &v_->bias}, [this] {
          const double scale = 1.0 / std::sqrt(static_cast<double>(dh_));
          const int64_t d = heads_ * dh_;
          auto kw = torch::stack({k_->weight.view({heads_, dh_, d}),
                                  v_->weight.view({heads_, dh_, d})}, 1)
                        .reshape({2 * d, d});
          auto kb = torch::stack({k_->bias.view({heads_, dh_}), v_->bias.view({heads_, dh_})}, 1)
                        .reshape({2 * d});
          return std::vector<torch::Tensor>{torch::cat({q_->weight * scale, kw}, 0),
                                            torch::cat({q_->bias * scale, kb}, 0)};
        });
  }
  // Keys and values of `m` [B, S, D] from the stacked weights: [B, H, S, 2 dh] (a view).
  torch::Tensor KeysValues(const torch::Tensor& m, const std::vector<torch::Tensor>& w) const {
    const int64_t d = heads_ * dh_;
    return SplitHeads(Affine(m, w[0].narrow(0, d, 2 * d), w[1].narrow(0, d, 2 * d)), 2 * dh_);
  }
  // [B, T, H * n] -> [B, H, T, n]
  torch::Tensor SplitHeads(const torch::Tensor& x, int64_t n) const {
    return x.view({x.size(0), x.size(1), heads_, n}).transpose(1, 2);
  }
  // [B, T, D] -> [B, H, T, dh]
  torch::Tensor Heads(const torch::Tensor& x) const { return SplitHeads(x, dh_); }
  // [B, H, T, dh] -> [B, T, D]
  torch::Tensor Merge(const torch::Tensor& x) const {
    return x.transpose(1, 2).contiguous().view({x.size(0), x.size(2), heads_ * dh_});
  }
  // q unscaled (training) or already divided by sqrt(dh) (`scaled`).
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
  DerivedWeights stacked_;
  Derived<std::vector<CpuLinear>> cpu_;
};

MIXSERVE_REGISTER_MIXER("mha",
                        (std::set<Site>{Site::kEncoderSelf, Site::kDecoderSelf,
                                        Site::kDecoderCross}),
                        MhaMixer);

}  // namespace
}  // namespace mixserve::model
