#include "model/step_graphs.h"

#include <mutex>
#include <stdexcept>

#include "model/token_mixer.h"

#if defined(MIXSERVE_WITH_CUDA)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace mixserve::model {

std::mutex& StepGraphs::CaptureTurn() {
  static std::mutex turn;
  return turn;
}

#if defined(MIXSERVE_WITH_CUDA)

namespace {

// The shapes beyond the rows and the types of the state's tensors.
std::vector<int64_t> Signature(const std::vector<torch::Tensor*>& slots) {
  std::vector<int64_t> sig;
  for (const auto* t : slots) {
    sig.push_back(static_cast<int64_t>(t->scalar_type()));
    sig.push_back(t->dim());
    for (int64_t d = 1; d < t->dim(); ++d) sig.push_back(t->size(d));
  }
  return sig;
}

}  // namespace

struct StepGraphs::Impl {
  struct Graph {
    int64_t n = 0;
    std::vector<int64_t> signature;
    bool failed = false;             // capture failed: eager steps for this key
    std::weak_ptr<const void> owner;  // the state whose tensors point into this graph
    torch::Tensor tokens;            // [n] int64
    std::vector<torch::Tensor> in;   // [n, ...]: what the graph reads
    std::vector<torch::Tensor> out;  // [n, ...]: what the step left in the slots
    torch::Tensor result;            // [n, ...]: what the step returned
    at::cuda::CUDAGraph graph;
    // `out` narrowed to the rows of the last replay (views made once per number of rows:
    // creating a few dozen views at every step costs more host time than the rest of it).
    int64_t views_rows = -1;
    std::vector<torch::Tensor> views;
  };
  mutable std::mutex mu;
  std::vector<std::unique_ptr<Graph>> graphs;
  int64_t captured = 0;
  std::string last_error;

  Graph& Find(int64_t n, const std::vector<int64_t>& sig) {
    for (auto& g : graphs)
      if (g->n == n && g->signature == sig) return *g;
    graphs.push_back(std::make_unique<Graph>());
    graphs.back()->n = n;
    graphs.back()->signature = sig;
    return *graphs.back();
  }

  // Whether `t` is rows 0..r-1 of `full` (the same memory and layout).
  static bool IsRowsOf(const torch::Tensor& t, const torch::Tensor& full, int64_t r) {
    return t.data_ptr() == full.data_ptr() && t.size(0) == r && t.dim() == full.dim() &&
           t.sizes().slice(1) == full.sizes().slice(1) && t.strides() == full.strides();
  }

  // Copies the tokens (on the CPU or the device) and the slots' rows into the graph's inputs,
  // skipping the slots that already are those inputs (a step that wrote in place left them).
  static void CopyIn(Graph& g, const torch::Tensor& tokens,
                     const std::vector<torch::Tensor*>& slots) {
    const int64_t r = tokens.size(0);
    g.tokens.narrow(0, 0, r).copy_(tokens, /*non_blocking=*/true);
    for (size_t i = 0; i < slots.size(); ++i) {
      const auto& t = *slots[i];
      if (IsRowsOf(t, g.in[i], r)) continue;
      g.in[i].narrow(0, 0, r).copy_(t);
    }
  }

