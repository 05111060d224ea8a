#include "model/host_copy.h"

#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <thread>

namespace mixserve::model {

// The device-generic event (c10): no CUDA headers here, the CUDA implementation is found at
// run time.
struct HostCopy::Event {
  explicit Event(const torch::Device& device) : event(device.type()) {
    event.record(c10::impl::VirtualGuardImpl(device.type()).getStream(device));
  }
  c10::Event event;
};

HostCopy::HostCopy(const torch::Tensor& t) {
  if (t.device().is_cpu()) {
    host_ = t;
    return;
  }
  host_ = torch::empty(t.sizes(), t.options().device(torch::kCPU).pinned_memory(true));
  host_.copy_(t, /*non_blocking=*/true);
  event_ = std::make_unique<Event>(t.device());
}

HostCopy::HostCopy() = default;
HostCopy::~HostCopy() = default;
HostCopy::HostCopy(HostCopy&&) noexcept = default;
HostCopy& HostCopy::operator=(HostCopy&&) noexcept = default;

const torch::Tensor& HostCopy::Wait() {
  if (event_) {
    // Polled: c10::Event has no blocking wait in every LibTorch this builds with (the CUDA
    // runtime's own synchronisation spins by default too).
    while (!event_->event.query()) std::this_thread::yield();
    event_.reset();
  }
  return host_;
}

}  // namespace mixserve::model
