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
  int max_input_tokens = 0;        // source tokens without BOS/EOS
  int max_output_tokens = 0;       // the model's limit, without BOS/EOS
  std::shared_ptr<const Tokenizer> tokenizer;
  std::shared_ptr<const Tokenizer> target_tokenizer;  // the joint one unless separate
  std::unique_ptr<Engine> engine;
  VariantMetrics* metrics = nullptr;
  // Declared last: destroyed (drained) before the engine it drives.
  std::unique_ptr<Scheduler> scheduler;
};

}  // namespace mixserve
