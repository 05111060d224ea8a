#include "clients/loadgen/options.h"

#include <absl/flags/flag.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>

#include "base/flags.h"
#include "clients/cli/args.h"

// The test set.
ABSL_FLAG(std::string, src, "", "source side of the test set (required)");
ABSL_FLAG(std::string, ref, "", "reference side of the test set, line by line (required)");
ABSL_FLAG(std::string, src_lang, "", "source language (required)");
ABSL_FLAG(std::string, tgt_lang, "", "target language (required)");
// Load.
ABSL_FLAG(int32_t, concurrency, 8, "closed loop: N sentences in flight");
ABSL_FLAG(double, qps, 0, "open loop: Poisson arrivals at X sentences/s");
ABSL_FLAG(int32_t, max_inflight, 4096,
          "open loop: requests in flight at most; later arrivals are dropped by the client "
          "and counted");
ABSL_FLAG(double, duration, 0, "stop dispatching after this many seconds (0: no limit)");
ABSL_FLAG(int64_t, count, 0, "stop after N sentences (0: no limit)");
ABSL_FLAG(double, warmup, 0, "leave the requests sent in the first SECONDS out of the report");
// Variants and requests.
ABSL_FLAG(std::string, variants, "",
          "send every sentence to each of these variants (NAME or NAME:VER, comma-separated), "
          "so that the comparison is paired; default: the server's routing");
ABSL_FLAG(std::string, routing_key, "none",
          "none, sentence (the sentence index), request (a new key per request), or fixed:KEY");
ABSL_FLAG(int32_t, beam, 0, "beam size (0: the variant's default)");
ABSL_FLAG(int32_t, max_tokens, 0, "maximum output tokens (0: the variant's default)");
ABSL_FLAG(int64_t, deadline_ms, 30000, "per-request deadline in milliseconds");
// Output.
ABSL_FLAG(std::string, json, "", "write the report as JSON to this file");
ABSL_FLAG(std::string, plot, "", "write latency histograms per variant to this SVG file");
ABSL_FLAG(std::string, hyps, "", "write each variant's translations to PREFIX.<variant>.txt");
ABSL_FLAG(int32_t, bootstrap, 1000, "paired bootstrap resamples");
ABSL_FLAG(uint64_t, seed, 12345, "seed of arrivals, routing keys and the bootstrap");
ABSL_FLAG(bool, quiet, false, "no progress line");
// Connection.
ABSL_FLAG(std::string, target, "localhost:8500", "server address HOST:PORT");
ABSL_FLAG(int32_t, channels, 1, "connections to spread requests over (1..64)");
ABSL_FLAG(std::string, token, "", "bearer token sent with every request");
ABSL_FLAG(std::string, token_file, "", "file whose first line is the bearer token");
ABSL_FLAG(std::string, tls_ca, "", "use TLS, trusting this CA certificate (PEM file)");

namespace mixserve::loadgen {

const char* Usage() {
  return R"(usage: mixserve-loadgen --src=FILE --ref=FILE --src-lang=LANG --tgt-lang=LANG [flags]

Replays a parallel test set (one sentence per line, plain or .gz) against a mixserve server and
reports, per variant that answered, requests, errors by gRPC status, throughput, latency
percentiles and corpus BLEU; for two or more variants, an A/B comparison against the first
(paired bootstrap test of the BLEU difference, latency ratios). Closed loop by default
(--concurrency), open loop with --qps; without --duration or --count, one pass over the
test set.
Exit status: 0 when the run completed (even with failed requests), 1 when nothing succeeded,
2 on usage errors.
)";
}

const flags::Program& LoadgenProgram() {
  static const flags::Program kProgram = [] {
    flags::Program p;
    p.name = "mixserve-loadgen";
    p.usage = Usage();
    p.flags = {"src",          "ref",         "src_lang", "tgt_lang",    "concurrency",
               "qps",          "max_inflight", "duration", "count",      "warmup",
               "variants",     "routing_key", "beam",     "max_tokens",  "deadline_ms",
               "json",         "plot",        "hyps",     "bootstrap",   "seed",
               "quiet",        "target",      "channels", "token",       "token_file",
               "tls_ca"};
    p.separator = '-';
    return p;
  }();
  return kProgram;
}

bool ParseVariant(const std::string& text, ForcedVariant* v) {
  v->label = text;
  return cli::ParseVariantRef(text, &v->name, &v->version);
}

