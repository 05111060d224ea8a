// Torch-free helpers of mixserve-offline.
#include <gtest/gtest.h>

#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "offline/batching.h"
#include "offline/common.h"
#include "offline/flags.h"
#include "offline/svg_plot.h"
#include "offline/table.h"
#include "offline/text_io.h"
#include "base/remove_tree.h"

namespace mixserve::offline {
namespace {

std::string TempDir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("mixserve_offline_util_" + name + "_" +
                                                     std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

// FlagSet: the flags of one command, on the Abseil flags that offline/flags.cc declares (the
// real ones: limit is an integer, data a string, resume a boolean, lr a number).
TEST(Flags, ParsesDefaultsAndValues) {
  FlagSet f("t", "test", {{"limit", "1", "int"}, {"data", "x", "str"}, {"resume", "false", "bool"},
                          {"lr", "0.5", "double"}, {"sites", "", "list"}, {"version", "0", "int"}});
  ASSERT_TRUE(f.Parse({"--limit=7", "--resume", "--sites=x, y,,z", "--version", "3"}));
  EXPECT_EQ(f.GetInt("limit"), 7);
  EXPECT_EQ(f.Get("data"), "x");
  EXPECT_TRUE(f.GetBool("resume"));
  EXPECT_DOUBLE_EQ(f.GetDouble("lr"), 0.5);
  EXPECT_EQ(f.GetList("sites"), (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_EQ(f.GetInt("version"), 3);
  EXPECT_TRUE(f.Given("limit"));
  EXPECT_FALSE(f.Given("data"));
  EXPECT_EQ(f.Values().at("limit"), "7");

  // A second parse starts from this command's defaults again; '-' and '_' are the same;
  // --noNAME clears a boolean.
  FlagSet g("u", "test",
            {{"limit", "5", "int"}, {"valid_limit", "0", "int"}, {"resume", "true", "bool"}});
  ASSERT_TRUE(g.Parse({"--valid-limit=2", "--noresume"}));
  EXPECT_EQ(g.GetInt64("limit"), 5);
  EXPECT_EQ(g.GetInt64("valid_limit"), 2);
  EXPECT_FALSE(g.GetBool("resume"));
  // The first set keeps its values.
  EXPECT_EQ(f.GetInt("limit"), 7);
  EXPECT_TRUE(f.GetBool("resume"));
}

std::string ParseError(FlagSet f, const std::vector<std::string>& args) {
  try {
    f.Parse(args);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Flags, RejectsBadInput) {
  const FlagSet f("t", "test", {{"limit", "1", "int"}, {"out", "", "required", true}});
  EXPECT_EQ(ParseError(f, {"--out=1", "--nope=2"}), "Unknown command line flag 'nope'");
  // Declared for other commands, not this one.
  EXPECT_EQ(ParseError(f, {"--out=1", "--beam=2"}),
            "Unknown command line flag 'beam' for mixserve-offline t");
  EXPECT_EQ(ParseError(f, {"--limit=2"}), "Missing the required flag 'out' (required)");
  EXPECT_EQ(ParseError(f, {"--out=1", "positional"}), "Unexpected argument 'positional'");
  EXPECT_EQ(ParseError(f, {"--out=1", "--limit=abc"}),
            "Illegal value 'abc' specified for flag 'limit'");
  EXPECT_EQ(ParseError(f, {"--out=1", "--limit"}), "Missing the value for the flag 'limit'");
  FlagSet k("t", "test", {{"limit", "1", "int"}});
  EXPECT_FALSE(k.Parse({"--help"}));
  EXPECT_NE(k.Usage().find("  --limit=int  (default: 1)\n      int\n"), std::string::npos)
      << k.Usage();
  // A command that lists an undeclared flag, or a default of the wrong type, is a bug.
  FlagSet bad("t", "test", {{"no_such_flag", "", "?"}});
  EXPECT_THROW(bad.Parse({}), std::logic_error);
  FlagSet bad_default("t", "test", {{"limit", "all", "int"}});
  EXPECT_THROW(bad_default.Parse({}), std::logic_error);
}

TEST(Batching, FiltersByLengthAndRespectsMaxTokens) {
  std::vector<TokenPair> pairs;
  for (int i = 0; i < 200; ++i) {
    TokenPair p;
    p.src.assign(1 + i % 13, 5);
    p.tgt.assign(1 + (i * 7) % 17, 6);
    p.index = i;
    pairs.push_back(p);
  }
  TokenPair too_long;
  too_long.src.assign(30, 5);
  too_long.tgt.assign(3, 5);
  pairs.push_back(too_long);
  size_t dropped = 0;
  auto kept = FilterByLength(pairs, 20, &dropped);
  EXPECT_EQ(dropped, 1u);
  ASSERT_EQ(kept.size(), 200u);
  for (bool shuffle : {false, true}) {
    auto batches = MakeBatches(kept, 64, shuffle, 3);
    std::multiset<int> seen;
    for (const auto& b : batches) {
      size_t w = 0;
      for (int i : b) {
        w = std::max({w, kept[i].src.size() + 1, kept[i].tgt.size() + 1});
        seen.insert(i);
      }
      EXPECT_LE(w * b.size(), 64u);
    }
    EXPECT_EQ(seen.size(), kept.size());
    EXPECT_EQ(std::set<int>(seen.begin(), seen.end()).size(), kept.size());  // each once
  }
  // Different seeds give different batch orders.
  EXPECT_NE(MakeBatches(kept, 64, true, 1), MakeBatches(kept, 64, true, 2));
}

TEST(Table, CsvRoundTripAndMarkdown) {
  Table t;
  t.columns = {"method", "note", "bleu"};
  t.Add({"alr", "a, \"b\"", "12.50"});
  t.Add({"mha", "x|y", "30.00"});
  EXPECT_THROW(t.Add({"too", "short"}), std::logic_error);
  auto rows = ParseCsv(t.Csv());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1][1], "a, \"b\"");
  EXPECT_EQ(rows[2][2], "30.00");
  const std::string md = t.Markdown();
  EXPECT_NE(md.find("| --- | --- | --- |"), std::string::npos);
  EXPECT_NE(md.find("x\\|y"), std::string::npos);
}

TEST(SvgPlot, RendersPointsAndLegend) {
  std::vector<PlotPoint> pts = {{1e5, 30, "mha", "base"}, {3e5, 28, "alr", "s"},
                                {3e6, 31, "alr", "l"}, {-1, 5, "alr", "bad"}};
  PlotOptions o;
  o.log_x = true;
  o.title = "BLEU <vs> params";
  const std::string svg = RenderScatterSvg(pts, o);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  size_t circles = 0;
  for (size_t p = svg.find("<circle"); p != std::string::npos; p = svg.find("<circle", p + 1)) ++circles;
  EXPECT_EQ(circles, 3u + 2u);  // three points (x <= 0 skipped on a log axis), two legend marks
  EXPECT_NE(svg.find("&lt;vs&gt;"), std::string::npos);
}

TEST(TextIo, ReadsGzipAndPlainWithLimit) {
  const std::string dir = TempDir("textio");
  const std::string gz = dir + "/a.en.gz";
  gzFile f = gzopen(gz.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  gzputs(f, "one\r\ntwo\nthree");
  gzclose(f);
  WriteLines(dir + "/a.de", {"eins", "zwei", "drei"});
  EXPECT_EQ(ReadLines(gz), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(ReadLines(gz, 2), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(DataFile(dir, "a", "en"), gz);
  EXPECT_EQ(DataFile(dir, "a", "de"), dir + "/a.de");
  EXPECT_THROW(DataFile(dir, "a", "fr"), std::runtime_error);
  EXPECT_THROW(ReadLines(dir + "/missing.gz"), std::runtime_error);
  auto p = ReadParallel(gz, dir + "/a.de");
  EXPECT_EQ(p.tgt[2], "drei");
  WriteLines(dir + "/b.de", {"eins"});
  EXPECT_THROW(ReadParallel(gz, dir + "/b.de"), std::runtime_error);
  mixserve::RemoveTree(dir);
}

// A model's tokenizers: each side of a corpus through its own tokenizer, and copies of a model
// take every tokenizer file along.
TEST(ModelTokenizerFiles, CorpusSidesUseTheirOwnTokenizer) {
  const std::string dir = TempDir("tokenizers");
  const auto en = ReadLines(std::string(MIXSERVE_SOURCE_DIR) + "/data/multi30k/train.en.gz", 600);
  const auto de = ReadLines(std::string(MIXSERVE_SOURCE_DIR) + "/data/multi30k/train.de.gz", 600);
  WriteLines(dir + "/train.en", en);
  WriteLines(dir + "/train.de", de);
  Tokenizer::TrainOptions o;
  o.vocab_size = 300;
  o.hard_vocab_limit = false;
  Tokenizer::Train({dir + "/train.en"}, dir + "/source", o);
  Tokenizer::Train({dir + "/train.de"}, dir + "/target", o);
  ModelSpec spec;
  spec.tokenizer_file = "source.model";
  spec.target_tokenizer_file = "target.model";
  const ModelTokenizers tok = LoadTokenizers(dir, spec);
  ASSERT_NE(tok.source, tok.target);
  const Corpus c = LoadCorpus(dir + "/train.en", dir + "/train.de", tok, 20, 1000);
  ASSERT_EQ(c.pairs.size(), 20u);
  size_t differs = 0;
  for (const auto& p : c.pairs) {
    EXPECT_EQ(p.src, tok.source->Encode(en[p.index]));
    EXPECT_EQ(p.tgt, tok.target->Encode(de[p.index]));
    differs += p.tgt != tok.source->Encode(de[p.index]);
  }
  EXPECT_GT(differs, 10u);

  // Every file the spec names goes along (the vocabulary is copied, not read).
  spec.vocabulary_file = "vocab.json";
  WriteLines(dir + "/vocab.json", {"{}"});
  CopyTokenizerFiles(dir, spec, dir + "/copy");
  for (const char* f : {"source.model", "target.model", "vocab.json"})
    EXPECT_TRUE(std::filesystem::is_regular_file(dir + "/copy/" + f)) << f;
  spec.target_tokenizer_file = "absent.model";
  try {
    LoadTokenizers(dir, spec);
    ADD_FAILURE() << "no error for a missing tokenizer file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/absent.model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CopyTokenizerFiles(dir, spec, dir + "/copy2"), std::runtime_error);
  mixserve::RemoveTree(dir);
}

}  // namespace
}  // namespace mixserve::offline
