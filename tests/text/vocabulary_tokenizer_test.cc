// Vocabulary-mapped tokenizers (imported MarianMT models): a source and a target SentencePiece
// model trained here, and a vocab.json over both as OPUS-MT models have it ("</s>" 0,
// "<unk>" 1, the pieces of both models, language codes, "<pad>" last). Also the reading of
// vocab.json and the loader every user of a model's tokenizers goes through.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/model_spec.h"
#include "config/model_tokenizers.h"
#include "config/vocabulary_json.h"
#include "tests/text/text_test_util.h"
#include "text/text_files.h"
#include "text/tokenizer.h"

namespace mixserve {
namespace {

using testing_text::Multi30k;
using testing_text::TempDir;
using testing_text::WriteText;
using ::testing::HasSubstr;

const std::string kWordStart = "\xE2\x96\x81";  // U+2581

// The pieces of a model trained by Tokenizer::Train, in id order (its .vocab file).
std::vector<std::string> SpmPiecesOf(const std::string& model_path) {
  const std::string vocab = model_path.substr(0, model_path.size() - 6) + ".vocab";
  std::vector<std::string> pieces;
  for (const auto& line : ReadTextLines(vocab)) pieces.push_back(line.substr(0, line.find('\t')));
  return pieces;
}

// vocab.json text for id -> piece, through protobuf's JSON mapping.
std::string VocabularyJson(const std::vector<std::string>& pieces) {
  google::protobuf::Struct s;
  for (size_t i = 0; i < pieces.size(); ++i)
    (*s.mutable_fields())[pieces[i]].set_number_value(static_cast<double>(i));
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(s, &out).ok())
    throw std::runtime_error("cannot write vocab.json");
  return out;
}

// A MarianMT-like model directory shared by the tests of this file (training takes seconds).
class Marian {
 public:
  static Marian& Get() {
    static Marian m;  // its folder goes at exit
    return m;
  }
  std::string dir() const { return dir_.path().string(); }
  std::string source_spm() const { return dir_ / "source.spm"; }
  std::string target_spm() const { return dir_ / "target.spm"; }
  std::string vocab_json() const { return dir_ / "vocab.json"; }
  const std::vector<std::string>& pieces() const { return pieces_; }
  int Id(const std::string& piece) const {
    const auto it = std::find(pieces_.begin(), pieces_.end(), piece);
    return it == pieces_.end() ? -1 : static_cast<int>(it - pieces_.begin());
  }
  Tokenizer::VocabularyIds ids() const {
    Tokenizer::VocabularyIds ids;
    ids.eos = 0;
    ids.unk = 1;
    ids.pad = static_cast<int>(pieces_.size()) - 1;
    return ids;
  }
  ModelSpec Spec() const {
    ModelSpec spec;
    spec.tokenizer_file = "source.spm";
    spec.target_tokenizer_file = "target.spm";
    spec.vocabulary_file = "vocab.json";
    spec.vocab_size = static_cast<int>(pieces_.size());
    spec.ids.eos = 0;
    spec.ids.unk = 1;
    spec.ids.pad = spec.ids.decoder_start = spec.vocab_size - 1;
    return spec;
  }
  // A piece of the target model that the vocabulary leaves out (MarianMT's vocabularies need
  // not hold every piece of their SentencePiece models).
  const std::string& left_out() const { return left_out_; }

