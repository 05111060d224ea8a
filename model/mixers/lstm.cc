// lstm: the multi-head LSTM mixer of FAR (arXiv 2505.21535). D is split into h heads of
// head_dim = D / h features; each head runs its own LSTM over its slice (heads never mix),
// the heads' outputs are concatenated and projected D -> D. Details: docs/model/lstm.md.
//   encoder self: bidirectional; per head a forward and a backward LSTM, each with hidden
//                 head_dim / 2, outputs concatenated [forward, backward]. The backward LSTM
//                 reads each sentence from its own last real token (reversal by length).
//   decoder self: unidirectional, hidden head_dim; decoding carries (h, c) per row and head.
//   decoder cross: not supported (an LSTM has no natural way to read another sequence).
// Padding must be trailing (real tokens first), as everywhere in mixserve.
#include <stdexcept>
#include <string>
#include <vector>

#include "model/token_mixer.h"

namespace mixserve::model {
namespace {

// (h, c) of every row and head: [B, heads, head_dim] each.
class LstmState : public MixerState {
 public:
  torch::Tensor h, c;
  void Select(const torch::Tensor& index) override {
    const auto i = index.to(h.device());
    h = h.index_select(0, i);
    c = c.index_select(0, i);
  }
  void Append(MixerState& other) override {
    auto* o = dynamic_cast<LstmState*>(&other);
    if (!o)
      throw std::invalid_argument("lstm decoder state: cannot append a state of another mixer");
    h = torch::cat({h, o->h}, 0);
    c = torch::cat({c, o->c}, 0);
  }
  std::vector<torch::Tensor*> Tensors() override { return {&h, &c}; }
};

class LstmMixer : public TokenMixer {
 public:
  explicit LstmMixer(const MixerContext& ctx) : TokenMixer(ctx) {
    const int d = ctx.d_model(), heads = ctx.heads();
    const std::string where = std::string("lstm at ") + SiteName(ctx.site);
    RequireNoSize(ctx, "lstm");
    if (heads <= 0 || d % heads != 0)
      throw std::invalid_argument(where + ": d_model " + std::to_string(d) +
                                  " is not divisible by heads " + std::to_string(heads));
    heads_ = heads;
    head_dim_ = d / heads;
    bidirectional_ = ctx.site == Site::kEncoderSelf;
    if (bidirectional_ && head_dim_ % 2 != 0)
      throw std::invalid_argument(where + ": the bidirectional encoder LSTM needs an even head "
                                  "dim (d_model / heads = " + std::to_string(head_dim_) + ")");
    const int hidden = bidirectional_ ? head_dim_ / 2 : head_dim_;
    for (int h = 0; h < heads; ++h) {
      auto opts = torch::nn::LSTMOptions(head_dim_, hidden).batch_first(true);
      fwd_.push_back(register_module("head" + std::to_string(h) + "_fwd", torch::nn::LSTM(opts)));
      if (bidirectional_)
        bwd_.push_back(
            register_module("head" + std::to_string(h) + "_bwd", torch::nn::LSTM(opts)));
    }
    out_ = register_module("out", torch::nn::Linear(d, d));
  }

  torch::Tensor Forward(const MixerInput& in) override {
    const int64_t D = ctx_.d_model();
    if (!in.x.defined() || in.x.dim() != 3 || in.x.size(2) != D)
      throw std::invalid_argument(std::string("lstm at ") + SiteName(ctx_.site) +
                                  ": input must be [B, T, " + std::to_string(D) + "]");
    const auto& x = in.x;
    const int64_t B = x.size(0), T = x.size(1);
    if (T == 0) return out_(x);
    torch::Tensor rev, rev_in, rev_out;  // reverse each row's real prefix, keep its padding
    if (bidirectional_) {
      const auto t = torch::arange(T, x.options().dtype(torch::kLong)).unsqueeze(0);
      const auto len = in.mask.defined() ? in.mask.to(torch::kLong).sum(1, true)
                                         : torch::full({B, 1}, T, t.options());
      rev = torch::where(t < len, len - 1 - t, t).unsqueeze(-1);  // [B, T, 1]
      rev_in = rev.expand({B, T, head_dim_});
      rev_out = rev.expand({B, T, head_dim_ / 2});
    }
    if (!x.is_cuda() && !torch::GradMode::is_enabled()) return out_(AllHeadsAtOnce(x, rev));
    std::vector<torch::Tensor> outs;
    for (int h = 0; h < heads_; ++h) {
      const auto xh = x.narrow(2, h * head_dim_, head_dim_).contiguous();
      auto y = std::get<0>(fwd_[h]->forward(xh));
      if (bidirectional_) {
        // The reversal is its own inverse: gather back with the same index.
        const auto yb = std::get<0>(bwd_[h]->forward(xh.gather(1, rev_in))).gather(1, rev_out);
        y = torch::cat({y, yb}, 2);
      }
      outs.push_back(y);
    }
    return out_(torch::cat(outs, 2));
  }

