#include "model/transformer.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "model/affine.h"
#include "model/cpu_linear.h"
#include "model/derived_weights.h"

namespace mixserve::model {
namespace {

namespace F = torch::nn::functional;
using torch::indexing::None;
using torch::indexing::Slice;

std::string Where(Site site, int layer) {
  return std::string(SiteName(site)) + " layer " + std::to_string(layer);
}

// pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(p / 10000^(2i/d)) ("interleaved"), or
// pe[p, i] = sin(p / 10000^(2i/d)) and pe[p, ceil(d/2) + i] = cos(p / 10000^(2i/d)) ("halves",
// MarianMT's layout, computed in double precision as transformers does before its fp32 cast).
torch::Tensor HalvesSinusoids(int max_len, int d) {
  const int half = (d + 1) / 2;
  auto pos = torch::arange(max_len, torch::kDouble).unsqueeze(1);
  auto freq = torch::pow(10000.0, torch::arange(0, d, 2, torch::kDouble) / d);  // [half]
  auto angle = pos / freq;
  auto pe = torch::cat({torch::sin(angle), torch::cos(angle).narrow(1, 0, d - half)}, 1);
  return pe.to(torch::kFloat);
}

torch::Tensor Sinusoids(int max_len, int d, const std::string& layout) {
  if (layout == "halves") return HalvesSinusoids(max_len, d);
  auto pos = torch::arange(max_len, torch::kFloat).unsqueeze(1);
  auto freq = torch::exp(torch::arange(0, d, 2, torch::kFloat) * (-std::log(10000.0) / d));
  auto angle = pos * freq;  // [max_len, ceil(d/2)]
  auto pe = torch::zeros({max_len, d});
  pe.index_put_({Slice(), Slice(0, None, 2)}, torch::sin(angle));
  pe.index_put_({Slice(), Slice(1, None, 2)}, torch::cos(angle).narrow(1, 0, d / 2));
  return pe;
}

// The feed-forward activation (ModelSpec::activation), in place where it can be.
torch::Tensor Activate(torch::Tensor h, const std::string& activation) {
  if (activation == "swish") return torch::silu_(h);
  if (activation == "gelu") return torch::gelu(h);
  return h.relu_();
}

// Position-wise feed-forward sub-block: y = x + drop(W2 act(W1 norm(x))) (pre-norm), or
// y = norm(x + drop(W2 act(W1 x))) (post-norm).
class FeedForwardImpl : public torch::nn::Module, public CpuPrecisionUser {
 public:
  FeedForwardImpl(int d, int ffn, float dropout, bool post_norm = false,
                  std::string activation = "relu")
      : post_(post_norm), activation_(std::move(activation)), norm_(register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})))),
        fc1_(register_module("fc1", torch::nn::Linear(d, ffn))),
        fc2_(register_module("fc2", torch::nn::Linear(ffn, d))),
        drop_(register_module("dropout", torch::nn::Dropout(dropout))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t d = x.size(-1);
    auto n = (post_ ? x : norm_(x)).reshape({d > 0 ? x.numel() / d : 0, d});  // rows
    if (CpuLinear::Applies(x) && !is_training()) {  // the packed products, a fresh output
      auto y = x.reshape({n.size(0), d}).clone(at::MemoryFormat::Contiguous);
      Cpu(n, y);
      y = y.view(x.sizes());
      return post_ ? norm_(y) : y;
    }
    torch::Tensor h;
    // Inference on CUDA: the ReLU in the first product's epilogue.
    if (relu() && x.is_cuda() && !is_training() && !torch::GradMode::is_enabled())
      h = at::_addmm_activation(fc1_->bias, n, fc1_->weight.t());
    else
      h = drop_(Activate(Affine(n, fc1_), activation_));
    auto y = x + drop_(Affine(h, fc2_)).view(x.sizes());
    return post_ ? norm_(y) : y;
  }
  // One decoding step ([B, D]) for inference, adding the sub-block's output to `x` in place
  // (`x` must be a tensor nothing else reads): two products in all. The first yields, after
  // fc1's columns, one more that is constantly 1 (a zero weight row with bias 1; 8 columns
  // with padding), and fc2's bias is that column's weight in the second product, which then
  // adds bias and residual as it writes into x (addmm_, beta 1). With gradients or dropout:
  // forward.
  torch::Tensor Step(torch::Tensor x) {
    if (torch::GradMode::is_enabled() || is_training()) return forward(x);
    auto n = post_ ? x : norm_(x);
    if (CpuLinear::Applies(x) && x.is_contiguous()) {
      Cpu(n, x);
      return post_ ? norm_(x) : x;
    }
    if (!relu()) {  // the constant column below would not survive another activation
      auto y = x.add_(Affine(Activate(Affine(n, fc1_), activation_), fc2_));
      return post_ ? norm_(y) : y;
    }
    const auto w = Augmented();
    auto h = at::_addmm_activation(w[1], n, w[0].t());
    auto y = x.addmm_(h, w[2].t());
    return post_ ? norm_(y) : y;
  }

 private:
  bool relu() const { return activation_ == "relu"; }
  bool post_;
  std::string activation_;
  static constexpr int64_t kOnes = 8;  // the constant column and its padding
  std::vector<torch::Tensor> Augmented() {
    return augmented_.Get({&fc1_->weight, &fc1_->bias, &fc2_->weight, &fc2_->bias}, [this] {
      const auto& w1 = fc1_->weight;  // [F, D]
      const auto& w2 = fc2_->weight;  // [D, F]
      auto one = torch::zeros({kOnes}, w1.options());
      one[0] = 1;
      auto w2_bias = torch::zeros({w2.size(0), kOnes}, w2.options());
      w2_bias.select(1, 0).copy_(fc2_->bias);
      return std::vector<torch::Tensor>{
          torch::cat({w1, torch::zeros({kOnes, w1.size(1)}, w1.options())}, 0),
          torch::cat({fc1_->bias, one}, 0), torch::cat({w2, w2_bias}, 1)};
    });
  }

  // On the CPU without gradients, in the model's CPU precision (model/cpu_linear.h):
  // y += W2 act(W1 n + b1) + b2 in place, n and y [rows, D], y contiguous; the ReLU in the
  // first product, bias and residual in the second.
  void Cpu(const torch::Tensor& n, torch::Tensor& y) {
    const auto fc = CpuProducts(
        cpu_, {&fc1_->weight, &fc1_->bias, &fc2_->weight, &fc2_->bias}, cpu_precision(),
        [this](CpuPrecision p) {
          return std::vector<CpuLinear>{CpuLinear(fc1_->weight, fc1_->bias, p),
                                        CpuLinear(fc2_->weight, fc2_->bias, p)};
        });
    auto h = relu() ? fc[0](n, /*relu=*/true) : Activate(fc[0](n), activation_);
    fc[1].AddTo(y, h);
  }

  torch::nn::LayerNorm norm_;
  torch::nn::Linear fc1_, fc2_;
  torch::nn::Dropout drop_;
  DerivedWeights augmented_;
  Derived<std::vector<CpuLinear>> cpu_;
};
TORCH_MODULE(FeedForward);

