#include "clients/loadgen/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace mixserve::loadgen {

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) throw std::invalid_argument("percentile of an empty set");
  if (!(p >= 0 && p <= 100))
    throw std::invalid_argument("percentile " + std::to_string(p) + " outside [0, 100]");
  std::sort(values.begin(), values.end());
  const double rank = p / 100.0 * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

LatencySummary Summarize(const std::vector<double>& values) {
  LatencySummary s;
  if (values.empty()) return s;
  s.count = values.size();
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(s.count);
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  s.p50 = Percentile(values, 50);
  s.p90 = Percentile(values, 90);
  s.p99 = Percentile(values, 99);
  return s;
}

Histogram LogHistogram(const std::vector<double>& values, double lo, double hi, int bins) {
  if (!(lo > 0 && hi > lo) || bins < 1)
    throw std::invalid_argument("histogram needs 0 < lo < hi and at least one bin");
  Histogram h;
  const double llo = std::log(lo), lhi = std::log(hi);
  for (int i = 0; i <= bins; ++i) h.edges.push_back(std::exp(llo + (lhi - llo) * i / bins));
  h.edges.front() = lo;
  h.edges.back() = hi;
  h.counts.assign(static_cast<std::size_t>(bins), 0);
  for (double v : values) {
    int bin = 0;
    if (v > 0) bin = static_cast<int>(std::floor((std::log(v) - llo) / (lhi - llo) * bins));
    bin = std::clamp(bin, 0, bins - 1);
    ++h.counts[static_cast<std::size_t>(bin)];
  }
  return h;
}

PoissonSchedule::PoissonSchedule(double qps, uint64_t seed) : rng_(seed), gap_(1.0) {
  if (!(qps > 0) || !std::isfinite(qps))
    throw std::invalid_argument("Poisson arrivals need a positive finite rate, got " +
                                std::to_string(qps));
  gap_ = std::exponential_distribution<double>(qps);
}

double PoissonSchedule::Next() {
  t_ += gap_(rng_);
  return t_;
}

namespace {

// sacreBLEU's estimate_ci on sorted scores: (lower, upper) at n/40 and n - n/40 - 1.
std::pair<double, double> Interval95(const std::vector<double>& sorted) {
  const std::size_t lower = sorted.size() / 40;
  return {sorted[lower], sorted[sorted.size() - lower - 1]};
}

double Mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

}  // namespace

PairedBootstrapResult PairedBootstrap(const std::vector<BleuStats>& a,
                                      const std::vector<BleuStats>& b,
                                      const BootstrapOptions& options) {
  if (a.size() != b.size())
    throw std::invalid_argument("paired bootstrap needs the same sentences for both systems (" +
                                std::to_string(a.size()) + " vs " + std::to_string(b.size()) +
                                ")");
  if (a.empty()) throw std::invalid_argument("paired bootstrap of an empty set");
  if (options.resamples < 1) throw std::invalid_argument("paired bootstrap needs resamples >= 1");

  PairedBootstrapResult r;
  r.sentences = a.size();
  r.resamples = options.resamples;
  BleuStats total_a, total_b;
  for (std::size_t i = 0; i < a.size(); ++i) {
    total_a += a[i];
    total_b += b[i];
  }
  r.bleu_a = CorpusBleu(total_a).score;
  r.bleu_b = CorpusBleu(total_b).score;
  r.difference = r.bleu_b - r.bleu_a;

  // Each resample draws n sentence indices with replacement; both systems are scored on the
  // same draw. The statistics are additive, so a resample's corpus BLEU is BLEU of the sum.
  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<std::size_t> pick(0, a.size() - 1);
  std::vector<double> scores_a, scores_b, diffs, abs_diffs;
  const auto n = static_cast<std::size_t>(options.resamples);
  scores_a.reserve(n);
  scores_b.reserve(n);
  for (std::size_t s = 0; s < n; ++s) {
    BleuStats sa, sb;
    for (std::size_t k = 0; k < a.size(); ++k) {
      const std::size_t i = pick(rng);
      sa += a[i];
      sb += b[i];
    }
    scores_a.push_back(CorpusBleu(sa).score);
    scores_b.push_back(CorpusBleu(sb).score);
    diffs.push_back(scores_b.back() - scores_a.back());
    abs_diffs.push_back(std::fabs(diffs.back()));
  }

  // The p-value: under the null hypothesis the resampled |b - a| fluctuate around their mean
  // only by chance, so the centred values estimate how large a difference chance alone makes;
  // count how often it reaches the observed one.
  const double observed = std::fabs(r.difference);
  const double mean_abs = Mean(abs_diffs);
  std::size_t reach = 0;
  for (double d : abs_diffs) {
    // A small tolerance so that exact ties (identical systems: every value 0) count despite
    // rounding in the mean.
    if (d - mean_abs >= observed - 1e-9) ++reach;
  }
  r.p_value = static_cast<double>(reach + 1) / static_cast<double>(n + 1);

  r.mean_a = Mean(scores_a);
  r.mean_b = Mean(scores_b);
  std::sort(scores_a.begin(), scores_a.end());
  std::sort(scores_b.begin(), scores_b.end());
  std::sort(diffs.begin(), diffs.end());
  const auto ia = Interval95(scores_a), ib = Interval95(scores_b), id = Interval95(diffs);
  r.ci_a = 0.5 * (ia.second - ia.first);
  r.ci_b = 0.5 * (ib.second - ib.first);
  r.diff_ci_low = id.first;
  r.diff_ci_high = id.second;
  return r;
}

}  // namespace mixserve::loadgen
