// Tokenizer over the SentencePiece shim: training, special ids, round trips, unknown
// characters, concurrency and error reporting. Every test trains its own small model (about a
// second) in its own temporary folder.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "tests/text/text_test_util.h"
#include "text/spm_library.h"
#include "text/text_files.h"
#include "text/tokenizer.h"

namespace mixserve {
namespace {

using testing_text::Multi30k;
using testing_text::TempDir;
using testing_text::TrainSmallModel;
using ::testing::HasSubstr;

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_path_ = TrainSmallModel(dir_);
    tok_ = Tokenizer::Load(model_path_);
  }
  std::vector<std::string> ValSentences(size_t per_language) const {
    auto en = ReadTextLines(Multi30k("val.en.gz"), per_language);
    auto de = ReadTextLines(Multi30k("val.de.gz"), per_language);
    en.insert(en.end(), de.begin(), de.end());
    return en;
  }
  TempDir dir_;
  std::string model_path_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(TokenizerTest, TrainsWithFixedSpecialIds) {
  EXPECT_EQ(tok_->vocab_size(), 1000);
  EXPECT_EQ(tok_->PieceToId("<pad>"), Tokenizer::kPad);
  EXPECT_EQ(tok_->PieceToId("<unk>"), Tokenizer::kUnk);
  EXPECT_EQ(tok_->PieceToId("<s>"), Tokenizer::kBos);
  EXPECT_EQ(tok_->PieceToId("</s>"), Tokenizer::kEos);
  EXPECT_EQ(tok_->PieceToId("no-such-piece-anywhere"), Tokenizer::kUnk);
  EXPECT_EQ(tok_->path(), model_path_);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "spm.vocab"));
  // The vocabulary file lists the special pieces first, in id order.
  const auto vocab = ReadTextLines(dir_ / "spm.vocab", 4);
  ASSERT_EQ(vocab.size(), 4u);
  EXPECT_EQ(vocab[0].substr(0, vocab[0].find('\t')), "<pad>");
  EXPECT_EQ(vocab[1].substr(0, vocab[1].find('\t')), "<unk>");
  EXPECT_EQ(vocab[2].substr(0, vocab[2].find('\t')), "<s>");
  EXPECT_EQ(vocab[3].substr(0, vocab[3].find('\t')), "</s>");
}

// SentencePiece's default normalization (NFKC) turns a no-break space into a space; one
// validation sentence has one. Everything else in the corpus comes back byte for byte.
std::string Normalized(std::string s) {
  size_t pos = 0;
  while ((pos = s.find("\xC2\xA0", pos)) != std::string::npos) s.replace(pos, 2, " ");
  return s;
}

TEST_F(TokenizerTest, RoundTripsValidationSentences) {
  const auto sentences = ValSentences(300);
  ASSERT_EQ(sentences.size(), 600u);
  size_t checked = 0;
  for (const auto& s : sentences) {
    const auto ids = tok_->Encode(s);
    ASSERT_FALSE(ids.empty()) << s;
    for (int id : ids) {
      ASSERT_GE(id, 0);
      ASSERT_LT(id, tok_->vocab_size());
      // No control symbols from Encode: BOS/EOS are the model's business.
      ASSERT_NE(id, Tokenizer::kPad);
      ASSERT_NE(id, Tokenizer::kBos);
      ASSERT_NE(id, Tokenizer::kEos);
    }
    EXPECT_EQ(tok_->Decode(ids), Normalized(s)) << "ids: " << ::testing::PrintToString(ids);
    ++checked;
  }
  EXPECT_EQ(checked, sentences.size());
}

TEST_F(TokenizerTest, PiecesAgreeWithIds) {
  for (const auto& s : ValSentences(50)) {
    const auto ids = tok_->Encode(s);
    const auto pieces = tok_->EncodePieces(s);
    ASSERT_EQ(ids.size(), pieces.size()) << s;
    std::string joined;
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(tok_->PieceToId(pieces[i]), ids[i]) << pieces[i];
      joined += pieces[i];
    }
    // Pieces mark word starts with U+2581; removing the marks gives the words back.
    std::string expected = "\xE2\x96\x81" + s;
    size_t pos = 0;
    while ((pos = expected.find(' ', pos)) != std::string::npos) {
      expected.replace(pos, 1, "\xE2\x96\x81");
    }
    EXPECT_EQ(joined, expected);
  }
}

