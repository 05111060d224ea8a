// Prometheus metrics of the server (names and labels listed in docs/server.md). Everything
// is registered in one registry; the HTTP endpoint is optional and its failure is reported
// without stopping the server.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "server/metrics_http.h"
#include "text/bleu.h"

namespace mixserve {

// The series of one variant (model, version, language pair).
struct VariantMetrics {
  prometheus::Histogram* queue_seconds = nullptr;
  prometheus::Histogram* compute_seconds = nullptr;
  prometheus::Histogram* batch_size = nullptr;
  // The scheduler thread's time per loop phase: admitting sentences (encoder and decoder
  // state set-up), one decoding step, answering the finished sentences.
  prometheus::Histogram* admit_seconds = nullptr;
  prometheus::Histogram* step_seconds = nullptr;
  prometheus::Histogram* finish_seconds = nullptr;
  prometheus::Gauge* queue_depth = nullptr;
  prometheus::Gauge* inflight = nullptr;
  prometheus::Gauge* device_memory = nullptr;
  prometheus::Counter* input_tokens = nullptr;
  prometheus::Counter* output_tokens = nullptr;
  prometheus::Counter* sentences = nullptr;
  // Online BLEU: sufficient statistics of sentences that came with a reference.
  prometheus::Counter* bleu_sentences = nullptr;
  std::array<prometheus::Counter*, kBleuOrder> bleu_matches{};
  std::array<prometheus::Counter*, kBleuOrder> bleu_totals{};
  prometheus::Counter* bleu_hyp_len = nullptr;
  prometheus::Counter* bleu_ref_len = nullptr;
  void AddBleu(const BleuStats& stats);
};

// Agreement of a shadow variant with the primary answer (primary output as the reference).
struct ShadowMetrics {
  prometheus::Counter* sentences = nullptr;
  std::array<prometheus::Counter*, kBleuOrder> matches{};
  std::array<prometheus::Counter*, kBleuOrder> totals{};
  prometheus::Counter* hyp_len = nullptr;
  prometheus::Counter* ref_len = nullptr;
  void Add(const BleuStats& stats);
};

class Metrics {
 public:
  Metrics();

  // Starts the /metrics endpoint. Returns "" on success (and sets *port to the bound
  // port), else a message naming the address and the cause.
  std::string StartExposer(const std::string& address, int* port);
  bool exposing() const { return exposing_; }

  VariantMetrics* ForVariant(const std::string& model, int64_t version,
                             const std::string& source, const std::string& target,
                             const std::string& device);
  ShadowMetrics* ForShadow(const std::string& model, int64_t version,
                           const std::string& shadow_model, int64_t shadow_version);

  // One finished RPC (or one message of a stream); model "" when none was chosen.
  void CountRequest(const std::string& method, const std::string& model, int64_t version,
                    const std::string& source, const std::string& target,
                    const std::string& code, double seconds);

  // state: "loading", "ready", "unavailable", "unloaded"; one series per state, 1 for the
  // current one.
  void SetModelState(const std::string& model, int64_t version, const std::string& state);
  void CountLoadFailure(const std::string& model);
  // mixserve_build_info{version, commit, torch, device} = 1: what this server is (once).
  void SetBuildInfo(const std::string& version, const std::string& commit,
                    const std::string& torch, const std::string& device);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  MetricsHttpServer http_;
  bool exposing_ = false;
  // Handles of each label set, made once and kept for the process (reloads and every shadowed
  // request get the same ones back; the series themselves belong to the families).
  std::mutex handles_mu_;
  std::map<std::string, std::unique_ptr<VariantMetrics>> variant_handles_;
  std::map<std::string, std::unique_ptr<ShadowMetrics>> shadow_handles_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_seconds_;
  prometheus::Family<prometheus::Histogram>& queue_seconds_;
  prometheus::Family<prometheus::Histogram>& compute_seconds_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Histogram>& scheduler_seconds_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Gauge>& inflight_;
  prometheus::Family<prometheus::Gauge>& device_memory_;
  prometheus::Family<prometheus::Counter>& input_tokens_;
  prometheus::Family<prometheus::Counter>& output_tokens_;
  prometheus::Family<prometheus::Counter>& sentences_;
  prometheus::Family<prometheus::Gauge>& model_state_;
  prometheus::Family<prometheus::Counter>& load_failures_;
  prometheus::Family<prometheus::Counter>& bleu_sentences_;
  prometheus::Family<prometheus::Counter>& bleu_matches_;
  prometheus::Family<prometheus::Counter>& bleu_totals_;
  prometheus::Family<prometheus::Counter>& bleu_hyp_len_;
  prometheus::Family<prometheus::Counter>& bleu_ref_len_;
  prometheus::Family<prometheus::Counter>& shadow_sentences_;
  prometheus::Family<prometheus::Counter>& shadow_matches_;
  prometheus::Family<prometheus::Counter>& shadow_totals_;
  prometheus::Family<prometheus::Counter>& shadow_hyp_len_;
  prometheus::Family<prometheus::Counter>& shadow_ref_len_;
};

}  // namespace mixserve
