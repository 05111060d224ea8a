// Engine over a loaded Transformer. Translate runs on the same DecodeSession machinery as
// the server's continuous batching, so there is one decoding code path.
#include "engine/engine.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>
#include <torch/version.h>

#if defined(MIXSERVE_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <exception>
#include <utility>

#include "model/checkpoint.h"
#include "model/cpu_linear.h"
#include "model/search.h"

namespace mixserve {
namespace {

model::SearchOptions ToSearch(const DecodeOptions& d) {
  model::SearchOptions o;
  o.beam_size = d.beam_size;
  o.max_output_tokens = d.max_output_tokens;
  o.length_penalty = d.length_penalty;
  o.n_best = d.n_best;
  return o;
}

// Runs `f`, turning Torch and argument errors into EngineError.
template <typename F>
auto Guarded(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const EngineError&) {
    throw;
  } catch (const c10::Error& e) {
    throw EngineError(std::string(what) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw EngineError(std::string(what) + ": " + e.what());
  }
}

class EngineImpl;

class SessionImpl : public DecodeSession {
 public:
  SessionImpl(const EngineImpl& engine, const DecodeOptions& options);
  void Add(uint64_t id, const std::vector<int>& src) override { AddBatch({id}, {src}); }
  void AddBatch(const std::vector<uint64_t>& ids,
                const std::vector<std::vector<int>>& srcs) override;
  void Remove(uint64_t id) override {
    c10::InferenceMode guard;
    Guarded("remove", [&] { return search_.Remove(id); });
  }
  std::vector<Finished> Step() override;
  size_t active() const override { return search_.active(); }

 private:
  const EngineImpl& engine_;
  model::IncrementalSearch search_;
};

class EngineImpl : public Engine {
 public:
  EngineImpl(model::Transformer model, torch::Device device, torch::ScalarType dtype,
             ModelInfo info)
      : model_(std::move(model)), device_(device), dtype_(dtype), info_(std::move(info)) {}

  const ModelInfo& info() const override { return info_; }

