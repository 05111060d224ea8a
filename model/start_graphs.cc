#include "model/start_graphs.h"

#include <algorithm>
#include <mutex>

#include "model/step_graphs.h"

#if defined(MIXSERVE_WITH_CUDA)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace mixserve::model {
#if defined(MIXSERVE_WITH_CUDA)

struct StartGraphs::Impl {
  struct Graph {
    int64_t n = 0, length = 0, width = 0;
    bool failed = false;
    torch::Tensor blank;             // [n, length]: padding, EOS in column 0
    torch::Tensor src;               // what the graph reads
    std::vector<torch::Tensor> out;  // [n * width, ...]
    at::cuda::CUDAGraph graph;
  };
  mutable std::mutex mu;
  std::vector<std::unique_ptr<Graph>> graphs;
  bool have_pool = false;
  at::cuda::MempoolId_t pool{0, 0};
  int64_t captured = 0;
  std::string last_error;

  Graph& Find(int64_t n, int64_t length, int64_t width) {
    for (auto& g : graphs)
      if (g->n == n && g->length == length && g->width == width) return *g;
    graphs.push_back(std::make_unique<Graph>());
    auto& g = *graphs.back();
    g.n = n;
    g.length = length;
    g.width = width;
    return g;
  }

  static void CopyIn(Graph& g, const torch::Tensor& src) {
    g.src.copy_(g.blank);
    g.src.narrow(0, 0, src.size(0)).narrow(1, 0, src.size(1)).copy_(src);
  }

  void Capture(Graph& g, const torch::Tensor& src, int64_t pad, int64_t eos,
               const StartFn& start) {
    const auto device = src.device();
    g.blank = torch::full({g.n, g.length}, pad, src.options());
    g.blank.select(1, 0).fill_(eos);
    g.src = g.blank.clone();
    CopyIn(g, src);
    if (!have_pool) {
      pool = at::cuda::graph_pool_handle();
      have_pool = true;
    }
    std::lock_guard<std::mutex> turn(StepGraphs::CaptureTurn());  // to the last synchronise
    torch::cuda::synchronize(device.index());
    auto side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
    bool begun = false;
    try {
      c10::cuda::CUDAStreamGuard guard(side);
      start(g.src);  // one eager run first (library handles, workspaces) on the capture stream
      g.graph.capture_begin(pool, cudaStreamCaptureModeThreadLocal);
      begun = true;
      g.out = start(g.src);
      begun = false;
      g.graph.capture_end();
    } catch (const std::exception& e) {
      if (begun) {
        try {
          g.graph.capture_end();
        } catch (...) {
        }
      }
      g.failed = true;
      g.out.clear();
      last_error = e.what();
    }
    torch::cuda::synchronize(device.index());
    if (!g.failed) ++captured;
  }
};

std::vector<torch::Tensor> StartGraphs::Run(const torch::Tensor& src, int64_t width,
                                            int64_t max_len, int64_t pad, int64_t eos,
                                            const StartFn& start) {
  if (src.dim() != 2 || !src.is_cuda() || width < 1) return {};
  const int64_t r = src.size(0), s = src.size(1);
  if (r < 1 || r > kMaxRows || s < 1 || s > max_len) return {};
  const int64_t n = StepGraphs::Bucket(r);
  const int64_t length = std::min(max_len, (s + kLengthStep - 1) / kLengthStep * kLengthStep);
  auto& I = *impl_;
  std::lock_guard<std::mutex> lock(I.mu);
  auto& g = I.Find(n, length, width);
  if (g.failed) return {};
  if (g.out.empty()) {
    I.Capture(g, src, pad, eos, start);
    if (g.failed) return {};
  } else {
    Impl::CopyIn(g, src);
  }
  g.graph.replay();
  std::vector<torch::Tensor> out;
  out.reserve(g.out.size());
  for (const auto& t : g.out) out.push_back(t.narrow(0, 0, r * width));
  return out;
}

#else  // no CUDA: every start is eager

struct StartGraphs::Impl {
  mutable std::mutex mu;
  int64_t captured = 0;
  std::string last_error;
};

std::vector<torch::Tensor> StartGraphs::Run(const torch::Tensor&, int64_t, int64_t, int64_t,
                                            int64_t, const StartFn&) {
  return {};
}

#endif

StartGraphs::StartGraphs() : impl_(std::make_unique<Impl>()) {}
StartGraphs::~StartGraphs() = default;

int64_t StartGraphs::captured() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->captured;
}

std::string StartGraphs::last_error() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->last_error;
}

}  // namespace mixserve::model