// One mixer site with the part of the residual block its role leaves to the layer:
//   kMixer: y = x + drop(mixer(norm(x)))   (owns the norm)
//   kBlock / kLayer: y = mixer(x)
//   post-norm kMixer: y = norm(x + drop(mixer(x)))
class MixerBlockImpl : public torch::nn::Module {
 public:
  MixerBlockImpl(int d, float dropout, bool post_norm = false)
      : d_(d), post_(post_norm), drop_(register_module("dropout", torch::nn::Dropout(dropout))) {}

  void SetMixer(std::shared_ptr<TokenMixer> m) {
    if (mixer_)
      mixer_ = replace_module("mixer", m);
    else
      mixer_ = register_module("mixer", m);
    const bool need_norm = m->role() == MixerRole::kMixer;
    if (need_norm && !norm_)
      norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_})));
    if (!need_norm && norm_) {
      unregister_module("norm");
      norm_ = nullptr;
    }
  }
  const std::shared_ptr<TokenMixer>& mixer() const { return mixer_; }
  MixerRole role() const { return mixer_->role(); }

  // `in.x` is the block input; fills the mixer/block pairs of `act` when given.
  torch::Tensor Forward(const MixerInput& in, SiteActivations* act) {
    if (role() != MixerRole::kMixer) {
      auto y = mixer_->Forward(in);
      if (act) {
        act->mixer_in = in;
        act->mixer_out = y;
        act->block_in = in.x;
        act->block_out = y;
      }
      return y;
    }
    MixerInput mi = in;
    if (!post_) mi.x = norm_(in.x);
    auto out = mixer_->Forward(mi);
    auto y = in.x + drop_(out);
    if (post_) y = norm_(y);
    if (act) {
      act->mixer_in = mi;
      act->mixer_out = out;
      act->block_in = in.x;
      act->block_out = y;
    }
    return y;
  }

  torch::Tensor Step(const torch::Tensor& x, const torch::Tensor& pos, MixerState& state) {
    if (role() != MixerRole::kMixer) return mixer_->Step(x, pos, state);
    // (Dropout in eval mode returns its input, but as one more operator of every step.)
    auto drop = [&](const torch::Tensor& t) { return is_training() ? drop_(t) : t; };
    if (post_) return norm_(x + drop(mixer_->Step(x, pos, state)));
    return x + drop(mixer_->Step(norm_(x), pos, state));
  }

 private:
  int d_;
  bool post_;
  std::shared_ptr<TokenMixer> mixer_;
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Dropout drop_;
};
TORCH_MODULE(MixerBlock);

std::shared_ptr<TokenMixer> MakeMixer(const ModelSpec& spec, Site site, int layer,
                                      const MixerSpec& ms) {
  MixerContext ctx{&spec, site, layer, ms};
  auto m = MixerRegistry::Get().Create(ctx);
  if (m->role() == MixerRole::kLayer && site != Site::kEncoderSelf)
    throw std::invalid_argument("mixer '" + ms.type + "' replaces a whole layer and fits only "
                                "encoder_self, not " + Where(site, layer));
  return m;
}

