#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/text/text_test_util.h"
#include "text/text_files.h"

namespace mixserve {
namespace {

using testing_text::TempDir;

TEST(TextFiles, ReadsPlainAndGzipAlike) {
  TempDir dir;
  const std::vector<std::string> lines = {"erste Zeile", "", "dritte \xC3\xBC Zeile", "  x  "};
  testing_text::WriteText(dir / "a.txt", lines);
  testing_text::WriteGzipText(dir / "a.txt.gz", lines);
  EXPECT_EQ(ReadTextLines(dir / "a.txt"), lines);
  EXPECT_EQ(ReadTextLines(dir / "a.txt.gz"), lines);
  EXPECT_EQ(ReadTextLines(dir / "a.txt.gz", 2),
            std::vector<std::string>(lines.begin(), lines.begin() + 2));
}

TEST(TextFiles, HandlesCrlfMissingFinalNewlineAndLongLines) {
  TempDir dir;
  const std::string long_line(200000, 'x');
  {
    std::ofstream out(dir / "b.txt", std::ios::binary);
    out << "one\r\ntwo\n" << long_line << "\nlast";
  }
  EXPECT_EQ(ReadTextLines(dir / "b.txt"),
            (std::vector<std::string>{"one", "two", long_line, "last"}));
}

TEST(TextFiles, ReadsTheCorpus) {
  const auto val = ReadTextLines(testing_text::Multi30k("val.en.gz"));
  EXPECT_EQ(val.size(), 1014u);
  EXPECT_FALSE(val.front().empty());
}

TEST(TextFiles, ErrorsNameThePath) {
  TempDir dir;
  try {
    ReadTextLines(dir / "absent.gz");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr(dir / "absent.gz"));
  }
  // A gzip file cut in the middle.
  std::vector<std::string> many(5000, "some words that compress well enough");
  testing_text::WriteGzipText(dir / "c.gz", many);
  std::ifstream in(dir / "c.gz", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir / "cut.gz", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  try {
    ReadTextLines(dir / "cut.gz");
    FAIL() << "truncated gzip read without error";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr(dir / "cut.gz"));
  }
}

}  // namespace
}  // namespace mixserve
