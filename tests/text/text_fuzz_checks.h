// Properties of the text path (Python whitespace helpers, the 13a tokenizer, BLEU, the
// SentencePiece tokenizer) that must hold for any input, valid UTF-8 or not. Shared by the
// seeded random fuzzer that runs in CI (text_fuzz_test.cc) and the optional libFuzzer entry
// point (text_libfuzzer.cc).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace mixserve {
class Tokenizer;

namespace fuzz {

// Well-formed UTF-8 by the Unicode standard's table of well-formed byte sequences (Table 3-7):
// written independently of the decoders under test, as their oracle.
bool IsWellFormedUtf8(const std::string& s);
// Byte offset of the first ill-formed sequence, -1 when the text is well formed.
long FirstIllFormedOffset(const std::string& s);

// Checks every property on one hypothesis/reference pair; `tokenizer` may be null (its
// checks are then skipped). Returns "" when all hold, else what failed. Never throws for a
// failed property; an exception escaping the code under test is reported as a failure too.
std::string CheckTextPath(const std::string& hypothesis, const std::string& reference,
                          const Tokenizer* tokenizer);

// Random inputs that reach the interesting branches: ASCII punctuation and digits next to
// '.', ',' and '-', HTML entities, "<skipped>", ASCII and Unicode white space, control
// characters, multi-byte characters, ill-formed bytes (overlong forms, surrogates, stray
// continuation bytes, truncated sequences), and byte-level mutations of real sentences.
class TextGenerator {
 public:
  TextGenerator(uint64_t seed, std::vector<std::string> sentences);
  std::string Next();

 private:
  std::string Fragment();
  std::string Mutate(std::string s);
  std::mt19937_64 rng_;
  std::vector<std::string> sentences_;
};

// "\x41\xc3" style rendering of a failing input, to paste into a regression test.
std::string Escape(const std::string& s);

}  // namespace fuzz
}  // namespace mixserve