class EncoderLayerImpl : public torch::nn::Module {
 public:
  explicit EncoderLayerImpl(const ModelSpec& spec)
      : d_(spec.d_model), ffn_dim_(spec.ffn_dim), dropout_(spec.dropout),
        post_(spec.norm == "post"), activation_(spec.activation),
        self_(register_module("self", MixerBlock(spec.d_model, spec.dropout, post_))) {}
  void SetMixer(std::shared_ptr<TokenMixer> m) {
    self_->SetMixer(std::move(m));
    const bool need_ffn = self_->role() != MixerRole::kLayer;
    if (need_ffn && !ffn_)
      ffn_ = register_module("ffn", FeedForward(d_, ffn_dim_, dropout_, post_, activation_));
    if (!need_ffn && ffn_) {
      unregister_module("ffn");
      ffn_ = nullptr;
    }
  }
  torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& mask, int layer,
                        const SiteTap& tap) {
    SiteActivations act{Site::kEncoderSelf, layer, {}, {}, {}, {}, {}, {}};
    auto h = self_->Forward(MixerInput{x, mask, {}, {}}, tap ? &act : nullptr);
    auto y = ffn_ ? ffn_(h) : h;
    if (tap) {
      act.layer_in = x;
      act.layer_out = y;
      tap(act);
    }
    return y;
  }
  MixerBlock& self() { return self_; }
  const MixerBlock& self() const { return self_; }
  const FeedForward& ffn() const { return ffn_; }

 private:
  int d_, ffn_dim_;
  float dropout_;
  bool post_;
  std::string activation_;
  MixerBlock self_;
  FeedForward ffn_{nullptr};
};
TORCH_MODULE(EncoderLayer);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const ModelSpec& spec)
      : self_(register_module("self",
                              MixerBlock(spec.d_model, spec.dropout, spec.norm == "post"))),
        cross_(register_module("cross",
                               MixerBlock(spec.d_model, spec.dropout, spec.norm == "post"))),
        ffn_(register_module("ffn", FeedForward(spec.d_model, spec.ffn_dim, spec.dropout,
                                                spec.norm == "post", spec.activation))) {}
  torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& mask, const Encoded& enc,
                        int layer, const SiteTap& tap) {
    SiteActivations a{Site::kDecoderSelf, layer, {}, {}, {}, {}, {}, {}};
    auto h = self_->Forward(MixerInput{x, mask, {}, {}}, tap ? &a : nullptr);
    if (tap) tap(a);
    SiteActivations c{Site::kDecoderCross, layer, {}, {}, {}, {}, {}, {}};
    h = cross_->Forward(MixerInput{h, mask, enc.memory, enc.mask}, tap ? &c : nullptr);
    if (tap) tap(c);
    return ffn_(h);
  }
  MixerBlock& block(Site site) { return site == Site::kDecoderSelf ? self_ : cross_; }
  const MixerBlock& block(Site site) const {
    return site == Site::kDecoderSelf ? self_ : cross_;
  }
  FeedForward& ffn() { return ffn_; }
  const FeedForward& ffn() const { return ffn_; }

 private:
  MixerBlock self_, cross_;
  FeedForward ffn_;
};
TORCH_MODULE(DecoderLayer);

int64_t Count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// Per-row mixer states of every decoder layer plus each row's next position. Positions are
// kept on the CPU (checks without device syncs) and on the model's device (mixer input).
class DecoderStateImpl : public DecoderState {
 public:
  std::vector<std::unique_ptr<MixerState>> self, cross;
  torch::Tensor pos_cpu, pos_dev;
  // Identity of this state for StepGraphs (which graph's memory its tensors may point into).
  std::shared_ptr<const void> id = std::make_shared<int>(0);
  bool complete = false;  // every mixer state lists all its tensors (ReplaceRows)

