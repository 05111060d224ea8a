// Hugging Face MarianMT (transformers' MarianMTModel) in mixserve's terms: the ModelSpec of a
// config.json, and where each tensor of the Transformer comes from in the model's state
// dict. Pure functions over configs, names and shapes (no Torch): model/marian_import.h
// applies them to tensors.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/hf_json.h"
#include "config/model_spec.h"

namespace mixserve::model {

// The ModelSpec of a MarianMT model:
//   `config`      config.json
//   `generation`  generation_config.json where the directory has one, else config.json
//                 (which older models carry the generation settings in)
//   `vocabulary`  vocab.json's size and the id of "<unk>"
//   `max_len`     > 0: a shorter longest sequence than max_position_embeddings
// Throws std::runtime_error naming the file and the field for what mixserve cannot
// represent (model_type other than marian, encoder and decoder heads or feed-forward widths
// that differ, normalize_before / add_final_layer_norm / layernorm_embedding, an activation
// other than swish/silu, gelu, relu, decoder_vocab_size != vocab_size, a vocab.json of
// another size, bad_words_ids entries of several tokens).
ModelSpec MarianSpec(const HfJsonObject& config, const HfJsonObject& generation,
                     const HfVocabularySummary& vocabulary, int max_len = 0);

struct NamedShape {
  std::string name;
  std::vector<int64_t> shape;
};

// How a mixserve tensor is filled.
enum class Fill {
  kCopy,       // the source tensor as it is
  kFirstRows,  // the source's first rows (a position table for a shorter max_len)
  kRow,        // the only row of a [1, N] source (final_logits_bias)
  kZeros,      // no source (final_logits_bias absent: transformers' default)
  kSinusoids,  // no source: Marian's sinusoid table, computed
};

struct TensorSource {
  std::string target;  // mixserve name
  std::string source;  // state-dict name; empty for kZeros and kSinusoids
  Fill fill = Fill::kCopy;
};

struct MarianMapping {
  std::vector<TensorSource> tensors;  // in the order of `mixserve`
  // State-dict tensors that are copies of a mapped one (tied embeddings, the decoder's
  // position table): (copy, original). Their values must be equal.
  std::vector<std::pair<std::string, std::string>> duplicates;
};

// Maps the state dict `hf` (names and shapes, from `file`) onto the Transformer of `spec`
// whose parameters and buffers are `mixserve`. Throws std::runtime_error naming the tensor:
// a mixserve tensor without a source, a source of another shape, a state-dict tensor left
// unused.
MarianMapping MapMarianTensors(const ModelSpec& spec, const std::vector<NamedShape>& hf,
                               const std::vector<NamedShape>& mixserve,
                               const std::string& file);

}  // namespace mixserve::model
