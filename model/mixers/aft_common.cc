#include "model/mixers/aft_common.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace mixserve::model {

torch::Tensor AftWeightedAverage(const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& bias, const torch::Tensor& allowed) {
  const int64_t B = k.size(0), S = k.size(1), D = k.size(2);
  const int64_t G = bias.defined() ? bias.size(3) : 1;
  const int64_t Dg = D / G;
  // Exponent k[b,s,d] + bias[b,t,s,g]: [B or 1.., T or 1, S, G, Dg] by broadcasting.
  torch::Tensor logits = k.reshape({B, 1, S, G, Dg});
  if (bias.defined()) logits = logits + bias.unsqueeze(-1);
  const auto allowed5 = allowed.unsqueeze(-1).unsqueeze(-1);
  const auto neg_inf =
      torch::full({}, -std::numeric_limits<float>::infinity(), logits.options());
  logits = torch::where(allowed5, logits, neg_inf);
  // The output does not depend on the shift m, so no gradient flows through it. A target
  // with no allowed source has m = -inf: use 0 there (all its terms are exp(-inf) = 0).
  auto m = torch::amax(logits, {2}, /*keepdim=*/true).detach();
  m = torch::where(torch::isfinite(m), m, torch::zeros_like(m));
  const auto e = torch::exp(logits - m);  // largest allowed term is exactly 1
  const auto num = torch::einsum("btsgd,bsgd->btgd", {e, v.reshape({B, S, G, Dg})});
  const auto den = e.sum(2);  // >= 1 where any source is allowed, else 0 (and num is 0)
  return (num / den.clamp_min(1e-30)).reshape({B, num.size(1), D});
}

namespace {

template <typename T>
T& SameKind(MixerState& other, const char* what) {
  auto* p = dynamic_cast<T*>(&other);
  if (!p)
    throw std::invalid_argument(std::string(what) +
                                ": cannot append a decoding state of another mixer kind");
  return *p;
}

// Pads dimension 1 of a [B, C, ...] tensor with `fill` up to `c`.
torch::Tensor PadDim1(const torch::Tensor& t, int64_t c, bool fill = false) {
  if (t.size(1) >= c) return t;
  auto sizes = t.sizes().vec();
  sizes[1] = c - t.size(1);
  auto pad = t.dtype() == torch::kBool ? torch::full(sizes, fill, t.options())
                                        : torch::zeros(sizes, t.options());
  return torch::cat({t, pad}, 1);
}

}  // namespace

void AftCacheState::Select(const torch::Tensor& index) {
  k = k.index_select(0, index.to(k.device()));
  v = v.index_select(0, index.to(v.device()));
}

void AftCacheState::Append(MixerState& other) {
  auto& o = SameKind<AftCacheState>(other, "aft decoder-self state");
  const int64_t c = std::max(k.size(1), o.k.size(1));
  k = torch::cat({PadDim1(k, c), PadDim1(o.k, c)}, 0);
  v = torch::cat({PadDim1(v, c), PadDim1(o.v, c)}, 0);
}

void AftCacheState::Reserve(int64_t capacity) {
  if (k.size(1) >= capacity) return;
  const int64_t c = std::max(capacity, 2 * k.size(1));
  k = PadDim1(k, c);
  v = PadDim1(v, c);
}

void AftMemoryState::Select(const torch::Tensor& index) {
  const auto i = index.to(k.device());
  k = k.index_select(0, i);
  v = v.index_select(0, i);
  mask = mask.index_select(0, i);
}

void AftMemoryState::Append(MixerState& other) {
  auto& o = SameKind<AftMemoryState>(other, "aft decoder-cross state");
  const int64_t s = std::max(k.size(1), o.k.size(1));
  k = torch::cat({PadDim1(k, s), PadDim1(o.k, s)}, 0);
  v = torch::cat({PadDim1(v, s), PadDim1(o.v, s)}, 0);
  mask = torch::cat({PadDim1(mask, s), PadDim1(o.mask, s)}, 0);
}

void AftWindowState::Select(const torch::Tensor& index) {
  const auto i = index.to(k.device());
  for (auto* t : {&k, &v, &m, &num, &den}) *t = t->index_select(0, i);
}