  int64_t rows() const override { return pos_cpu.size(0); }
  torch::Tensor positions() const override { return pos_cpu; }
  // The tensors a step reads or replaces (model/step_graphs.h).
  std::vector<torch::Tensor*> Tensors() {
    std::vector<torch::Tensor*> t{&pos_dev};
    for (size_t i = 0; i < self.size(); ++i)
      for (auto* list : {&self, &cross})
        for (auto* x : (*list)[i]->Tensors()) t.push_back(x);
    return t;
  }
  void Select(const torch::Tensor& index) override {
    auto cpu = index.to(torch::kCPU, torch::kLong);
    if (cpu.numel() > 0 &&
        (cpu.min().item<int64_t>() < 0 || cpu.max().item<int64_t>() >= rows()))
      throw std::out_of_range("DecoderState::Select: index out of range for " +
                              std::to_string(rows()) + " rows");
    auto dev = cpu.to(pos_dev.device());
    pos_cpu = pos_cpu.index_select(0, cpu);
    pos_dev = pos_dev.index_select(0, dev);
    for (auto& s : self) s->Select(dev);
    for (auto& s : cross) s->Select(dev);
  }
  // `rows` (to be replaced by `n` new rows) exist in this state.
  void CheckRows(const std::vector<int64_t>& rows, int64_t n) const {
    if (static_cast<int64_t>(rows.size()) != n)
      throw std::invalid_argument("DecoderState::ReplaceRows: " + std::to_string(rows.size()) +
                                  " rows to replace by " + std::to_string(n));
    for (int64_t r : rows)
      if (r < 0 || r >= this->rows())
        throw std::out_of_range("DecoderState::ReplaceRows: row " + std::to_string(r) +
                                " of " + std::to_string(this->rows()));
  }
  bool ReplaceRows(const std::vector<int64_t>& rows, DecoderState& other) override {
    auto* o = dynamic_cast<DecoderStateImpl*>(&other);
    if (!o || o->self.size() != self.size())
      throw std::invalid_argument("DecoderState::ReplaceRows: state of another model");
    if (!o->complete) {
      CheckRows(rows, o->rows());
      return false;
    }
    std::vector<torch::Tensor> theirs;
    for (auto* t : o->Tensors()) theirs.push_back(*t);
    return ReplaceRowsWith(rows, theirs, o->pos_cpu);
  }
  // Whether rows can be replaced in place at all: every mixer state lists all its tensors,
  // and no tensor's rows share memory (an expanded one).
  bool TakesRowsInPlace() {
    if (!complete) return false;
    for (auto* t : Tensors())
      if (!t->is_non_overlapping_and_dense()) return false;
    return true;
  }
  // ReplaceRows from tensors in the order of Tensors() (another state's, or a start graph's
  // results) and their rows' positions.
  bool ReplaceRowsWith(const std::vector<int64_t>& rows, const std::vector<torch::Tensor>& theirs,
                       const torch::Tensor& their_pos_cpu) {
    CheckRows(rows, their_pos_cpu.size(0));
    if (!TakesRowsInPlace()) return false;
    auto mine = Tensors();
    if (mine.size() != theirs.size()) return false;
    for (size_t i = 0; i < mine.size(); ++i) {
      const auto& a = *mine[i];
      const auto& b = theirs[i];
      if (a.scalar_type() != b.scalar_type() || a.device() != b.device() ||
          a.dim() != b.dim() || a.sizes().slice(1) != b.sizes().slice(1) ||
          b.size(0) != static_cast<int64_t>(rows.size()))
        return false;
    }
    const auto index_cpu = torch::tensor(rows, torch::kLong);
    const auto index = index_cpu.to(pos_dev.device());
    for (size_t i = 0; i < mine.size(); ++i) mine[i]->index_copy_(0, index, theirs[i]);
    pos_cpu.index_copy_(0, index_cpu, their_pos_cpu);
    return true;
  }
  void Append(DecoderState& other) override {
    auto* o = dynamic_cast<DecoderStateImpl*>(&other);
    if (!o || o->self.size() != self.size())
      throw std::invalid_argument("DecoderState::Append: state of another model");
    // All or nothing: when a layer's Append fails (out of memory, a state of another mixer),
    // the layers that already took the new rows keep only the old ones again, so that the
    // rows already decoding go on as if nothing had happened.
    const auto old_cpu = pos_cpu, old_dev = pos_dev;
    try {
      pos_cpu = torch::cat({pos_cpu, o->pos_cpu});
      pos_dev = torch::cat({pos_dev, o->pos_dev});
      for (size_t i = 0; i < self.size(); ++i) {
        self[i]->Append(*o->self[i]);
        cross[i]->Append(*o->cross[i]);
      }
    } catch (...) {
      pos_cpu = old_cpu;
      pos_dev = old_dev;
      auto keep = torch::arange(old_cpu.size(0), torch::TensorOptions(torch::kLong).device(old_dev.device()));
      for (auto& s : self) s->Select(keep);  // no-op copy for the layers not reached
      for (auto& s : cross) s->Select(keep);
      throw;
    }
  }
};

}  // namespace

struct TransformerImpl::Layers {
  torch::nn::Embedding src_embed{nullptr}, tgt_embed{nullptr};  // the same when shared
  torch::nn::Linear out_proj{nullptr};                           // only when not shared
  torch::Tensor pe;                                              // [max_len, d] buffer
  torch::nn::Dropout drop{nullptr};
  std::vector<EncoderLayer> enc;
  std::vector<DecoderLayer> dec;
  torch::nn::LayerNorm enc_norm{nullptr}, dec_norm{nullptr};  // pre-norm models only
  torch::Tensor logits_bias;  // [V] buffer with ModelSpec::final_logits_bias
  // [V]: 0, or -inf at ModelSpec::decoding.suppressed_tokens, added to each step's
  // log-probabilities; moved to the model's device before a step (never inside a graph's
  // capture). Undefined without suppressed tokens.
  torch::Tensor suppress;
  bool scale = true;  // ModelSpec::scale_embeddings
  Derived<CpuLinear> out_cpu;  // the output projection (and logits bias) for the CPU
  DerivedWeights scaled_src, scaled_tgt;  // embedding tables times sqrt(d), for inference
                                          // (scaled_tgt only, when shared)

  // e(tokens) * sqrt(d): without gradients from a table with the factor folded in (one
  // operator less in each decoding step and start).
  torch::Tensor Embed(torch::nn::Embedding& e, DerivedWeights& scaled,
                      const torch::Tensor& tokens, int64_t d) {
    if (!scale) return e(tokens);
    const double factor = std::sqrt(static_cast<double>(d));
    if (torch::GradMode::is_enabled()) return e(tokens) * factor;
    auto table = scaled.Get({&e->weight}, [&] {
      return std::vector<torch::Tensor>{e->weight * factor};
    });
    return F::embedding(tokens, table[0]);
  }
};

