// The encoder-decoder Transformer whose attention sites are token mixers. One definition
// serves training (Forward), distillation (taps on every site) and serving (incremental
// decoding through DecoderState).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/model_spec.h"
#include "model/cpu_linear.h"
#include "model/host_copy.h"
#include "model/start_graphs.h"
#include "model/step_graphs.h"
#include "model/token_mixer.h"

namespace mixserve::model {

struct Encoded {
  torch::Tensor memory;  // [B, S, D] final encoder output (after the final norm)
  torch::Tensor mask;    // [B, S] bool, true = real token
};

// What a tap sees at one site of one layer during a full forward pass. The pairs at three
// levels let a student of any role be fitted to the teacher:
//   kMixer students: mixer_in -> mixer_out
//   kBlock students: block_in -> block_out   (x -> x + mixer(norm(x)))
//   kLayer students: layer_in -> layer_out   (encoder layers only)
struct SiteActivations {
  Site site;
  int layer;
  MixerInput mixer_in;     // x normalised, masks, memory for cross
  torch::Tensor mixer_out;
  torch::Tensor block_in;
  torch::Tensor block_out;
  torch::Tensor layer_in;  // encoder self only (else undefined)
  torch::Tensor layer_out; // encoder self only (else undefined)
};
using SiteTap = std::function<void(const SiteActivations&)>;

// Incremental decoding state over B rows; each row has its own position.
class DecoderState {
 public:
  virtual ~DecoderState() = default;
  virtual int64_t rows() const = 0;
  // int64 [B] on the CPU: each row's position of the next input token.
  virtual torch::Tensor positions() const = 0;
  virtual void Select(const torch::Tensor& index) = 0;  // keep rows `index`, in that order
  virtual void Append(DecoderState& other) = 0;         // rows of `other` after these
  // Rows `rows` (distinct) take the rows of `other` (a state of the same model with
  // rows.size() rows), in place: every tensor keeps its memory, so a step graph's inputs stay
  // its inputs. Returns false, changing nothing, where that cannot be done: a decoder mixer
  // whose state does not list all its tensors (not StepCapturable), or memories of other
  // lengths (eager steps; with step graphs every memory has max_len positions).
  virtual bool ReplaceRows(const std::vector<int64_t>& rows, DecoderState& other) = 0;
};

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const ModelSpec& spec);

  const ModelSpec& spec() const { return spec_; }
  torch::Device device() const;  // where the parameters are

  // src [B, S] int64, padded with ModelSpec::kPad, no BOS, ending with EOS.
  Encoded Encode(const torch::Tensor& src);
  // Teacher forcing: tgt_in [B, T] (BOS y1 .. yn, padded). Returns logits [B, T, V].
  torch::Tensor DecodeFull(const torch::Tensor& tgt_in, const Encoded& enc);
  torch::Tensor Forward(const torch::Tensor& src, const torch::Tensor& tgt_in);

  // Incremental decoding: one state per batch of rows; DecodeStep feeds each row's next
  // input token (int64 [B], on the CPU or the model's device) and returns log-probabilities
  // [B, V] (fp32) of the token after it. A step beyond max_len throws std::invalid_argument. Encode/DecodeFull throw
  // std::invalid_argument for inputs longer than max_len.
  std::unique_ptr<DecoderState> InitDecoder(const Encoded& enc);
  torch::Tensor DecodeStep(const torch::Tensor& tokens, DecoderState& state);
  // DecodeStep for greedy search: each row's most probable next token ([B] int64) and its
  // log-probability ([B] fp32), both on the CPU. Found on the device within the step (in the
  // step's graph when graphed), so that one small copy comes back instead of [B, V].
  struct Best {
    torch::Tensor tokens, log_probs;
  };
  Best GreedyStep(const torch::Tensor& tokens, DecoderState& state);
  // GreedyStep in two halves, so that the next step can be launched before this one's
  // results are read (greedy search keeps one step in flight: model/search.h). The launch
  // queues the step and the copy of its results to the host and, on CUDA, returns before the
  // step has run; Wait() blocks until those results are on the host. next_tokens() are the
  // rows' best tokens on the device, to be fed to the state's next step (and only to that)
  // without a round trip through the host.
  class LaunchedStep {
   public:
    Best Wait();
    const torch::Tensor& next_tokens() const { return next_; }

   private:
    friend class TransformerImpl;
    HostCopy copy_;      // [rows, 2]: log-probability, token
    torch::Tensor next_;
  };
  LaunchedStep LaunchGreedyStep(const torch::Tensor& tokens, DecoderState& state);
  // For continuous batching: a state over no rows yet (on the model's device), and appending
  // the rows of new sources to a state: Encode + InitDecoder + Append, each source row
  // repeated `width` times in a row (beam rows). With step graphs enabled, on CUDA and
  // without gradients, the start is replayed from a graph per bucket of rows and source
  // length (model/start_graphs.h).
  std::unique_ptr<DecoderState> EmptyDecoder();
  void AppendSources(DecoderState& state, const torch::Tensor& src, int64_t width = 1);
  // The rows of new sources (one row each) written over rows `rows` of `state` (dead rows of
  // finished sentences) in place, as DecoderState::ReplaceRows would write a state of them;
  // with start graphs straight from the graph's results, building no state for them. Returns
  // null when done; where the state cannot take them in place (memories of another length,
  // a mixer state that does not list its tensors) it is left as it was, and the new rows come
  // back as a state of their own, for Append.
  std::unique_ptr<DecoderState> ReplaceRowsWithSources(DecoderState& state,
                                                       const std::vector<int64_t>& rows,
                                                       const torch::Tensor& src);

  // Decoding through captured CUDA graphs (model/step_graphs.h), for serving: from now on
  // InitDecoder pads the encoder memory to max_len (so that the state's shapes depend only on
  // the number of rows) and, on CUDA, without gradients, with every decoder mixer
  // StepCapturable(), DecodeStep replays a graph per bucket of rows. Call it once the model
  // is on its device in its dtype: graphs read the weights where they were at capture.
  // Returns whether steps will be graphed on CUDA (false: eager steps, memory still padded).
  bool EnableStepGraphs(bool on);
  bool step_graphs_enabled() const { return graphs_ != nullptr; }
  int64_t captured_step_graphs() const;
  int64_t captured_start_graphs() const;

  // Distillation: called for every site during Encode/DecodeFull while set.
  void SetTap(SiteTap tap) { tap_ = std::move(tap); }
  // The mixer at a site, and replacing it (student assembly). Replacing checks that the new
  // mixer supports the site; ELR (role kLayer) only at encoder_self.
  std::shared_ptr<TokenMixer> mixer(Site site, int layer) const;
  void ReplaceMixer(Site site, int layer, std::shared_ptr<TokenMixer> mixer,
                    const MixerSpec& spec);

  // How products run on the CPU at inference (model/cpu_linear.h): fp32 (the default), or
  // int8 weights quantized per output column and inputs per row as each product runs. Applies
  // to every layer, and to mixers put in later by ReplaceMixer. Set it before decoding.
  void SetCpuPrecision(CpuPrecision p);
  CpuPrecision cpu_precision() const { return cpu_precision_; }

  int64_t ParameterCount() const;
  // Parameters per part: "embeddings", "encoder.<i>.self", "encoder.<i>.ffn",
  // "decoder.<i>.self", "decoder.<i>.cross", "decoder.<i>.ffn", "final_norms" (norms of a
  // block count with its mixer). `mixer` names the mixer type ("" for non-mixer parts).
  struct PartParameters {
    std::string part;
    std::string mixer;
    int64_t count = 0;
  };
  std::vector<PartParameters> ParameterBreakdown() const;

 private:
  ModelSpec spec_;
  SiteTap tap_;
  // Layers, embeddings, norms and the output projection are defined in transformer.cc.
  struct Layers;
  std::shared_ptr<Layers> layers_;
  CpuPrecision cpu_precision_ = CpuPrecision::kFp32;
  std::shared_ptr<StepGraphs> graphs_;  // null: eager steps over unpadded memory
  std::shared_ptr<StepGraphs> greedy_graphs_;  // GreedyStep's, with graphs_
  std::shared_ptr<StartGraphs> starts_;  // with graphs_ (used when graphable_)
  bool graphable_ = false;                    // every decoder mixer's step is capturable
  bool DecoderCapturable() const;
  // A start (encoder, beam rows, mixer states) computed eagerly, or inside a start graph.
  std::unique_ptr<DecoderState> StartState(const torch::Tensor& src, int64_t width, bool graph);
  // The start's tensors (in DecoderState tensor order) from a start graph, views into its
  // memory until its next replay; empty where start graphs do not apply.
  std::vector<torch::Tensor> StartFromGraph(const torch::Tensor& src, int64_t width);
  // A state over the rows of a start graph's results (which its Append must copy at once).
  std::unique_ptr<DecoderState> StateOfViews(const std::vector<torch::Tensor>& views);
  // DecodeStep (log-probabilities [B, V]) or GreedyStep (`greedy`: [B, 2], best log-probability
  // and token as fp32) on the device; `graphed`: the result is a graph's output.
  torch::Tensor RunStep(const torch::Tensor& tokens, DecoderState& state, bool greedy,
                        bool& graphed);
  // The output projection (tied or not) with the final logits bias, over decoder outputs.
  torch::Tensor Logits(const torch::Tensor& x);
  // The mixer states of a new DecoderState over `enc`'s rows.
  void InitMixerStates(const Encoded& enc, DecoderState& state);
};
TORCH_MODULE(Transformer);

}  // namespace mixserve::model
