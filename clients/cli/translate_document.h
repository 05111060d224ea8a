// mixserve-cli's document translation (`translate --document`): the whole input in one
// TranslateDocument call, which the server splits into sentences and puts back together.
#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "clients/cli/retry.h"
#include "mixserve/v1/translation.grpc.pb.h"

namespace mixserve::cli {

struct DocumentOptions {
  v1::TranslationService::StubInterface* stub = nullptr;  // not owned
  v1::TranslateDocumentRequest request;                   // text, languages, options
  // The call's deadline, retries included: RESOURCE_EXHAUSTED and UNAVAILABLE are tried again
  // after a jittered backoff while it allows.
  std::chrono::milliseconds deadline{30000};
  RetryPolicy retry;
  bool json = false;  // print the whole response as one line of JSON
  std::vector<std::pair<std::string, std::string>> metadata;
};

// Prints the translated document (a final line break added when it has none); with
// request.return_segments() and no json, the alignment instead: one Segment as JSON per line.
// A failure prints `mixserve-cli: CODE: message` on `err`. Returns 0, or 1 on failure.
int TranslateDocument(const DocumentOptions& options, std::ostream& out, std::ostream& err);

}  // namespace mixserve::cli
