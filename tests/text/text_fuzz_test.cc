// Seeded random fuzzer of the text path (text_fuzz_checks.h): the CI form of fuzzing. It runs
// for a bounded time (MIXSERVE_FUZZ_SECONDS, default 8) from a fixed seed (MIXSERVE_FUZZ_SEED,
// default 20261123), so a CI run explores the same inputs in the same order and a failure
// names the seed, the iteration and the input. Run longer by hand, e.g.
//   MIXSERVE_FUZZ_SECONDS=600 MIXSERVE_FUZZ_SEED=$RANDOM build/tests/text/text_fuzz_test
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "tests/text/text_fuzz_checks.h"
#include "tests/text/text_test_util.h"
#include "text/text_files.h"
#include "text/tokenizer.h"

namespace mixserve {
namespace {

// Shrinks a failing input: drops chunks (halving their size) while the same property still
// fails, so that the report shows a short input.
std::string Shrink(std::string s, const std::string& other, bool is_hypothesis,
                   const std::string& failure, const Tokenizer* tok) {
  auto fails = [&](const std::string& x) {
    return (is_hypothesis ? fuzz::CheckTextPath(x, other, tok)
                          : fuzz::CheckTextPath(other, x, tok)) == failure;
  };
  for (size_t chunk = std::max<size_t>(1, s.size() / 2);; chunk /= 2) {
    for (size_t at = 0; at < s.size();) {
      std::string t = s.substr(0, at) + s.substr(std::min(s.size(), at + chunk));
      if (fails(t))
        s = t;
      else
        at += chunk;
    }
    if (chunk == 1) break;
  }
  return s;
}

double EnvNumber(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atof(v) : fallback;
}

// The oracle itself, on hand-made cases (every other check leans on it).
TEST(TextFuzz, Utf8OracleAgreesWithTheStandardsTable) {
  using fuzz::FirstIllFormedOffset;
  EXPECT_EQ(FirstIllFormedOffset(""), -1);
  EXPECT_EQ(FirstIllFormedOffset("abc"), -1);
  EXPECT_EQ(FirstIllFormedOffset("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF"), -1);
  EXPECT_EQ(FirstIllFormedOffset(std::string("a\0b", 3)), -1);
  EXPECT_EQ(FirstIllFormedOffset("ab\xC0\xAF"), 2);          // overlong '/'
  EXPECT_EQ(FirstIllFormedOffset("\xE0\x80\xAF"), 0);        // overlong, three bytes
  EXPECT_EQ(FirstIllFormedOffset("x\xED\xA0\x80"), 1);       // surrogate U+D800
  EXPECT_EQ(FirstIllFormedOffset("\xF4\x90\x80\x80"), 0);    // U+110000
  EXPECT_EQ(FirstIllFormedOffset("ok\x80"), 2);              // stray continuation
  EXPECT_EQ(FirstIllFormedOffset("\xE2\x82"), 0);            // truncated
  EXPECT_EQ(FirstIllFormedOffset("\xC2\xA0\xFF"), 2);
}

TEST(TextFuzz, SeededRandomInputsKeepEveryProperty) {
  const double seconds = EnvNumber("MIXSERVE_FUZZ_SECONDS", 8);
  const auto seed = static_cast<uint64_t>(EnvNumber("MIXSERVE_FUZZ_SEED", 20261123));
  testing_text::TempDir dir;
  auto tok = Tokenizer::Load(testing_text::TrainSmallModel(dir));
  auto sentences = ReadTextLines(testing_text::Multi30k("val.en.gz"), 300);
  auto de = ReadTextLines(testing_text::Multi30k("val.de.gz"), 300);
  sentences.insert(sentences.end(), de.begin(), de.end());

  fuzz::TextGenerator gen(seed, sentences);
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  long iterations = 0, ill_formed = 0, failures = 0;
  size_t bytes = 0;
  // At least a few thousand inputs even on a slow machine; then until the time is up.
  while (iterations < 2000 || std::chrono::steady_clock::now() < until) {
    const std::string h = gen.Next(), r = gen.Next();
    ++iterations;
    bytes += h.size() + r.size();
    ill_formed += !fuzz::IsWellFormedUtf8(h);
    const std::string failure = fuzz::CheckTextPath(h, r, tok.get());
    if (!failure.empty()) {
      // Shrink the hypothesis first (most checks look at it), then the reference.
      std::string sh = Shrink(h, r, true, failure, tok.get());
      std::string sr = Shrink(r, sh, false, failure, tok.get());
      ADD_FAILURE() << failure << "\n  seed " << seed << ", iteration " << iterations
                    << " (input shrunk from " << h.size() << "+" << r.size() << " bytes)"
                    << "\n  hypothesis \"" << fuzz::Escape(sh) << "\"\n  reference \""
                    << fuzz::Escape(sr) << "\"";
      if (++failures >= 5) break;
    }
  }
  std::cout << "text fuzz: seed " << seed << ", " << iterations << " input pairs (" << ill_formed
            << " hypotheses ill-formed UTF-8), " << bytes << " bytes, " << seconds
            << " s budget\n";
  RecordProperty("iterations", static_cast<int>(iterations));
}

}  // namespace
}  // namespace mixserve
