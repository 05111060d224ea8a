// pytorch_model.bin: a state dict written by Python's torch.save, read with LibTorch's own
// unpickler (torch::pickle_load).
#pragma once

#include <string>

#include "model/safetensors.h"

namespace mixserve::model {

// The file's name -> tensor pairs (CPU, stored dtype), sorted by name. Throws
// std::runtime_error naming the file where LibTorch cannot read it: files of torch.save
// before PyTorch 1.6 (not a zip archive), and, with LibTorch 1.13, state dicts saved as
// collections.OrderedDict (what model.state_dict() is), which its unpickler turns into None;
// the message says how to convert the file to model.safetensors instead.
NamedTensors ReadTorchStateDict(const std::string& path);

}  // namespace mixserve::model
