// Statistics of mixserve-loadgen: latency percentiles and histograms, the Poisson arrival
// schedule of open-loop runs, and the paired bootstrap test that compares the corpus BLEU of
// two variants (as sacreBLEU's `--paired-bs`). Free of gRPC; the BLEU arithmetic is
// text/bleu.h's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "text/bleu.h"

namespace mixserve::loadgen {

// The p-th percentile (0 <= p <= 100) with linear interpolation between closest ranks
// (numpy's default "linear" method): rank p/100 * (n-1) of the sorted values. Throws
// std::invalid_argument for an empty input or p outside [0, 100].
double Percentile(std::vector<double> values, double p);

struct LatencySummary {
  std::size_t count = 0;
  double mean = 0, min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};
// All zeros for an empty input.
LatencySummary Summarize(const std::vector<double>& values);

// Counts of values in `bins` logarithmically spaced bins between lo and hi (0 < lo < hi);
// values below lo fall into the first bin, above hi into the last. edges has bins + 1 items.
struct Histogram {
  std::vector<double> edges;
  std::vector<std::size_t> counts;
};
Histogram LogHistogram(const std::vector<double>& values, double lo, double hi, int bins);

// Arrival times of a Poisson process of rate `qps`: the gaps between arrivals are independent
// exponential variables of mean 1/qps, drawn from a seeded generator (reproducible runs).
class PoissonSchedule {
 public:
  // Throws std::invalid_argument unless qps > 0.
  PoissonSchedule(double qps, uint64_t seed);
  // The next arrival time in seconds from the start (strictly increasing).
  double Next();

 private:
  std::mt19937_64 rng_;
  std::exponential_distribution<double> gap_;
  double t_ = 0;
};

struct BootstrapOptions {
  int resamples = 1000;  // sacreBLEU's default for the paired bootstrap
  uint64_t seed = 12345;  // sacreBLEU's default SACREBLEU_SEED
};

// Paired bootstrap resampling of corpus BLEU for two systems translating the same sentences
// (Koehn 2004; sacreBLEU's _paired_bs_test). Both systems are scored on the same resamples
// (the same multiset of sentence indices drawn with replacement), so the resampled
// differences keep the pairing.
struct PairedBootstrapResult {
  std::size_t sentences = 0;
  int resamples = 0;
  double bleu_a = 0, bleu_b = 0;  // corpus BLEU of all the paired sentences
  double difference = 0;          // bleu_b - bleu_a
  // 95% interval of the resampled differences b - a (the 2.5th and 97.5th percentiles, taken
  // as sacreBLEU's estimate_ci takes them: sorted[n/40] and sorted[n - n/40 - 1]).
  double diff_ci_low = 0, diff_ci_high = 0;
  // sacreBLEU's per-system report: mean of the resampled scores and the half-width of their
  // 95% interval ("mean ± ci").
  double mean_a = 0, ci_a = 0, mean_b = 0, ci_b = 0;
  // Two-sided p-value of "no difference": the share of resamples whose centred absolute
  // difference |b - a| - mean|b - a| reaches the observed |b - a|, with sacreBLEU's +1
  // correction: (count + 1) / (resamples + 1). sacreBLEU counts only strictly larger values,
  // which gives a system compared with itself p = 1/(resamples + 1); counting ties, as here,
  // gives it p = 1 and changes nothing else (ties have probability ~0 otherwise).
  double p_value = 1;
};

// a[i] and b[i] are the statistics of the two systems' translations of sentence i. Throws
// std::invalid_argument when the sizes differ, the input is empty or resamples < 1.
PairedBootstrapResult PairedBootstrap(const std::vector<BleuStats>& a,
                                      const std::vector<BleuStats>& b,
                                      const BootstrapOptions& options = {});

}  // namespace mixserve::loadgen
