// Pieces shared by several subcommands (torch-free): data flags, corpus loading and
// tokenizer checks, model-directory helpers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/model_spec.h"
#include "config/model_tokenizers.h"
#include "offline/batching.h"
#include "offline/flags.h"
#include "offline/text_io.h"
#include "text/tokenizer.h"

namespace mixserve::offline {

// --data, --src, --tgt (languages; empty = from the model when there is one), --limit.
std::vector<FlagDef> DataFlags(bool languages_required);
// --device, --threads.
std::vector<FlagDef> DeviceFlags();
std::vector<FlagDef> Concat(std::vector<std::vector<FlagDef>> parts);

// Tokenised, length-filtered pairs of one split, plus the raw text (references for BLEU).
// Sources go through tok.source, targets through tok.target.
struct Corpus {
  ParallelText text;
  std::vector<TokenPair> pairs;
  size_t dropped = 0;  // longer than max_len
};
Corpus LoadCorpus(const std::string& src_path, const std::string& tgt_path,
                  const ModelTokenizers& tok, size_t limit, int max_len);

// Loads a joint SentencePiece model (--spm); throws naming the path when it is missing or
// unreadable.
std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& path);
// One joint tokenizer on both sides.
ModelTokenizers JointTokenizers(std::shared_ptr<const Tokenizer> tok);
// The tokenizers of the model in `dir` (config/model_tokenizers.h); throws naming a missing
// file.
ModelTokenizers LoadTokenizers(const std::string& dir, const ModelSpec& spec);
// Throws when a tokenizer's vocabulary differs from the model's.
void CheckVocab(const Tokenizer& tok, const ModelSpec& spec, const std::string& what);
void CheckVocab(const ModelTokenizers& tok, const ModelSpec& spec, const std::string& what);

// The (source) tokenizer file of a model directory (<dir>/<spec.tokenizer_file>).
std::string TokenizerPath(const std::string& dir, const ModelSpec& spec);
// Copies every tokenizer file `spec` names (TokenizerFiles: source and target SentencePiece
// models, vocabulary) from from_dir to to_dir, under the same names.
void CopyTokenizerFiles(const std::string& from_dir, const ModelSpec& spec,
                        const std::string& to_dir);

// Throws "not a model directory" naming the missing file when <dir>/model.pbtxt is absent.
void RequireModelDir(const std::string& dir, const std::string& flag);

void CopyFileTo(const std::string& from, const std::string& to);
std::string NowIso8601();
// Source/target languages from flags, falling back to the model spec's.
void ResolveLanguages(const FlagSet& flags, const ModelSpec& spec, std::string* src,
                      std::string* tgt);

}  // namespace mixserve::offline
