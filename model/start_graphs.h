// The start of decoding (encoder, beam rows, decoder state) replayed from captured CUDA graphs.
//
// A new sentence costs an encoder pass and the decoder state's set-up: on a GPU a few hundred
// tiny kernels, launch-bound like a decoding step (model/step_graphs.h). StartGraphs keeps,
// per bucket of source rows (powers of two up to kMaxRows), of source length (multiples of
// kLengthStep, at most the model's max_len) and of beam width, a captured start with its own
// padded source: the rows beyond the real ones hold a one-token sentence (EOS), the columns
// beyond the real length padding, which every mixer masks. A replay's results are views into
// the graph's memory, valid until the next Run: the caller copies them (the state takes them
// over with Append or a clone) before another start. The graphs share one memory pool (they
// never run at the same time, and nothing of one is needed once it has been copied out).
// A bucket whose capture fails falls back to the eager start for good.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mixserve::model {

class StartGraphs {
 public:
  static constexpr int64_t kMaxRows = 256;
  static constexpr int64_t kLengthStep = 16;

  StartGraphs();
  ~StartGraphs();
  StartGraphs(const StartGraphs&) = delete;
  StartGraphs& operator=(const StartGraphs&) = delete;

  // `start(src)` turns a padded source [n, s] into the tensors of a decoder state of
  // n * width rows (each [n * width, ...], rows of source i at i * width .. i * width +
  // width - 1). Returns them for the r = src.size(0) real rows (views, see above), or nothing
  // when `src` fits no graph or its capture failed: the caller starts eagerly.
  // src: int64 [r, s] on a CUDA device, padded with `pad`; `eos` fills the unused rows.
  using StartFn = std::function<std::vector<torch::Tensor>(const torch::Tensor& src)>;
  std::vector<torch::Tensor> Run(const torch::Tensor& src, int64_t width, int64_t max_len,
                                 int64_t pad, int64_t eos, const StartFn& start);

  int64_t captured() const;        // graphs captured so far
  std::string last_error() const;  // why the last failed capture failed ("" if none)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixserve::model