TEST_F(TokenizerTest, CommonWordsAreSinglePieces) {
  // Frequent words of the training text become whole pieces with the word-start mark.
  EXPECT_NE(tok_->PieceToId("\xE2\x96\x81" "a"), Tokenizer::kUnk);
  EXPECT_NE(tok_->PieceToId("\xE2\x96\x81" "Ein"), Tokenizer::kUnk);
  EXPECT_EQ(tok_->Encode("Ein").size(), 1u);
}

TEST_F(TokenizerTest, UnknownCharactersMapToUnk) {
  // CJK never occurs in the training text.
  const auto ids = tok_->Encode("Ein Mann \xE6\xBC\xA2\xE5\xAD\x97 sitzt.");
  EXPECT_NE(std::find(ids.begin(), ids.end(), Tokenizer::kUnk), ids.end())
      << ::testing::PrintToString(ids);
  // Known text around it is unaffected.
  const auto known = tok_->Encode("Ein Mann");
  ASSERT_GE(ids.size(), known.size());
  EXPECT_TRUE(std::equal(known.begin(), known.end(), ids.begin()));
  // The unknown piece decodes to SentencePiece's " \u2047 " mark.
  EXPECT_THAT(tok_->Decode(ids), HasSubstr("\xE2\x81\x87"));
}

TEST_F(TokenizerTest, EmptyAndControlIds) {
  EXPECT_TRUE(tok_->Encode("").empty());
  EXPECT_TRUE(tok_->EncodePieces("").empty());
  EXPECT_EQ(tok_->Decode({}), "");
  const auto ids = tok_->Encode("Zwei Hunde spielen im Schnee.");
  std::vector<int> wrapped = {Tokenizer::kBos};
  wrapped.insert(wrapped.end(), ids.begin(), ids.end());
  wrapped.push_back(Tokenizer::kEos);
  wrapped.push_back(Tokenizer::kPad);
  wrapped.push_back(Tokenizer::kPad);
  EXPECT_EQ(tok_->Decode(wrapped), "Zwei Hunde spielen im Schnee.");
}

TEST_F(TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  for (int bad : {-1, 1000, 1 << 30}) {
    try {
      tok_->Decode({5, bad});
      FAIL() << "no exception for id " << bad;
    } catch (const std::out_of_range& e) {
      EXPECT_THAT(e.what(), HasSubstr(std::to_string(bad)));
      EXPECT_THAT(e.what(), HasSubstr("position 1"));
    }
  }
}

