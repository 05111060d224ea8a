// A model's tokenizers as its spec names them: the one place that knows which files make them
// up, for every program that loads, tokenizes for or copies a model (server, mixserve-offline).
// Plain C++ (text/tokenizer.h, config/model_spec.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/model_spec.h"
#include "text/tokenizer.h"

namespace mixserve {

// `source` cuts source text into ids; `target` does the same for target text (reference
// translations, training targets) and turns output ids into text. A joint SentencePiece
// model serves both (target == source).
struct ModelTokenizers {
  std::shared_ptr<const Tokenizer> source;
  std::shared_ptr<const Tokenizer> target;
};

// The tokenizer file names of `spec`, relative to the model directory, each once:
// tokenizer_file ("spm.model" when empty), target_tokenizer_file and vocabulary_file where set.
// A model copied to another directory needs all of them.
std::vector<std::string> TokenizerFiles(const ModelSpec& spec);

// Loads the tokenizers of the model in `dir`. Without spec.vocabulary_file: mixserve's own
// tokenizers (Tokenizer::Load). With it: both tokenizers speak the ids of that vocabulary
// (Tokenizer::LoadWithVocabulary with spec.ids), the source one over tokenizer_file and the
// target one over target_tokenizer_file (the source one when empty). Throws
// std::runtime_error naming the file at fault.
ModelTokenizers LoadModelTokenizers(const std::string& dir, const ModelSpec& spec);

}  // namespace mixserve
