// mixserve-cli's line-by-line translation (`translate --file=F`, or lines on stdin): every line
// of the input through TranslateStream, at most `window` lines in flight, answers printed in
// input order. A line refused with RESOURCE_EXHAUSTED or UNAVAILABLE is sent again after a
// jittered backoff while its deadline allows; a broken stream (a server restart) is reopened
// and its unanswered lines sent again. A line that still fails is reported on the error stream
// with its line number and status, and the run's exit status is 1: no line is lost silently.
#pragma once

#include <chrono>
#include <istream>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "clients/cli/retry.h"
#include "mixserve/v1/translation.grpc.pb.h"

namespace mixserve::cli {

struct LineOptions {
  v1::TranslationService::StubInterface* stub = nullptr;  // not owned
  // Languages, variant, routing key and decoding options; text and request_id are set per line.
  v1::TranslateRequest base;
  // Lines sent and not yet translated (in flight, or waiting to be sent again), at most.
  int window = 64;
  // Each line's time from its first send to its translation, retries included.
  std::chrono::milliseconds line_deadline{30000};
  RetryPolicy retry;
  bool json = false;  // print each response (a failed line's too) as one line of JSON
  std::vector<std::pair<std::string, std::string>> metadata;  // sent with every stream
};

class LineTranslator {
 public:
  explicit LineTranslator(LineOptions options);
  ~LineTranslator();

  // Translates every line of `in`. Writes one result per input line to `out`, in input order:
  // the translation (or n-best lines, or JSON as LineOptions::json says). A blank line (empty
  // or only white space) is echoed as an empty line without asking the server. A line that is
  // not valid UTF-8 fails without being sent. A line that could not be translated prints an
  // empty line (in JSON: its response with status_code and status_message) while `err` gets
  // `mixserve-cli: line N: CODE: message`. When a line stays refused as retryable for its
  // whole deadline the server is taken to be down or overloaded: the run stops there, the
  // lines read and unfinished are reported as failed and the rest of the input is not read.
  // Returns 0 when every line was translated, else 1.
  int Run(std::istream& in, std::ostream& out, std::ostream& err);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixserve::cli