void AftWindowState::Append(MixerState& other) {
  auto& o = SameKind<AftWindowState>(other, "aft decoder-self window state");
  if (o.k.size(1) != k.size(1))
    throw std::invalid_argument("aft decoder-self window state: windows differ (" +
                                std::to_string(k.size(1)) + " vs " +
                                std::to_string(o.k.size(1)) + ")");
  k = torch::cat({k, o.k}, 0);
  v = torch::cat({v, o.v}, 0);
  m = torch::cat({m, o.m}, 0);
  num = torch::cat({num, o.num}, 0);
  den = torch::cat({den, o.den}, 0);
}

int AftWindow(const MixerContext& ctx) {
  return ctx.spec.window > 0 ? ctx.spec.window : std::max(1, ctx.max_len() / 4);
}

AftMixer::AftMixer(const MixerContext& ctx, const char* name, int groups)
    : TokenMixer(ctx), name_(name), groups_(groups) {
  RequireNoSize(ctx, name);
  const int d = ctx.d_model();
  if (d <= 0) throw std::invalid_argument(std::string(name) + ": d_model must be > 0");
  if (groups <= 0 || d % groups != 0)
    throw std::invalid_argument(std::string(name) + " at " + SiteName(ctx.site) + ": d_model " +
                                std::to_string(d) + " is not divisible by heads " +
                                std::to_string(groups));
  q_ = register_module("q", torch::nn::Linear(d, d));
  k_ = register_module("k", torch::nn::Linear(d, d));
  v_ = register_module("v", torch::nn::Linear(d, d));
  out_ = register_module("out", torch::nn::Linear(d, d));
}

void AftMixer::CheckLength(int64_t n, const char* what) const {
  if (n > MaxPositions())
    throw std::invalid_argument(std::string(name_) + " at " + SiteName(ctx_.site) + ": " + what +
                                " length " + std::to_string(n) + " exceeds max_len " +
                                std::to_string(MaxPositions()) +
                                " (the length its position bias covers)");
}

torch::Tensor AftMixer::Finish(const torch::Tensor& q, const torch::Tensor& avg) {
  return out_(torch::sigmoid(q) * avg);
}

torch::Tensor AftMixer::Forward(const MixerInput& in) {
  const std::string where = std::string(name_) + " at " + SiteName(ctx_.site);
  const int64_t D = ctx_.d_model();
  if (!in.x.defined() || in.x.dim() != 3 || in.x.size(2) != D)
    throw std::invalid_argument(where + ": input must be [B, T, " + std::to_string(D) + "]");
  const auto& x = in.x;
  const int64_t B = x.size(0), T = x.size(1);
  torch::Tensor src = x, src_mask = in.mask;
  if (cross()) {
    if (!in.memory.defined() || in.memory.dim() != 3 || in.memory.size(0) != B ||
        in.memory.size(2) != D)
      throw std::invalid_argument(where + ": memory must be [B, S, " + std::to_string(D) + "]");
    src = in.memory;
    src_mask = in.memory_mask;
  }
  const int64_t S = src.size(1);
  if (src_mask.defined() && (src_mask.dim() != 2 || src_mask.size(0) != B ||
                             src_mask.size(1) != S))
    throw std::invalid_argument(where + ": mask must be [B, " + std::to_string(S) + "]");
  CheckLength(T, "target");
  CheckLength(S, "source");

  const auto q = q_(x), k = k_(src), v = v_(src);
  const auto lopts = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  const auto tq = torch::arange(T, lopts), ts = torch::arange(S, lopts);
  torch::Tensor allowed = src_mask.defined()
                              ? src_mask.to(torch::kBool).unsqueeze(1)  // [B, 1, S]
                              : torch::ones({1, 1, S}, lopts.dtype(torch::kBool));
  if (causal()) allowed = allowed & (ts.unsqueeze(0) <= tq.unsqueeze(1)).unsqueeze(0);
  auto bias = Bias(tq.unsqueeze(1).expand({T, S}), ts.unsqueeze(0).expand({T, S}));
  if (bias.defined()) bias = bias.unsqueeze(0);  // [1, T, S, G]
  // Without a bias outside the causal site the average is the same for every target.
  return Finish(q, AftWeightedAverage(k, v, bias, allowed));
}

