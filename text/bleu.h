// sacreBLEU-compatible BLEU (13a tokenizer, exponential smoothing for sentence BLEU,
// case-sensitive) built on additive sufficient statistics: corpus BLEU of any set of sentences
// is BLEU of the sum of their statistics, so servers can export the statistics as counters.
#pragma once

#include <array>
#include <string>
#include <vector>

namespace mixserve {

constexpr int kBleuOrder = 4;

struct BleuStats {
  std::array<double, kBleuOrder> matches{};  // clipped n-gram matches per order (1..4)
  std::array<double, kBleuOrder> totals{};   // hypothesis n-grams per order
  double hyp_len = 0;
  double ref_len = 0;
  BleuStats& operator+=(const BleuStats& o);
};

// sacreBLEU's 13a tokenizer (mteval-v13a), applied before n-gram counting. Exactly
// Tokenizer13a.__call__; the BLEU functions below first strip trailing whitespace from each
// sentence (str.rstrip), as sacreBLEU does.
std::string Tokenize13a(const std::string& line);

// Statistics of one hypothesis against one or more references: n-gram matches clipped by the
// largest count in any one reference, and the reference length closest to the hypothesis
// length (the shorter on ties). An empty reference counts, with length 0, as in sacreBLEU 2.x;
// throws std::invalid_argument when references is empty.
BleuStats SentenceStats(const std::string& hypothesis, const std::vector<std::string>& references);

struct BleuScore {
  double score = 0;                           // 0..100
  std::array<double, kBleuOrder> precisions{};  // percent
  double brevity_penalty = 0;
  double hyp_len = 0, ref_len = 0;
};

// Corpus BLEU from summed statistics: sacreBLEU's defaults (smooth_method="exp").
BleuScore CorpusBleu(const BleuStats& stats);
// Corpus BLEU of parallel lists (one reference each).
BleuScore CorpusBleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs);
// Sentence BLEU as sacreBLEU's sentence_bleu (smooth_method="exp", effective order).
BleuScore SentenceBleu(const std::string& hypothesis, const std::vector<std::string>& references);
// The same from (summed) statistics: orders without any hypothesis n-gram are left out.
BleuScore SentenceBleu(const BleuStats& stats);

// sacreBLEU's summary line, e.g.
// "BLEU = 27.43 60.1/33.6/20.4/12.7 (BP = 1.000 ratio = 1.012 hyp_len = 1234 ref_len = 1220)".
std::string FormatBleu(const BleuScore& score);

}  // namespace mixserve
