// The plain C++ face of a loaded model: token ids in, token ids out. No Torch or protobuf
// type appears here; the server, clients and tools use the model only through this header.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/model_spec.h"

namespace mixserve {

class EngineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct EngineOptions {
  std::string device = "auto";  // "auto", "cpu", "cuda", "cuda:N"
  // "fp32", "fp16", "bf16" (half types on CUDA only), "int8" (CPU only: int8 products with
  // weights quantized at load, model/cpu_linear.h)
  std::string dtype = "fp32";
  int threads = 0;              // CPU intra-op threads; 0 = leave as is
  // CUDA: replay decoding steps from captured CUDA graphs (model/step_graphs.h) when every
  // decoder mixer allows it; false runs them operator by operator.
  bool cuda_graphs = true;
  // With step graphs: greedy search keeps one decoding step in flight (SearchOptions::
  // lookahead, model/search.h); false waits for each step's results before the next.
  bool step_lookahead = true;
  // Tests: greedy search keeps dead rows and one step in flight on any device, as it does on
  // CUDA with step graphs, so that runs without a GPU go through the same scheduling.
  // Results do not depend on it.
  bool cuda_search_modes = false;
  // > 0: build the model for this longest sequence (tokens with BOS/EOS) instead of its own
  // max_len (model/checkpoint.h: only mixers whose weights do not depend on the length).
  int max_len = 0;
};

struct DecodeOptions {
  int beam_size = 1;          // 1 = greedy
  int max_output_tokens = 0;  // 0: model max_len - 2 (without BOS/EOS); capped by it
  float length_penalty = 1.0f;
  int n_best = 1;
};

struct Hypothesis {
  std::vector<int> tokens;  // without BOS/EOS
  float score = 0;          // length-normalised log-probability
  bool ended_with_eos = false;  // false: stopped at the length limit
};

struct ModelInfo {
  ModelSpec spec;
  int64_t parameters = 0;
  std::string device;  // resolved, e.g. "cpu", "cuda:0"
  std::string dtype;
  // On the CPU, the kernel of the products (model/cpu_linear.h): fp32 "avx512", "avx2" or
  // "blas"; int8 "avx512vnni" or "portable" (correct everywhere, but slower than fp32's
  // kernels). Empty on CUDA.
  std::string cpu_kernel;
  bool step_graphs = false;  // decoding steps replayed from CUDA graphs
  bool step_lookahead = false;  // greedy search keeps a step in flight (with step_graphs,
                                // or cuda_search_modes)
};

// Iteration-level decoding over a changing set of sentences: new sentences join between
// steps and finished ones leave at once. One session serves one beam size.
class DecodeSession {
 public:
  struct Finished {
    uint64_t id;
    std::vector<Hypothesis> hyps;  // best first, n_best of them
  };
  virtual ~DecodeSession() = default;
  // Encodes `src` (token ids without BOS/EOS, each at most max_len - 2 long) and adds it.
  virtual void Add(uint64_t id, const std::vector<int>& src) = 0;
  // Adds several sentences with one encoder call.
  virtual void AddBatch(const std::vector<uint64_t>& ids,
                        const std::vector<std::vector<int>>& srcs) = 0;
  // Drops a sentence (cancelled or expired); its rows leave before the next step.
  virtual void Remove(uint64_t id) = 0;
  // Advances every active sentence by one token; returns those that finished.
  virtual std::vector<Finished> Step() = 0;
  virtual size_t active() const = 0;  // sentences in flight
};

// The LibTorch version the engine was built against, e.g. "1.13.1".
std::string TorchVersion();
// The device "auto" resolves to on this machine: "cpu" or "cuda:0", followed by the number of
// CUDA devices when there are several ("cuda:0 (2 CUDA devices)").
std::string AutoDevice();
// CPU threads of the products started from the calling thread (LibTorch's intra-op threads;
// under OpenMP the size of the parallel regions this thread starts, and the default of
// threads that have not computed yet). For decoding loops that each use one core.
void SetComputeThreads(int n);

class Engine {
 public:
  virtual ~Engine() = default;
  // Loads a model version directory (model.pbtxt, weights, ...). Throws EngineError with a
  // message naming the file and the problem.
  static std::unique_ptr<Engine> Load(const std::string& dir, const EngineOptions& options);

  virtual const ModelInfo& info() const = 0;
  // Static batch: translates every sentence, results in input order.
  virtual std::vector<std::vector<Hypothesis>> Translate(
      const std::vector<std::vector<int>>& srcs, const DecodeOptions& options) = 0;
  virtual std::unique_ptr<DecodeSession> NewSession(const DecodeOptions& options) = 0;
  // Bytes of device memory held by this process on the engine's device (0 on CPU).
  virtual int64_t DeviceMemoryBytes() const = 0;
};

}  // namespace mixserve