std::unique_ptr<MixerState> AftMixer::InitState(const torch::Tensor& memory,
                                                const torch::Tensor& memory_mask,
                                                int64_t batch) {
  const std::string where = std::string(name_) + " at " + SiteName(ctx_.site);
  if (ctx_.site == Site::kEncoderSelf)
    throw std::logic_error(where + ": incremental decoding is for decoder sites only");
  const int64_t D = ctx_.d_model();
  const auto opts = q_->weight.options();
  if (cross()) {
    if (!memory.defined() || memory.dim() != 3 || memory.size(0) != batch ||
        memory.size(2) != D)
      throw std::invalid_argument(where + ": memory must be [" + std::to_string(batch) +
                                  ", S, " + std::to_string(D) + "]");
    CheckLength(memory.size(1), "source");
    auto st = std::make_unique<AftMemoryState>();
    st->k = k_(memory);
    st->v = v_(memory);
    st->mask = memory_mask.defined()
                   ? memory_mask.to(torch::kBool)
                   : torch::ones({batch, memory.size(1)}, opts.dtype(torch::kBool));
    return st;
  }
  if (DecodeWindow() > 0) {
    auto st = std::make_unique<AftWindowState>();
    st->k = torch::zeros({batch, DecodeWindow(), D}, opts);
    st->v = torch::zeros({batch, DecodeWindow(), D}, opts);
    st->m = torch::full({batch, D}, -std::numeric_limits<float>::infinity(), opts);
    st->num = torch::zeros({batch, D}, opts);
    st->den = torch::zeros({batch, D}, opts);
    return st;
  }
  auto st = std::make_unique<AftCacheState>();
  st->k = torch::zeros({batch, 0, D}, opts);
  st->v = torch::zeros({batch, 0, D}, opts);
  return st;
}

int64_t AftMixer::CheckStep(const torch::Tensor& x_t, const torch::Tensor& pos,
                            int64_t rows) const {
  const std::string where = std::string(name_) + " at " + SiteName(ctx_.site);
  if (!x_t.defined() || x_t.dim() != 2 || x_t.size(0) != rows || x_t.size(1) != ctx_.d_model())
    throw std::invalid_argument(where + ": step input must be [" + std::to_string(rows) + ", " +
                                std::to_string(ctx_.d_model()) + "] (one row per state row)");
  if (!pos.defined() || pos.dim() != 1 || pos.size(0) != rows)
    throw std::invalid_argument(where + ": positions must be int64 [" + std::to_string(rows) +
                                "]");
  if (rows == 0) return -1;
  if (CapturingStep()) return ctx_.max_len() - 1;  // checked by the caller; no host reads
  if (pos.min().item<int64_t>() < 0)
    throw std::invalid_argument(where + ": negative decoding position");
  const int64_t max_pos = pos.max().item<int64_t>();
  CheckLength(max_pos + 1, "target");
  return max_pos;
}

torch::Tensor AftMixer::Step(const torch::Tensor& x_t, const torch::Tensor& pos,
                             MixerState& state) {
  const int64_t D = ctx_.d_model();
  if (cross()) {
    auto* st = dynamic_cast<AftMemoryState*>(&state);
    if (!st) throw std::invalid_argument(std::string(name_) + ": state of another mixer");
    CheckStep(x_t, pos, st->rows());
    if (st->rows() == 0) return torch::zeros({0, D}, x_t.options());
    const auto p = pos.to(torch::kLong).to(x_t.device());
    const int64_t B = p.size(0), S = st->k.size(1);
    const auto ts = torch::arange(S, p.options());
    auto bias = Bias(p.unsqueeze(1).expand({B, S}), ts.unsqueeze(0).expand({B, S}));  // [B,S,G]
    if (bias.defined()) bias = bias.unsqueeze(1);  // [B, 1, S, G]
    const auto avg = AftWeightedAverage(st->k, st->v, bias, st->mask.unsqueeze(1));
    return Finish(q_(x_t), avg.squeeze(1));
  }
  if (auto* st = dynamic_cast<AftWindowState*>(&state)) return StepWindow(x_t, pos, *st);
  auto* st = dynamic_cast<AftCacheState*>(&state);
  if (!st) throw std::invalid_argument(std::string(name_) + ": state of another mixer");
  return StepCache(x_t, pos, *st);
}

