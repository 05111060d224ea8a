// metadata.json of a model directory: mixserve.v1.ModelMetadata (proto/mixserve/v1/
// records.proto) in protobuf's JSON mapping, behind a plain interface (model/ is a Torch
// target and may not include protobuf headers).
#pragma once

#include <string>

#include "config/flat_record.h"

namespace mixserve {

// The record as metadata.json text (indented, keys are the field names). Non-finite numbers
// are left out. Throws std::invalid_argument naming a key that ModelMetadata lacks or a value
// of the wrong type.
std::string FormatModelMetadata(const FlatRecord& metadata);
// The same into `path` (errors name it); std::runtime_error when it cannot be written.
void WriteModelMetadata(const std::string& path, const FlatRecord& metadata);

// The fields set in a metadata.json. Throws std::runtime_error naming `source` (or the path)
// for malformed JSON, unknown fields and values of the wrong type.
FlatRecord ParseModelMetadata(const std::string& text, const std::string& source);
FlatRecord ReadModelMetadata(const std::string& path);

}  // namespace mixserve
