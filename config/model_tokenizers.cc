#include "config/model_tokenizers.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "config/vocabulary_json.h"

namespace mixserve {

namespace {

std::string SourceFile(const ModelSpec& spec) {
  return spec.tokenizer_file.empty() ? "spm.model" : spec.tokenizer_file;
}

}  // namespace

std::vector<std::string> TokenizerFiles(const ModelSpec& spec) {
  std::vector<std::string> files = {SourceFile(spec)};
  for (const std::string* f : {&spec.target_tokenizer_file, &spec.vocabulary_file}) {
    if (!f->empty() && std::find(files.begin(), files.end(), *f) == files.end())
      files.push_back(*f);
  }
  return files;
}

ModelTokenizers LoadModelTokenizers(const std::string& dir, const ModelSpec& spec) {
  namespace fs = std::filesystem;
  const std::string source_path = (fs::path(dir) / SourceFile(spec)).string();
  const std::string target_path =
      spec.target_tokenizer_file.empty()
          ? source_path
          : (fs::path(dir) / spec.target_tokenizer_file).string();
  ModelTokenizers t;
  if (spec.vocabulary_file.empty()) {
    t.source = Tokenizer::Load(source_path);
    t.target = target_path == source_path ? t.source : Tokenizer::Load(target_path);
    return t;
  }
  const std::string vocab_path = (fs::path(dir) / spec.vocabulary_file).string();
  std::vector<std::string> pieces;
  std::string error;
  if (!ReadVocabularyJson(vocab_path, &pieces, &error)) throw std::runtime_error(error);
  Tokenizer::VocabularyIds ids;
  ids.pad = spec.ids.pad;
  ids.unk = spec.ids.unk;
  ids.eos = spec.ids.eos;
  if (target_path == source_path) {
    t.source = Tokenizer::LoadWithVocabulary(source_path, std::move(pieces), ids);
    t.target = t.source;
  } else {
    t.source = Tokenizer::LoadWithVocabulary(source_path, pieces, ids);
    t.target = Tokenizer::LoadWithVocabulary(target_path, std::move(pieces), ids);
  }
  return t;
}

}  // namespace mixserve
