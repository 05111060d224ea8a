// .safetensors files (config/safetensors_header.h describes the layout): the format Hugging
// Face models are published in, and a way to hand mixserve weights to other tools.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mixserve::model {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Every tensor of the file, in file order, on the CPU in its stored dtype (F32, F16, BF16,
// F64, I64, I32). Throws std::runtime_error naming the file (and the tensor) for a file that
// is truncated (header length or data offsets beyond the file), an unknown dtype, or a shape
// that disagrees with its data offsets.
NamedTensors ReadSafetensors(const std::string& path);

// Writes `tensors` (any device; contiguous copies are taken) in the order given, with
// `metadata` as "__metadata__". Throws std::runtime_error naming the file.
void WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace mixserve::model
