// Command line of mixserve-loadgen.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mixserve::loadgen {

// A variant forced on every request: model name and version (0: the latest loaded).
struct ForcedVariant {
  std::string name;
  int64_t version = 0;
  std::string label;  // as given on the command line, e.g. "en-de-base" or "en-de-alt:2"
};

enum class RoutingKeyMode {
  kNone,      // no key: the server splits requests at random by the route's weights
  kSentence,  // the sentence index: every repetition of a sentence goes to the same variant
  kRequest,   // a fresh key per request (random split, reproducible from the run)
  kFixed,     // one key for every request: all traffic sticks to one variant
};

struct Options {
  std::string target = "localhost:8500";
  std::string source_file, reference_file;
  std::string source_language, target_language;

  // Closed loop: `concurrency` sentences in flight, each sent when the previous finishes.
  // Open loop (qps > 0): sentences arrive as a Poisson process of rate qps, whatever the
  // server's speed, up to max_inflight requests at once; arrivals beyond that are dropped by
  // the client and counted.
  int concurrency = 8;
  double qps = 0;
  int max_inflight = 4096;
  // Bounds: stop dispatching after duration_s seconds or count sentences, whichever comes
  // first; with neither, one pass over the test set. The test set repeats as needed.
  double duration_s = 0;
  long count = 0;
  // Requests sent in the first warmup_s seconds are left out of the report (their time is
  // part of duration_s).
  double warmup_s = 0;

  std::vector<ForcedVariant> variants;  // empty: the server's routing decides
  RoutingKeyMode routing_key_mode = RoutingKeyMode::kNone;
  std::string fixed_routing_key;

  int beam = 0;
  int max_tokens = 0;
  long deadline_ms = 30000;
  std::string token;
  std::string tls_ca;  // PEM file; TLS when set
  int channels = 1;    // separate connections to spread the calls over

  std::string json_path, plot_path;
  // Per variant, PREFIX.<variant>.txt: its first translation of every test-set line, in order
  // (an empty line where it answered none), e.g. for sacrebleu.
  std::string hyps_prefix;
  int bootstrap_resamples = 1000;
  uint64_t seed = 12345;  // Poisson arrivals, request routing keys and the bootstrap
  bool quiet = false;
};

// The usage message (what --help prints before the flags).
const char* Usage();

// Parses argv (Abseil flags declared in options.cc, parsed by base/flags.h). Returns 0 on
// success; 1 when --help or --version was asked and printed (exit status 0); 2 on a bad
// command line, with *error naming the problem.
int ParseOptions(int argc, char** argv, Options* options, std::string* error);

// "name" or "name:version" (version >= 0); false when malformed.
bool ParseVariant(const std::string& text, ForcedVariant* variant);

}  // namespace mixserve::loadgen
