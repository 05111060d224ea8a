// The report as mixserve.v1.LoadgenReport (proto/mixserve/v1/records.proto) in protobuf's
// JSON mapping.
#include <cmath>
#include <cstdint>

#include "clients/loadgen/report.h"
#include "config/json_io.h"
#include "mixserve/v1/records.pb.h"

namespace mixserve::loadgen {

namespace {

using Pb = v1::LoadgenReport;

// Counts are int32 so that JSON keeps them numbers. More than 2^31 requests are out of reach
// of one run; clamping keeps the report of such a run rather than losing it.
int32_t Count(std::size_t n) {
  return n > static_cast<std::size_t>(INT32_MAX) ? INT32_MAX : static_cast<int32_t>(n);
}

void ToProto(const LatencySummary& l, Pb::Latency* out) {
  out->set_count(Count(l.count));
  out->set_mean(l.mean);
  out->set_min(l.min);
  out->set_p50(l.p50);
  out->set_p90(l.p90);
  out->set_p99(l.p99);
  out->set_max(l.max);
}

void ToProto(const RunInfo& run, Pb::Run* out) {
  out->set_mode(run.mode);
  out->set_concurrency(run.concurrency);
  out->set_offered_qps(run.offered_qps);
  out->set_wall_s(run.wall_s);
  out->set_warmup_s(run.warmup_s);
  out->set_warmup_requests(Count(run.warmup_requests));
  out->set_dispatched(Count(run.dispatched));
  out->set_dropped(Count(run.dropped));
  out->set_test_set_size(Count(run.test_set_size));
  out->set_routing_key(run.routing_key_mode);
  for (const auto& v : run.forced_variants) out->add_forced_variants(v);
}

void ToProto(const VariantReport& v, Pb::Variant* out) {
  out->set_variant(v.label);
  for (const auto& s : v.served_by) out->add_served_by(s);
  out->set_requests(Count(v.requests));
  out->set_ok(Count(v.ok));
  for (const auto& [name, n] : v.errors) (*out->mutable_errors())[name] = Count(n);
  out->mutable_error_examples()->insert(v.error_examples.begin(), v.error_examples.end());
  out->set_sentences_per_s(v.sentences_per_s);
  out->set_output_tokens_per_s(v.output_tokens_per_s);
  out->set_input_tokens_per_s(v.input_tokens_per_s);
  ToProto(v.latency, out->mutable_latency_ms());
  ToProto(v.server_queue, out->mutable_server_queue_ms());
  ToProto(v.server_total, out->mutable_server_total_ms());
  if (v.bleu_sentences && std::isfinite(v.bleu)) out->set_bleu(v.bleu);
  out->set_bleu_sentences(Count(v.bleu_sentences));
  out->set_bleu_signature(v.bleu_line);
}

void ToProto(const Comparison& c, Pb::Comparison* out) {
  out->set_baseline(c.baseline);
  out->set_candidate(c.candidate);
  out->set_paired_sentences(Count(c.paired_sentences));
  if (c.paired) {
    const auto& b = c.bootstrap;
    // Non-finite numbers stay out (proto3 JSON would write them as strings).
    auto set = [](double v, void (Pb::Comparison::*setter)(double), Pb::Comparison* m) {
      if (std::isfinite(v)) (m->*setter)(v);
    };
    set(b.bleu_a, &Pb::Comparison::set_bleu_baseline, out);
    set(b.bleu_b, &Pb::Comparison::set_bleu_candidate, out);
    set(b.difference, &Pb::Comparison::set_bleu_difference, out);
    if (std::isfinite(b.diff_ci_low) && std::isfinite(b.diff_ci_high)) {
      out->add_difference_ci95(b.diff_ci_low);
      out->add_difference_ci95(b.diff_ci_high);
    }
    set(b.p_value, &Pb::Comparison::set_p_value, out);
    out->set_resamples(b.resamples);
    set(b.mean_a, &Pb::Comparison::set_bootstrap_mean_baseline, out);
    set(b.ci_a, &Pb::Comparison::set_bootstrap_ci_baseline, out);
    set(b.mean_b, &Pb::Comparison::set_bootstrap_mean_candidate, out);
    set(b.ci_b, &Pb::Comparison::set_bootstrap_ci_candidate, out);
  }
  auto* r = out->mutable_latency_ratio();
  r->set_p50(c.ratio_p50);
  r->set_p90(c.ratio_p90);
  r->set_p99(c.ratio_p99);
  r->set_mean(c.ratio_mean);
}

}  // namespace

std::string ToJson(const Report& r) {
  Pb report;
  ToProto(r.run, report.mutable_run());
  for (const auto& v : r.variants) ToProto(v, report.add_variants());
  for (const auto& c : r.comparisons) ToProto(c, report.add_comparisons());
  return MessageToJson(report, true);
}

}  // namespace mixserve::loadgen
