// One loaded model version ready to serve: tokenizer, engine, scheduler and metrics.
#pragma once

#include <memory>
#include <string>

#include "config/model_spec.h"
#include "engine/engine.h"
#include "mixserve/v1/config.pb.h"
#include "server/metrics.h"
#include "server/router.h"
#include "server/scheduler.h"
#include "text/tokenizer.h"

namespace mixserve {

struct Variant {
  VariantId id;
  std::string dir;
  ModelSpec spec;
  v1::ModelConfig config;          // model.pbtxt as read
  v1::ModelServingConfig serving;  // with defaults applied
  std::string metadata_json;
  // Source tokens (without BOS/EOS) above which a sentence is refused; 0: none (longer
  // sentences run on the long-sentence engine or in pieces).
  int max_input_tokens = 0;
  int max_output_tokens = 0;       // the model's limit, without BOS/EOS
  // Sentences of at most whole_tokens source tokens run whole on `engine`; longer ones of at
  // most long_tokens whole on `long_engine` (when there is one), with up to long_output_tokens
  // of output; longer ones in pieces of at most piece_tokens (docs/server.md, "Long sentences").
  int whole_tokens = 0;
  int long_tokens = 0;
  int long_output_tokens = 0;
  int piece_tokens = 0;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::shared_ptr<const Tokenizer> target_tokenizer;  // the joint one unless separate
  std::unique_ptr<Engine> engine;
  // The same weights built for long sentences (EngineOptions::max_len), without CUDA graphs;
  // null when the model's mixers depend on the length or max_sentence_tokens is -1.
  std::unique_ptr<Engine> long_engine;
  VariantMetrics* metrics = nullptr;
  // Declared last: destroyed (drained) before the engine it drives.
  std::unique_ptr<Scheduler> scheduler;
};

}  // namespace mixserve
