#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/text/text_test_util.h"
#include "text/sentences.h"
#include "text/text_files.h"

namespace mixserve {
namespace {

std::vector<std::string> Sentences(const std::string& text, const std::string& lang = "en") {
  std::vector<std::string> out;
  for (const auto& s : SplitSentences(text, lang)) out.push_back(text.substr(s.begin, s.size()));
  return out;
}

TEST(SplitSentences, SplitsAtSentenceEndsAndKeepsAbbreviations) {
  EXPECT_THAT(Sentences("A man rides a bike. Two dogs play! Is it raining? Yes."),
              ::testing::ElementsAre("A man rides a bike.", "Two dogs play!", "Is it raining?",
                                     "Yes."));
  // ICU's abbreviation suppressions of the language: "Mr." and "Mrs." end no English
  // sentence (the root rules, without a language, break after them).
  EXPECT_THAT(Sentences("Mr. Smith met Mrs. Jones in the park. They talked."),
              ::testing::ElementsAre("Mr. Smith met Mrs. Jones in the park.", "They talked."));
  EXPECT_EQ(Sentences("Mr. Smith met Mrs. Jones in the park. They talked.", "").size(), 4u);
  // Decimal numbers, and a period before a lower-case word, end no sentence.
  EXPECT_THAT(Sentences("It costs 3.50 euros. ok then. Fine."),
              ::testing::ElementsAre("It costs 3.50 euros. ok then.", "Fine."));
  EXPECT_THAT(Sentences("Ein Mann fährt Rad. Zwei Hunde spielen.", "de"),
              ::testing::ElementsAre("Ein Mann fährt Rad.", "Zwei Hunde spielen."));
  // ICU's German abbreviation list would merge these two (sentences.cc): not used.
  EXPECT_THAT(Sentences("Ein Mann steht in einer Bar. Eine Frau bohrt.", "de-DE"),
              ::testing::ElementsAre("Ein Mann steht in einer Bar.", "Eine Frau bohrt."));
}

TEST(SplitSentences, LineBreaksEndSentencesAndWhiteSpaceIsLeftOut) {
  const std::string text = "  \n Title without a stop\nFirst line. Second one.\n\n\nNew paragraph \n";
  EXPECT_THAT(Sentences(text), ::testing::ElementsAre("Title without a stop", "First line.",
                                                      "Second one.", "New paragraph"));
  EXPECT_TRUE(SplitSentences("", "en").empty());
  EXPECT_TRUE(SplitSentences(" \n\t \r\n", "en").empty());
  // Unicode white space (no-break space, ideographic space) is white space too.
  EXPECT_THAT(Sentences("\xC2\xA0" "One.\xE3\x80\x80Two.\xC2\xA0"),
              ::testing::ElementsAre("One.", "Two."));
}

TEST(SplitSentences, UnknownLanguagesUseTheRootRulesAndBadUtf8Throws) {
  EXPECT_THAT(Sentences("One. Two.", "xx-unknown"), ::testing::ElementsAre("One.", "Two."));
  EXPECT_THROW(SplitSentences("ok \xC3( bad", "en"), std::invalid_argument);
}

TEST(JoinSentences, KeepsParagraphBreaksAndTheSpaceBetweenSentences) {
  const std::string text = " A b.  C d!\n\nE f?\r\n";
  const auto spans = SplitSentences(text, "en");
  ASSERT_EQ(spans.size(), 3u);
  std::vector<TextSpan> placed;
  const std::string out = JoinSentences(text, spans, {"1", "22", "333"}, &placed);
  EXPECT_EQ(out, " 1  22\n\n333\r\n");
  ASSERT_EQ(placed.size(), 3u);
  EXPECT_EQ(out.substr(placed[2].begin, placed[2].size()), "333");
  // Identity: replacing each sentence by itself gives the text back.
  std::vector<std::string> same;
  for (const auto& s : spans) same.push_back(text.substr(s.begin, s.size()));
  EXPECT_EQ(JoinSentences(text, spans, same), text);
  EXPECT_THROW(JoinSentences(text, spans, {"x"}), std::invalid_argument);
}

TEST(SplitSentences, EveryNonSpaceCharacterOfTheCorpusIsInExactlyOneSentence) {
  const auto lines = ReadTextLines(testing_text::Multi30k("val.en.gz"));
  std::string doc;
  for (size_t i = 0; i < 300 && i < lines.size(); ++i) doc += lines[i] + (i % 5 == 4 ? "\n\n" : " ");
  const auto spans = SplitSentences(doc, "en");
  EXPECT_GE(spans.size(), 250u);
  size_t at = 0;
  for (const auto& s : spans) {
    ASSERT_GE(s.begin, at);
    for (size_t i = at; i < s.begin; ++i) EXPECT_TRUE(doc[i] == ' ' || doc[i] == '\n') << i;
    EXPECT_GT(s.size(), 0u);
    at = s.end;
  }
}

size_t Words(const std::string& s) {
  size_t n = 0;
  bool in = false;
  for (char c : s) {
    bool space = c == ' ';
    if (!space && !in) ++n;
    in = !space;
  }
  return n;
}

std::string Squeezed(const std::vector<std::string>& pieces) {
  std::string all;
  for (const auto& p : pieces)
    for (char c : p)
      if (c != ' ') all += c;
  return all;
}

TEST(CutSentence, PrefersClausesThenWordsThenCharacters) {
  const std::string s = "the man, who wore a red hat, walked along the river; the dog followed him";
  auto pieces = CutSentence(s, 7, Words);
  EXPECT_THAT(pieces, ::testing::ElementsAre("the man, who wore a red hat,",
                                             "walked along the river;", "the dog followed him"));
  // A clause above the budget is cut between words; its last piece may join the next clause.
  pieces = CutSentence("one two three four five six seven, eight", 3, Words);
  EXPECT_THAT(pieces, ::testing::ElementsAre("one two three", "four five six", "seven, eight"));
  // A word above the budget (counting characters here) is cut between UTF-8 characters.
  auto chars = [](const std::string& t) {
    size_t n = 0;
    for (unsigned char c : t) n += (c & 0xC0) != 0x80;
    return n;
  };
  pieces = CutSentence("abcdefgh\xC3\xBCij", 4, chars);
  EXPECT_THAT(pieces, ::testing::ElementsAre("abcd", "efgh", "\xC3\xBCij"));
  // Fitting sentences come back whole; nothing is lost.
  EXPECT_THAT(CutSentence("  short one ", 5, Words), ::testing::ElementsAre("short one"));
  const std::string long_one = "a, b c d; e f g h i j k l m - n o p: q r s t u v w x y z";
  pieces = CutSentence(long_one, 4, Words);
  for (const auto& p : pieces) EXPECT_LE(Words(p), 4u) << p;
  EXPECT_EQ(Squeezed(pieces), Squeezed({long_one}));
  EXPECT_THROW(CutSentence(s, 0, Words), std::invalid_argument);
}

}  // namespace
}  // namespace mixserve
