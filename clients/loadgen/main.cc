// mixserve-loadgen: replays a parallel test set against a mixserve server (closed or open
// loop) and reports throughput, latency and BLEU per variant, with A/B comparisons.
#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/flags.h"
#include "clients/loadgen/options.h"
#include "clients/loadgen/report.h"
#include "clients/loadgen/runner.h"
#include "clients/loadgen/svg_histogram.h"
#include "text/text_files.h"

namespace mixserve::loadgen {
namespace {

int UsageError(const std::string& error) {
  return flags::ReportUsageError("mixserve-loadgen", error);
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  return static_cast<bool>(out);
}

// A variant label as part of a file name: "en-de-base:1" -> "en-de-base_1".
std::string FileLabel(const std::string& label) {
  std::string out;
  for (char c : label)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '_';
  return out;
}

std::string RoutingKeyName(const Options& o) {
  switch (o.routing_key_mode) {
    case RoutingKeyMode::kNone: return "none";
    case RoutingKeyMode::kSentence: return "sentence";
    case RoutingKeyMode::kRequest: return "request";
    case RoutingKeyMode::kFixed: return "fixed:" + o.fixed_routing_key;
  }
  return "none";
}

int Main(int argc, char** argv) {
  Options o;
  std::string error;
  const int parsed = ParseOptions(argc, argv, &o, &error);
  if (parsed == 1) return 0;  // --help or --version
  if (parsed != 0) return UsageError(error);

  std::vector<std::string> sources, references;
  try {
    sources = ReadTextLines(o.source_file);
    references = ReadTextLines(o.reference_file);
  } catch (const std::exception& e) {
    return UsageError(e.what());
  }
  if (sources.empty()) return UsageError("the source file " + o.source_file + " has no lines");
  if (sources.size() != references.size())
    return UsageError("the source file has " + std::to_string(sources.size()) +
                      " lines but the reference file " + std::to_string(references.size()));

  // Output files are checked before the run, not after it.
  for (const std::string* path : {&o.json_path, &o.plot_path}) {
    if (path->empty()) continue;
    std::ofstream probe(*path, std::ios::app);
    if (!probe) return UsageError("cannot write " + *path);
  }

  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!o.tls_ca.empty()) {
    std::ifstream in(o.tls_ca);
    if (!in) return UsageError("cannot read --tls-ca " + o.tls_ca);
    std::stringstream ca;
    ca << in.rdbuf();
    grpc::SslCredentialsOptions so;
    so.pem_root_certs = ca.str();
    creds = grpc::SslCredentials(so);
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < o.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    // Distinct connections: without a local subchannel pool, channels to the same target
    // would share one.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("mixserve.loadgen.channel", i);
    channels.push_back(grpc::CreateCustomChannel(o.target, creds, args));
  }

  const RunResult result = RunLoad(o, sources, channels);

  RunInfo run;
  run.mode = o.qps > 0 ? "open" : "closed";
  run.concurrency = o.qps > 0 ? 0 : o.concurrency;
  run.offered_qps = o.qps;
  run.warmup_s = o.warmup_s;
  const std::vector<Record> records =
      AfterWarmup(result.records, o.warmup_s, &run.warmup_requests);
  run.wall_s = std::max(0.0, result.wall_s - o.warmup_s);
  run.dispatched = result.dispatched;
  run.dropped = result.dropped;
  run.test_set_size = sources.size();
  run.routing_key_mode = RoutingKeyName(o);
  for (const auto& v : o.variants) run.forced_variants.push_back(v.label);
  BootstrapOptions bo;
  bo.resamples = o.bootstrap_resamples;
  bo.seed = o.seed;
  const Report report = BuildReport(run, records, references, bo);

  std::cout << FormatTable(report);
  if (!o.json_path.empty() && !WriteFile(o.json_path, ToJson(report))) {
    std::cerr << "mixserve-loadgen: cannot write --json " << o.json_path << "\n";
    return 1;
  }
  if (!o.plot_path.empty() && !WriteFile(o.plot_path, LatencyHistogramSvg(report))) {
    std::cerr << "mixserve-loadgen: cannot write --plot " << o.plot_path << "\n";
    return 1;
  }
  if (!o.hyps_prefix.empty()) {
    for (const auto& v : report.variants) {
      if (v.translations.empty()) continue;
      std::string text;
      for (std::size_t i = 0; i < sources.size(); ++i) {
        auto it = v.translations.find(i);
        text += (it == v.translations.end() ? "" : it->second) + "\n";
      }
      const std::string path = o.hyps_prefix + "." + FileLabel(v.label) + ".txt";
      if (!WriteFile(path, text)) {
        std::cerr << "mixserve-loadgen: cannot write --hyps " << path << "\n";
        return 1;
      }
    }
  }
  std::size_t ok = 0;
  for (const auto& v : report.variants) ok += v.ok;
  if (ok == 0) {
    std::cerr << "mixserve-loadgen: no request succeeded\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace mixserve::loadgen

int main(int argc, char** argv) {
  // Holds gRPC up for the whole run, and tears it down (waiting for its threads) before the
  // process exits, so no gRPC thread outlives main.
  grpc_init();
  const int status = mixserve::loadgen::Main(argc, argv);
  grpc_shutdown_blocking();
  return status;
}
