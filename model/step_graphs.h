// Decoding steps replayed from captured CUDA graphs.
//
// On a GPU a decoding step of a small Transformer is a few hundred tiny kernels, each costing
// far more to launch from the host than to run; a CUDA graph launches them all at once. A
// graph replays fixed operators on fixed memory, so StepGraphs keeps, per bucket of rows (the
// powers of two up to kMaxRows) and state signature (the shapes and types of the state's
// tensors beyond the rows), a captured step with its own copies of every tensor the step reads
// or replaces:
//   - before a replay, the state's tensors are copied into the graph's inputs (rows 0..r-1 of
//     the bucket's n; the other rows compute unused results) unless they already are those
//     inputs, as a step that writes in place (an attention cache) leaves them;
//   - after it, the state's tensors point at the graph's outputs (rows 0..r-1).
// The weights are read where they were at capture: they must not move afterwards (enable
// graphs once the model is on its device in its dtype). A bucket whose capture fails falls
// back to the eager step for good.
//
// Since a state's tensors point into a graph's memory after a replay, a graph serves one
// state at a time: the state that ran it last (its owner) until that state is destroyed.
// Another live state of the same model (a second session: other decoding options) steps
// eagerly whenever it would need a graph owned by the first. Decoding with one model is
// meant for one thread at a time (the server's scheduler of a variant).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mixserve::model {

class StepGraphs {
 public:
  static constexpr int64_t kMaxRows = 1024;
  // Whether this build can capture CUDA graphs (LibTorch with CUDA).
  static bool Available();
  // The captures of every model in the process (StepGraphs and StartGraphs) take turns under
  // this lock. A capture synchronises the device before and after it, and a device-wide
  // synchronisation while another thread's capture is underway fails and invalidates that
  // capture: two models on one GPU capturing at once (the server's variants, e.g. a version
  // loaded while another one serves) would break each other.
  static std::mutex& CaptureTurn();
  // The bucket of `rows` rows: the next power of two (the rows a graph computes).
  static int64_t Bucket(int64_t rows) {
    int64_t n = 1;
    while (n < rows) n *= 2;
    return n;
  }

  StepGraphs();
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // One step over r = tokens.size(0) rows (1 <= r <= kMaxRows, state tensors on one CUDA
  // device, tokens there or on the CPU, int64 or integral fp32 as a greedy step's best):
  // `step(tokens)` computes a result [rows, ...] (log-probabilities [rows, V], or each row's
  // best token) from the tensors that `slots` point to (each [rows, ...]) and may replace
  // them. Returns its rows 0..r-1: the graph's output, valid until the graph's next replay;
  // afterwards the slots hold the new state. `owner` identifies the state (alive as long as
  // it is). Thread-safe (one replay at a time).
  using StepFn = std::function<torch::Tensor(const torch::Tensor& tokens)>;
  torch::Tensor Run(const torch::Tensor& tokens, const std::vector<torch::Tensor*>& slots,
                    const StepFn& step, const std::shared_ptr<const void>& owner);

  int64_t captured() const;  // graphs captured so far
  std::string last_error() const;  // why the last failed capture failed ("" if none)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixserve::model