  std::vector<std::vector<Hypothesis>> Translate(const std::vector<std::vector<int>>& srcs,
                                                 const DecodeOptions& options) override {
    std::vector<std::vector<Hypothesis>> out(srcs.size());
    if (srcs.empty()) return out;
    auto session = NewSession(options);
    std::vector<uint64_t> ids(srcs.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = i;
    session->AddBatch(ids, srcs);
    while (session->active() > 0)
      for (auto& f : session->Step()) out[f.id] = std::move(f.hyps);
    return out;
  }

  std::unique_ptr<DecodeSession> NewSession(const DecodeOptions& options) override {
    return std::make_unique<SessionImpl>(*this, options);
  }

  int64_t DeviceMemoryBytes() const override {
#if defined(MIXSERVE_WITH_CUDA)
    if (device_.is_cuda()) {
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
      // Index 0 is StatType::AGGREGATE (the enum moved namespaces between LibTorch releases).
      return stats.reserved_bytes[0].current;
    }
#endif
    return 0;
  }

  // Pads sentences (plus EOS) into a [B, S] tensor on the device, checking every id.
  torch::Tensor Batch(const std::vector<std::vector<int>>& srcs) const {
    const auto& spec = info_.spec;
    size_t longest = 0;
    for (size_t i = 0; i < srcs.size(); ++i) {
      if (static_cast<int>(srcs[i].size()) > spec.max_len - 2)
        throw EngineError("sentence " + std::to_string(i) + " has " +
                          std::to_string(srcs[i].size()) + " tokens; the model takes at most " +
                          std::to_string(spec.max_len - 2) + " (max_len " +
                          std::to_string(spec.max_len) + " minus BOS/EOS)");
      for (int t : srcs[i])
        if (t < 0 || t >= spec.vocab_size || t == spec.ids.pad)
          throw EngineError("sentence " + std::to_string(i) + " has token id " +
                            std::to_string(t) + " outside the vocabulary [0, " +
                            std::to_string(spec.vocab_size) + ") or the pad token " +
                            std::to_string(spec.ids.pad));
      longest = std::max(longest, srcs[i].size());
    }
    auto t = torch::full({static_cast<int64_t>(srcs.size()), static_cast<int64_t>(longest + 1)},
                         spec.ids.pad, torch::kLong);
    auto a = t.accessor<int64_t, 2>();
    for (size_t i = 0; i < srcs.size(); ++i) {
      for (size_t j = 0; j < srcs[i].size(); ++j) a[i][j] = srcs[i][j];
      a[i][srcs[i].size()] = spec.ids.eos;
    }
    return t.to(device_);
  }

  model::Transformer model() const { return model_; }

 private:
  model::Transformer model_;
  torch::Device device_;
  torch::ScalarType dtype_;
  ModelInfo info_;
};

model::SearchOptions CheckedOptions(const DecodeOptions& d, bool lookahead) {
  auto o = ToSearch(d);
  // On a CUDA model with step graphs kOn and kKeep are what kAuto chooses; elsewhere they
  // force it (EngineOptions::cuda_search_modes). Beam search ignores both.
  if (lookahead) {
    o.lookahead = model::SearchOptions::Lookahead::kOn;
    o.dead_rows = model::SearchOptions::DeadRows::kKeep;
  } else {
    o.lookahead = model::SearchOptions::Lookahead::kOff;
  }
  try {
    model::ValidateSearchOptions(o);
  } catch (const std::invalid_argument& e) {
    throw EngineError(std::string("decode options: ") + e.what());
  }
  return o;
}

SessionImpl::SessionImpl(const EngineImpl& engine, const DecodeOptions& options)
    : engine_(engine),
      search_(engine.model(), CheckedOptions(options, engine.info().step_lookahead)) {}

void SessionImpl::AddBatch(const std::vector<uint64_t>& ids,
                           const std::vector<std::vector<int>>& srcs) {
  if (ids.size() != srcs.size())
    throw EngineError("AddBatch: " + std::to_string(ids.size()) + " ids for " +
                      std::to_string(srcs.size()) + " sentences");
  if (ids.empty()) return;
  c10::InferenceMode guard;
  auto src = engine_.Batch(srcs);
  Guarded("add", [&] {
    search_.Add(ids, src);
    return 0;
  });
}

std::vector<DecodeSession::Finished> SessionImpl::Step() {
  c10::InferenceMode guard;
  auto results = Guarded("decode step", [&] { return search_.Step(); });
  std::vector<Finished> out;
  out.reserve(results.size());
  for (auto& r : results) {
    Finished f{r.id, {}};
    for (const auto& h : r.hyps) {
      Hypothesis y;
      y.tokens.assign(h.tokens.begin(), h.tokens.end());
      y.score = h.score;
      y.ended_with_eos = h.ended_with_eos;
      f.hyps.push_back(std::move(y));
    }
    out.push_back(std::move(f));
  }
  return out;
}

torch::Device ResolveDevice(const std::string& name) {
  if (name == "auto" || name.empty())
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      throw EngineError("device '" + name + "' requested but CUDA is not available");
    torch::Device d = Guarded("device", [&] { return torch::Device(name); });
    if (!d.has_index()) d = torch::Device(torch::kCUDA, 0);
    if (d.index() >= static_cast<int>(torch::cuda::device_count()))
      throw EngineError("device '" + name + "' does not exist (" +
                        std::to_string(torch::cuda::device_count()) + " CUDA devices)");
    return d;
  }
  throw EngineError("unknown device '" + name + "' (auto, cpu, cuda, cuda:N)");
}

}  // namespace

std::string TorchVersion() { return TORCH_VERSION; }

void SetComputeThreads(int n) {
  if (n > 0) at::set_num_threads(n);
}

std::string AutoDevice() {
  if (!torch::cuda::is_available()) return "cpu";
  const auto n = torch::cuda::device_count();
  return n > 1 ? "cuda:0 (" + std::to_string(n) + " CUDA devices)" : "cuda:0";
}

std::unique_ptr<Engine> Engine::Load(const std::string& dir, const EngineOptions& options) {
  const bool int8 = options.dtype == "int8";
  // int8 products exist on the CPU only: there "auto" means the CPU.
  const torch::Device device =
      ResolveDevice(int8 && (options.device == "auto" || options.device.empty()) ? "cpu"
                                                                                  : options.device);
  torch::ScalarType dtype;
  if (options.dtype == "fp32" || options.dtype.empty() || int8)
    dtype = torch::kFloat;
  else if (options.dtype == "fp16")
    dtype = torch::kHalf;
  else if (options.dtype == "bf16")
    dtype = torch::kBFloat16;
  else
    throw EngineError("unknown dtype '" + options.dtype + "' (fp32, fp16, bf16, int8)");
  if (int8 && !device.is_cpu())
    throw EngineError("dtype int8 runs on the CPU only; the engine runs on " + device.str() +
                      " (use fp16 or bf16 there, or device cpu)");
  if (dtype != torch::kFloat && !device.is_cuda())
    throw EngineError("dtype " + options.dtype + " needs a CUDA device; the engine runs on " +
                      device.str());
  if (options.threads > 0) torch::set_num_threads(options.threads);

  model::Transformer m{nullptr};
  try {
    m = model::LoadCheckpoint(dir, options.max_len);
  } catch (const model::CheckpointError& e) {
    throw EngineError(e.what());
  } catch (const c10::Error& e) {
    throw EngineError("loading " + dir + ": " + e.what_without_backtrace());
  }
  m->eval();
  Guarded("moving the model to the device", [&] {
    m->to(device, dtype);
    return 0;
  });
  if (int8) m->SetCpuPrecision(model::CpuPrecision::kInt8);
  const bool graphs = device.is_cuda() && options.cuda_graphs && m->EnableStepGraphs(true);
  ModelInfo info;
  info.step_graphs = graphs;
  info.step_lookahead = (graphs && options.step_lookahead) || options.cuda_search_modes;
  info.spec = m->spec();
  info.parameters = m->ParameterCount();
  info.device = device.str();
  if (device.is_cpu())
    info.cpu_kernel = model::CpuLinear::Kernel(int8 ? model::CpuPrecision::kInt8
                                                    : model::CpuPrecision::kFp32);
  info.dtype = int8                      ? "int8"
               : dtype == torch::kFloat ? "fp32"
               : dtype == torch::kHalf  ? "fp16"
                                        : "bf16";
  return std::make_unique<EngineImpl>(std::move(m), device, dtype, std::move(info));
}

}  // namespace mixserve
