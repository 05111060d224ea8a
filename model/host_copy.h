// A small tensor on its way from the device to the host without stopping the device.
//
// `t.to(torch::kCPU)` waits for everything queued on the device so far. A HostCopy queues the
// copy (into page-locked memory, an event behind it) and returns at once; Wait() blocks only
// until that copy is done, not until the work queued after it: greedy search launches the
// next decoding step before it reads this one's results (model/search.h, lookahead).
#pragma once

#include <torch/torch.h>

#include <memory>

namespace mixserve::model {

class HostCopy {
 public:
  HostCopy();
  // A CPU tensor is taken as it is.
  explicit HostCopy(const torch::Tensor& t);
  ~HostCopy();
  HostCopy(HostCopy&&) noexcept;
  HostCopy& operator=(HostCopy&&) noexcept;

  // The tensor on the host, once the copy is done (blocks until then).
  const torch::Tensor& Wait();

 private:
  torch::Tensor host_;
  struct Event;
  std::unique_ptr<Event> event_;  // null: nothing to wait for
};

}  // namespace mixserve::model
