// Properties of mixserve-loadgen's statistics: percentiles, histograms, the Poisson schedule
// and the paired bootstrap test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "clients/loadgen/stats.h"
#include "text/bleu.h"

namespace mixserve::loadgen {
namespace {

TEST(Percentile, InterpolatesBetweenRanks) {
  // 1..101 shuffled: rank p/100 * 100 is an integer, the value is rank + 1.
  std::vector<double> v;
  for (int i = 101; i >= 1; --i) v.push_back(i);
  std::rotate(v.begin(), v.begin() + 37, v.end());
  EXPECT_DOUBLE_EQ(Percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile(v, 50), 51);
  EXPECT_DOUBLE_EQ(Percentile(v, 90), 91);
  EXPECT_DOUBLE_EQ(Percentile(v, 100), 101);
  // Two values: the p-th percentile is the straight line between them.
  EXPECT_DOUBLE_EQ(Percentile({10, 20}, 25), 12.5);
  EXPECT_DOUBLE_EQ(Percentile({7}, 99), 7);
}

TEST(Percentile, RejectsBadInput) {
  EXPECT_THROW(Percentile({}, 50), std::invalid_argument);
  EXPECT_THROW(Percentile({1, 2}, 101), std::invalid_argument);
  EXPECT_THROW(Percentile({1, 2}, -1), std::invalid_argument);
}

TEST(Summarize, AgreesWithPercentile) {
  std::vector<double> v;
  for (int i = 0; i < 1000; ++i) v.push_back(std::fmod(i * 7.31, 97.0) + 1);
  const LatencySummary s = Summarize(v);
  EXPECT_EQ(s.count, v.size());
  EXPECT_DOUBLE_EQ(s.p50, Percentile(v, 50));
  EXPECT_DOUBLE_EQ(s.p99, Percentile(v, 99));
  EXPECT_DOUBLE_EQ(s.max, *std::max_element(v.begin(), v.end()));
  EXPECT_LE(s.min, s.p50);
  EXPECT_LE(s.p50, s.p90);
  EXPECT_LE(s.p90, s.p99);
  EXPECT_LE(s.p99, s.max);
  EXPECT_EQ(Summarize({}).count, 0u);
}

TEST(LogHistogram, CountsEveryValueOnce) {
  std::vector<double> v = {0.5, 1, 2, 4, 8, 16, 32, 1000};
  const Histogram h = LogHistogram(v, 1, 64, 6);  // edges 1, 2, 4, ..., 64
  ASSERT_EQ(h.edges.size(), 7u);
  EXPECT_NEAR(h.edges[1], 2, 1e-9);
  EXPECT_NEAR(h.edges[5], 32, 1e-9);
  size_t total = 0;
  for (size_t c : h.counts) total += c;
  EXPECT_EQ(total, v.size());
  EXPECT_EQ(h.counts.front(), 2u);  // 0.5 (below lo) and 1
  EXPECT_EQ(h.counts.back(), 2u);   // 32 and 1000 (above hi)
  EXPECT_THROW(LogHistogram(v, 0, 1, 3), std::invalid_argument);
}

TEST(PoissonSchedule, GapsAreExponentialWithTheRate) {
  const double qps = 200;
  PoissonSchedule s(qps, 7);
  const int n = 20000;
  std::vector<double> gaps;
  double prev = 0;
  for (int i = 0; i < n; ++i) {
    const double t = s.Next();
    ASSERT_GT(t, prev);
    gaps.push_back(t - prev);
    prev = t;
  }
  double mean = 0;
  for (double g : gaps) mean += g;
  mean /= n;
  double var = 0;
  for (double g : gaps) var += (g - mean) * (g - mean);
  var /= n - 1;
  // Exponential: mean 1/qps and standard deviation equal to the mean. The standard error of
  // the mean is (1/qps)/sqrt(n) < 1%; allow 5%.
  EXPECT_NEAR(mean * qps, 1.0, 0.05);
  EXPECT_NEAR(std::sqrt(var) / mean, 1.0, 0.05);
  // Memorylessness: P(gap > 1/qps) = e^-1.
  const double beyond = std::count_if(gaps.begin(), gaps.end(),
                                      [&](double g) { return g > 1 / qps; }) /
                        static_cast<double>(n);
  EXPECT_NEAR(beyond, std::exp(-1.0), 0.02);
  // Arrivals in one-second windows: Poisson counts, variance equal to the mean (qps).
  std::vector<int> per_second(static_cast<size_t>(prev) + 1, 0);
  double t = 0;
  for (double g : gaps) {
    t += g;
    ++per_second[static_cast<size_t>(t)];
  }
  per_second.pop_back();  // the last window is incomplete
  double m = 0, v = 0;
  for (int c : per_second) m += c;
  m /= per_second.size();
  for (int c : per_second) v += (c - m) * (c - m);
  v /= per_second.size() - 1;
  EXPECT_NEAR(m / qps, 1.0, 0.05);
  EXPECT_NEAR(v / m, 1.0, 0.4);  // ~100 windows: the variance ratio is only roughly 1
}

TEST(PoissonSchedule, SeededAndValidated) {
  PoissonSchedule a(50, 3), b(50, 3), c(50, 4);
  double ta = 0, tb = 0, tc = 0;
  for (int i = 0; i < 10; ++i) {
    ta = a.Next();
    tb = b.Next();
    tc = c.Next();
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
  EXPECT_THROW(PoissonSchedule(0, 1), std::invalid_argument);
  EXPECT_THROW(PoissonSchedule(-3, 1), std::invalid_argument);
}

// A small synthetic test set: references, and translations made worse by dropping words.
struct TestSet {
  std::vector<std::string> refs;
  std::vector<std::string> Degrade(int every) const {
    // Drops every `every`-th word of each reference (every <= 0: keeps it intact).
    std::vector<std::string> out;
    for (const auto& r : refs) {
      std::string h, w;
      int k = 0;
      for (size_t i = 0; i <= r.size(); ++i) {
        if (i == r.size() || r[i] == ' ') {
          if (!w.empty() && (every <= 0 || ++k % every != 0)) h += (h.empty() ? "" : " ") + w;
          w.clear();
        } else {
          w += r[i];
        }
      }
      out.push_back(h);
    }
    return out;
  }
};

TestSet MakeTestSet(int n) {
  static const char* kWords[] = {"a",    "man",  "woman", "dog",   "runs",  "on",
                                 "the",  "red",  "grass", "with",  "two",   "children",
                                 "blue", "shirt", "plays", "ball", "near",  "water"};
  TestSet t;
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < n; ++i) {
    std::string s;
    const int len = 8 + i % 7;
    for (int k = 0; k < len; ++k) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      s += (k ? " " : "") + std::string(kWords[x % 18]);
    }
    t.refs.push_back(s + " .");
  }
  return t;
}

std::vector<BleuStats> Stats(const std::vector<std::string>& hyps,
                             const std::vector<std::string>& refs) {
  std::vector<BleuStats> out;
  for (size_t i = 0; i < hyps.size(); ++i) out.push_back(SentenceStats(hyps[i], {refs[i]}));
  return out;
}

TEST(PairedBootstrap, IdenticalSystemsHaveNoDifference) {
  const TestSet t = MakeTestSet(120);
  const auto hyps = t.Degrade(3);
  const auto s = Stats(hyps, t.refs);
  const PairedBootstrapResult r = PairedBootstrap(s, s);
  EXPECT_EQ(r.sentences, 120u);
  EXPECT_EQ(r.resamples, 1000);
  EXPECT_DOUBLE_EQ(r.difference, 0);
  EXPECT_DOUBLE_EQ(r.diff_ci_low, 0);
  EXPECT_DOUBLE_EQ(r.diff_ci_high, 0);
  EXPECT_DOUBLE_EQ(r.p_value, 1);
  EXPECT_DOUBLE_EQ(r.bleu_a, CorpusBleu(hyps, t.refs).score);
}

TEST(PairedBootstrap, ClearlyBetterSystemIsSignificant) {
  const TestSet t = MakeTestSet(150);
  const auto worse = t.Degrade(2);   // drops half of the words
  const auto better = t.Degrade(8);  // drops an eighth
  const PairedBootstrapResult r =
      PairedBootstrap(Stats(worse, t.refs), Stats(better, t.refs));
  // The observed scores are corpus BLEU of the whole set, computed independently.
  EXPECT_DOUBLE_EQ(r.bleu_a, CorpusBleu(worse, t.refs).score);
  EXPECT_DOUBLE_EQ(r.bleu_b, CorpusBleu(better, t.refs).score);
  EXPECT_DOUBLE_EQ(r.difference, r.bleu_b - r.bleu_a);
  ASSERT_GT(r.difference, 5);
  EXPECT_LT(r.p_value, 0.05);
  EXPECT_GE(r.p_value, 1.0 / 1001);  // the +1 correction bounds it below
  EXPECT_LE(r.diff_ci_low, r.difference);
  EXPECT_GE(r.diff_ci_high, r.difference);
  EXPECT_GT(r.diff_ci_low, 0);  // the interval excludes "no difference"
  // Resampled means lie near the observed scores; the per-system intervals are positive.
  EXPECT_NEAR(r.mean_a, r.bleu_a, 3);
  EXPECT_NEAR(r.mean_b, r.bleu_b, 3);
  EXPECT_GT(r.ci_a, 0);
  EXPECT_GT(r.ci_b, 0);

  // Swapping the systems mirrors the difference and its interval; the p-value is the same
  // (the test is two-sided and the resamples are the same draws).
  const PairedBootstrapResult s =
      PairedBootstrap(Stats(better, t.refs), Stats(worse, t.refs));
  EXPECT_DOUBLE_EQ(s.difference, -r.difference);
  EXPECT_NEAR(s.diff_ci_low, -r.diff_ci_high, 1e-9);
  EXPECT_NEAR(s.diff_ci_high, -r.diff_ci_low, 1e-9);
  EXPECT_DOUBLE_EQ(s.p_value, r.p_value);
}

TEST(PairedBootstrap, EqualQualityOnDifferentSentencesIsNotSignificant) {
  // System A is perfect on even sentences and degraded on odd ones; B the other way round.
  // Their corpus BLEU differs only by chance, which the test must not call significant.
  const TestSet t = MakeTestSet(200);
  const auto bad = t.Degrade(2);
  std::vector<std::string> a, b;
  for (size_t i = 0; i < t.refs.size(); ++i) {
    a.push_back(i % 2 ? bad[i] : t.refs[i]);
    b.push_back(i % 2 ? t.refs[i] : bad[i]);
  }
  const PairedBootstrapResult r = PairedBootstrap(Stats(a, t.refs), Stats(b, t.refs));
  EXPECT_GT(r.p_value, 0.05);
  EXPECT_LE(r.diff_ci_low, r.difference);
  EXPECT_GE(r.diff_ci_high, r.difference);
  EXPECT_LT(r.diff_ci_low, 0);  // the interval contains 0
  EXPECT_GT(r.diff_ci_high, 0);
}

TEST(PairedBootstrap, SeededAndValidated) {
  const TestSet t = MakeTestSet(60);
  const auto a = Stats(t.Degrade(2), t.refs), b = Stats(t.Degrade(3), t.refs);
  BootstrapOptions o;
  o.resamples = 200;
  const auto r1 = PairedBootstrap(a, b, o), r2 = PairedBootstrap(a, b, o);
  EXPECT_EQ(r1.resamples, 200);
  EXPECT_EQ(r1.diff_ci_low, r2.diff_ci_low);
  EXPECT_EQ(r1.p_value, r2.p_value);
  o.seed = 99;
  const auto r3 = PairedBootstrap(a, b, o);
  EXPECT_EQ(r3.difference, r1.difference);  // the observed difference does not resample
  EXPECT_NE(r3.mean_a, r1.mean_a);

  EXPECT_THROW(PairedBootstrap(a, {b.begin(), b.end() - 1}), std::invalid_argument);
  EXPECT_THROW(PairedBootstrap({}, {}), std::invalid_argument);
  o.resamples = 0;
  EXPECT_THROW(PairedBootstrap(a, b, o), std::invalid_argument);
}

}  // namespace
}  // namespace mixserve::loadgen
