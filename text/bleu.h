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

// sacreBLEU's 13a tokenizer (mteval-v13a), applied before n-gram counting.
std::string Tokenize13a(const std::string& line);

// Statistics of one hypothesis against one or more references (closest ref length).
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

}  // namespace mixserve
