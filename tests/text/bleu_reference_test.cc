// BLEU against values computed by sacreBLEU itself: tests/text/data/bleu_expected.tsv, written
// by scripts/bleu_reference.py from tests/text/data/bleu_cases.tsv (docs/text.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "text/bleu.h"

namespace mixserve {
namespace {

const std::string kDataDir = std::string(MIXSERVE_SOURCE_DIR) + "/tests/text/data/";

struct Case {
  std::string hyp;
  std::vector<std::string> refs;
};

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return out;
    start = tab + 1;
  }
}

// Lines split at "\n" only, as the script does (no "\r" handling: the file has none).
std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::vector<Case> ReadCases() {
  std::vector<Case> cases;
  for (const auto& line : ReadLines(kDataDir + "bleu_cases.tsv")) {
    auto fields = SplitTabs(line);
    Case c;
    c.hyp = fields[0];
    c.refs.assign(fields.begin() + 1, fields.end());
    cases.push_back(c);
  }
  return cases;
}

struct Expected {
  double score = 0;
  BleuStats stats;
};

Expected ParseExpected(const std::vector<std::string>& f) {
  // kind, key, score, counts, totals, sys_len, ref_len
  Expected e;
  e.score = std::stod(f.at(2));
  std::istringstream counts(f.at(3)), totals(f.at(4));
  for (int n = 0; n < kBleuOrder; ++n) {
    counts >> e.stats.matches[n];
    totals >> e.stats.totals[n];
  }
  e.stats.hyp_len = std::stod(f.at(5));
  e.stats.ref_len = std::stod(f.at(6));
  return e;
}

void ExpectSameStats(const BleuStats& got, const BleuStats& want, const std::string& what) {
  for (int n = 0; n < kBleuOrder; ++n) {
    EXPECT_EQ(got.matches[n], want.matches[n]) << what << " counts[" << n << "]";
    EXPECT_EQ(got.totals[n], want.totals[n]) << what << " totals[" << n << "]";
  }
  EXPECT_EQ(got.hyp_len, want.hyp_len) << what << " sys_len";
  EXPECT_EQ(got.ref_len, want.ref_len) << what << " ref_len";
}

// The same subsets as scripts/bleu_reference.py, by 0-based case index.
const std::map<std::string, std::function<bool(size_t, size_t)>> kSubsets = {
    {"all", [](size_t, size_t) { return true; }},
    {"first_half", [](size_t i, size_t n) { return i < n / 2; }},
    {"even_index", [](size_t i, size_t) { return i % 2 == 0; }},
    {"every_third", [](size_t i, size_t) { return i % 3 == 0; }},
};

TEST(BleuReference, MatchesSacrebleu) {
  const std::string expected_path = kDataDir + "bleu_expected.tsv";
  if (!std::filesystem::exists(expected_path)) {
    GTEST_SKIP() << expected_path << " is absent. Generate it where python3 has sacrebleu 2.x:"
                 << " python3 scripts/bleu_reference.py";
  }
  const auto cases = ReadCases();
  ASSERT_GT(cases.size(), 100u);

  std::vector<BleuStats> stats;
  for (const auto& c : cases) stats.push_back(SentenceStats(c.hyp, c.refs));

  size_t sentences = 0, tokenizations = 0, corpora = 0;
  for (const auto& line : ReadLines(expected_path)) {
    if (line.empty() || line[0] == '#') continue;
    const auto f = SplitTabs(line);
    const std::string& kind = f[0];
    if (kind == "cases") {
      ASSERT_EQ(std::stoul(f.at(1)), cases.size())
          << "bleu_expected.tsv belongs to another bleu_cases.tsv; regenerate it";
    } else if (kind == "sentence") {
      const size_t i = std::stoul(f.at(1)) - 1;
      ASSERT_LT(i, cases.size());
      const Expected want = ParseExpected(f);
      const std::string what = "case " + f[1] + " '" + cases[i].hyp + "'";
      ExpectSameStats(stats[i], want.stats, what);
      EXPECT_NEAR(SentenceBleu(cases[i].hyp, cases[i].refs).score, want.score, 0.01) << what;
      EXPECT_NEAR(SentenceBleu(stats[i]).score, want.score, 0.01) << what;
      ++sentences;
    } else if (kind == "tok13a") {
      const size_t i = std::stoul(f.at(1)) - 1;
      ASSERT_LT(i, cases.size());
      ASSERT_EQ(f.size(), 4u) << line;
      // sacreBLEU tokenizes rstrip()ed text; trailing whitespace makes no difference to 13a
      // unless the text ends in "-\n", which no case does.
      EXPECT_EQ(Tokenize13a(cases[i].hyp), f[2]) << "case " << f[1];
      EXPECT_EQ(Tokenize13a(cases[i].refs[0]), f[3]) << "case " << f[1];
      ++tokenizations;
    } else if (kind == "corpus") {
      const auto subset = kSubsets.find(f.at(1));
      ASSERT_NE(subset, kSubsets.end()) << "unknown subset " << f[1];
      BleuStats sum;
      for (size_t i = 0; i < cases.size(); ++i) {
        if (subset->second(i, cases.size())) sum += stats[i];
      }
      const Expected want = ParseExpected(f);
      ExpectSameStats(sum, want.stats, "corpus " + f[1]);
      EXPECT_NEAR(CorpusBleu(sum).score, want.score, 0.01) << "corpus " << f[1];
      ++corpora;
    } else {
      FAIL() << "unknown line kind '" << kind << "'";
    }
  }
  EXPECT_EQ(sentences, cases.size());
  EXPECT_EQ(tokenizations, cases.size());
  EXPECT_EQ(corpora, kSubsets.size());
}

// Independent of sacreBLEU's values: additivity over the whole case file. Corpus BLEU of the
// summed sentence statistics equals corpus BLEU computed from the texts in one go.
TEST(BleuReference, CorpusOfSubsetIsBleuOfSummedStats) {
  const auto cases = ReadCases();
  std::vector<std::string> hyps, refs;
  BleuStats sum;
  for (const auto& c : cases) {
    if (c.refs.size() != 1) continue;
    hyps.push_back(c.hyp);
    refs.push_back(c.refs[0]);
    sum += SentenceStats(c.hyp, c.refs);
  }
  const auto direct = CorpusBleu(hyps, refs);
  const auto summed = CorpusBleu(sum);
  EXPECT_EQ(direct.score, summed.score);
  EXPECT_EQ(direct.hyp_len, summed.hyp_len);
  EXPECT_GT(direct.score, 10);
  EXPECT_LT(direct.score, 100);
  // Sum in another order and grouping: same statistics (counts are integers).
  BleuStats evens, odds;
  for (size_t i = 0; i < hyps.size(); ++i) {
    (i % 2 ? odds : evens) += SentenceStats(hyps[i], {refs[i]});
  }
  odds += evens;
  for (int n = 0; n < kBleuOrder; ++n) {
    EXPECT_EQ(odds.matches[n], sum.matches[n]);
    EXPECT_EQ(odds.totals[n], sum.totals[n]);
  }
  EXPECT_EQ(CorpusBleu(odds).score, summed.score);
}

}  // namespace
}  // namespace mixserve
