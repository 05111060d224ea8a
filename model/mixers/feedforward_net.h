// The shallow feed-forward token mixers of "Rethinking Attention" (alr, alrr, aslr, elr):
// one network over the whole zero-padded, flattened sequence
//
//   LayerNorm(W_in) -> Linear(W_in -> H) -> LeakyReLU -> LayerNorm(H) -> Linear(H -> W_out)
//
// and the mixer that places it at an attention site. docs/model/feedforward.md has the
// equations, the causal prefix-sum derivation used in the decoder, and the parameter counts.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "model/token_mixer.h"

namespace mixserve::model {

struct FeedForwardNetOptions {
  int64_t in_blocks = 0;   // input width W_in = in_blocks * block_dim (max_len, or 2 max_len)
  int64_t block_dim = 0;   // d_model: one block per token position
  int64_t hidden = 0;      // H
  int64_t out_blocks = 0;  // max_len
  int64_t out_dim = 0;     // per group: d_model (alr) or d_model / heads (aslr)
  int64_t groups = 1;      // independent networks on the same input (aslr: one per head)
  double leaky_slope = 0.01;
  double eps = 1e-5;
};

// `groups` independent networks that all read the same flattened input; their outputs are
// laid side by side per position ([.., L, groups * out_dim], group g in columns
// g*out_dim .. (g+1)*out_dim - 1, as heads are concatenated). Parameters are stacked along a
// leading group dimension.
class FeedForwardNet : public torch::nn::Module {
 public:
  explicit FeedForwardNet(const FeedForwardNetOptions& opt);

  const FeedForwardNetOptions& options() const { return opt_; }
  int64_t in_width() const { return opt_.in_blocks * opt_.block_dim; }
  int64_t out_width() const { return opt_.out_blocks * opt_.out_dim; }

  // The plain network on whole flattened inputs: flat [B, W_in] -> [B, out_blocks,
  // groups * out_dim].
  torch::Tensor Full(const torch::Tensor& flat) const;

  // Per-position pieces of the first layer, for the causal (prefix) evaluation. With
  // v = flattened input, gamma/beta the input LayerNorm's affine parameters:
  //   W1 LN(v) + b1 = (W1 (gamma o v) - mu W1 gamma) / sigma + W1 beta + b1
  // where W1 (gamma o v) is a sum of per-block terms and mu, sigma need only sum(v), sum(v^2).
  struct Sums {
    torch::Tensor acc;  // sum over blocks of W1[:, block] (gamma_block o x_block): [.., G, H]
    torch::Tensor s1;   // sum of input elements, float64 [..]
    torch::Tensor s2;   // sum of squared input elements, float64 [..]
  };
  // Terms of each position of x [B, T, D] placed at blocks first_block .. first_block+T-1
  // (not accumulated): acc [B, T, G, H], s1/s2 [B, T].
  Sums BlockTerms(const torch::Tensor& x, int64_t first_block) const;
  // Terms of x_t [B, D], row b placed at block block[b] (int64 [B]): acc [B, G, H], s1/s2 [B].
  // same_block >= 0 says every row is at that block (no gather of weight blocks needed).
  Sums BlockTermsAt(const torch::Tensor& x_t, const torch::Tensor& block,
                    int64_t same_block = -1) const;

  // Input-independent vectors of the identity above: c = W1 gamma, e = W1 beta + b1 ([G, H]).
  struct Constants {
    torch::Tensor c;
    torch::Tensor e;
  };
  Constants FirstLayerConstants() const;

  // Linear1(LayerNorm(v)) from accumulated sums (any leading shape, see Sums).
  torch::Tensor FirstLayerFromSums(const Sums& sums, const Constants& k) const;
  // LeakyReLU then LayerNorm(H), per group: [.., G, H] -> [.., G, H].
  torch::Tensor Activate(const torch::Tensor& h) const;
  // Second layer, only the rows of output blocks 0..T-1: z [B, T, G, H] -> [B, T, G*out_dim].
  torch::Tensor OutputBlocks(const torch::Tensor& z) const;
  // Second layer, rows of output block block[b] for each row: z [B, G, H] -> [B, G*out_dim].
  // same_block as in BlockTermsAt.
  torch::Tensor OutputBlockAt(const torch::Tensor& z, const torch::Tensor& block,
                              int64_t same_block = -1) const;

