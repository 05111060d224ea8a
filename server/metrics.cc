#include "server/metrics.h"

#include <string>

namespace mixserve {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Labels;

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries b = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return b;
}
const prometheus::Histogram::BucketBoundaries& PhaseBuckets() {
  static const prometheus::Histogram::BucketBoundaries b = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
  return b;
}
const prometheus::Histogram::BucketBoundaries& BatchBuckets() {
  static const prometheus::Histogram::BucketBoundaries b = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  return b;
}

}  // namespace

void VariantMetrics::AddBleu(const BleuStats& s) {
  bleu_sentences->Increment();
  for (int n = 0; n < kBleuOrder; ++n) {
    bleu_matches[n]->Increment(s.matches[n]);
    bleu_totals[n]->Increment(s.totals[n]);
  }
  bleu_hyp_len->Increment(s.hyp_len);
  bleu_ref_len->Increment(s.ref_len);
}

void ShadowMetrics::Add(const BleuStats& s) {
  sentences->Increment();
  for (int n = 0; n < kBleuOrder; ++n) {
    matches[n]->Increment(s.matches[n]);
    totals[n]->Increment(s.totals[n]);
  }
  hyp_len->Increment(s.hyp_len);
  ref_len->Increment(s.ref_len);
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(BuildCounter()
                    .Name("mixserve_requests_total")
                    .Help("Finished translation calls by method, variant, pair and gRPC code")
                    .Register(*registry_)),
      request_seconds_(BuildHistogram()
                           .Name("mixserve_request_duration_seconds")
                           .Help("End-to-end latency of translation calls")
                           .Register(*registry_)),
      queue_seconds_(BuildHistogram()
                         .Name("mixserve_queue_duration_seconds")
                         .Help("Time a sentence waited in its variant's queue")
                         .Register(*registry_)),
      compute_seconds_(BuildHistogram()
                           .Name("mixserve_compute_duration_seconds")
                           .Help("Time from a sentence joining a decode batch to its result")
                           .Register(*registry_)),
      batch_size_(BuildHistogram()
                      .Name("mixserve_batch_size")
                      .Help("Sentences in the decode batch at each decoding step")
                      .Register(*registry_)),
      scheduler_seconds_(BuildHistogram()
                             .Name("mixserve_scheduler_phase_duration_seconds")
                             .Help("Time of the variant's scheduler thread per loop phase: "
                                   "admit (encoder and state set-up of joining sentences), "
                                   "step (one decoding step), finish (handing the finished "
                                   "sentences to the completion thread)")
                             .Register(*registry_)),
      queue_depth_(BuildGauge()
                       .Name("mixserve_queue_depth")
                       .Help("Sentences waiting in the variant's queue")
                       .Register(*registry_)),
      inflight_(BuildGauge()
                    .Name("mixserve_inflight_sentences")
                    .Help("Sentences in the variant's running decode batch")
                    .Register(*registry_)),
      device_memory_(BuildGauge()
                         .Name("mixserve_device_memory_bytes")
                         .Help("Device memory held on the variant's device (0 on CPU)")
                         .Register(*registry_)),
      input_tokens_(BuildCounter()
                        .Name("mixserve_input_tokens_total")
                        .Help("Source tokens of translated sentences")
                        .Register(*registry_)),
      output_tokens_(BuildCounter()
                         .Name("mixserve_output_tokens_total")
                         .Help("Target tokens produced")
                         .Register(*registry_)),
      sentences_(BuildCounter()
                     .Name("mixserve_sentences_total")
                     .Help("Sentences translated successfully")
                     .Register(*registry_)),
      model_state_(BuildGauge()
                       .Name("mixserve_model_state")
                       .Help("1 for the current load state of a model version")
                       .Register(*registry_)),
      load_failures_(BuildCounter()
                         .Name("mixserve_model_load_failures_total")
                         .Help("Failed loads of model versions")
                         .Register(*registry_)),
      bleu_sentences_(BuildCounter()
                          .Name("mixserve_bleu_sentences_total")
                          .Help("Sentences translated with a reference (online BLEU)")
                          .Register(*registry_)),
      bleu_matches_(BuildCounter()
                        .Name("mixserve_bleu_matching_ngrams_total")
                        .Help("Clipped n-gram matches against the references, by order")
                        .Register(*registry_)),
      bleu_totals_(BuildCounter()
                       .Name("mixserve_bleu_hypothesis_ngrams_total")
                       .Help("Hypothesis n-grams, by order")
                       .Register(*registry_)),
      bleu_hyp_len_(BuildCounter()
                        .Name("mixserve_bleu_hypothesis_length_total")
                        .Help("Hypothesis length in 13a tokens")
                        .Register(*registry_)),
      bleu_ref_len_(BuildCounter()
                        .Name("mixserve_bleu_reference_length_total")
                        .Help("Reference length in 13a tokens")
                        .Register(*registry_)),
      shadow_sentences_(BuildCounter()
                            .Name("mixserve_shadow_sentences_total")
                            .Help("Sentences answered by both a primary and its shadow")
                            .Register(*registry_)),
      shadow_matches_(BuildCounter()
                          .Name("mixserve_shadow_bleu_matching_ngrams_total")
                          .Help("Shadow output n-grams matching the primary output, by order")
                          .Register(*registry_)),
      shadow_totals_(BuildCounter()
                         .Name("mixserve_shadow_bleu_hypothesis_ngrams_total")
                         .Help("Shadow output n-grams, by order")
                         .Register(*registry_)),
      shadow_hyp_len_(BuildCounter()
                          .Name("mixserve_shadow_bleu_hypothesis_length_total")
                          .Help("Shadow output length in 13a tokens")
                          .Register(*registry_)),
      shadow_ref_len_(BuildCounter()
                          .Name("mixserve_shadow_bleu_reference_length_total")
                          .Help("Primary output length in 13a tokens")
                          .Register(*registry_)) {}

std::string Metrics::StartExposer(const std::string& address, int* port) {
  const std::string error = http_.Start(address, registry_, port);
  exposing_ = error.empty();
  return exposing_ ? "" : "cannot serve metrics on " + address + ": " + error;
}

VariantMetrics* Metrics::ForVariant(const std::string& model, int64_t version,
                                    const std::string& source, const std::string& target,
                                    const std::string& device) {
  // Families own their series; the struct only points at them. A variant's series outlive
  // unloads (Prometheus counters must not go back); a reload gets the same handles.
  const std::string key = model + '\n' + std::to_string(version) + '\n' + source + '\n' +
                          target + '\n' + device;
  std::lock_guard<std::mutex> lock(handles_mu_);
  auto& slot = variant_handles_[key];
  if (slot) return slot.get();
  slot = std::make_unique<VariantMetrics>();
  VariantMetrics* m = slot.get();
  Labels v{{"model", model}, {"version", std::to_string(version)}};
  Labels p = v;
  p["source_language"] = source;
  p["target_language"] = target;
  m->queue_seconds = &queue_seconds_.Add(v, LatencyBuckets());
  m->compute_seconds = &compute_seconds_.Add(v, LatencyBuckets());
  m->batch_size = &batch_size_.Add(v, BatchBuckets());
  for (auto [phase, slot] : {std::make_pair("admit", &m->admit_seconds),
                             std::make_pair("step", &m->step_seconds),
                             std::make_pair("finish", &m->finish_seconds)}) {
    Labels l = v;
    l["phase"] = phase;
    *slot = &scheduler_seconds_.Add(l, PhaseBuckets());
  }
  m->queue_depth = &queue_depth_.Add(v);
  m->inflight = &inflight_.Add(v);
  Labels d = v;
  d["device"] = device;
  m->device_memory = &device_memory_.Add(d);
  m->input_tokens = &input_tokens_.Add(p);
  m->output_tokens = &output_tokens_.Add(p);
  m->sentences = &sentences_.Add(p);
  m->bleu_sentences = &bleu_sentences_.Add(p);
  for (int n = 0; n < kBleuOrder; ++n) {
    Labels o = p;
    o["order"] = std::to_string(n + 1);
    m->bleu_matches[n] = &bleu_matches_.Add(o);
    m->bleu_totals[n] = &bleu_totals_.Add(o);
  }
  m->bleu_hyp_len = &bleu_hyp_len_.Add(p);
  m->bleu_ref_len = &bleu_ref_len_.Add(p);
  return m;
}

ShadowMetrics* Metrics::ForShadow(const std::string& model, int64_t version,
                                  const std::string& shadow_model, int64_t shadow_version) {
  const std::string key = model + '\n' + std::to_string(version) + '\n' + shadow_model + '\n' +
                          std::to_string(shadow_version);
  std::lock_guard<std::mutex> lock(handles_mu_);
  auto& slot = shadow_handles_[key];
  if (slot) return slot.get();
  slot = std::make_unique<ShadowMetrics>();
  ShadowMetrics* m = slot.get();
  Labels l{{"model", model},
           {"version", std::to_string(version)},
           {"shadow_model", shadow_model},
           {"shadow_version", std::to_string(shadow_version)}};
  m->sentences = &shadow_sentences_.Add(l);
  for (int n = 0; n < kBleuOrder; ++n) {
    Labels o = l;
    o["order"] = std::to_string(n + 1);
    m->matches[n] = &shadow_matches_.Add(o);
    m->totals[n] = &shadow_totals_.Add(o);
  }
  m->hyp_len = &shadow_hyp_len_.Add(l);
  m->ref_len = &shadow_ref_len_.Add(l);
  return m;
}

void Metrics::CountRequest(const std::string& method, const std::string& model,
                           int64_t version, const std::string& source,
                           const std::string& target, const std::string& code,
                           double seconds) {
  Labels l{{"method", method},
           {"model", model},
           {"version", model.empty() ? "" : std::to_string(version)},
           {"source_language", source},
           {"target_language", target}};
  request_seconds_.Add(l, LatencyBuckets()).Observe(seconds);
  l["code"] = code;
  requests_.Add(l).Increment();
}

void Metrics::SetModelState(const std::string& model, int64_t version,
                            const std::string& state) {
  for (const char* s : {"loading", "ready", "unavailable", "unloaded"}) {
    Labels l{{"model", model}, {"version", std::to_string(version)}, {"state", s}};
    model_state_.Add(l).Set(state == s ? 1 : 0);
  }
}

void Metrics::CountLoadFailure(const std::string& model) {
  load_failures_.Add({{"model", model}}).Increment();
}

void Metrics::SetBuildInfo(const std::string& version, const std::string& commit,
                           const std::string& torch, const std::string& device) {
  BuildGauge()
      .Name("mixserve_build_info")
      .Help("The server's build: version, git commit, LibTorch version and the device "
            "\"auto\" resolves to; always 1")
      .Register(*registry_)
      .Add({{"version", version}, {"commit", commit}, {"torch", torch}, {"device", device}})
      .Set(1);
}

}  // namespace mixserve
