// BLEU as sacreBLEU 2.x computes it (sacrebleu/metrics/bleu.py): segment statistics from
// 13a-tokenized text, then BLEU.compute_bleu over summed statistics.
#include "text/bleu.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <unordered_map>

#include "text/py_text.h"

namespace mixserve {
namespace {

using NgramCounts = std::unordered_map<std::string, int>;

// What sacreBLEU does to every segment: sent.rstrip(), then the 13a tokenizer, then split().
std::vector<std::string> Preprocess(const std::string& sentence) {
  return text_internal::PySplit(Tokenize13a(text_internal::PyRStrip(sentence)));
}

// Counts of all n-grams, 1 <= n <= kBleuOrder. Tokens contain no ' ', so joining with ' '
// gives distinct keys (and the order is the number of spaces plus one).
NgramCounts CountNgrams(const std::vector<std::string>& tokens) {
  NgramCounts counts;
  for (int n = 1; n <= kBleuOrder; ++n) {
    for (size_t i = 0; i + n <= tokens.size(); ++i) {
      std::string key = tokens[i];
      for (int k = 1; k < n; ++k) {
        key += ' ';
        key += tokens[i + k];
      }
      ++counts[key];
    }
  }
  return counts;
}

// sacreBLEU's my_log: log(0) is replaced by a large negative number.
double MyLog(double x) { return x == 0.0 ? -9999999999.0 : std::log(x); }

// BLEU.compute_bleu with smooth_method="exp".
BleuScore ComputeBleu(const BleuStats& s, bool effective_order) {
  BleuScore out;
  out.hyp_len = s.hyp_len;
  out.ref_len = s.ref_len;
  if (s.hyp_len < s.ref_len) {
    out.brevity_penalty = s.hyp_len > 0 ? std::exp(1.0 - s.ref_len / s.hyp_len) : 0.0;
  } else {
    out.brevity_penalty = 1.0;
  }
  bool any_match = false;
  for (double m : s.matches) any_match = any_match || m != 0;
  if (!any_match) return out;  // score 0, precisions 0 (sacreBLEU's early stop)

  // Exponential smoothing (mteval-v13a): the k-th order with no match, counting from the
  // lowest, gets precision 100 / (2^k * total) instead of 0.
  double smooth = 1.0;
  int eff_order = kBleuOrder;
  for (int n = 1; n <= kBleuOrder; ++n) {
    const double total = s.totals[n - 1];
    if (total == 0) break;  // higher orders keep precision 0
    if (effective_order) eff_order = n;
    if (s.matches[n - 1] == 0) {
      smooth *= 2;
      out.precisions[n - 1] = 100.0 / (smooth * total);
    } else {
      out.precisions[n - 1] = 100.0 * s.matches[n - 1] / total;
    }
  }
  // Without effective order a precision left at 0 (an order with no n-grams at all) drives
  // the score to exp(-9999999999 / 4) = 0.
  double sum = 0;
  for (int n = 0; n < eff_order; ++n) sum += MyLog(out.precisions[n]);
  out.score = out.brevity_penalty * std::exp(sum / eff_order);
  return out;
}

}  // namespace

BleuStats& BleuStats::operator+=(const BleuStats& o) {
  for (int n = 0; n < kBleuOrder; ++n) {
    matches[n] += o.matches[n];
    totals[n] += o.totals[n];
  }
  hyp_len += o.hyp_len;
  ref_len += o.ref_len;
  return *this;
}

BleuStats SentenceStats(const std::string& hypothesis,
                        const std::vector<std::string>& references) {
  // sacreBLEU 2.x keeps an empty reference: it has no n-grams and length 0 (so it can become
  // the closest reference length of a short hypothesis).
  if (references.empty()) throw std::invalid_argument("BLEU: no reference for a hypothesis");
  NgramCounts ref_counts;
  std::vector<size_t> ref_lens;
  for (const auto& ref : references) {
    const auto tokens = Preprocess(ref);
    ref_lens.push_back(tokens.size());
    // Clipping uses, per n-gram, its largest count in any one reference.
    for (const auto& [ngram, count] : CountNgrams(tokens)) {
      int& c = ref_counts[ngram];
      if (count > c) c = count;
    }
  }

  const auto hyp_tokens = Preprocess(hypothesis);
  const size_t hyp_len = hyp_tokens.size();

  // Closest reference length; ties go to the shorter reference.
  size_t closest_len = ref_lens[0];
  size_t closest_diff = hyp_len > closest_len ? hyp_len - closest_len : closest_len - hyp_len;
  for (size_t len : ref_lens) {
    const size_t diff = hyp_len > len ? hyp_len - len : len - hyp_len;
    if (diff < closest_diff || (diff == closest_diff && len < closest_len)) {
      closest_diff = diff;
      closest_len = len;
    }
  }

  BleuStats stats;
  stats.hyp_len = static_cast<double>(hyp_len);
  stats.ref_len = static_cast<double>(closest_len);
  for (const auto& [ngram, count] : CountNgrams(hyp_tokens)) {
    int order = 1;
    for (char ch : ngram) order += ch == ' ';
    stats.totals[order - 1] += count;
    const auto it = ref_counts.find(ngram);
    if (it != ref_counts.end()) stats.matches[order - 1] += std::min(count, it->second);
  }
  return stats;
}

BleuScore CorpusBleu(const BleuStats& stats) { return ComputeBleu(stats, false); }

BleuScore CorpusBleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs) {
  if (hyps.size() != refs.size()) {
    throw std::invalid_argument("BLEU: " + std::to_string(hyps.size()) + " hypotheses but " +
                                std::to_string(refs.size()) + " references");
  }
  BleuStats total;
  for (size_t i = 0; i < hyps.size(); ++i) total += SentenceStats(hyps[i], {refs[i]});
  return CorpusBleu(total);
}

BleuScore SentenceBleu(const std::string& hypothesis, const std::vector<std::string>& references) {
  return ComputeBleu(SentenceStats(hypothesis, references), true);
}

BleuScore SentenceBleu(const BleuStats& stats) { return ComputeBleu(stats, true); }

std::string FormatBleu(const BleuScore& s) {
  char buf[256];
  const double ratio = s.ref_len != 0 ? s.hyp_len / s.ref_len : 0.0;
  std::snprintf(buf, sizeof(buf),
                "BLEU = %.2f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %.0f "
                "ref_len = %.0f)",
                s.score, s.precisions[0], s.precisions[1], s.precisions[2], s.precisions[3],
                s.brevity_penalty, ratio, s.hyp_len, s.ref_len);
  return buf;
}

}  // namespace mixserve