 private:
  Marian() {
    const std::string en = dir_ / "train.en", de = dir_ / "train.de";
    WriteText(en, ReadTextLines(Multi30k("train.en.gz"), 3000));
    WriteText(de, ReadTextLines(Multi30k("train.de.gz"), 3000));
    Tokenizer::TrainOptions o;
    o.vocab_size = 800;
    Tokenizer::Train({en}, dir_ / "source", o);
    o.vocab_size = 700;
    Tokenizer::Train({de}, dir_ / "target", o);
    std::filesystem::rename(dir_ / "source.model", source_spm());
    std::filesystem::rename(dir_ / "target.model", target_spm());
    left_out_ = kWordStart + "Schnee";
    pieces_ = {"</s>", "<unk>"};
    for (const std::string name : {"source.vocab", "target.vocab"}) {
      for (const auto& line : ReadTextLines(dir_ / name)) {
        const std::string piece = line.substr(0, line.find('\t'));
        if (piece == "<unk>" || piece == "<s>" || piece == "</s>" || piece == "<pad>" ||
            piece == left_out_ || std::find(pieces_.begin(), pieces_.end(), piece) != pieces_.end())
          continue;
        pieces_.push_back(piece);
      }
    }
    pieces_.push_back(">>de<<");
    pieces_.push_back(">>fr<<");
    pieces_.push_back("<pad>");
    WriteText(vocab_json(), {VocabularyJson(pieces_)});
  }
  TempDir dir_;
  std::vector<std::string> pieces_;
  std::string left_out_;
};

class VocabularyTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Marian& m = Marian::Get();
    source_ = Tokenizer::LoadWithVocabulary(m.source_spm(), m.pieces(), m.ids());
    target_ = Tokenizer::LoadWithVocabulary(m.target_spm(), m.pieces(), m.ids());
    // The same SentencePiece models on their own ids (Tokenizer::Train's special ids).
    source_spm_ = Tokenizer::Load(m.source_spm());
    target_spm_ = Tokenizer::Load(m.target_spm());
  }
  // What the vocabulary says for pieces: its id, or the unk id.
  std::vector<int> VocabIds(const std::vector<std::string>& pieces) const {
    std::vector<int> ids;
    for (const auto& p : pieces) {
      const int id = Marian::Get().Id(p);
      ids.push_back(id < 0 ? 1 : id);
    }
    return ids;
  }
  static std::vector<std::string> Concat(std::vector<std::string> a,
                                         const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }
  std::unique_ptr<Tokenizer> source_, target_, source_spm_, target_spm_;
};

TEST_F(VocabularyTokenizerTest, SpeaksTheVocabularysIds) {
  const Marian& m = Marian::Get();
  const int n = static_cast<int>(m.pieces().size());
  for (const auto* t : {source_.get(), target_.get()}) {
    EXPECT_TRUE(t->has_vocabulary());
    EXPECT_EQ(t->vocab_size(), n);
    EXPECT_EQ(t->eos_id(), 0);
    EXPECT_EQ(t->unk_id(), 1);
    EXPECT_EQ(t->pad_id(), n - 1);
    EXPECT_EQ(t->PieceToId("</s>"), 0);
    EXPECT_EQ(t->PieceToId("<pad>"), n - 1);
    EXPECT_EQ(t->PieceToId(">>fr<<"), m.Id(">>fr<<"));
    EXPECT_EQ(t->PieceToId("no-such-piece"), 1);
    EXPECT_EQ(t->PieceToId("<s>"), 1);  // a piece of the models, not of the vocabulary
  }
  EXPECT_FALSE(source_spm_->has_vocabulary());
  EXPECT_EQ(source_spm_->eos_id(), Tokenizer::kEos);
  EXPECT_EQ(source_spm_->unk_id(), Tokenizer::kUnk);
  EXPECT_EQ(source_spm_->pad_id(), Tokenizer::kPad);
}

TEST_F(VocabularyTokenizerTest, EncodesThroughItsOwnModelIntoVocabularyIds) {
  const auto en = ReadTextLines(Multi30k("val.en.gz"), 200);
  const auto de = ReadTextLines(Multi30k("val.de.gz"), 200);
  size_t remapped = 0, different_cuts = 0;
  for (size_t i = 0; i < en.size(); ++i) {
    // The pieces are the SentencePiece model's; the ids are the vocabulary's.
    const auto src_pieces = source_->EncodePieces(en[i]);
    ASSERT_EQ(src_pieces, source_spm_->EncodePieces(en[i])) << en[i];
    ASSERT_EQ(source_->Encode(en[i]), VocabIds(src_pieces)) << en[i];
    const auto tgt_pieces = target_->EncodePieces(de[i]);
    ASSERT_EQ(tgt_pieces, target_spm_->EncodePieces(de[i])) << de[i];
    ASSERT_EQ(target_->Encode(de[i]), VocabIds(tgt_pieces)) << de[i];
    if (target_->Encode(de[i]) != target_spm_->Encode(de[i])) ++remapped;
    if (source_->EncodePieces(de[i]) != target_->EncodePieces(de[i])) ++different_cuts;
  }
  EXPECT_GT(remapped, 150u);        // the vocabulary's ids are not the model's
  EXPECT_GT(different_cuts, 100u);  // each side cuts with its own model
}

