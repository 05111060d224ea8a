// The JSON header of a .safetensors file (https://github.com/huggingface/safetensors):
//   8 bytes: N, little-endian uint64; N bytes: JSON object; then the tensors' bytes.
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets into the bytes after the header) and may hold "__metadata__" (string -> string).
// Read and written through protobuf's JSON mapping (google.protobuf.Struct); plain C++
// values here, so the Torch side (model/safetensors.h) can use it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mixserve {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", ... as written (not checked here)
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // data_offsets
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // ordered by begin offset
  std::map<std::string, std::string> metadata;
};

// Parses the header's JSON. Throws std::runtime_error "<source>: ..." naming the tensor for
// a malformed entry (missing or extra keys, negative sizes, offsets that are not two
// integers with begin <= end).
SafetensorsHeader ParseSafetensorsHeader(const std::string& json, const std::string& source);

// The header's JSON for `header` (offsets as given), without padding.
std::string FormatSafetensorsHeader(const SafetensorsHeader& header);

}  // namespace mixserve