int ParseOptions(int argc, char** argv, Options* o, std::string* error) {
  flags::Invocation line;
  const int status = flags::Parse(LoadgenProgram(), argc, argv, &line, error);
  if (status >= 0) return status == 0 ? 1 : 2;
  auto given = [&](const char* name) { return line.given.count(name) > 0; };
  auto fail = [&](const std::string& e) {
    *error = e;
    return 2;
  };
  o->source_file = absl::GetFlag(FLAGS_src);
  o->reference_file = absl::GetFlag(FLAGS_ref);
  o->source_language = absl::GetFlag(FLAGS_src_lang);
  o->target_language = absl::GetFlag(FLAGS_tgt_lang);
  if (o->source_file.empty() || o->reference_file.empty())
    return fail("--src and --ref (the parallel test set) are required");
  if (o->source_language.empty() || o->target_language.empty())
    return fail("--src-lang and --tgt-lang are required");
  o->target = absl::GetFlag(FLAGS_target);

  if (given("qps") && given("concurrency"))
    return fail("--qps (open loop) and --concurrency (closed loop) exclude each other");
  o->concurrency = absl::GetFlag(FLAGS_concurrency);
  o->max_inflight = absl::GetFlag(FLAGS_max_inflight);
  o->count = static_cast<long>(absl::GetFlag(FLAGS_count));
  o->beam = absl::GetFlag(FLAGS_beam);
  o->max_tokens = absl::GetFlag(FLAGS_max_tokens);
  o->deadline_ms = static_cast<long>(absl::GetFlag(FLAGS_deadline_ms));
  o->channels = absl::GetFlag(FLAGS_channels);
  o->bootstrap_resamples = absl::GetFlag(FLAGS_bootstrap);
  o->seed = absl::GetFlag(FLAGS_seed);
  o->qps = absl::GetFlag(FLAGS_qps);
  o->duration_s = absl::GetFlag(FLAGS_duration);
  o->warmup_s = absl::GetFlag(FLAGS_warmup);
  if (!std::isfinite(o->qps) || !std::isfinite(o->duration_s) || !std::isfinite(o->warmup_s))
    return fail("--qps, --duration and --warmup must be finite numbers");
  if (given("qps") && !(o->qps > 0)) return fail("--qps must be positive");
  if (o->concurrency < 1) return fail("--concurrency must be at least 1");
  if (o->max_inflight < 1) return fail("--max-inflight must be at least 1");
  if (o->count < 0) return fail("--count must not be negative");
  if (o->duration_s < 0) return fail("--duration must not be negative");
  if (o->warmup_s < 0) return fail("--warmup must not be negative");
  if (o->warmup_s > 0 && o->duration_s > 0 && o->warmup_s >= o->duration_s)
    return fail("--warmup must be shorter than --duration");
  if (o->beam < 0 || o->max_tokens < 0) return fail("--beam and --max-tokens must not be negative");
  if (o->deadline_ms <= 0) return fail("--deadline-ms must be positive");
  if (o->channels < 1 || o->channels > 64) return fail("--channels must be in 1..64");
  if (o->bootstrap_resamples < 1) return fail("--bootstrap must be at least 1");

  if (given("variants")) {
    std::stringstream list(absl::GetFlag(FLAGS_variants));
    std::string item;
    std::set<std::string> seen;
    while (std::getline(list, item, ',')) {
      ForcedVariant v;
      if (!ParseVariant(item, &v))
        return fail("--variants expects NAME[:VERSION],..., got '" + item + "'");
      if (!seen.insert(item).second) return fail("--variants names '" + item + "' twice");
      o->variants.push_back(v);
    }
    if (o->variants.empty()) return fail("--variants is empty");
  }
  const std::string mode = absl::GetFlag(FLAGS_routing_key);
  if (mode == "none") {
    o->routing_key_mode = RoutingKeyMode::kNone;
  } else if (mode == "sentence") {
    o->routing_key_mode = RoutingKeyMode::kSentence;
  } else if (mode == "request") {
    o->routing_key_mode = RoutingKeyMode::kRequest;
  } else if (mode.rfind("fixed:", 0) == 0 && mode.size() > 6) {
    o->routing_key_mode = RoutingKeyMode::kFixed;
    o->fixed_routing_key = mode.substr(6);
  } else {
    return fail("--routing-key expects none, sentence, request or fixed:KEY, got '" + mode + "'");
  }

  o->json_path = absl::GetFlag(FLAGS_json);
  o->plot_path = absl::GetFlag(FLAGS_plot);
  o->hyps_prefix = absl::GetFlag(FLAGS_hyps);
  o->quiet = absl::GetFlag(FLAGS_quiet);
  o->token = absl::GetFlag(FLAGS_token);
  const std::string token_file = absl::GetFlag(FLAGS_token_file);
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in) return fail("cannot read --token-file " + token_file);
    std::getline(in, o->token);
  }
  o->tls_ca = absl::GetFlag(FLAGS_tls_ca);
  return 0;
}

}  // namespace mixserve::loadgen