TEST_F(VocabularyTokenizerTest, RoundTripsTargetText) {
  size_t checked = 0;
  for (const auto& s : ReadTextLines(Multi30k("val.de.gz"), 300)) {
    const auto ids = target_->Encode(s);
    if (std::find(ids.begin(), ids.end(), 1) != ids.end()) continue;  // unknown pieces drop
    // SentencePiece's NFKC turns a no-break space into a space.
    std::string expected = s;
    for (size_t p; (p = expected.find("\xC2\xA0")) != std::string::npos;)
      expected.replace(p, 2, " ");
    EXPECT_EQ(target_->Decode(ids), expected);
    ++checked;
  }
  EXPECT_GT(checked, 200u);
}

TEST_F(VocabularyTokenizerTest, PiecesOutsideTheVocabularyAreUnk) {
  const Marian& m = Marian::Get();
  // A piece of the target model that the vocabulary lacks.
  ASSERT_NE(target_spm_->PieceToId(m.left_out()), Tokenizer::kUnk);
  const auto pieces = target_->EncodePieces("Schnee");
  ASSERT_EQ(pieces, std::vector<std::string>{m.left_out()});
  EXPECT_EQ(target_->Encode("Schnee"), std::vector<int>{1});
  // Characters neither model knows: SentencePiece's unknown piece is the character itself.
  const auto ids = source_->Encode("A \xE2\x98\x83 man");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 1) << ::testing::PrintToString(ids);
}

TEST_F(VocabularyTokenizerTest, LeadingLanguageCodeIsOnePiece) {
  const Marian& m = Marian::Get();
  const std::string text = "A man rides a bike.";
  const auto plain = source_spm_->EncodePieces(" " + text);
  EXPECT_EQ(source_->EncodePieces(">>de<< " + text), Concat({">>de<<"}, plain));
  EXPECT_EQ(source_->Encode(">>de<< " + text)[0], m.Id(">>de<<"));
  EXPECT_EQ(source_->EncodePieces(">>fr<<" + text),
            Concat({">>fr<<"}, source_spm_->EncodePieces(text)));
  // A code the vocabulary lacks is one piece too, and unknown.
  EXPECT_EQ(source_->EncodePieces(">>xx<< " + text), Concat({">>xx<<"}, plain));
  EXPECT_EQ(source_->Encode(">>xx<< " + text)[0], 1);
  // Up to the first "<<", whatever lies between; only one code is taken off.
  EXPECT_EQ(source_->EncodePieces(">> a << b"),
            Concat({">> a <<"}, source_spm_->EncodePieces(" b")));
  EXPECT_EQ(source_->EncodePieces(">>de<<>>fr<< x"),
            Concat({">>de<<"}, source_spm_->EncodePieces(">>fr<< x")));
  // Not at the very start, or not closed: plain text.
  for (const std::string& s : {" >>de<< " + text, "x >>de<< " + text, ">>de " + text}) {
    EXPECT_EQ(source_->EncodePieces(s), source_spm_->EncodePieces(s)) << s;
  }
  // The target side removes codes the same way (MarianTokenizer's text_target).
  EXPECT_EQ(target_->EncodePieces(">>de<< Ein Mann"),
            Concat({">>de<<"}, target_spm_->EncodePieces(" Ein Mann")));
}

TEST_F(VocabularyTokenizerTest, SpecialPiecesInTextBecomeTheirIds) {
  const Marian& m = Marian::Get();
  const int pad = static_cast<int>(m.pieces().size()) - 1;
  const auto spm = [&](const std::string& s) { return source_spm_->EncodePieces(s); };
  EXPECT_EQ(source_->EncodePieces("A man </s> walks"),
            Concat(Concat(spm("A man "), {"</s>"}), spm(" walks")));
  const auto ids = source_->Encode("x<unk>y<pad></s>");
  const auto expected = VocabIds(
      Concat(Concat(Concat(Concat(spm("x"), {"<unk>"}), spm("y")), {"<pad>"}), {"</s>"}));
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), pad), 1);
  EXPECT_EQ(ids.back(), 0);
  // Each part between special pieces may start with a language code.
  EXPECT_EQ(source_->EncodePieces("</s>>>de<< x"),
            Concat(Concat({"</s>"}, {">>de<<"}), spm(" x")));
  // A "<s>" is no special piece of the vocabulary: SentencePiece cuts it like text.
  EXPECT_EQ(source_->EncodePieces("a <s> b"), spm("a <s> b"));
}

