// Exactness of a model against another implementation's answers (reference files written by
// scripts/reference/marian_reference.py from transformers' MarianTokenizer and generate()):
// the same source ids, and token for token the same greedy and beam translations and texts,
// through the serving path (Engine: continuous batching, CUDA graphs where they apply).
// Torch-free.
#pragma once

#include <string>
#include <vector>

#include "engine/engine.h"

namespace mixserve::offline {

// One reference line: "index \t source ids \t greedy ids \t beam ids \t beam score \t greedy
// text \t beam text" (ids space-separated, ending with EOS where generated).
struct ReferenceLine {
  int index = 0;
  std::vector<int> source, greedy, beam;
  double beam_score = 0;
  std::string greedy_text, beam_text;
};
// Throws std::runtime_error naming the file and line of a malformed line.
std::vector<ReferenceLine> ReadReferenceLines(const std::string& path);

struct ExactnessOptions {
  EngineOptions engine;
  int max_new_tokens = 48;  // transformers' max_new_tokens: tokens generated, EOS included
  int beam_size = 4;
  int batch = 50;           // sentences per Engine::Translate call
};

struct ExactnessReport {
  int sentences = 0;
  int source_equal = 0, greedy_equal = 0, beam_equal = 0;
  int greedy_text_equal = 0, beam_text_equal = 0;
  std::vector<int> greedy_differ, beam_differ;  // reference indices
  std::vector<std::string> examples;  // the first few differences, spelled out
  double seconds = 0;
  std::string device, dtype;
};

// Translates `sentences[i]` for every reference line i with the model in `model_dir` and
// compares. Throws EngineError / std::runtime_error for a model or tokenizer that cannot load.
ExactnessReport CheckAgainstReference(const std::string& model_dir,
                                      const std::vector<std::string>& sentences,
                                      const std::vector<ReferenceLine>& reference,
                                      const ExactnessOptions& options);

}  // namespace mixserve::offline