  // Inference off CUDA: every head, and both directions, as one recurrence whose steps are
  // batched over the G = heads (x2 when bidirectional) independent LSTMs: one baddbmm and a
  // few elementwise operations per time step instead of one small LSTM call per head and
  // direction, whose operator dispatch dominated at d_model 128. Same gates as
  // torch::nn::LSTM (i, f, g, o); training and CUDA keep torch::nn::LSTM (cuDNN there).
  //   x [B, T, D]; rev [B, T, 1] the per-row reversal index of the encoder (else undefined).
  torch::Tensor AllHeadsAtOnce(const torch::Tensor& x, const torch::Tensor& rev) {
    const int64_t B = x.size(0), T = x.size(1), D = ctx_.d_model();
    const int64_t hid = bidirectional_ ? head_dim_ / 2 : head_dim_;
    std::vector<torch::nn::LSTM> lstms = fwd_;
    lstms.insert(lstms.end(), bwd_.begin(), bwd_.end());
    const Stacked w = Stack(lstms);
    // [B, T, D] -> [heads, B, T, head_dim]
    auto per_head = [&](const torch::Tensor& v) {
      return v.view({B, T, heads_, head_dim_}).permute({2, 0, 1, 3});
    };
    auto xs = per_head(x);
    if (bidirectional_) xs = torch::cat({xs, per_head(x.gather(1, rev.expand({B, T, D})))}, 0);
    const int64_t G = xs.size(0);
    // Input projections of all time steps at once: [G, B, T, 4 hid].
    const auto xw =
        (torch::bmm(xs.reshape({G, B * T, head_dim_}), w.w_ih) + w.b).view({G, B, T, 4 * hid});
    auto c = torch::zeros({G, B, hid}, x.options());
    torch::Tensor h;
    std::vector<torch::Tensor> ys;
    ys.reserve(T);
    for (int64_t t = 0; t < T; ++t) {
      const auto gates = t == 0 ? xw.select(2, 0) : torch::baddbmm(xw.select(2, t), h, w.w_hh);
      const auto s = torch::sigmoid(gates).chunk(4, 2);  // i, f, (g), o
      c = s[1] * c + s[0] * torch::tanh(gates.narrow(2, 2 * hid, hid));
      h = s[3] * torch::tanh(c);
      ys.push_back(h);
    }
    auto y = torch::stack(ys, 2);  // [G, B, T, hid]
    if (bidirectional_) {
      // The reversal is its own inverse: gather the backward outputs back to their tokens.
      const auto back = y.narrow(0, heads_, heads_).gather(
          2, rev.unsqueeze(0).expand({heads_, B, T, hid}));
      y = torch::cat({y.narrow(0, 0, heads_), back}, 3);  // [heads, B, T, head_dim]
    }
    return y.permute({1, 2, 0, 3}).reshape({B, T, D});
  }

  std::unique_ptr<MixerState> InitState(const torch::Tensor&, const torch::Tensor&,
                                        int64_t batch) override {
    if (bidirectional_)
      throw std::logic_error("lstm at encoder_self: incremental decoding is for decoder sites");
    auto st = std::make_unique<LstmState>();
    const auto opts = out_->weight.options();
    st->h = torch::zeros({batch, heads_, head_dim_}, opts);
    st->c = torch::zeros({batch, heads_, head_dim_}, opts);
    return st;
  }

  // One LSTM cell step for all heads at once, with each head's own weights (batched over
  // heads: the block-diagonal form of the per-head LSTMs). Gate order i, f, g, o as in
  // torch::nn::LSTM.
  bool StepCapturable() const override { return !bidirectional_; }

  torch::Tensor Step(const torch::Tensor& x_t, const torch::Tensor& pos,
                     MixerState& state) override {
    auto* st = dynamic_cast<LstmState*>(&state);
    if (!st) throw std::invalid_argument("lstm: state of another mixer");
    const int64_t B = st->h.size(0), D = ctx_.d_model();
    if (!x_t.defined() || x_t.dim() != 2 || x_t.size(0) != B || x_t.size(1) != D)
      throw std::invalid_argument("lstm at decoder_self: step input must be [" +
                                  std::to_string(B) + ", " + std::to_string(D) + "]");
    if (!pos.defined() || pos.dim() != 1 || pos.size(0) != B)
      throw std::invalid_argument("lstm at decoder_self: positions must be int64 [" +
                                  std::to_string(B) + "]");
    const Stacked w = Stack(fwd_);
    const auto xh = x_t.reshape({B, heads_, head_dim_}).transpose(0, 1);  // [H, B, hd]
    const auto hh = st->h.transpose(0, 1);
    const auto gates = torch::bmm(xh, w.w_ih) + torch::bmm(hh, w.w_hh) + w.b;  // [H, B, 4 hd]
    const auto g = gates.chunk(4, 2);
    const auto c = torch::sigmoid(g[1]) * st->c.transpose(0, 1) +
                   torch::sigmoid(g[0]) * torch::tanh(g[2]);
    const auto h = torch::sigmoid(g[3]) * torch::tanh(c);
    st->h = h.transpose(0, 1).contiguous();
    st->c = c.transpose(0, 1).contiguous();
    return out_(st->h.reshape({B, D}));
  }

 private:
  // The weights of G independent single-layer LSTMs, stacked for batched products:
  // w_ih [G, input, 4 hidden], w_hh [G, hidden, 4 hidden], b = b_ih + b_hh [G, 1, 4 hidden].
  struct Stacked {
    torch::Tensor w_ih, w_hh, b;
  };
  static Stacked Stack(const std::vector<torch::nn::LSTM>& lstms) {
    std::vector<torch::Tensor> w_ih, w_hh, b;
    for (const auto& lstm : lstms) {
      auto p = lstm->named_parameters(false);
      w_ih.push_back(p["weight_ih_l0"].t());
      w_hh.push_back(p["weight_hh_l0"].t());
      b.push_back((p["bias_ih_l0"] + p["bias_hh_l0"]).unsqueeze(0));
    }
    return {torch::stack(w_ih), torch::stack(w_hh), torch::stack(b)};
  }

  int heads_ = 1;
  int head_dim_ = 1;
  bool bidirectional_ = false;
  std::vector<torch::nn::LSTM> fwd_, bwd_;
  torch::nn::Linear out_{nullptr};
};

}  // namespace

MIXSERVE_REGISTER_MIXER("lstm", (std::set<Site>{Site::kEncoderSelf, Site::kDecoderSelf}),
                        LstmMixer);

}  // namespace mixserve::model
