// The results of a mixserve-loadgen run: per-request records in, per-variant summaries and
// A/B comparisons out, as a table or JSON. Free of gRPC (status codes are plain ints).
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "clients/loadgen/stats.h"

namespace mixserve::loadgen {

// One request as the client saw it.
struct Record {
  std::size_t sentence = 0;  // index into the test set
  std::string variant;       // the variant label the request is reported under
  std::string served_by;     // "name:version" named in the response ("" on failure)
  int status = 0;            // gRPC status code (0: OK)
  std::string message;       // the status message of a failed request
  double latency_ms = 0;     // from the scheduled send time to the response
  double sent_s = 0;         // scheduled send time, seconds from the start of the run
  double server_queue_ms = 0, server_total_ms = 0;  // the response's timings
  int input_tokens = 0, output_tokens = 0;
  std::string translation;
};

// The label of failed requests whose variant is unknown (routing chose, no response).
extern const char* const kUnroutedLabel;

struct RunInfo {
  std::string mode;          // "closed" or "open"
  int concurrency = 0;       // closed loop
  double offered_qps = 0;    // open loop
  double wall_s = 0;         // first dispatch (after the warm-up) to last completion
  double warmup_s = 0;       // requests sent before this are left out of the report
  std::size_t warmup_requests = 0;
  std::size_t dispatched = 0;  // sentences sent (each to every forced variant)
  std::size_t dropped = 0;     // open loop: arrivals dropped at the in-flight limit
  std::size_t test_set_size = 0;
  std::string routing_key_mode;
  std::vector<std::string> forced_variants;  // empty: routed
};

struct VariantReport {
  std::string label;
  std::vector<std::string> served_by;  // distinct "name:version" that answered
  std::size_t requests = 0, ok = 0;
  std::map<std::string, std::size_t> errors;  // status name -> count
  std::map<std::string, std::string> error_examples;  // status name -> its first message
  double sentences_per_s = 0, output_tokens_per_s = 0, input_tokens_per_s = 0;
  LatencySummary latency;           // successful requests, ms
  LatencySummary server_queue, server_total;  // the server's own timings of them, ms
  std::vector<double> latencies_ms;  // successful requests
  // Corpus BLEU of the distinct sentences this variant answered (first answer of each).
  std::size_t bleu_sentences = 0;
  double bleu = 0;
  std::string bleu_line;  // sacreBLEU's summary line
  std::map<std::size_t, std::string> translations;  // sentence index -> first answer
};

struct Comparison {
  std::string baseline, candidate;  // labels; differences are candidate - baseline
  std::size_t paired_sentences = 0;  // answered by both
  bool paired = false;               // a bootstrap test was run
  PairedBootstrapResult bootstrap;
  // candidate / baseline latency of successful requests (0 when either has none)
  double ratio_p50 = 0, ratio_p90 = 0, ratio_p99 = 0, ratio_mean = 0;
};

struct Report {
  RunInfo run;
  std::vector<VariantReport> variants;
  std::vector<Comparison> comparisons;  // every other variant against the first
};

// Leaves out the requests sent before `warmup_s`; returns how many through *excluded.
std::vector<Record> AfterWarmup(const std::vector<Record>& records, double warmup_s,
                                std::size_t* excluded);

// Builds the report. Variants appear in the order of run.forced_variants when forced, else
// sorted by label (unrouted failures last); the first is the baseline of the comparisons.
Report BuildReport(const RunInfo& run, const std::vector<Record>& records,
                   const std::vector<std::string>& references, const BootstrapOptions& bootstrap);

std::string StatusName(int code);
std::string FormatTable(const Report& report);
std::string ToJson(const Report& report);

}  // namespace mixserve::loadgen
