#include "model/mixers/feedforward_net.h"

#include <cmath>
#include <stdexcept>
#include <utility>

namespace mixserve::model {

// ---------------------------------------------------------------------------------------------
// FeedForwardNet

FeedForwardNet::FeedForwardNet(const FeedForwardNetOptions& opt) : opt_(opt) {
  if (opt.in_blocks <= 0 || opt.block_dim <= 0 || opt.hidden <= 0 || opt.out_blocks <= 0 ||
      opt.out_dim <= 0 || opt.groups <= 0)
    throw std::invalid_argument("feed-forward network: every size must be positive");
  const int64_t g = opt.groups, h = opt.hidden, win = in_width(), wout = out_width();
  // Linear layers start as torch::nn::Linear does: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  const double b1 = 1.0 / std::sqrt(static_cast<double>(win));
  const double b2 = 1.0 / std::sqrt(static_cast<double>(h));
  in_norm_weight = register_parameter("in_norm_weight", torch::ones({g, win}));
  in_norm_bias = register_parameter("in_norm_bias", torch::zeros({g, win}));
  fc1_weight = register_parameter("fc1_weight", torch::empty({g, h, win}).uniform_(-b1, b1));
  fc1_bias = register_parameter("fc1_bias", torch::empty({g, h}).uniform_(-b1, b1));
  hidden_norm_weight = register_parameter("hidden_norm_weight", torch::ones({g, h}));
  hidden_norm_bias = register_parameter("hidden_norm_bias", torch::zeros({g, h}));
  fc2_weight = register_parameter("fc2_weight", torch::empty({g, wout, h}).uniform_(-b2, b2));
  fc2_bias = register_parameter("fc2_bias", torch::empty({g, wout}).uniform_(-b2, b2));
}

torch::Tensor FeedForwardNet::Full(const torch::Tensor& flat) const {
  const int64_t b = flat.size(0);
  // LayerNorm(W_in): one normalisation (the input is shared), then each group's affine map.
  auto xn = torch::layer_norm(flat, {in_width()}, {}, {}, opt_.eps);
  auto a = xn.unsqueeze(1) * in_norm_weight + in_norm_bias;             // [B, G, W_in]
  auto h = torch::einsum("bgw,ghw->bgh", {a, fc1_weight}) + fc1_bias;  // [B, G, H]
  auto z = Activate(h);
  auto y = torch::einsum("bgh,goh->bgo", {z, fc2_weight}) + fc2_bias;  // [B, G, W_out]
  return y.view({b, opt_.groups, opt_.out_blocks, opt_.out_dim})
      .permute({0, 2, 1, 3})
      .reshape({b, opt_.out_blocks, opt_.groups * opt_.out_dim});
}

FeedForwardNet::Sums FeedForwardNet::BlockTerms(const torch::Tensor& x,
                                                int64_t first_block) const {
  const int64_t t = x.size(1), g = opt_.groups, h = opt_.hidden, d = opt_.block_dim;
  // P_j = W1[:, block j] (gamma_j o x_j) for the T blocks in use.
  auto w1 = fc1_weight.view({g, h, opt_.in_blocks, d}).narrow(2, first_block, t);  // [G,H,T,D]
  auto gamma = in_norm_weight.view({g, opt_.in_blocks, d}).narrow(1, first_block, t);
  auto u = x.unsqueeze(2) * gamma.permute({1, 0, 2});  // [B, T, G, D]
  Sums s;
  s.acc = torch::einsum("btgd,ghtd->btgh", {u, w1});  // [B, T, G, H]
  auto xd = x.to(torch::kFloat64);
  s.s1 = xd.sum(-1);
  s.s2 = xd.pow(2).sum(-1);
  return s;
}

FeedForwardNet::Sums FeedForwardNet::BlockTermsAt(const torch::Tensor& x_t,
                                                  const torch::Tensor& block,
                                                  int64_t same_block) const {
  const int64_t g = opt_.groups, h = opt_.hidden, d = opt_.block_dim;
  auto w1 = fc1_weight.view({g, h, opt_.in_blocks, d});
  auto gamma = in_norm_weight.view({g, opt_.in_blocks, d});
  Sums s;
  if (same_block >= 0) {  // one weight block for every row: a plain matrix product
    auto u = gamma.select(1, same_block).unsqueeze(1) * x_t.unsqueeze(0);           // [G, B, D]
    s.acc = torch::einsum("ghd,gbd->bgh", {w1.select(2, same_block), u});
  } else {  // rows at different positions: gather each row's weight block
    auto u = gamma.index_select(1, block) * x_t.unsqueeze(0);                       // [G, B, D]
    s.acc = torch::einsum("ghbd,gbd->bgh", {w1.index_select(2, block), u});
  }
  auto xd = x_t.to(torch::kFloat64);
  s.s1 = xd.sum(-1);
  s.s2 = xd.pow(2).sum(-1);
  return s;
}

FeedForwardNet::Constants FeedForwardNet::FirstLayerConstants() const {
  Constants k;
  k.c = torch::einsum("ghw,gw->gh", {fc1_weight, in_norm_weight});
  k.e = torch::einsum("ghw,gw->gh", {fc1_weight, in_norm_bias}) + fc1_bias;
  return k;
}

torch::Tensor FeedForwardNet::FirstLayerFromSums(const Sums& sums, const Constants& k) const {
  // LayerNorm statistics over all W_in elements (zeros of masked/padded/future blocks included):
  //   mu = s1 / W_in,  sigma = sqrt(s2 / W_in - mu^2 + eps)   (biased variance, as LayerNorm).
  const double n = static_cast<double>(in_width());
  auto mu = sums.s1 / n;
  auto var = (sums.s2 / n - mu * mu).clamp_min(0.0);
  auto rstd = (var + opt_.eps).rsqrt().to(sums.acc.scalar_type()).unsqueeze(-1).unsqueeze(-1);
  auto muf = mu.to(sums.acc.scalar_type()).unsqueeze(-1).unsqueeze(-1);
  //   W1 LN(v) + b1 = (W1 (gamma o v) - mu W1 gamma) / sigma + W1 beta + b1
  return (sums.acc - muf * k.c) * rstd + k.e;
}

torch::Tensor FeedForwardNet::Activate(const torch::Tensor& h) const {
  auto a = torch::leaky_relu(h, opt_.leaky_slope);
  return torch::layer_norm(a, {opt_.hidden}, {}, {}, opt_.eps) * hidden_norm_weight +
         hidden_norm_bias;
}

torch::Tensor FeedForwardNet::OutputBlocks(const torch::Tensor& z) const {
  const int64_t b = z.size(0), t = z.size(1), g = opt_.groups, o = opt_.out_dim;
  auto w2 = fc2_weight.view({g, opt_.out_blocks, o, opt_.hidden}).narrow(1, 0, t);
  auto b2 = fc2_bias.view({g, opt_.out_blocks, o}).narrow(1, 0, t).permute({1, 0, 2});
  auto y = torch::einsum("btgh,gtoh->btgo", {z, w2}) + b2;  // [B, T, G, O]
  return y.reshape({b, t, g * o});
}

torch::Tensor FeedForwardNet::OutputBlockAt(const torch::Tensor& z, const torch::Tensor& block,
                                            int64_t same_block) const {
  const int64_t b = z.size(0), g = opt_.groups, o = opt_.out_dim;
  auto w2 = fc2_weight.view({g, opt_.out_blocks, o, opt_.hidden});
  auto b2 = fc2_bias.view({g, opt_.out_blocks, o});
  torch::Tensor y;
  if (same_block >= 0) {
    y = torch::einsum("bgh,goh->bgo", {z, w2.select(1, same_block)}) + b2.select(1, same_block);
  } else {
    y = torch::einsum("bgh,gboh->bgo", {z, w2.index_select(1, block)}) +
        b2.index_select(1, block).permute({1, 0, 2});
  }
  return y.reshape({b, g * o});  // [B, G, O] -> [B, G*O]
}

int64_t FeedForwardHidden(FeedForwardFamily family, const std::string& size, int spec_hidden,
                          int64_t width) {
  if (spec_hidden > 0) return spec_hidden;
  const bool whole = family == FeedForwardFamily::kWhole;
  int64_t k = 0;
  if (size == "xs") k = whole ? 256 : 32;
  else if (size == "s") k = whole ? 128 : 16;
  else if (size == "m" || size.empty()) k = 8;
  else if (size == "l") k = whole ? 2 : 4;
  else
    throw std::invalid_argument("unknown feed-forward size '" + size + "' (xs, s, m, l)");
  return std::max<int64_t>(1, width / k);
}

// ---------------------------------------------------------------------------------------------
// FeedForwardState

void FeedForwardState::Select(const torch::Tensor& index) {
  auto idx = index.to(sums.acc.device(), torch::kLong);
  sums.acc = sums.acc.index_select(0, idx);
  sums.s1 = sums.s1.index_select(0, idx);
  sums.s2 = sums.s2.index_select(0, idx);
}

void FeedForwardState::Append(MixerState& other) {
  auto* o = dynamic_cast<FeedForwardState*>(&other);
  if (!o) throw std::invalid_argument("feed-forward mixer state: cannot append another kind");
  if (o->sums.acc.sizes().slice(1) != sums.acc.sizes().slice(1))
    throw std::invalid_argument("feed-forward mixer state: cannot append a state of another "
                                "shape (different mixer)");
  sums.acc = torch::cat({sums.acc, o->sums.acc.to(sums.acc.device())}, 0);
  sums.s1 = torch::cat({sums.s1, o->sums.s1.to(sums.s1.device())}, 0);
  sums.s2 = torch::cat({sums.s2, o->sums.s2.to(sums.s2.device())}, 0);
}

// ---------------------------------------------------------------------------------------------
// FeedForwardMixer

FeedForwardMixer::FeedForwardMixer(const MixerContext& ctx, std::string name, MixerRole role,
                                   FeedForwardFamily family)
    : TokenMixer(ctx), name_(std::move(name)), role_(role) {
  if (!ctx.model) throw std::invalid_argument(name_ + ": no model spec");
  const int64_t d = ctx.d_model(), len = ctx.max_len();
  if (d <= 0 || len <= 0)
    throw std::invalid_argument(Where() + ": d_model and max_len must be positive");
  if (role == MixerRole::kLayer && ctx.site != Site::kEncoderSelf)
    throw std::invalid_argument(Where() + ": replaces a whole encoder layer, so only "
                                "encoder_self is supported");
  FeedForwardNetOptions opt;
  opt.block_dim = d;
  opt.out_blocks = len;
  opt.in_blocks = ctx.site == Site::kDecoderCross ? 2 * len : len;
  if (family == FeedForwardFamily::kPerHead) {
    const int64_t heads = ctx.heads();
    if (heads <= 0 || d % heads != 0)
      throw std::invalid_argument(Where() + ": d_model " + std::to_string(d) +
                                  " is not divisible by heads " + std::to_string(heads));
    opt.groups = heads;
    opt.out_dim = d / heads;
  } else {
    opt.groups = 1;
    opt.out_dim = d;
  }
  try {
    opt.hidden = FeedForwardHidden(family, ctx.spec.size, ctx.spec.hidden, len * d);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(Where() + ": " + e.what());
  }
  net_ = register_module("net", std::make_shared<FeedForwardNet>(opt));
}

std::string FeedForwardMixer::Where() const {
  return name_ + " at " + SiteName(ctx_.site) + " layer " + std::to_string(ctx_.layer);
}

void FeedForwardMixer::CheckSequence(const torch::Tensor& x, const char* what) const {
  if (!x.defined() || x.dim() != 3 || x.size(2) != ctx_.d_model())
    throw std::invalid_argument(Where() + ": " + what + " must be [B, T, " +
                                std::to_string(ctx_.d_model()) + "]");
  if (x.size(1) > ctx_.max_len())
    throw std::invalid_argument(Where() + ": " + what + " of " + std::to_string(x.size(1)) +
                                " tokens exceeds max_len " + std::to_string(ctx_.max_len()));
}

torch::Tensor FeedForwardMixer::ApplyMask(const torch::Tensor& x, const torch::Tensor& mask) {
  if (!mask.defined()) return x;
  if (mask.dim() != 2 || mask.size(0) != x.size(0) || mask.size(1) != x.size(1))
    throw std::invalid_argument("mask must be [B, T] like its sequence");
  return x * mask.to(x.scalar_type()).unsqueeze(-1);
}

torch::Tensor FeedForwardMixer::Forward(const MixerInput& in) {
  CheckSequence(in.x, "sequence");
  torch::Tensor xm;
  try {
    xm = ApplyMask(in.x, in.mask);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(Where() + ": " + e.what());
  }
  auto maskf = in.mask.defined() ? in.mask.to(in.x.scalar_type()).unsqueeze(-1)
                                 : torch::ones({in.x.size(0), in.x.size(1), 1}, in.x.options());
  switch (ctx_.site) {
    case Site::kEncoderSelf: return ForwardBidirectional(xm, maskf);
    case Site::kDecoderSelf: return ForwardCausal(xm, maskf, nullptr);
    case Site::kDecoderCross: {
      auto mem = MemorySums(in.memory, in.memory_mask);
      if (mem.acc.size(0) != in.x.size(0))
        throw std::invalid_argument(Where() + ": memory batch differs from the sequence's");
      return ForwardCausal(xm, maskf, &mem);
    }
  }
  throw std::logic_error(Where() + ": unknown site");
}

torch::Tensor FeedForwardMixer::ForwardBidirectional(const torch::Tensor& xm,
                                                     const torch::Tensor& maskf) {
  const int64_t b = xm.size(0), t = xm.size(1), len = ctx_.max_len();
  // Zero-pad to max_len and flatten: [B, max_len * D].
  auto flat = torch::constant_pad_nd(xm, {0, 0, 0, len - t}).reshape({b, len * xm.size(2)});
  return net_->Full(flat).narrow(1, 0, t) * maskf;
}

torch::Tensor FeedForwardMixer::ForwardCausal(const torch::Tensor& xm, const torch::Tensor& maskf,
                                              const FeedForwardNet::Sums* prefix) {
  // Output i = network(input with every block > i zeroed), block i of its output. The first
  // layer of all T prefixes comes from running sums (docs/model/feedforward.md).
  const int64_t first = ctx_.site == Site::kDecoderCross ? ctx_.max_len() : 0;
  auto terms = net_->BlockTerms(xm, first);
  FeedForwardNet::Sums sums;
  sums.acc = terms.acc.cumsum(1);  // [B, T, G, H]
  sums.s1 = terms.s1.cumsum(1);    // [B, T]
  sums.s2 = terms.s2.cumsum(1);
  if (prefix) {  // the encoder half of the cross input: the same for every prefix
    sums.acc = sums.acc + prefix->acc.unsqueeze(1);
    sums.s1 = sums.s1 + prefix->s1.unsqueeze(1);
    sums.s2 = sums.s2 + prefix->s2.unsqueeze(1);
  }
  auto z = net_->Activate(net_->FirstLayerFromSums(sums, net_->FirstLayerConstants()));
  return net_->OutputBlocks(z) * maskf;
}

FeedForwardNet::Sums FeedForwardMixer::MemorySums(const torch::Tensor& memory,
                                                  const torch::Tensor& memory_mask) const {
  CheckSequence(memory, "encoder memory");
  torch::Tensor mm;
  try {
    mm = ApplyMask(memory, memory_mask);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(Where() + ": memory " + e.what());
  }
  auto terms = net_->BlockTerms(mm, 0);  // memory occupies blocks 0 .. max_len-1
  return {terms.acc.sum(1), terms.s1.sum(1), terms.s2.sum(1)};
}

std::unique_ptr<MixerState> FeedForwardMixer::InitState(const torch::Tensor& memory,
                                                        const torch::Tensor& memory_mask,
                                                        int64_t batch) {
  if (ctx_.site == Site::kEncoderSelf)
    throw std::logic_error(Where() + ": incremental decoding exists only at decoder sites");
  auto state = std::make_unique<FeedForwardState>();
  state->consts = net_->FirstLayerConstants();
  if (ctx_.site == Site::kDecoderCross) {
    state->sums = MemorySums(memory, memory_mask);
    if (state->sums.acc.size(0) != batch)
      throw std::invalid_argument(Where() + ": memory has " +
                                  std::to_string(state->sums.acc.size(0)) + " rows, expected " +
                                  std::to_string(batch));
  } else {
    const auto& p = net_->fc1_bias;
    state->sums.acc = torch::zeros({batch, p.size(0), p.size(1)}, p.options());
    state->sums.s1 = torch::zeros({batch}, p.options().dtype(torch::kFloat64));
    state->sums.s2 = torch::zeros({batch}, p.options().dtype(torch::kFloat64));
  }
  return state;
}

torch::Tensor FeedForwardMixer::Step(const torch::Tensor& x_t, const torch::Tensor& pos,
                                     MixerState& state) {
  if (ctx_.site == Site::kEncoderSelf)
    throw std::logic_error(Where() + ": incremental decoding exists only at decoder sites");
  auto* st = dynamic_cast<FeedForwardState*>(&state);
  if (!st) throw std::invalid_argument(Where() + ": state of another mixer");
  const int64_t rows = st->rows();
  if (!x_t.defined() || x_t.dim() != 2 || x_t.size(0) != rows || x_t.size(1) != ctx_.d_model())
    throw std::invalid_argument(Where() + ": step input must be [" + std::to_string(rows) +
                                ", " + std::to_string(ctx_.d_model()) + "]");
  if (!pos.defined() || pos.dim() != 1 || pos.size(0) != rows)
    throw std::invalid_argument(Where() + ": positions must be [" + std::to_string(rows) + "]");
  auto p = pos.to(net_->fc1_weight.device(), torch::kLong);
  int64_t same = -1;  // the position shared by every row, if it is shared
  if (rows > 0) {
    // One device-to-host copy for both bounds (a check that indexing stays in range).
    auto bounds = torch::stack({p.min(), p.max()}).cpu();
    const int64_t lo = bounds[0].item<int64_t>(), hi = bounds[1].item<int64_t>();
    if (lo == hi) same = lo;
    if (lo < 0 || hi >= ctx_.max_len())
      throw std::invalid_argument(Where() + ": position " + std::to_string(lo < 0 ? lo : hi) +
                                  " is outside 0.." + std::to_string(ctx_.max_len() - 1) +
                                  " (sequence exceeds max_len " +
                                  std::to_string(ctx_.max_len()) + ")");
  }
  const int64_t first = ctx_.site == Site::kDecoderCross ? ctx_.max_len() : 0;
  auto terms = net_->BlockTermsAt(x_t, p + first, same < 0 ? -1 : same + first);
  st->sums.acc = st->sums.acc + terms.acc;
  st->sums.s1 = st->sums.s1 + terms.s1;
  st->sums.s2 = st->sums.s2 + terms.s2;
  auto z = net_->Activate(net_->FirstLayerFromSums(st->sums, st->consts));
  return net_->OutputBlockAt(z, p, same);
}

}  // namespace mixserve::model
