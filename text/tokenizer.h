// Subword tokenizer over SentencePiece. SentencePiece lives in a separate shared library
// (libmixserve_spm_shim) loaded at run time apart from the rest of the process (it bundles a
// private protobuf runtime; docs/text.md), so this header and its users never see SentencePiece
// or protobuf types.
//
// Two kinds: mixserve's own (Load: the SentencePiece model's ids, fixed special ids) and a
// vocabulary-mapped one for imported models (LoadWithVocabulary: the SentencePiece model only
// cuts text into pieces and joins pieces into text; ids are a separate vocabulary's, as
// transformers' MarianTokenizer does it).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mixserve {

class Tokenizer {
 public:
  // Fixed special ids of every mixserve tokenizer (config/model_spec.h agrees).
  static constexpr int kPad = 0, kUnk = 1, kBos = 2, kEos = 3;

  struct TrainOptions {
    int vocab_size = 8000;
    std::string model_type = "unigram";  // or "bpe"
    float character_coverage = 1.0f;
    int input_sentence_size = 0;  // 0: all
    std::vector<std::string> user_symbols;  // e.g. language tags "<2de>"
    bool shuffle_input_sentence = true;  // sample randomly when input_sentence_size is set
    int num_threads = 0;                 // 0: hardware threads
    bool hard_vocab_limit = true;        // false: vocab_size is a soft limit (small corpora)
    bool verbose = false;                // SentencePiece's training log on stderr
    // Any other spm_train flag, passed through as --name=value (e.g. {"split_digits", "true"}).
    std::vector<std::pair<std::string, std::string>> extra_flags;
  };

  // Trains a model from text files (one sentence per line; .gz is read too) and writes
  // <model_prefix>.model and <model_prefix>.vocab, with the special ids above (pieces "<pad>",
  // "<unk>", "<s>", "</s>"). Throws std::runtime_error on failure, bad options included. Calls
  // are serialized process-wide.
  static void Train(const std::vector<std::string>& inputs, const std::string& model_prefix,
                    const TrainOptions& options);

  // Loads a .model file. Throws std::runtime_error naming the path on failure.
  static std::unique_ptr<Tokenizer> Load(const std::string& path);

  // The special ids of a vocabulary (MarianMT: eos 0, unk 1, pad the last id).
  struct VocabularyIds {
    int pad = 0;
    int unk = 1;
    int eos = 2;
  };
  // A tokenizer speaking the ids of `pieces` (id -> piece; ids 0..n-1, pieces distinct), with
  // the SentencePiece model at `spm_path` cutting and joining text, as MarianTokenizer does:
  //  - Encode: the text is split at the special pieces (pieces[eos], pieces[unk],
  //    pieces[pad], which become their ids); in each other part a leading language code
  //    (">>" up to the first "<<", e.g. ">>de<<") becomes one piece and the rest goes
  //    through SentencePiece; a piece outside the vocabulary becomes the unk id. No other
  //    normalisation: text goes to SentencePiece as it is.
  //  - Decode: pad, eos and unk ids are dropped (decode(..., skip_special_tokens=True)); the
  //    other ids' pieces are joined by SentencePiece, "\u2581" left over becomes a space,
  //    and surrounding whitespace is stripped.
  // The model's own special ids do not matter. Throws std::runtime_error naming the path for an
  // unreadable model, special ids outside the vocabulary or repeated pieces.
  static std::unique_ptr<Tokenizer> LoadWithVocabulary(const std::string& spm_path,
                                                       std::vector<std::string> pieces,
                                                       const VocabularyIds& ids);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Thread-safe (all const members). Ids exclude BOS/EOS.
  std::vector<int> Encode(const std::string& text) const;
  // Control ids (pad, bos, eos) decode to nothing, kUnk to " \u2047 " (a vocabulary-mapped
  // tokenizer: see LoadWithVocabulary). Throws std::out_of_range for an id outside
  // [0, vocab_size()).
  std::string Decode(const std::vector<int>& ids) const;
  std::vector<std::string> EncodePieces(const std::string& text) const;
  int vocab_size() const;
  int PieceToId(const std::string& piece) const;  // unk_id() when absent
  // The special ids: kPad, kUnk, kEos, or the vocabulary's.
  int pad_id() const;
  int unk_id() const;
  int eos_id() const;
  bool has_vocabulary() const;  // loaded with LoadWithVocabulary
  const std::string& path() const { return path_; }  // the SentencePiece model

 private:
  Tokenizer() = default;
  std::vector<std::string> SpmPieces(const std::string& text) const;  // SentencePiece alone
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

}  // namespace mixserve