TEST_F(TokenizerTest, ConcurrentEncodingMatchesSequential) {
  const auto sentences = ValSentences(200);
  std::vector<std::vector<int>> expected;
  for (const auto& s : sentences) expected.push_back(tok_->Encode(s));

  constexpr int kThreads = 8;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread walks the sentences in its own order, several times.
      std::vector<size_t> order(sentences.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::mt19937 rng(t);
      for (int round = 0; round < 3; ++round) {
        std::shuffle(order.begin(), order.end(), rng);
        for (size_t i : order) {
          if (tok_->Encode(sentences[i]) != expected[i]) ++mismatches[t];
          if (tok_->EncodePieces(sentences[i]).size() != expected[i].size()) ++mismatches[t];
          if (tok_->Decode(expected[i]) != Normalized(sentences[i])) ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST_F(TokenizerTest, SeveralModelsLiveTogether) {
  TempDir other;
  Tokenizer::TrainOptions bpe;
  bpe.model_type = "bpe";
  bpe.vocab_size = 600;
  const auto other_path = TrainSmallModel(other, bpe);
  auto second = Tokenizer::Load(other_path);
  EXPECT_EQ(second->vocab_size(), 600);
  EXPECT_EQ(tok_->vocab_size(), 1000);
  const std::string s = "Ein kleines Kind spielt mit einem Ball.";
  EXPECT_EQ(second->Decode(second->Encode(s)), s);
  EXPECT_EQ(tok_->Decode(tok_->Encode(s)), s);
  tok_.reset();  // freeing one leaves the other usable
  EXPECT_EQ(second->Decode(second->Encode(s)), s);
}

// ---------------------------------------------------------------------------------------
// Training options and errors (no shared model needed).

TEST(TokenizerTrain, UserSymbolsBecomeSinglePieces) {
  TempDir dir;
  Tokenizer::TrainOptions o;
  o.user_symbols = {"<2de>", "<2en>"};
  auto tok = Tokenizer::Load(TrainSmallModel(dir, o));
  const int de = tok->PieceToId("<2de>");
  const int en = tok->PieceToId("<2en>");
  EXPECT_GT(de, Tokenizer::kEos);
  EXPECT_GT(en, Tokenizer::kEos);
  EXPECT_NE(de, en);
  const auto ids = tok->Encode("<2de> A dog runs.");
  ASSERT_FALSE(ids.empty());
  // The tag may follow a bare word-start piece, but is never split.
  EXPECT_NE(std::find(ids.begin(), ids.end(), de), ids.end()) << ::testing::PrintToString(ids);
}

TEST(TokenizerTrain, SamplesInputSentencesAndPassesExtraFlags) {
  TempDir dir;
  Tokenizer::TrainOptions o;
  o.vocab_size = 300;
  o.input_sentence_size = 500;  // sample 500 of the 6000 sentences
  o.shuffle_input_sentence = true;
  o.num_threads = 2;
  o.extra_flags = {{"max_sentencepiece_length", "2"}};
  auto tok = Tokenizer::Load(TrainSmallModel(dir, o));
  EXPECT_EQ(tok->vocab_size(), 300);
  // No piece is longer than two characters (the word-start mark counts as one).
  const auto pieces = tok->EncodePieces("Eine Gruppe von Menschen steht vor einem Iglu.");
  for (const auto& p : pieces) {
    size_t chars = 0;
    for (unsigned char c : p) chars += (c & 0xC0) != 0x80;
    EXPECT_LE(chars, 2u) << p;
  }
}

TEST(TokenizerTrain, UnknownExtraFlagIsReported) {
  TempDir dir;
  Tokenizer::TrainOptions o;
  o.vocab_size = 300;
  o.extra_flags = {{"no_such_trainer_flag", "1"}};
  try {
    TrainSmallModel(dir, o);
    FAIL() << "training accepted an unknown flag";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no_such_trainer_flag"));
  }
}

TEST(TokenizerTrain, RejectsBadOptions) {
  TempDir dir;
  const std::string input = dir / "in.txt";
  testing_text::WriteText(input, {"a b c", "d e f"});
  auto expect_error = [&](Tokenizer::TrainOptions o, const std::string& needle,
                          const std::string& prefix) {
    try {
      Tokenizer::Train({input}, prefix, o);
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const std::runtime_error& e) {
      EXPECT_THAT(e.what(), HasSubstr(needle));
    }
  };
  Tokenizer::TrainOptions o;
  o.model_type = "wordpiece";
  expect_error(o, "model_type", dir / "m");
  o = {};
  o.vocab_size = 2;
  expect_error(o, "vocab_size", dir / "m");
  o = {};
  o.user_symbols = {"a,b"};
  expect_error(o, "a,b", dir / "m");
  o = {};
  o.extra_flags = {{"pad_id", "5"}};
  expect_error(o, "pad_id", dir / "m");
  expect_error({}, "no/such/dir", dir / "no/such/dir/m");
}

TEST(TokenizerTrain, ReportsMissingInputAndTooSmallCorpus) {
  TempDir dir;
  try {
    Tokenizer::Train({dir / "absent.txt.gz"}, dir / "m", {});
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(dir / "absent.txt.gz"));
  }
  const std::string tiny = dir / "tiny.txt";
  testing_text::WriteText(tiny, {"just a few words", "and some more"});
  Tokenizer::TrainOptions o;
  o.vocab_size = 5000;  // far more pieces than the text can give
  try {
    Tokenizer::Train({tiny}, dir / "m", o);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("Vocabulary size"));
    EXPECT_THAT(e.what(), HasSubstr(tiny));
  }
  // A soft limit accepts the same corpus.
  o.hard_vocab_limit = false;
  Tokenizer::Train({tiny}, dir / "m", o);
  auto tok = Tokenizer::Load(dir / "m.model");
  EXPECT_LT(tok->vocab_size(), 5000);
  EXPECT_EQ(tok->Decode(tok->Encode("a few words")), "a few words");
  const std::string empty = dir / "empty.txt";
  testing_text::WriteText(empty, {"", "  "});
  try {
    Tokenizer::Train({empty}, dir / "m2", {});
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no sentences"));
  }
}

TEST(TokenizerLoad, MissingModelNamesThePath) {
  TempDir dir;
  const std::string path = dir / "missing.model";
  try {
    Tokenizer::Load(path);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
  }
}

TEST(TokenizerLoad, CorruptModelNamesThePath) {
  TempDir dir;
  std::mt19937 rng(7);
  std::vector<std::string> bad_files;
  const std::string garbage = dir / "garbage.model";
  {
    std::ofstream out(garbage, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>(rng()));
  }
  const std::string empty = dir / "empty.model";
  std::ofstream(empty).close();
  const std::string text = dir / "text.model";
  testing_text::WriteText(text, {"this is not a model"});
  for (const auto& path : {garbage, empty, text, dir.path().string()}) {
    try {
      Tokenizer::Load(path);
      ADD_FAILURE() << "loaded " << path;
    } catch (const std::runtime_error& e) {
      EXPECT_THAT(e.what(), HasSubstr(path));
    }
  }
}

TEST(TokenizerLoad, TruncatedModelNamesThePath) {
  TempDir dir;
  const std::string good = TrainSmallModel(dir);
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = dir / "cut.model";
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  try {
    Tokenizer::Load(cut);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(cut));
  }
}

TEST(TokenizerLoad, ModelWithOtherSpecialIdsIsRefused) {
  TempDir dir;
  Tokenizer::TrainOptions o;
  o.vocab_size = 300;
  // Same pieces, other order: "<unk>" first.
  o.extra_flags = {{"unk_piece", "<pad>"}, {"pad_piece", "<unk>"}};
  const std::string path = TrainSmallModel(dir, o);
  try {
    Tokenizer::Load(path);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("special ids"));
  }
}

