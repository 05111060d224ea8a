// The token-mixer interface: whatever fills an attention site of the Transformer (encoder
// self, decoder self, decoder cross). Each mixer is one class in model/mixers/, registered by
// name with MIXSERVE_REGISTER_MIXER; nothing else changes when a mixer is added.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/model_spec.h"

namespace mixserve::model {

// How a mixer's output enters its layer.
enum class MixerRole {
  kMixer,  // y = x + dropout(mixer(norm(x)))   (mha, alr, aslr, aft_*, lstm)
  kBlock,  // y = mixer(x): replaces the whole residual sub-block, norm included (alrr)
  kLayer,  // y = mixer(x): replaces the whole encoder layer, feed-forward included (elr)
};

// Everything a mixer may need to build itself.
struct MixerContext {
  const ModelSpec* model = nullptr;
  Site site = Site::kEncoderSelf;
  int layer = 0;
  MixerSpec spec;
  int d_model() const { return model->d_model; }
  int heads() const { return spec.heads > 0 ? spec.heads : model->heads; }
  int max_len() const { return model->max_len; }
  float dropout() const { return model->dropout; }
};

// Full-sequence input. Tensors are batch-major; masks are bool with true = real token.
struct MixerInput {
  torch::Tensor x;            // [B, T, D]
  torch::Tensor mask;         // [B, T]
  torch::Tensor memory;       // decoder cross only: encoder output [B, S, D]
  torch::Tensor memory_mask;  // decoder cross only: [B, S]
};

// Per-mixer incremental decoding state over B rows (sentences or beam hypotheses).
class MixerState {
 public:
  virtual ~MixerState() = default;
  // Keeps rows `index` (int64 [B']) in that order: beam reordering and removal of finished rows.
  virtual void Select(const torch::Tensor& index) = 0;
  // Appends the rows of `other` (a state of the same mixer) after this state's rows: new
  // sentences joining a running decode (continuous batching). Rows keep their own positions.
  virtual void Append(MixerState& other) = 0;
  // Every tensor a Step reads or replaces, each with the rows along dim 0 (mixers whose
  // StepCapturable() is true must list them all: a captured CUDA graph reads and writes its
  // own copies of exactly these tensors, see model/step_graphs.h).
  virtual std::vector<torch::Tensor*> Tensors() { return {}; }
};

// True on this thread while a decoding step is being captured into a CUDA graph: Step must
// not read device tensors on the host then (the Transformer has checked the positions).
bool CapturingStep();
class StepCaptureScope {
 public:
  StepCaptureScope();
  ~StepCaptureScope();
  StepCaptureScope(const StepCaptureScope&) = delete;
  StepCaptureScope& operator=(const StepCaptureScope&) = delete;

 private:
  bool outer_;
};

class TokenMixer : public torch::nn::Module {
 public:
  explicit TokenMixer(const MixerContext& ctx) : ctx_(ctx) {}
  ~TokenMixer() override = default;

  // Full-sequence forward (training, teacher forcing, encoder). Output [B, T, D]; outputs at
  // padded positions are unspecified but finite. In the decoder-self site the mixer is causal:
  // output t depends only on inputs 0..t.
  virtual torch::Tensor Forward(const MixerInput& in) = 0;

  // Incremental decoding, decoder sites only. `memory`/`memory_mask` are the rows' encoder
  // output (used by cross mixers, ignored by self mixers); `batch` is the number of rows.
  virtual std::unique_ptr<MixerState> InitState(const torch::Tensor& memory,
                                                const torch::Tensor& memory_mask,
                                                int64_t batch) = 0;
  // One step: x_t [B, D] is each row's input at position pos[b] (int64 [B], rows may be at
  // different positions). Returns [B, D], equal to Forward's output at that position.
  virtual torch::Tensor Step(const torch::Tensor& x_t, const torch::Tensor& pos,
                             MixerState& state) = 0;

  virtual MixerRole role() const { return MixerRole::kMixer; }
  // Whether Step can be captured into a CUDA graph: for a given number of rows it launches
  // the same operators whatever the positions and state values, reads no device tensor on the
  // host while CapturingStep(), keeps its state's shapes, and its states list their tensors.
  virtual bool StepCapturable() const { return false; }
  const MixerContext& context() const { return ctx_; }

 protected:
  MixerContext ctx_;
};

// For mixers without the feed-forward sizes: throws std::invalid_argument when the spec asks
// for a size or hidden width, so that such a request is never silently ignored.
void RequireNoSize(const MixerContext& ctx, const std::string& name);

using MixerFactory = std::function<std::shared_ptr<TokenMixer>(const MixerContext&)>;

class MixerRegistry {
 public:
  static MixerRegistry& Get();
  void Register(const std::string& name, std::set<Site> sites, MixerFactory factory);
  // Throws std::invalid_argument naming the mixer and what is wrong (unknown name with the
  // list of known ones, site not supported, bad options).
  std::shared_ptr<TokenMixer> Create(const MixerContext& ctx) const;
  bool Supports(const std::string& name, Site site) const;
  // Whether the mixer takes the feed-forward sizes (xs, s, m, l): it builds with size xs at
  // one of its sites in a model of `shape`.
  bool TakesSize(const std::string& name, const ModelSpec& shape) const;
  std::vector<std::string> Names() const;
  std::set<Site> Sites(const std::string& name) const;

 private:
  struct Entry {
    std::set<Site> sites;
    MixerFactory factory;
  };
  std::vector<std::pair<std::string, Entry>> entries_;
};

struct MixerRegistrar {
  MixerRegistrar(const std::string& name, std::set<Site> sites, MixerFactory factory) {
    MixerRegistry::Get().Register(name, std::move(sites), std::move(factory));
  }
};

#define MIXSERVE_CONCAT_INNER(a, b) a##b
#define MIXSERVE_CONCAT(a, b) MIXSERVE_CONCAT_INNER(a, b)
// MIXSERVE_REGISTER_MIXER("alr", {Site::kEncoderSelf, ...}, AlrMixer);
// The class needs a constructor taking (const MixerContext&).
#define MIXSERVE_REGISTER_MIXER(name, sites, Class)                                  \
  static ::mixserve::model::MixerRegistrar MIXSERVE_CONCAT(mixer_registrar_, __LINE__)( \
      name, sites, [](const ::mixserve::model::MixerContext& c) {                   \
        return std::static_pointer_cast<::mixserve::model::TokenMixer>(            \
            std::make_shared<Class>(c));                                            \
      })

}  // namespace mixserve::model
