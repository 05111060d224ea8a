// A Hugging Face MarianMT directory (what `huggingface-cli download Helsinki-NLP/opus-mt-en-de`
// writes) as a mixserve Transformer: the spec from config.json and generation_config.json
// (model/marian_layout.h), the weights from model.safetensors or pytorch_model.bin. Reads
// local files only.
#pragma once

#include <string>
#include <vector>

#include "model/transformer.h"

namespace mixserve::model {

struct MarianImport {
  Transformer model{nullptr};
  std::string weights_file;        // the file the tensors came from
  std::vector<std::string> notes;  // tensors computed or zeroed, copies checked, for the report
};

// Throws std::runtime_error naming the file and the field or tensor for a directory that is
// incomplete or that mixserve cannot represent; std::invalid_argument for a `max_len` beyond
// max_position_embeddings.
MarianImport ImportMarian(const std::string& dir, int max_len = 0);

// Marian's sinusoid table [max_len, d] ("halves": sin of the angles in the first half of the
// dimensions, cos in the second), computed in double precision and rounded to fp32, as
// transformers' MarianSinusoidalPositionalEmbedding does.
torch::Tensor MarianSinusoids(int max_len, int d);

}  // namespace mixserve::model