TEST_F(VocabularyTokenizerTest, EmptyText) {
  EXPECT_TRUE(source_->Encode("").empty());
  EXPECT_TRUE(source_->EncodePieces("").empty());
  EXPECT_EQ(target_->Decode({}), "");
}

TEST_F(VocabularyTokenizerTest, DecodeSkipsSpecialIds) {
  const Marian& m = Marian::Get();
  const int pad = static_cast<int>(m.pieces().size()) - 1;
  const std::string s = "Zwei Hunde spielen im Gras.";
  const auto ids = target_->Encode(s);
  ASSERT_EQ(std::count(ids.begin(), ids.end(), 1), 0);
  std::vector<int> wrapped = {pad};
  wrapped.insert(wrapped.end(), ids.begin(), ids.begin() + 2);
  wrapped.push_back(1);  // unk
  wrapped.insert(wrapped.end(), ids.begin() + 2, ids.end());
  wrapped.push_back(0);  // eos
  wrapped.push_back(pad);
  EXPECT_EQ(target_->Decode(wrapped), s);
  EXPECT_EQ(target_->Decode({0, 1, pad, pad}), "");
  // Pieces SentencePiece does not know come out as they are, word marks as spaces.
  std::vector<int> after_code = {m.Id(">>de<<")};
  after_code.insert(after_code.end(), ids.begin(), ids.end());
  EXPECT_EQ(target_->Decode(after_code), ">>de<< " + s);
  std::vector<int> with_code = ids;
  with_code.push_back(m.Id(">>fr<<"));
  EXPECT_EQ(target_->Decode(with_code), s + ">>fr<<");
  // Each side joins with its own model (MarianTokenizer decodes with the target one).
  EXPECT_EQ(source_->Decode(source_->Encode("Two dogs play.")), "Two dogs play.");
}

TEST_F(VocabularyTokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  const int n = static_cast<int>(Marian::Get().pieces().size());
  for (int bad : {-1, n, n + 100}) {
    try {
      target_->Decode({5, bad});
      FAIL() << "no exception for id " << bad;
    } catch (const std::out_of_range& e) {
      EXPECT_THAT(e.what(), HasSubstr(std::to_string(bad)));
      EXPECT_THAT(e.what(), HasSubstr("position 1"));
    }
  }
}

TEST_F(VocabularyTokenizerTest, ModelsOwnSpecialIdsDoNotMatter) {
  // A model that Tokenizer::Load refuses ("<unk>" at 0) still cuts text for a vocabulary.
  TempDir dir;
  Tokenizer::TrainOptions o;
  o.vocab_size = 300;
  o.extra_flags = {{"unk_piece", "<pad>"}, {"pad_piece", "<unk>"}};
  const std::string path = testing_text::TrainSmallModel(dir, o);
  EXPECT_THROW(Tokenizer::Load(path), std::runtime_error);
  const auto pieces = SpmPiecesOf(path);
  Tokenizer::VocabularyIds ids;
  ids.pad = 0;
  ids.unk = 1;
  ids.eos = 3;
  auto t = Tokenizer::LoadWithVocabulary(path, pieces, ids);
  EXPECT_EQ(t->Decode(t->Encode("Ein Hund rennt.")), "Ein Hund rennt.");
}

