#include "clients/loadgen/options.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "clients/cli/args.h"

namespace mixserve::loadgen {

const char* Usage() {
  return R"(usage: mixserve-loadgen --src=FILE --ref=FILE --src-lang=LANG --tgt-lang=LANG [options]

Replays a parallel test set (one sentence per line, plain or .gz) against a mixserve server and
reports, per variant that answered, requests, errors by gRPC status, throughput, latency
percentiles and corpus BLEU; for two or more variants, an A/B comparison against the first
(paired bootstrap test of the BLEU difference, latency ratios).

Load:
  --concurrency=N          closed loop: N sentences in flight (default 8)
  --qps=X                  open loop: Poisson arrivals at X sentences/s
  --max-inflight=N         open loop: requests in flight at most; later arrivals are dropped
                           by the client and counted (default 4096)
  --duration=SECONDS       stop dispatching after this time
  --count=N                stop after N sentences (default without --duration: one pass)
  --warmup=SECONDS         leave the requests sent in the first SECONDS out of the report
Variants and requests:
  --variants=A[,B...]      send every sentence to each of these variants (NAME or NAME:VER),
                           so that the comparison is paired; default: the server's routing
  --routing-key=MODE       none (default), sentence (the sentence index), request (a new key
                           per request), or fixed:KEY
  --beam=N --max-tokens=N  decoding options (0: the variant's default)
  --deadline-ms=N          per-request deadline (default 30000)
Output:
  --json=FILE              the report as JSON
  --plot=FILE.svg          latency histograms per variant (SVG)
  --hyps=PREFIX            write each variant's translations to PREFIX.<variant>.txt
  --bootstrap=N            paired bootstrap resamples (default 1000)
  --seed=N                 arrivals, routing keys and bootstrap (default 12345)
  --quiet                  no progress line
Connection:
  --target=HOST:PORT       server address (default localhost:8500)
  --channels=N             connections to spread requests over (default 1)
  --token=T | --token-file=P  bearer token sent with every request
  --tls-ca=PATH            use TLS, trusting this CA certificate
  --help                   this text
Exit status: 0 when the run completed (even with failed requests), 1 when nothing succeeded,
2 on usage errors.
)";
}

bool ParseVariant(const std::string& text, ForcedVariant* v) {
  v->label = text;
  return cli::ParseVariantRef(text, &v->name, &v->version);
}

namespace {

bool GetDouble(const cli::Args& args, const std::string& name, double* out, std::string* error) {
  if (!args.Has(name)) return true;
  const std::string s = args.Get(name);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !std::isfinite(v)) {
    *error = "option --" + name + " expects a number, got '" + s + "'";
    return false;
  }
  *out = v;
  return true;
}

}  // namespace

int ParseOptions(int argc, char** argv, Options* o, std::string* error) {
  cli::Args args(argc, argv, 1, {"help", "quiet"});
  if (args.Has("help")) return 1;
  if (!args.ok()) {
    *error = args.error();
    return 2;
  }
  static const std::set<std::string> kKnown = {
      "src",     "ref",         "src-lang",    "tgt-lang",   "concurrency", "qps",
      "max-inflight", "duration", "count",      "warmup",     "variants",    "routing-key",
      "beam",    "max-tokens",  "deadline-ms", "json",       "plot",        "hyps",
      "bootstrap", "seed",      "quiet",       "target",     "channels",    "token",
      "token-file", "tls-ca",   "help"};
  for (const auto& u : args.Unknown(kKnown)) {
    *error = "unknown option --" + u;
    return 2;
  }
  if (!args.positionals().empty()) {
    *error = "unexpected argument '" + args.positionals()[0] + "'";
    return 2;
  }
  auto fail = [&](const std::string& e) {
    *error = e;
    return 2;
  };
  o->source_file = args.Get("src");
  o->reference_file = args.Get("ref");
  o->source_language = args.Get("src-lang");
  o->target_language = args.Get("tgt-lang");
  if (o->source_file.empty() || o->reference_file.empty())
    return fail("--src and --ref (the parallel test set) are required");
  if (o->source_language.empty() || o->target_language.empty())
    return fail("--src-lang and --tgt-lang are required");
  o->target = args.Get("target", o->target);

  if (args.Has("qps") && args.Has("concurrency"))
    return fail("--qps (open loop) and --concurrency (closed loop) exclude each other");
  o->concurrency = static_cast<int>(args.GetInt("concurrency", o->concurrency));
  o->max_inflight = static_cast<int>(args.GetInt("max-inflight", o->max_inflight));
  o->count = args.GetInt("count", 0);
  o->beam = static_cast<int>(args.GetInt("beam", 0));
  o->max_tokens = static_cast<int>(args.GetInt("max-tokens", 0));
  o->deadline_ms = args.GetInt("deadline-ms", o->deadline_ms);
  o->channels = static_cast<int>(args.GetInt("channels", 1));
  o->bootstrap_resamples = static_cast<int>(args.GetInt("bootstrap", o->bootstrap_resamples));
  const long seed = args.GetInt("seed", static_cast<long>(o->seed));
  if (!args.ok()) return fail(args.error());
  o->seed = static_cast<uint64_t>(seed);
  if (!GetDouble(args, "qps", &o->qps, error) ||
      !GetDouble(args, "duration", &o->duration_s, error) ||
      !GetDouble(args, "warmup", &o->warmup_s, error))
    return 2;
  if (args.Has("qps") && !(o->qps > 0)) return fail("--qps must be positive");
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

  if (args.Has("variants")) {
    std::stringstream list(args.Get("variants"));
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
  const std::string mode = args.Get("routing-key", "none");
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

  o->json_path = args.Get("json");
  o->plot_path = args.Get("plot");
  o->hyps_prefix = args.Get("hyps");
  o->quiet = args.Has("quiet");
  o->token = args.Get("token");
  if (args.Has("token-file")) {
    std::ifstream in(args.Get("token-file"));
    if (!in) return fail("cannot read --token-file " + args.Get("token-file"));
    std::getline(in, o->token);
  }
  o->tls_ca = args.Get("tls-ca");
  return 0;
}

}  // namespace mixserve::loadgen
