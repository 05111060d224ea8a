// How each text of a call is translated: whole on the variant's engine, whole on its
// long-sentence engine, or in pieces cut at clause boundaries; tokenized once, here
// (docs/server.md, "Long sentences").
#pragma once

#include <grpcpp/support/status.h>

#include <string>
#include <vector>

#include "engine/engine.h"
#include "mixserve/v1/translation.pb.h"
#include "server/variant.h"

namespace mixserve {

struct SentencePlan {
  // Token ids of each piece: one when the sentence runs whole. None: the text has no tokens
  // (only characters the tokenizer drops) and is answered with itself (documents only).
  std::vector<std::vector<int>> pieces;
  int lane = 0;  // SentenceJob::lane
  int input_tokens = 0;
};

struct CallPlan {
  std::vector<SentencePlan> sentences;
  DecodeOptions options;       // lane 0
  DecodeOptions long_options;  // lane 1: the long-sentence engine's output limit
  size_t jobs() const;
};

// Tokenizes `texts` for `v` and decides how each runs. `label` names a text in errors:
// "text" for a lone text, else "<label>[i]". In a document (`document`), a text without
// tokens is copied instead of refused. INVALID_ARGUMENT names the text and the reason.
grpc::Status PlanCall(const std::vector<std::string>& texts, const v1::DecodingOptions& options,
                      const Variant& v, const std::string& label, bool document,
                      CallPlan* plan);

}  // namespace mixserve
