// Servable model version directories with random weights, for tests and smoke runs.
#pragma once

#include <cstdint>
#include <string>

#include "config/model_spec.h"

namespace mixserve {

// Writes model.pbtxt, weights (seeded random initialisation), metadata.json and, when
// `tokenizer_model_path` is not empty, a copy of it as spec.tokenizer_file (spm.model) into
// `out_dir`. Throws EngineError naming the problem (invalid spec, unknown mixer, I/O).
void CreateRandomModel(const ModelSpec& spec, const std::string& tokenizer_model_path,
                       const std::string& out_dir, uint64_t seed);

}  // namespace mixserve
