// Model version directories:
//   model.pbtxt    the ModelSpec as text-format mixserve.v1.ModelConfig
//   <weights_file> (spec.weights_file, default model.pt) every named parameter and buffer of
//                  the Transformer, written with torch::serialize::OutputArchive under its
//                  module path ("decoder.0.cross.mixer.q.weight"); optionally stored as fp16
//                  and converted back to fp32 on load
//   metadata.json  mixserve.v1.ModelMetadata (proto/mixserve/v1/records.proto) as JSON:
//                  parameter count, creation time, weights dtype, the caller's fields
// Other files (spm.model, ...) are the caller's business.
#pragma once

#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include "model/transformer.h"

namespace mixserve::model {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SaveOptions {
  bool fp16 = false;  // store floating-point tensors as fp16
  // Extra fields of metadata.json, by ModelMetadata field name (a name the message lacks is
  // a CheckpointError); non-finite numbers are left out.
  std::map<std::string, std::string> metadata;         // string fields
  std::map<std::string, double> numeric_metadata;      // number fields
};

// Creates `dir` if needed and writes model.pbtxt, the weights and metadata.json.
void SaveCheckpoint(Transformer& model, const std::string& dir, const SaveOptions& options = {});

// Reads model.pbtxt, builds the Transformer on the CPU in fp32 and loads the weights.
// Throws CheckpointError naming the file and the problem; a config/weights mismatch names
// the tensor (missing, unexpected, or both shapes).
// max_len > 0 builds the model for that longest sequence instead of model.pbtxt's: the
// sinusoidal position table is computed for it, and every other tensor must keep its shape,
// which holds for mixers whose weights do not depend on the length (mha, aft_simple, lstm);
// for the others (the feed-forward family, aft_full, aft_local, aft_conv) it throws
// CheckpointError naming the tensor.
Transformer LoadCheckpoint(const std::string& dir, int max_len = 0);
ModelSpec ReadCheckpointSpec(const std::string& dir);

// The weights file alone.
void SaveWeights(Transformer& model, const std::string& path, bool fp16 = false);
// Tensors named in `recomputed` whose shape differs from the file's keep the model's own
// values (the position table of a model built for another max_len).
void LoadWeights(Transformer& model, const std::string& path,
                 const std::set<std::string>& recomputed = {});

// Writes metadata.json into `dir` (called by SaveCheckpoint).
void WriteMetadata(Transformer& model, const std::string& dir, const SaveOptions& options);

}  // namespace mixserve::model