TransformerImpl::TransformerImpl(const ModelSpec& spec)
    : spec_(spec), layers_(std::make_shared<Layers>()) {
  const std::string err = ValidateSpec(spec_);
  if (!err.empty()) throw std::invalid_argument("invalid model spec: " + err);
  auto& L = *layers_;
  const int d = spec_.d_model;
  auto make_embed = [&](const char* name) {
    auto e = register_module(name, torch::nn::Embedding(spec_.vocab_size, d));
    torch::NoGradGuard ng;
    e->weight.normal_(0, std::pow(d, -0.5));
    return e;
  };
  if (spec_.share_embeddings) {
    L.src_embed = L.tgt_embed = make_embed("embed");
  } else {
    L.src_embed = make_embed("src_embed");
    L.tgt_embed = make_embed("tgt_embed");
    L.out_proj = register_module(
        "out_proj", torch::nn::Linear(torch::nn::LinearOptions(d, spec_.vocab_size).bias(false)));
  }
  L.pe = register_buffer("positions", Sinusoids(spec_.max_len, d, spec_.positions));
  L.scale = spec_.scale_embeddings;
  if (spec_.final_logits_bias)
    L.logits_bias = register_buffer("final_logits_bias", torch::zeros({spec_.vocab_size}));
  if (!spec_.decoding.suppressed_tokens.empty()) {
    L.suppress = torch::zeros({spec_.vocab_size});
    for (int t : spec_.decoding.suppressed_tokens)
      L.suppress[t] = -std::numeric_limits<float>::infinity();
  }
  L.drop = register_module("dropout", torch::nn::Dropout(spec_.dropout));
  auto enc_list = register_module("encoder", torch::nn::ModuleList());
  for (size_t i = 0; i < spec_.encoder.size(); ++i) {
    EncoderLayer layer(spec_);
    layer->SetMixer(MakeMixer(spec_, Site::kEncoderSelf, i, spec_.encoder[i].self));
    enc_list->push_back(layer);
    L.enc.push_back(layer);
  }
  auto dec_list = register_module("decoder", torch::nn::ModuleList());
  for (size_t i = 0; i < spec_.decoder.size(); ++i) {
    DecoderLayer layer(spec_);
    layer->block(Site::kDecoderSelf)
        ->SetMixer(MakeMixer(spec_, Site::kDecoderSelf, i, spec_.decoder[i].self));
    layer->block(Site::kDecoderCross)
        ->SetMixer(MakeMixer(spec_, Site::kDecoderCross, i, spec_.decoder[i].cross));
    dec_list->push_back(layer);
    L.dec.push_back(layer);
  }
  if (spec_.norm == "pre") {  // post-norm layers end normalised
    L.enc_norm = register_module("encoder_norm",
                                 torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    L.dec_norm = register_module("decoder_norm",
                                 torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  }
}

namespace {
void CheckTokens(const torch::Tensor& t, const ModelSpec& spec, const char* what) {
  if (t.dim() != 2)
    throw std::invalid_argument(std::string(what) + " must be [batch, length], got " +
                                std::to_string(t.dim()) + " dimensions");
  if (t.size(1) > spec.max_len)
    throw std::invalid_argument(std::string(what) + " length " + std::to_string(t.size(1)) +
                                " exceeds the model's max_len " +
                                std::to_string(spec.max_len));
}
}  // namespace

Encoded TransformerImpl::Encode(const torch::Tensor& src) {
  CheckTokens(src, spec_, "source");
  auto& L = *layers_;
  const auto mask = src.ne(spec_.ids.pad);
  auto x = L.Embed(L.src_embed, spec_.share_embeddings ? L.scaled_tgt : L.scaled_src, src,
                   spec_.d_model) +
           L.pe.narrow(0, 0, src.size(1)).to(L.src_embed->weight.scalar_type());
  x = L.drop(x);
  for (size_t i = 0; i < L.enc.size(); ++i) x = L.enc[i]->Forward(x, mask, i, tap_);
  return Encoded{L.enc_norm ? L.enc_norm(x) : x, mask};
}

torch::Tensor TransformerImpl::DecodeFull(const torch::Tensor& tgt_in, const Encoded& enc) {
  CheckTokens(tgt_in, spec_, "target");
  auto& L = *layers_;
  // Key padding; the first input is the decoder start token, never padding (MarianMT's start
  // token is its pad token).
  auto mask = tgt_in.ne(spec_.ids.pad);
  if (mask.size(1) > 0) mask.select(1, 0).fill_(true);
  auto x = L.Embed(L.tgt_embed, L.scaled_tgt, tgt_in, spec_.d_model) +
           L.pe.narrow(0, 0, tgt_in.size(1)).to(L.tgt_embed->weight.scalar_type());
  x = L.drop(x);
  for (size_t i = 0; i < L.dec.size(); ++i) x = L.dec[i]->Forward(x, mask, enc, i, tap_);
  return Logits(L.dec_norm ? L.dec_norm(x) : x);
}

torch::Tensor TransformerImpl::Logits(const torch::Tensor& x) {
  auto& L = *layers_;
  const auto& w = L.out_proj ? L.out_proj->weight : L.tgt_embed->weight;
  if (CpuLinear::Applies(x)) {
    const auto& b = L.logits_bias;
    return CpuProducts(L.out_cpu, {&w, b.defined() ? &b : &w}, cpu_precision_,
                       [&](CpuPrecision p) { return CpuLinear(w, b, p); })(x);
  }
  return Affine(x, w, L.logits_bias);
}

torch::Tensor TransformerImpl::Forward(const torch::Tensor& src, const torch::Tensor& tgt_in) {
  return DecodeFull(tgt_in, Encode(src));
}

std::unique_ptr<DecoderState> TransformerImpl::InitDecoder(const Encoded& enc) {
  auto s = std::make_unique<DecoderStateImpl>();
  s->complete = DecoderCapturable();
  InitMixerStates(enc, *s);
  s->pos_cpu = torch::zeros({enc.memory.size(0)}, torch::kLong);
  s->pos_dev = s->pos_cpu.to(enc.memory.device());
  return s;
}

void TransformerImpl::InitMixerStates(const Encoded& encoded, DecoderState& state) {
  auto& L = *layers_;
  auto& s = static_cast<DecoderStateImpl&>(state);
  Encoded enc = encoded;
  const int64_t b = enc.memory.size(0), pad = spec_.max_len - enc.memory.size(1);
  if (graphs_ && pad > 0) {  // fixed shapes: memory of max_len positions, padding masked
    enc.memory = F::pad(enc.memory, F::PadFuncOptions({0, 0, 0, pad}));
    enc.mask = F::pad(enc.mask, F::PadFuncOptions({0, pad}));
  }
  for (auto& layer : L.dec) {
    s.self.push_back(
        layer->block(Site::kDecoderSelf)->mixer()->InitState(enc.memory, enc.mask, b));
    s.cross.push_back(
        layer->block(Site::kDecoderCross)->mixer()->InitState(enc.memory, enc.mask, b));
  }
}

std::unique_ptr<DecoderState> TransformerImpl::EmptyDecoder() {
  const auto& w = layers_->tgt_embed->weight;
  return InitDecoder(Encoded{torch::zeros({0, 1, spec_.d_model}, w.options()),
                             torch::zeros({0, 1}, w.options().dtype(torch::kBool))});
}

namespace {
// Each row `width` times in a row.
torch::Tensor RepeatRows(const torch::Tensor& t, int64_t width) {
  if (width == 1) return t;
  auto shape = t.sizes().vec();
  auto expanded = shape;
  expanded.insert(expanded.begin() + 1, width);
  shape[0] *= width;
  return t.unsqueeze(1).expand(expanded).reshape(shape);
}
}  // namespace

std::vector<torch::Tensor> TransformerImpl::StartFromGraph(const torch::Tensor& src,
                                                           int64_t width) {
  if (!starts_ || !graphable_ || !src.is_cuda() || torch::GradMode::is_enabled()) return {};
  return starts_->Run(src, width, spec_.max_len, spec_.ids.pad, spec_.ids.eos,
                      [&](const torch::Tensor& s) {
                        auto st = StartState(s, width, /*graph=*/true);
                        std::vector<torch::Tensor> out;
                        for (auto* t : static_cast<DecoderStateImpl&>(*st).Tensors())
                          out.push_back(*t);
                        return out;
                      });
}

std::unique_ptr<DecoderState> TransformerImpl::StartState(const torch::Tensor& src,
                                                          int64_t width, bool graph) {
  auto enc = Encode(src);
  enc.memory = RepeatRows(enc.memory, width);
  enc.mask = RepeatRows(enc.mask, width);
  auto st = std::make_unique<DecoderStateImpl>();
  st->complete = DecoderCapturable();
  InitMixerStates(enc, *st);
  // In a graph the positions are created on the device (no copy from the host there).
  st->pos_dev = graph ? torch::zeros({enc.memory.size(0)},
                                     torch::TensorOptions(torch::kLong).device(src.device()))
                      : torch::zeros({enc.memory.size(0)}, torch::kLong).to(src.device());
  st->pos_cpu = torch::zeros({enc.memory.size(0)}, torch::kLong);
  return st;
}

std::unique_ptr<DecoderState> TransformerImpl::StateOfViews(
    const std::vector<torch::Tensor>& views) {
  auto rows = EmptyDecoder();
  auto& r = static_cast<DecoderStateImpl&>(*rows);
  auto slots = r.Tensors();
  if (slots.size() != views.size())
    throw std::logic_error("the start graph's state has " + std::to_string(views.size()) +
                           " tensors, the model's " + std::to_string(slots.size()));
  for (size_t i = 0; i < slots.size(); ++i) *slots[i] = views[i];
  r.pos_cpu = torch::zeros({views[0].size(0)}, torch::kLong);
  return rows;
}

void TransformerImpl::AppendSources(DecoderState& state, const torch::Tensor& src,
                                    int64_t width) {
  if (!dynamic_cast<DecoderStateImpl*>(&state))
    throw std::invalid_argument("AppendSources: state of another model");
  if (width < 1) throw std::invalid_argument("AppendSources: width must be at least 1");
  CheckTokens(src, spec_, "source");
  auto views = StartFromGraph(src, width);
  // From a graph: a state of these mixers over no rows takes the graph's results, for Append
  // to copy.
  state.Append(views.empty() ? *StartState(src, width, /*graph=*/false) : *StateOfViews(views));
}

std::unique_ptr<DecoderState> TransformerImpl::ReplaceRowsWithSources(
    DecoderState& state, const std::vector<int64_t>& rows, const torch::Tensor& src) {
  auto* s = dynamic_cast<DecoderStateImpl*>(&state);
  if (!s) throw std::invalid_argument("ReplaceRowsWithSources: state of another model");
  CheckTokens(src, spec_, "source");
  s->CheckRows(rows, src.size(0));
  auto views = StartFromGraph(src, 1);
  if (views.empty()) {
    auto fresh = StartState(src, 1, /*graph=*/false);
    if (state.ReplaceRows(rows, *fresh)) return nullptr;
    return fresh;
  }
  // Straight from the start graph's results into the rows: no state built for them.
  if (s->ReplaceRowsWith(rows, views, torch::zeros({src.size(0)}, torch::kLong))) return nullptr;
  return StateOfViews(views);
}

bool TransformerImpl::DecoderCapturable() const {
  for (const auto& layer : layers_->dec)
    for (Site site : {Site::kDecoderSelf, Site::kDecoderCross})
      if (!layer->block(site)->mixer()->StepCapturable()) return false;
  return true;
}

bool TransformerImpl::EnableStepGraphs(bool on) {
  graphs_ = on ? std::make_shared<StepGraphs>() : nullptr;
  greedy_graphs_ = on ? std::make_shared<StepGraphs>() : nullptr;
  starts_ = on ? std::make_shared<StartGraphs>() : nullptr;
  graphable_ = on && StepGraphs::Available() && DecoderCapturable();
  return graphable_;
}

int64_t TransformerImpl::captured_step_graphs() const {
  return graphs_ ? graphs_->captured() + greedy_graphs_->captured() : 0;
}

int64_t TransformerImpl::captured_start_graphs() const {
  return starts_ ? starts_->captured() : 0;
}

torch::Tensor TransformerImpl::DecodeStep(const torch::Tensor& tokens, DecoderState& state) {
  bool graphed = false;
  auto logp = RunStep(tokens, state, /*greedy=*/false, graphed);
  return graphed ? logp.clone() : logp;  // a graph's output is overwritten by its next replay
}

TransformerImpl::Best TransformerImpl::GreedyStep(const torch::Tensor& tokens,
                                                  DecoderState& state) {
  return LaunchGreedyStep(tokens, state).Wait();
}

TransformerImpl::LaunchedStep TransformerImpl::LaunchGreedyStep(const torch::Tensor& tokens,
                                                                DecoderState& state) {
  bool graphed = false;
  LaunchedStep out;
  torch::Tensor best;  // [rows, 2]: log-probability, token; one copy to the host
  if (spec_.vocab_size > (1 << 24)) {
    // Token ids beyond fp32's exact integers: in fp64 (exact up to 2^53).
    auto m = RunStep(tokens, state, /*greedy=*/false, graphed).max(-1);
    out.next_ = std::get<1>(m);
    best = torch::stack({std::get<0>(m).to(torch::kDouble), std::get<1>(m).to(torch::kDouble)}, 1);
  } else {
    best = RunStep(tokens, state, /*greedy=*/true, graphed);  // tokens exact in fp32
    out.next_ = best.select(1, 1);
  }
  // A graph's output: copied before the graph's next replay, which the stream orders after.
  out.copy_ = HostCopy(best);
  return out;
}

TransformerImpl::Best TransformerImpl::LaunchedStep::Wait() {
  const auto& h = copy_.Wait();
  return Best{h.select(1, 1).to(torch::kLong), h.select(1, 0).to(torch::kFloat).contiguous()};
}

torch::Device TransformerImpl::device() const { return layers_->tgt_embed->weight.device(); }

torch::Tensor TransformerImpl::RunStep(const torch::Tensor& tokens, DecoderState& state,
                                       bool greedy, bool& graphed) {
  const char* what = greedy ? "GreedyStep" : "DecodeStep";
  auto* s = dynamic_cast<DecoderStateImpl*>(&state);
  if (!s) throw std::invalid_argument(std::string(what) + ": state of another model");
  if (tokens.dim() != 1 || tokens.size(0) != s->rows())
    throw std::invalid_argument(std::string(what) + ": expected " + std::to_string(s->rows()) +
                                " tokens (one per row), got shape " +
                                std::to_string(tokens.numel()));
  if (s->rows() > 0 && s->pos_cpu.max().item<int64_t>() >= spec_.max_len)
    throw std::invalid_argument(std::string(what) + ": a row would exceed the model's max_len " +
                                std::to_string(spec_.max_len));
  auto& L = *layers_;
  // Everything below reads the state only on the device (a graph replays it).
  auto step = [&](const torch::Tensor& tok) {
    auto x = L.Embed(L.tgt_embed, L.scaled_tgt, tok, spec_.d_model) +
             L.pe.index_select(0, s->pos_dev).to(L.tgt_embed->weight.scalar_type());
    if (is_training()) x = L.drop(x);
    for (size_t i = 0; i < L.dec.size(); ++i) {
      x = L.dec[i]->block(Site::kDecoderSelf)->Step(x, s->pos_dev, *s->self[i]);
      x = L.dec[i]->block(Site::kDecoderCross)->Step(x, s->pos_dev, *s->cross[i]);
      // A mixer's residual sum is a new tensor the feed-forward may overwrite; a block
      // replacement's output is left to the mixer.
      if (L.dec[i]->block(Site::kDecoderCross)->role() == MixerRole::kMixer)
        x = L.dec[i]->ffn()->Step(x);
      else
        x = L.dec[i]->ffn()->forward(x);
    }
    auto logits = Logits(L.dec_norm ? L.dec_norm(x) : x);
    s->pos_dev = s->pos_dev + 1;
    auto logp = torch::log_softmax(logits, -1, torch::kFloat);  // fp32, one operator
    // Suppressed tokens after the softmax, as transformers' logits processors do: the other
    // tokens' log-probabilities keep the suppressed ones' share.
    if (L.suppress.defined()) logp = logp + L.suppress;
    if (!greedy) return logp;
    auto best = logp.max(-1);
    return torch::stack({std::get<0>(best), std::get<1>(best).to(torch::kFloat)}, 1);
  };
  const auto device = L.tgt_embed->weight.device();
  if (L.suppress.defined() && L.suppress.device() != device) L.suppress = L.suppress.to(device);
  torch::Tensor out;
  graphed = graphable_ && device.is_cuda() && !torch::GradMode::is_enabled() && s->rows() > 0;
  if (graphed)
    out = (greedy ? greedy_graphs_ : graphs_)->Run(tokens, s->Tensors(), step, s->id);
  else
    out = step(tokens.to(device, torch::kLong));  // (a previous step's best are fp32)
  s->pos_cpu = s->pos_cpu + 1;
  return out;
}

std::shared_ptr<TokenMixer> TransformerImpl::mixer(Site site, int layer) const {
  const auto& L = *layers_;
  if (site == Site::kEncoderSelf) {
    if (layer < 0 || layer >= static_cast<int>(L.enc.size()))
      throw std::out_of_range("no encoder layer " + std::to_string(layer));
    return L.enc[layer]->self()->mixer();
  }
  if (layer < 0 || layer >= static_cast<int>(L.dec.size()))
    throw std::out_of_range("no decoder layer " + std::to_string(layer));
  return L.dec[layer]->block(site)->mixer();
}

void TransformerImpl::ReplaceMixer(Site site, int layer, std::shared_ptr<TokenMixer> m,
                                   const MixerSpec& ms) {
  auto& L = *layers_;
  mixer(site, layer);  // range check
  if (!m) throw std::invalid_argument("ReplaceMixer: null mixer at " + Where(site, layer));
  if (!MixerRegistry::Get().Supports(ms.type, site))
    throw std::invalid_argument("mixer '" + ms.type + "' does not support " +
                                Where(site, layer));
  if (m->role() == MixerRole::kLayer && site != Site::kEncoderSelf)
    throw std::invalid_argument("mixer '" + ms.type + "' replaces a whole layer and fits only "
                                "encoder_self, not " + Where(site, layer));
  // The new mixer lives where the model lives.
  auto params = parameters();
  if (!params.empty()) m->to(params[0].device(), params[0].scalar_type());
  if (site == Site::kEncoderSelf) {
    L.enc[layer]->SetMixer(m);
    spec_.encoder[layer].self = ms;
  } else {
    L.dec[layer]->block(site)->SetMixer(m);
    (site == Site::kDecoderSelf ? spec_.decoder[layer].self : spec_.decoder[layer].cross) = ms;
  }
  if (graphs_) EnableStepGraphs(true);  // graphs of the old mixer are dropped
  SetCpuPrecision(cpu_precision_);      // the new mixer's products in the model's precision
}

void TransformerImpl::SetCpuPrecision(CpuPrecision p) {
  cpu_precision_ = p;
  for (const auto& m : modules(/*include_self=*/false))
    if (auto* u = dynamic_cast<CpuPrecisionUser*>(m.get())) u->SetCpuPrecision(p);
}

int64_t TransformerImpl::ParameterCount() const { return Count(*this); }

std::vector<TransformerImpl::PartParameters> TransformerImpl::ParameterBreakdown() const {
  const auto& L = *layers_;
  std::vector<PartParameters> out;
  int64_t embed = Count(*L.src_embed);
  if (!spec_.share_embeddings) embed += Count(*L.tgt_embed) + Count(*L.out_proj);
  out.push_back({"embeddings", "", embed});
  for (size_t i = 0; i < L.enc.size(); ++i) {
    const std::string p = "encoder." + std::to_string(i);
    out.push_back({p + ".self", spec_.encoder[i].self.type, Count(*L.enc[i]->self())});
    if (L.enc[i]->ffn()) out.push_back({p + ".ffn", "", Count(*L.enc[i]->ffn())});
  }
  for (size_t i = 0; i < L.dec.size(); ++i) {
    const std::string p = "decoder." + std::to_string(i);
    out.push_back({p + ".self", spec_.decoder[i].self.type,
                   Count(*L.dec[i]->block(Site::kDecoderSelf))});
    out.push_back({p + ".cross", spec_.decoder[i].cross.type,
                   Count(*L.dec[i]->block(Site::kDecoderCross))});
    out.push_back({p + ".ffn", "", Count(*L.dec[i]->ffn())});
  }
  if (L.enc_norm) out.push_back({"final_norms", "", Count(*L.enc_norm) + Count(*L.dec_norm)});
  return out;
}

}  // namespace mixserve::model