  // Parameters (public for inspection and tests), G = groups:
  torch::Tensor in_norm_weight;      // [G, W_in]
  torch::Tensor in_norm_bias;        // [G, W_in]
  torch::Tensor fc1_weight;          // [G, H, W_in]
  torch::Tensor fc1_bias;            // [G, H]
  torch::Tensor hidden_norm_weight;  // [G, H]
  torch::Tensor hidden_norm_bias;    // [G, H]
  torch::Tensor fc2_weight;          // [G, W_out, H]
  torch::Tensor fc2_bias;            // [G, W_out]

 private:
  FeedForwardNetOptions opt_;
};

// Which hidden-width table a mixer uses (STUDY-NOTES sizes).
enum class FeedForwardFamily {
  kWhole,    // alr, alrr, elr: H = W / k, k = 256 (xs), 128 (s), 8 (m), 2 (l)
  kPerHead,  // aslr: per head H = W / k, k = 32 (xs), 16 (s), 8 (m), 4 (l)
};

// Hidden width for a size name ("" means "m"); spec_hidden > 0 overrides. W = max_len *
// d_model. At least 1. Throws std::invalid_argument for an unknown size.
int64_t FeedForwardHidden(FeedForwardFamily family, const std::string& size, int spec_hidden,
                          int64_t width);

// Decoding state of a feed-forward mixer: the running sums of FeedForwardNet::Sums per row,
// plus the input-independent constants (shared by all rows).
class FeedForwardState : public MixerState {
 public:
  FeedForwardNet::Sums sums;          // acc [B, G, H], s1/s2 [B] float64
  FeedForwardNet::Constants consts;   // [G, H]
  void Select(const torch::Tensor& index) override;
  void Append(MixerState& other) override;
  int64_t rows() const { return sums.s1.size(0); }
};

// A feed-forward network at one attention site. Encoder self: bidirectional over the padded
// sequence. Decoder self: causal (output i sees inputs 0..i only), computed exactly with
// prefix sums. Decoder cross: input = [flattened padded memory, flattened padded decoder
// states], causal in the decoder part. Sequences longer than max_len are rejected.
class FeedForwardMixer : public TokenMixer {
 public:
  FeedForwardMixer(const MixerContext& ctx, std::string name, MixerRole role,
                   FeedForwardFamily family);

  torch::Tensor Forward(const MixerInput& in) override;
  std::unique_ptr<MixerState> InitState(const torch::Tensor& memory,
                                        const torch::Tensor& memory_mask,
                                        int64_t batch) override;
  torch::Tensor Step(const torch::Tensor& x_t, const torch::Tensor& pos,
                     MixerState& state) override;
  MixerRole role() const override { return role_; }

  const std::string& name() const { return name_; }
  FeedForwardNet& net() { return *net_; }
  int64_t hidden() const { return net_->options().hidden; }

 private:
  std::string Where() const;  // "alr at decoder_self layer 2"
  void CheckSequence(const torch::Tensor& x, const char* what) const;
  // Masked (zeroed) copy of x [B, T, D]; mask may be undefined (all real).
  static torch::Tensor ApplyMask(const torch::Tensor& x, const torch::Tensor& mask);
  // Memory part of the cross-site sums (acc [B, G, H], s1/s2 [B]).
  FeedForwardNet::Sums MemorySums(const torch::Tensor& memory,
                                  const torch::Tensor& memory_mask) const;
  torch::Tensor ForwardBidirectional(const torch::Tensor& xm, const torch::Tensor& maskf);
  torch::Tensor ForwardCausal(const torch::Tensor& xm, const torch::Tensor& maskf,
                              const FeedForwardNet::Sums* prefix);

  std::string name_;
  MixerRole role_;
  std::shared_ptr<FeedForwardNet> net_;
};

}  // namespace mixserve::model
