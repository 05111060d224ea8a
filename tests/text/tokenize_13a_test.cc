// The 13a tokenizer, case by case. Each expectation is derived by hand from sacreBLEU's
// rules (text/tokenize_13a.cc): separate the symbols {|}~[\]^_`!"#$%&()*+:;<=>?@/ ; split
// '.'/',' from a non-digit on their left, then from a non-digit on their right; split '-'
// after a digit; collapse whitespace.
#include <gtest/gtest.h>

#include "text/bleu.h"
#include "text/py_text.h"

namespace mixserve {
namespace {

struct Case {
  const char* in;
  const char* out;
};

TEST(Tokenize13a, HandDerivedCases) {
  const Case cases[] = {
      {"", ""},
      {"   ", ""},
      {"Hello, world.", "Hello , world ."},
      {"A man sleeps on a sofa.", "A man sleeps on a sofa ."},
      // Digits on both sides keep separators: thousands and decimals stay one token.
      {"It costs 1,000.50 euros.", "It costs 1,000.50 euros ."},
      // A digit on one side only: ',' after a digit but before a letter is split by rule 3.
      {"1,a", "1 , a"},
      {"a,1", "a , 1"},
      // ".5": the space before '.' is a non-digit, so rule 2 splits it.
      {"pay .5 now", "pay . 5 now"},
      // A dash after a digit is split; between letters it stays.
      {"3-4 year-old", "3 - 4 year-old"},
      {"-5", "-5"},
      {"5-", "5 -"},
      // Apostrophes are not touched.
      {"don't l'homme", "don't l'homme"},
      {"$5 (ca. 10%)", "$ 5 ( ca . 10 % )"},
      {"a/b:c;d?e!f", "a / b : c ; d ? e ! f"},
      {"x@y.com", "x @ y . com"},
      {"{[^_`~|\\]}", "{ [ ^ _ ` ~ | \\ ] }"},
      {"e.g.", "e . g ."},
      {"...", ". . ."},
      {"a..b", "a . . b"},
      {"1.2.3", "1.2.3"},
      // Entities are decoded, then tokenized.
      {"&quot;hi&quot; &amp; &lt;b&gt;", "\" hi \" & < b >"},
      {"&amp;quot;", "& quot ;"},
      // <skipped> is dropped; "-\n" joins; "\n" is a space.
      {"a <skipped> b", "a b"},
      {"ab-\ncd", "abcd"},
      {"a\nb", "a b"},
      // Tabs and runs of spaces collapse.
      {"a \t  b", "a b"},
      // UTF-8 text passes through; punctuation next to it is split like next to ASCII.
      {"Stra\xC3\x9F" "e.", "Stra\xC3\x9F" "e ."},
      {"\xC3\xBC" "ber,den", "\xC3\xBC" "ber , den"},
      {"5.\xC3\xA9t\xC3\xA9", "5 . \xC3\xA9t\xC3\xA9"},
      {"caf\xC3\xA9 \xF0\x9F\x98\x80!", "caf\xC3\xA9 \xF0\x9F\x98\x80 !"},
      {"\xE6\xBC\xA2\xE5\xAD\x97\xE3\x80\x82", "\xE6\xBC\xA2\xE5\xAD\x97\xE3\x80\x82"},
      // Unicode spaces split like Python's str.split(): NBSP, ideographic space; U+200B does not.
      {"a\xC2\xA0" "b\xE3\x80\x80" "c", "a b c"},
      {"a\xE2\x80\x8B" "b", "a\xE2\x80\x8B" "b"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Tokenize13a(c.in), c.out) << "input: '" << c.in << "'";
  }
}

TEST(PyText, SplitAndRStripFollowPython) {
  using text_internal::PyRStrip;
  using text_internal::PySplit;
  EXPECT_EQ(PySplit("  a  b\t\nc "), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(PySplit(""), std::vector<std::string>{});
  // U+0085 and U+2028 are whitespace for Python; U+00AD (soft hyphen) is not.
  EXPECT_EQ(PySplit("a\xC2\x85" "b\xE2\x80\xA8" "c\xC2\xAD" "d"),
            (std::vector<std::string>{"a", "b", "c\xC2\xAD" "d"}));
  // \x1c..\x1f count as whitespace too.
  EXPECT_EQ(PySplit("a\x1f" "b"), (std::vector<std::string>{"a", "b"}));
  // Invalid UTF-8 bytes are kept as part of words.
  EXPECT_EQ(PySplit("a\xFF b\xC3"), (std::vector<std::string>{"a\xFF", "b\xC3"}));
  EXPECT_EQ(PyRStrip("ab-\n"), "ab-");
  EXPECT_EQ(PyRStrip(" x \xC2\xA0\t"), " x");
  EXPECT_EQ(PyRStrip("\xE3\x80\x80"), "");
}

}  // namespace
}  // namespace mixserve