TEST(VocabularyTokenizerLoad, RefusesBadVocabularies) {
  const std::string spm = Marian::Get().source_spm();
  auto message = [&](std::vector<std::string> pieces, Tokenizer::VocabularyIds ids) {
    try {
      Tokenizer::LoadWithVocabulary(spm, std::move(pieces), ids);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Tokenizer::VocabularyIds ids;  // pad 0, unk 1, eos 2
  EXPECT_THAT(message({"a", "b"}, ids), HasSubstr("eos id 2 is outside the vocabulary [0, 2)"));
  ids.eos = 1;
  ids.pad = -1;
  EXPECT_THAT(message({"a", "b"}, ids), HasSubstr("pad id -1"));
  ids.pad = 0;
  EXPECT_THAT(message({"a", "b", "a"}, ids), HasSubstr("piece 'a' twice (ids 0 and 2)"));
  EXPECT_THAT(message({"a", "b"}, ids), HasSubstr("no error"));
  try {
    Tokenizer::LoadWithVocabulary("/no/such/source.spm", {"a", "b"}, ids);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/no/such/source.spm"));
  }
}

// ---------------------------------------------------------------------------------------
// vocab.json

class VocabularyJsonTest : public ::testing::Test {
 protected:
  // Reads `text` as a vocabulary file; the error message, or "" when it is read.
  std::string Read(const std::string& text) {
    const std::string path = dir_ / "vocab.json";
    WriteText(path, {text});
    pieces_.clear();
    std::string error;
    if (ReadVocabularyJson(path, &pieces_, &error)) return "";
    EXPECT_TRUE(pieces_.empty());
    EXPECT_THAT(error, HasSubstr(path));
    return error;
  }
  TempDir dir_;
  std::vector<std::string> pieces_;
};

TEST_F(VocabularyJsonTest, ReadsPiecesInIdOrder) {
  EXPECT_EQ(Read(R"({"</s>": 0, "\u2581der": 3, "<unk>": 1, ">>de<<": 2, "\"q\\": 4,)"
                 R"( "<pad>": 5})"),
            "");
  EXPECT_EQ(pieces_, (std::vector<std::string>{"</s>", "<unk>", ">>de<<", kWordStart + "der",
                                               "\"q\\", "<pad>"}));
  EXPECT_EQ(Read("{\"a\": 1.0, \"b\": 0}"), "");
  EXPECT_EQ(pieces_, (std::vector<std::string>{"b", "a"}));
}

TEST_F(VocabularyJsonTest, ReadsTheVocabularyOfTheMarianModel) {
  std::vector<std::string> pieces;
  std::string error;
  ASSERT_TRUE(ReadVocabularyJson(Marian::Get().vocab_json(), &pieces, &error)) << error;
  EXPECT_EQ(pieces, Marian::Get().pieces());
}

TEST_F(VocabularyJsonTest, NamesWhatIsWrong) {
  EXPECT_THAT(Read("[\"a\", \"b\"]"), HasSubstr("not a JSON object of piece -> id"));
  EXPECT_THAT(Read("\"a\""), HasSubstr("not a JSON object"));
  EXPECT_THAT(Read("{\"a\": 0,"), HasSubstr("not a JSON object"));
  EXPECT_THAT(Read(""), HasSubstr("empty file"));
  EXPECT_THAT(Read("{}"), HasSubstr("the vocabulary is empty"));
  EXPECT_THAT(Read("{\"a\": 0, \"b\": 1.5}"), HasSubstr("piece 'b' has id 1.5, not an integer"));
  EXPECT_THAT(Read("{\"a\": 0, \"b\": \"1\"}"),
              HasSubstr("piece 'b' has a string as its id, not an integer"));
  EXPECT_THAT(Read("{\"a\": 0, \"b\": true}"), HasSubstr("piece 'b' has a boolean as its id"));
  EXPECT_THAT(Read("{\"a\": 0, \"b\": null}"), HasSubstr("piece 'b' has null as its id"));
  EXPECT_THAT(Read("{\"a\": 0, \"b\": [1]}"), HasSubstr("piece 'b' has a list as its id"));
  EXPECT_THAT(Read("{\"a\": 0, \"b\": -1}"), HasSubstr("piece 'b' has a negative id -1"));
  EXPECT_THAT(Read("{\"a\": 0, \"b\": 1, \"c\": 1}"),
              HasSubstr("pieces 'b' and 'c' have the same id 1"));
  EXPECT_THAT(Read("{\"a\": 0, \"b\": 2, \"c\": 3}"),
              HasSubstr("no piece has id 1 (the 3 pieces need ids 0..2; piece 'c' has id 3)"));
  EXPECT_THAT(Read("{\"a\": 1, \"b\": 2}"), HasSubstr("no piece has id 0"));
  const std::string missing = dir_ / "missing.json";
  std::string error;
  std::vector<std::string> pieces;
  EXPECT_FALSE(ReadVocabularyJson(missing, &pieces, &error));
  EXPECT_THAT(error, HasSubstr(missing));
}

// ---------------------------------------------------------------------------------------
// LoadModelTokenizers

TEST(ModelTokenizers, JointModelServesBothSides) {
  TempDir dir;
  testing_text::TrainSmallModel(dir);  // dir/spm.model
  ModelSpec spec;
  const ModelTokenizers t = LoadModelTokenizers(dir.path().string(), spec);
  ASSERT_TRUE(t.source && t.target);
  EXPECT_EQ(t.source, t.target);
  EXPECT_FALSE(t.source->has_vocabulary());
  EXPECT_EQ(t.source->path(), dir / "spm.model");
  EXPECT_EQ(TokenizerFiles(spec), std::vector<std::string>{"spm.model"});
  spec.tokenizer_file.clear();  // the default name
  EXPECT_EQ(LoadModelTokenizers(dir.path().string(), spec).source->vocab_size(), 1000);
  EXPECT_EQ(TokenizerFiles(spec), std::vector<std::string>{"spm.model"});
}

TEST(ModelTokenizers, SeparateModelsWithoutVocabulary) {
  const Marian& m = Marian::Get();
  ModelSpec spec;
  spec.tokenizer_file = "source.spm";
  spec.target_tokenizer_file = "target.spm";
  const ModelTokenizers t = LoadModelTokenizers(m.dir(), spec);
  EXPECT_NE(t.source, t.target);
  EXPECT_EQ(t.source->vocab_size(), 800);
  EXPECT_EQ(t.target->vocab_size(), 700);
  EXPECT_EQ(TokenizerFiles(spec), (std::vector<std::string>{"source.spm", "target.spm"}));
}

TEST(ModelTokenizers, VocabularyMapsBothSides) {
  const Marian& m = Marian::Get();
  const ModelSpec spec = m.Spec();
  const ModelTokenizers t = LoadModelTokenizers(m.dir(), spec);
  EXPECT_NE(t.source, t.target);
  for (const auto& tok : {t.source, t.target}) {
    EXPECT_TRUE(tok->has_vocabulary());
    EXPECT_EQ(tok->vocab_size(), spec.vocab_size);
    EXPECT_EQ(tok->pad_id(), spec.ids.pad);
    EXPECT_EQ(tok->eos_id(), 0);
  }
  EXPECT_EQ(t.source->path(), m.source_spm());
  EXPECT_EQ(t.target->path(), m.target_spm());
  EXPECT_EQ(t.source->EncodePieces("dogs"), Tokenizer::Load(m.source_spm())->EncodePieces("dogs"));
  EXPECT_EQ(t.target->EncodePieces("Hunde"),
            Tokenizer::Load(m.target_spm())->EncodePieces("Hunde"));
  EXPECT_EQ(TokenizerFiles(spec),
            (std::vector<std::string>{"source.spm", "target.spm", "vocab.json"}));

  // One SentencePiece model for both sides, over the vocabulary.
  ModelSpec joint = spec;
  joint.target_tokenizer_file.clear();
  const ModelTokenizers j = LoadModelTokenizers(m.dir(), joint);
  EXPECT_EQ(j.source, j.target);
  EXPECT_TRUE(j.source->has_vocabulary());
  EXPECT_EQ(TokenizerFiles(joint), (std::vector<std::string>{"source.spm", "vocab.json"}));
}

TEST(ModelTokenizers, ErrorsNameTheFile) {
  const Marian& m = Marian::Get();
  TempDir dir;
  for (const std::string f : {"source.spm", "target.spm"})
    std::filesystem::copy_file(m.dir() + "/" + f, dir / f);
  WriteText(dir / "vocab.json", {"{\"</s>\": 0, \"<unk>\": 0}"});
  ModelSpec spec = m.Spec();
  auto message = [&](const ModelSpec& s) {
    try {
      LoadModelTokenizers(dir.path().string(), s);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message(spec), HasSubstr(dir / "vocab.json"));
  EXPECT_THAT(message(spec), HasSubstr("the same id 0"));
  spec.vocabulary_file = "absent.json";
  EXPECT_THAT(message(spec), HasSubstr(dir / "absent.json"));
  spec = m.Spec();
  spec.target_tokenizer_file = "absent.spm";
  WriteText(dir / "vocab.json", {VocabularyJson(m.pieces())});
  EXPECT_THAT(message(spec), HasSubstr(dir / "absent.spm"));
  spec.target_tokenizer_file = "target.spm";
  spec.ids.pad = spec.vocab_size;  // beyond the vocabulary
  EXPECT_THAT(message(spec), HasSubstr("pad id"));
}

}  // namespace
}  // namespace mixserve
