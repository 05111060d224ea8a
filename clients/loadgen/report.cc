#include "clients/loadgen/report.h"

#include <absl/status/status.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include "text/bleu.h"

namespace mixserve::loadgen {

const char* const kUnroutedLabel = "(unrouted)";

std::string StatusName(int code) {
  // gRPC's status codes are absl's (both follow google.rpc.Code).
  const std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? "STATUS_" + std::to_string(code) : name;
}

namespace {

double Ratio(double num, double den) { return den > 0 ? num / den : 0; }

struct VariantData {
  VariantReport report;
  std::vector<double> server_queue, server_total;
  std::set<std::string> served_by;
  // First successful answer of each sentence: its BLEU statistics.
  std::map<std::size_t, BleuStats> first_answer;
  double in_tokens = 0, out_tokens = 0;
};

}  // namespace

std::vector<Record> AfterWarmup(const std::vector<Record>& records, double warmup_s,
                                std::size_t* excluded) {
  std::vector<Record> kept;
  for (const auto& r : records)
    if (r.sent_s >= warmup_s) kept.push_back(r);
  if (excluded) *excluded = records.size() - kept.size();
  return kept;
}

Report BuildReport(const RunInfo& run, const std::vector<Record>& records,
                   const std::vector<std::string>& references, const BootstrapOptions& bootstrap) {
  Report report;
  report.run = run;
  std::map<std::string, VariantData> data;
  for (const auto& r : records) {
    VariantData& d = data[r.variant];
    ++d.report.requests;
    if (r.status != 0) {
      const std::string name = StatusName(r.status);
      ++d.report.errors[name];
      d.report.error_examples.emplace(name, r.message);
      continue;
    }
    ++d.report.ok;
    d.report.latencies_ms.push_back(r.latency_ms);
    d.server_queue.push_back(r.server_queue_ms);
    d.server_total.push_back(r.server_total_ms);
    d.in_tokens += r.input_tokens;
    d.out_tokens += r.output_tokens;
    if (!r.served_by.empty()) d.served_by.insert(r.served_by);
    if (r.sentence < references.size() && !d.first_answer.count(r.sentence)) {
      d.first_answer[r.sentence] = SentenceStats(r.translation, {references[r.sentence]});
      d.report.translations[r.sentence] = r.translation;
    }
  }

  // Order: forced variants as given, else by label with the unrouted bucket last.
  std::vector<std::string> order = run.forced_variants;
  if (order.empty()) {
    for (const auto& [label, d] : data)
      if (label != kUnroutedLabel) order.push_back(label);
    if (data.count(kUnroutedLabel)) order.push_back(kUnroutedLabel);
  }
  for (const auto& label : order) {
    VariantData& d = data[label];
    VariantReport& v = d.report;
    v.label = label;
    v.served_by.assign(d.served_by.begin(), d.served_by.end());
    v.latency = Summarize(v.latencies_ms);
    v.server_queue = Summarize(d.server_queue);
    v.server_total = Summarize(d.server_total);
    if (run.wall_s > 0) {
      v.sentences_per_s = v.ok / run.wall_s;
      v.output_tokens_per_s = d.out_tokens / run.wall_s;
      v.input_tokens_per_s = d.in_tokens / run.wall_s;
    }
    BleuStats total;
    for (const auto& [i, s] : d.first_answer) total += s;
    v.bleu_sentences = d.first_answer.size();
    if (v.bleu_sentences > 0) {
      const BleuScore score = CorpusBleu(total);
      v.bleu = score.score;
      v.bleu_line = FormatBleu(score);
    }
    report.variants.push_back(v);
  }

  // A/B: each other variant against the first, on the sentences both answered.
  std::vector<std::string> compared;
  for (const auto& label : order)
    if (label != kUnroutedLabel) compared.push_back(label);
  for (std::size_t k = 1; k < compared.size(); ++k) {
    const VariantData& a = data[compared[0]];
    const VariantData& b = data[compared[k]];
    Comparison c;
    c.baseline = compared[0];
    c.candidate = compared[k];
    std::vector<BleuStats> sa, sb;
    for (const auto& [i, s] : a.first_answer) {
      auto it = b.first_answer.find(i);
      if (it == b.first_answer.end()) continue;
      sa.push_back(s);
      sb.push_back(it->second);
    }
    c.paired_sentences = sa.size();
    if (!sa.empty()) {
      c.paired = true;
      c.bootstrap = PairedBootstrap(sa, sb, bootstrap);
    }
    const LatencySummary& la = a.report.latency;  // summarised above
    const LatencySummary& lb = b.report.latency;
    if (la.count && lb.count) {
      c.ratio_p50 = Ratio(lb.p50, la.p50);
      c.ratio_p90 = Ratio(lb.p90, la.p90);
      c.ratio_p99 = Ratio(lb.p99, la.p99);
      c.ratio_mean = Ratio(lb.mean, la.mean);
    }
    report.comparisons.push_back(c);
  }
  return report;
}

namespace {

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string Signed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.*f", digits, v);
  return buf;
}

std::string ErrorsText(const std::map<std::string, std::size_t>& errors) {
  if (errors.empty()) return "-";
  std::string s;
  for (const auto& [name, n] : errors) s += (s.empty() ? "" : ",") + name + "=" + std::to_string(n);
  return s;
}

// Left-aligned columns separated by two spaces.
std::string Columns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string FormatTable(const Report& r) {
  std::ostringstream out;
  const RunInfo& run = r.run;
  out << "mixserve-loadgen: ";
  if (run.mode == "open")
    out << "open loop, Poisson arrivals at " << Fixed(run.offered_qps, 1) << " sentences/s";
  else
    out << "closed loop, " << run.concurrency << " in flight";
  out << "; " << run.dispatched << " sentences dispatched in " << Fixed(run.wall_s, 2) << " s";
  if (run.mode == "open") out << ", " << run.dropped << " dropped by the client";
  if (run.warmup_s > 0)
    out << "\nwarm-up: the first " << Fixed(run.warmup_s, 1) << " s (" << run.warmup_requests
        << " requests) left out of the statistics";
  out << "\nvariants: "
      << (run.forced_variants.empty() ? "routed by the server (routing key: " +
                                            run.routing_key_mode + ")"
                                      : "forced, every sentence to each")
      << "\n\n";

  std::vector<std::vector<std::string>> rows = {{"variant", "requests", "ok", "errors",
                                                 "sents/s", "tok/s", "p50 ms", "p90 ms",
                                                 "p99 ms", "max ms", "BLEU", "BLEU sents"}};
  for (const auto& v : r.variants) {
    std::string label = v.label;
    if (v.served_by.size() == 1 && v.served_by[0] != v.label) label += " (" + v.served_by[0] + ")";
    rows.push_back({label, std::to_string(v.requests), std::to_string(v.ok), ErrorsText(v.errors),
                    Fixed(v.sentences_per_s, 2), Fixed(v.output_tokens_per_s, 1),
                    Fixed(v.latency.p50, 1), Fixed(v.latency.p90, 1), Fixed(v.latency.p99, 1),
                    Fixed(v.latency.max, 1), v.bleu_sentences ? Fixed(v.bleu, 2) : "-",
                    std::to_string(v.bleu_sentences)});
  }
  out << Columns(rows);
  for (const auto& v : r.variants)
    for (const auto& [name, message] : v.error_examples)
      out << "  " << v.label << " " << name << ", e.g.: " << message << "\n";

  for (const auto& c : r.comparisons) {
    out << "\nA/B: " << c.candidate << " vs " << c.baseline << " (baseline)";
    if (c.paired) {
      const auto& b = c.bootstrap;
      out << ", " << c.paired_sentences << " sentences answered by both\n"
          << "  BLEU       " << Fixed(b.bleu_b, 2) << " vs " << Fixed(b.bleu_a, 2)
          << "   difference " << Signed(b.difference, 2) << "   95% CI "
          << Signed(b.diff_ci_low, 2) << " .. " << Signed(b.diff_ci_high, 2) << "\n"
          << "  p-value    " << Fixed(b.p_value, 4) << " (paired bootstrap, " << b.resamples
          << " resamples): " << (b.p_value < 0.05 ? "significant" : "not significant")
          << " at 0.05\n"
          << "  bootstrap  " << c.candidate << " " << Fixed(b.mean_b, 2) << " ± "
          << Fixed(b.ci_b, 2) << ", " << c.baseline << " " << Fixed(b.mean_a, 2) << " ± "
          << Fixed(b.ci_a, 2) << "\n";
    } else {
      out << "\n  no sentence answered by both: unpaired BLEU only (see the table)\n";
    }
    if (c.ratio_p50 > 0)
      out << "  latency    p50 " << Fixed(c.ratio_p50, 2) << "  p90 " << Fixed(c.ratio_p90, 2)
          << "  p99 " << Fixed(c.ratio_p99, 2) << "  mean " << Fixed(c.ratio_mean, 2) << "  ("
          << c.candidate << " / " << c.baseline << ")\n";
  }
  return out.str();
}

}  // namespace mixserve::loadgen
