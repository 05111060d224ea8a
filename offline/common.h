// Pieces shared by several subcommands (torch-free): data flags, corpus loading and
// tokenizer checks, model-directory helpers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/model_spec.h"
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
struct Corpus {
  ParallelText text;
  std::vector<TokenPair> pairs;
  size_t dropped = 0;  // longer than max_len
};
Corpus LoadCorpus(const std::string& src_path, const std::string& tgt_path, const Tokenizer& tok,
                  size_t limit, int max_len);

// Loads a tokenizer; throws naming the path when it is missing or unreadable.
std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& path);
// Throws when the tokenizer's vocabulary differs from the model's.
void CheckVocab(const Tokenizer& tok, const ModelSpec& spec, const std::string& what);

// The tokenizer stored with a model directory (<dir>/<spec.tokenizer_file>).
std::string TokenizerPath(const std::string& dir, const ModelSpec& spec);

// Throws "not a model directory" naming the missing file when <dir>/model.pbtxt is absent.
void RequireModelDir(const std::string& dir, const std::string& flag);

void CopyFileTo(const std::string& from, const std::string& to);
std::string NowIso8601();
// Source/target languages from flags, falling back to the model spec's.
void ResolveLanguages(const FlagSet& flags, const ModelSpec& spec, std::string* src,
                      std::string* tgt);

}  // namespace mixserve::offline