torch::Tensor AftMixer::StepCache(const torch::Tensor& x_t, const torch::Tensor& pos,
                                  AftCacheState& st) {
  const int64_t D = ctx_.d_model();
  const int64_t max_pos = CheckStep(x_t, pos, st.rows());
  if (st.rows() == 0) return torch::zeros({0, D}, x_t.options());
  const int64_t B = x_t.size(0), L = max_pos + 1;
  const auto p = pos.to(torch::kLong).to(x_t.device());
  st.Reserve(L);
  // Write this step's key and value at each row's own position.
  const auto idx = p.view({B, 1, 1}).expand({B, 1, D});
  st.k.scatter_(1, idx, k_(x_t).unsqueeze(1).to(st.k.dtype()));
  st.v.scatter_(1, idx, v_(x_t).unsqueeze(1).to(st.v.dtype()));
  const auto ts = torch::arange(L, p.options()).unsqueeze(0).expand({B, L});
  const auto tq = p.unsqueeze(1).expand({B, L});
  const auto allowed = (ts <= tq).unsqueeze(1);  // [B, 1, L]
  auto bias = Bias(tq, ts);
  if (bias.defined()) bias = bias.unsqueeze(1);
  const auto avg = AftWeightedAverage(st.k.narrow(1, 0, L), st.v.narrow(1, 0, L), bias, allowed);
  return Finish(q_(x_t), avg.squeeze(1));
}

torch::Tensor AftMixer::StepWindow(const torch::Tensor& x_t, const torch::Tensor& pos,
                                   AftWindowState& st) {
  const int64_t D = ctx_.d_model();
  CheckStep(x_t, pos, st.rows());
  if (st.rows() == 0) return torch::zeros({0, D}, x_t.options());
  const int64_t B = x_t.size(0), s = st.k.size(1), G = groups_;
  const auto p = pos.to(torch::kLong).to(x_t.device());
  const auto slot = torch::remainder(p, s);  // [B]
  const auto slot_idx = slot.view({B, 1, 1}).expand({B, 1, D});
  // Position p - s leaves the window; it sits in the slot this step overwrites. Fold it into
  // the running sums (bias 0 from now on) where it exists.
  {
    const auto fold = (p >= s).unsqueeze(1);  // [B, 1]
    const auto k_old = st.k.gather(1, slot_idx).squeeze(1);
    const auto v_old = st.v.gather(1, slot_idx).squeeze(1);
    const auto m_new = torch::where(fold, torch::max(st.m, k_old), st.m);
    const auto decay = torch::exp(st.m - m_new);  // 1 where nothing folds; 0 from -inf
    const auto e = torch::where(fold, torch::exp(k_old - m_new), torch::zeros_like(k_old));
    st.num = torch::where(fold, st.num * decay + e * v_old, st.num);
    st.den = torch::where(fold, st.den * decay + e, st.den);
    st.m = m_new;
  }
  st.k.scatter_(1, slot_idx, k_(x_t).unsqueeze(1).to(st.k.dtype()));
  st.v.scatter_(1, slot_idx, v_(x_t).unsqueeze(1).to(st.v.dtype()));
  // Slot j holds position p - ((p - j) mod s): the last s positions, those >= 0 valid.
  const auto j = torch::arange(s, p.options()).unsqueeze(0);      // [1, s]
  const auto src = p.unsqueeze(1) - torch::remainder(p.unsqueeze(1) - j, s);  // [B, s]
  const auto valid = (src >= 0).unsqueeze(-1);                    // [B, s, 1]
  const auto tq = p.unsqueeze(1).expand({B, s});
  auto logits = st.k;
  const auto bias = Bias(tq, src.clamp_min(0));  // [B, s, G]
  if (bias.defined())
    logits = (st.k.view({B, s, G, D / G}) + bias.unsqueeze(-1)).view({B, s, D});
  logits = torch::where(valid, logits,
                        torch::full({}, -std::numeric_limits<float>::infinity(), logits.options()));
  // The current position is always valid, so the maximum is finite.
  const auto m = torch::max(st.m, std::get<0>(logits.max(1)));  // [B, D]
  const auto e = torch::exp(logits - m.unsqueeze(1));
  const auto a = torch::exp(st.m - m);
  const auto num = st.num * a + (e * st.v).sum(1);
  const auto den = st.den * a + e.sum(1);
  return Finish(q_(x_t), num / den);
}

}  // namespace mixserve::model
