// Reading and writing model.pbtxt (text-format mixserve.v1.ModelConfig) as a ModelSpec.
#pragma once

#include <string>

#include "config/model_spec.h"

namespace mixserve {

// Parses text-format ModelConfig. On failure returns false and sets *error to a message that
// names the file and the problem (parse error with line, unknown site, bad value).
bool ParseModelSpec(const std::string& text, ModelSpec* spec, std::string* error);
bool ReadModelSpec(const std::string& path, ModelSpec* spec, std::string* error);

// Writes the spec as text-format ModelConfig: model-wide defaults plus per-layer overrides.
std::string FormatModelSpec(const ModelSpec& spec);
bool WriteModelSpec(const std::string& path, const ModelSpec& spec, std::string* error);

}  // namespace mixserve
