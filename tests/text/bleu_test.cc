// BLEU on small cases whose statistics and scores are worked out by hand in the comments,
// following sacreBLEU's definition (docs/text.md). The sacreBLEU-generated reference values
// are checked in bleu_reference_test.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "text/bleu.h"

namespace mixserve {
namespace {

void ExpectStats(const BleuStats& s, std::array<double, 4> matches, std::array<double, 4> totals,
                 double hyp_len, double ref_len) {
  for (int n = 0; n < 4; ++n) {
    EXPECT_EQ(s.matches[n], matches[n]) << "order " << n + 1;
    EXPECT_EQ(s.totals[n], totals[n]) << "order " << n + 1;
  }
  EXPECT_EQ(s.hyp_len, hyp_len);
  EXPECT_EQ(s.ref_len, ref_len);
}

TEST(Bleu, IdenticalSentenceScores100) {
  // 6 tokens: 6 unigrams, 5 bigrams, 4 trigrams, 3 4-grams, all matched.
  const auto s = SentenceStats("the cat sat on the mat", {"the cat sat on the mat"});
  ExpectStats(s, {6, 5, 4, 3}, {6, 5, 4, 3}, 6, 6);
  EXPECT_DOUBLE_EQ(SentenceBleu("the cat sat on the mat", {"the cat sat on the mat"}).score, 100);
  EXPECT_DOUBLE_EQ(CorpusBleu(s).score, 100);
}

TEST(Bleu, OneWordReplaced) {
  // hyp: the cat sat on a mat / ref: the cat sat on the mat
  // 1-grams: the cat sat on mat match (a does not)            -> 5/6
  // 2-grams: "the cat" "cat sat" "sat on" match, "on a" "a mat" -> 3/5
  // 3-grams: "the cat sat" "cat sat on"                        -> 2/4
  // 4-grams: "the cat sat on"                                  -> 1/3
  // BP = 1 (6 = 6). BLEU = 100 * (5/6 * 3/5 * 2/4 * 1/3)^(1/4) = 100 * (1/12)^(1/4) = 53.7285
  const auto s = SentenceStats("the cat sat on a mat", {"the cat sat on the mat"});
  ExpectStats(s, {5, 3, 2, 1}, {6, 5, 4, 3}, 6, 6);
  const auto b = SentenceBleu("the cat sat on a mat", {"the cat sat on the mat"});
  EXPECT_NEAR(b.score, 100 * std::pow(1.0 / 12, 0.25), 1e-9);
  EXPECT_NEAR(b.score, 53.7285, 1e-4);
  EXPECT_NEAR(b.precisions[0], 500.0 / 6, 1e-9);
  EXPECT_NEAR(b.precisions[1], 60, 1e-9);
  EXPECT_NEAR(b.precisions[2], 50, 1e-9);
  EXPECT_NEAR(b.precisions[3], 100.0 / 3, 1e-9);
  EXPECT_EQ(b.brevity_penalty, 1);
  // All orders have n-grams: corpus and sentence BLEU agree.
  EXPECT_NEAR(CorpusBleu(s).score, b.score, 1e-12);
}

TEST(Bleu, ExponentialSmoothingOfMissingOrders) {
  // hyp: a b c d / ref: a b d c
  // 1-grams 4/4; 2-grams "a b" of "a b","b c","c d" -> 1/3; 3-grams 0/2; 4-grams 0/1.
  // exp smoothing: first zero order (3) -> 100 / (2 * 2) = 25, second (4) -> 100 / (4 * 1) = 25.
  // BLEU = 100 * (1 * 1/3 * 1/4 * 1/4)^(1/4) = 100 / 48^(1/4) = 37.9918
  const auto b = SentenceBleu("a b c d", {"a b d c"});
  EXPECT_NEAR(b.precisions[0], 100, 1e-9);
  EXPECT_NEAR(b.precisions[1], 100.0 / 3, 1e-9);
  EXPECT_NEAR(b.precisions[2], 25, 1e-9);
  EXPECT_NEAR(b.precisions[3], 25, 1e-9);
  EXPECT_NEAR(b.score, 100 / std::pow(48.0, 0.25), 1e-9);
  EXPECT_NEAR(b.score, 37.9918, 1e-4);
  EXPECT_NEAR(CorpusBleu(SentenceStats("a b c d", {"a b d c"})).score, b.score, 1e-12);
}

TEST(Bleu, EffectiveOrderOnlyForSentenceBleu) {
  // hyp: a b (2 tokens) / ref: a b c (3 tokens)
  // 1-grams 2/2, 2-grams 1/1, no 3- or 4-grams. BP = exp(1 - 3/2) = exp(-0.5) = 0.60653.
  // Sentence BLEU (effective order 2): BP * 100 * (1 * 1)^(1/2) = 60.653.
  // Corpus BLEU (order 4): precisions 3 and 4 stay 0 -> log replaced by -9999999999 -> 0.
  const auto s = SentenceStats("a b", {"a b c"});
  ExpectStats(s, {2, 1, 0, 0}, {2, 1, 0, 0}, 2, 3);
  const auto sent = SentenceBleu("a b", {"a b c"});
  EXPECT_NEAR(sent.brevity_penalty, std::exp(-0.5), 1e-12);
  EXPECT_NEAR(sent.score, 100 * std::exp(-0.5), 1e-9);
  const auto corpus = CorpusBleu(s);
  EXPECT_EQ(corpus.score, 0);
  EXPECT_NEAR(corpus.precisions[0], 100, 1e-12);
  EXPECT_EQ(corpus.precisions[2], 0);
  EXPECT_NEAR(SentenceBleu(s).score, sent.score, 1e-12);
}

TEST(Bleu, EmptyHypothesisAndNoMatches) {
  // Empty hypothesis: length 0 -> BP 0, no n-grams, score 0.
  const auto e = SentenceBleu("", {"a b"});
  EXPECT_EQ(e.score, 0);
  EXPECT_EQ(e.brevity_penalty, 0);
  EXPECT_EQ(e.hyp_len, 0);
  EXPECT_EQ(e.ref_len, 2);
  // Whitespace only is empty too.
  EXPECT_EQ(SentenceBleu("  \t ", {"a b"}).hyp_len, 0);
  // No matching unigram: sacreBLEU stops early with score 0 and all precisions 0.
  const auto z = SentenceBleu("x y z", {"a b c"});
  EXPECT_EQ(z.score, 0);
  for (double p : z.precisions) EXPECT_EQ(p, 0);
  EXPECT_EQ(z.brevity_penalty, 1);
  // An empty reference is a reference of length 0 without n-grams (sacreBLEU 2.x).
  EXPECT_THROW(SentenceStats("a", {}), std::invalid_argument);
  const auto only_empty = SentenceBleu("a", {""});
  EXPECT_EQ(only_empty.ref_len, 0);
  EXPECT_EQ(only_empty.score, 0);
  // hyp 1 token, refs of 0 and 2 tokens: a tie, so the shorter (0) is used, BP = 1, and the
  // one matching unigram gives 100 (effective order 1).
  const auto with_empty = SentenceBleu("a", {"a b", ""});
  EXPECT_EQ(with_empty.ref_len, 0);
  EXPECT_EQ(with_empty.brevity_penalty, 1);
  EXPECT_NEAR(with_empty.score, 100, 1e-9);
  EXPECT_EQ(SentenceStats("a b", {"", "a b"}).ref_len, 2);
}

TEST(Bleu, LongerHypothesisHasNoPenalty) {
  // hyp: a b c d e (5) / ref: a b c (3). Matches 3/5, 2/4, 1/3, 0/2 -> 4-gram smoothed to
  // 100 / (2 * 2) = 25. BP = 1.
  // BLEU = 100 * (3/5 * 2/4 * 1/3 * 1/4)^(1/4) = 100 * (1/40)^(1/4) = 39.7635
  const auto b = SentenceBleu("a b c d e", {"a b c"});
  EXPECT_EQ(b.brevity_penalty, 1);
  EXPECT_NEAR(b.score, 100 * std::pow(1.0 / 40, 0.25), 1e-9);
}

TEST(Bleu, ClippingAndClosestReferenceLength) {
  // "the" 3 times in the hypothesis; at most 2 in any one reference -> clipped to 2.
  const auto s = SentenceStats("the the the", {"the cat", "the the dog"});
  EXPECT_EQ(s.matches[0], 2);
  EXPECT_EQ(s.totals[0], 3);
  // "the the" occurs once in the second reference; the hypothesis has it twice -> 1.
  EXPECT_EQ(s.matches[1], 1);
  // hyp 3 tokens; refs 2 and 3 tokens -> 3.
  EXPECT_EQ(s.ref_len, 3);
  // Ties go to the shorter reference: hyp 3, refs 2 and 4 -> 2; refs 5 and 1 -> 1.
  EXPECT_EQ(SentenceStats("a b c", {"a b c d", "a b"}).ref_len, 2);
  EXPECT_EQ(SentenceStats("a b c", {"a b c d e", "a"}).ref_len, 1);
  // Each n-gram is clipped by its largest count in any single reference: "a" by ref 1,
  // "b" by ref 2.
  const auto u = SentenceStats("a a b b", {"a a x", "b b y"});
  EXPECT_EQ(u.matches[0], 4);  // a: max(2,0)=2, b: max(0,2)=2
  EXPECT_EQ(u.matches[1], 2);  // "a a" and "b b"; "a b" is in neither
}

TEST(Bleu, TokenizationDecidesMatches) {
  // 13a splits the final period and the comma: "Hello , world ." matches fully.
  const auto s = SentenceStats("Hello, world.", {"Hello , world ."});
  ExpectStats(s, {4, 3, 2, 1}, {4, 3, 2, 1}, 4, 4);
  // Case-sensitive.
  EXPECT_EQ(SentenceStats("hello", {"Hello"}).matches[0], 0);
  // Trailing "-\n" is stripped before tokenizing (rstrip), not joined.
  EXPECT_EQ(SentenceStats("ab-\n", {"ab-"}).matches[0], 1);
}

TEST(Bleu, StatisticsAreAdditive) {
  const std::vector<std::string> hyps = {"the cat sat on a mat", "a b c d", "a b", "",
                                         "Hello, world."};
  const std::vector<std::string> refs = {"the cat sat on the mat", "a b d c", "a b c", "x y",
                                         "Hello , world !"};
  BleuStats sum;
  for (size_t i = 0; i < hyps.size(); ++i) sum += SentenceStats(hyps[i], {refs[i]});
  // Totals by hand: 1-grams 6+4+2+0+4 = 16, hyp_len 16; ref_len 6+4+3+2+4 = 19.
  EXPECT_EQ(sum.totals[0], 16);
  EXPECT_EQ(sum.hyp_len, 16);
  EXPECT_EQ(sum.ref_len, 19);
  const auto direct = CorpusBleu(hyps, refs);
  const auto from_stats = CorpusBleu(sum);
  EXPECT_EQ(direct.score, from_stats.score);
  EXPECT_GT(direct.score, 0);
  // BP = exp(1 - 19/16).
  EXPECT_NEAR(direct.brevity_penalty, std::exp(1 - 19.0 / 16), 1e-12);
  EXPECT_THROW(CorpusBleu(hyps, {"only one"}), std::invalid_argument);
}

TEST(Bleu, FormatsLikeSacrebleu) {
  const auto b = SentenceBleu("the cat sat on a mat", {"the cat sat on the mat"});
  EXPECT_EQ(FormatBleu(b),
            "BLEU = 53.73 83.3/60.0/50.0/33.3 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)");
}

}  // namespace
}  // namespace mixserve