// ---------------------------------------------------------------------------------------
// Finding the shim.

TEST(SpmShim, SearchOrder) {
  const char* saved = getenv("MIXSERVE_SPM_SHIM");
  unsetenv("MIXSERVE_SPM_SHIM");
  const auto candidates = text_internal::SpmShimCandidates();
  ASSERT_GE(candidates.size(), 3u);
  const auto exe_dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  EXPECT_EQ(candidates[0], (exe_dir / "libmixserve_spm_shim.so").string());
  EXPECT_EQ(candidates[1], (exe_dir.parent_path() / "lib" / "libmixserve_spm_shim.so").string());
  EXPECT_TRUE(std::filesystem::exists(candidates.back())) << candidates.back();
  setenv("MIXSERVE_SPM_SHIM", "/somewhere/shim.so", 1);
  EXPECT_EQ(text_internal::SpmShimCandidates(), std::vector<std::string>{"/somewhere/shim.so"});
  if (saved != nullptr) {
    setenv("MIXSERVE_SPM_SHIM", saved, 1);
  } else {
    unsetenv("MIXSERVE_SPM_SHIM");
  }
}

// Loading happens once per process: a fresh child process sees the variable.
TEST(SpmShimDeathTest, MissingShimNamesThePath) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("MIXSERVE_SPM_SHIM", "/nonexistent/libmixserve_spm_shim.so", 1);
        try {
          Tokenizer::Load("/any.model");
        } catch (const std::runtime_error& e) {
          std::fprintf(stderr, "%s\n", e.what());
          std::exit(3);
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(3), "cannot find the SentencePiece shim.*\n.*/nonexistent/");
}

TEST(SpmShimDeathTest, UnloadableShimNamesThePath) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // A fixed path: the child process runs this test body again and must find the same file.
  const std::string dir = std::string(MIXSERVE_BINARY_DIR) + "/tests/text/fake_shim";
  std::filesystem::create_directories(dir);
  const std::string fake = dir + "/libmixserve_spm_shim.so";
  testing_text::WriteText(fake, {"not an ELF file"});
  EXPECT_EXIT(
      {
        setenv("MIXSERVE_SPM_SHIM", fake.c_str(), 1);
        try {
          Tokenizer::Load("/any.model");
        } catch (const std::runtime_error& e) {
          std::fprintf(stderr, "%s\n", e.what());
          std::exit(3);
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(3), "cannot load the SentencePiece shim " + fake);
}

}  // namespace
}  // namespace mixserve