  // Captures the step for `g` (n rows). The inputs start as copies of the current rows (the
  // rest zeros: position 0 and token 0 are valid indices for the unused rows).
  void Capture(Graph& g, const torch::Tensor& tokens, const std::vector<torch::Tensor*>& slots,
               const StepFn& step) {
    const auto device = slots.empty() ? tokens.device() : slots.front()->device();
    g.tokens = torch::zeros({g.n}, torch::TensorOptions(torch::kLong).device(device));
    for (const auto* t : slots) {
      auto shape = t->sizes().vec();
      shape[0] = g.n;
      g.in.push_back(torch::zeros(shape, t->options()));
    }
    CopyIn(g, tokens, slots);
    const std::vector<torch::Tensor> saved = [&] {
      std::vector<torch::Tensor> s;
      for (const auto* t : slots) s.push_back(*t);
      return s;
    }();
    auto point_at_inputs = [&] {
      for (size_t i = 0; i < slots.size(); ++i) *slots[i] = g.in[i];
    };
    std::lock_guard<std::mutex> turn(StepGraphs::CaptureTurn());  // to the last synchronise
    torch::cuda::synchronize(device.index());
    auto side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
    bool begun = false;
    try {
      c10::cuda::CUDAStreamGuard guard(side);
      StepCaptureScope scope;
      // One eager run first (library handles, workspaces), on the capture stream and on
      // copies of the inputs: a step that writes in place may also read what it overwrites
      // (the windowed AFT ring), so the inputs must reach the replay untouched.
      {
        std::vector<torch::Tensor> scratch;
        for (const auto& t : g.in) scratch.push_back(t.clone());
        for (size_t i = 0; i < slots.size(); ++i) *slots[i] = scratch[i];
        step(g.tokens);
      }
      point_at_inputs();
      g.graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
      begun = true;
      g.result = step(g.tokens);
      begun = false;
      g.graph.capture_end();
      for (const auto* t : slots) g.out.push_back(*t);
    } catch (const std::exception& e) {
      if (begun) {
        try {
          g.graph.capture_end();
        } catch (...) {
        }
      }
      for (size_t i = 0; i < slots.size(); ++i) *slots[i] = saved[i];
      g.failed = true;
      g.in.clear();
      g.out.clear();
      g.result = torch::Tensor();
      last_error = e.what();
    }
    torch::cuda::synchronize(device.index());
    if (!g.failed) ++captured;
  }
};

bool StepGraphs::Available() { return true; }

torch::Tensor StepGraphs::Run(const torch::Tensor& tokens,
                              const std::vector<torch::Tensor*>& slots, const StepFn& step,
                              const std::shared_ptr<const void>& owner) {
  const int64_t r = tokens.size(0);
  for (const auto* t : slots)
    if (!t->defined() || !t->is_cuda() || t->dim() < 1 || t->size(0) != r)
      throw std::invalid_argument("StepGraphs: every state tensor must be on CUDA with " +
                                  std::to_string(r) + " rows");
  const auto device = slots.empty() ? tokens.device() : slots.front()->device();
  auto eager = [&] { return step(tokens.to(device, torch::kLong)); };
  if (r < 1 || r > kMaxRows) return eager();
  auto& I = *impl_;
  std::lock_guard<std::mutex> lock(I.mu);
  auto& g = I.Find(Bucket(r), Signature(slots));
  if (g.failed) return eager();
  // Another live state's tensors point into this graph: leave them alone.
  const auto current = g.owner.lock();
  if (current && current != owner) return eager();
  g.owner = owner;
  if (g.in.empty()) {
    I.Capture(g, tokens.to(device), slots, step);
    if (g.failed) return eager();
  } else {
    Impl::CopyIn(g, tokens, slots);
  }
  g.graph.replay();
  if (g.views_rows != r) {
    g.views.clear();
    for (const auto& t : g.out) g.views.push_back(t.narrow(0, 0, r));
    g.views_rows = r;
  }
  for (size_t i = 0; i < slots.size(); ++i) *slots[i] = g.views[i];
  return g.result.narrow(0, 0, r);
}

#else  // no CUDA: every step is eager

struct StepGraphs::Impl {
  mutable std::mutex mu;
  int64_t captured = 0;
  std::string last_error;
};

bool StepGraphs::Available() { return false; }

torch::Tensor StepGraphs::Run(const torch::Tensor& tokens, const std::vector<torch::Tensor*>&,
                              const StepFn& step, const std::shared_ptr<const void>&) {
  return step(tokens);
}

#endif

StepGraphs::StepGraphs() : impl_(std::make_unique<Impl>()) {}
StepGraphs::~StepGraphs() = default;

int64_t StepGraphs::captured() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->captured;
}

std::string StepGraphs::last_error() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->last_error;
}

}  // namespace mixserve::model
