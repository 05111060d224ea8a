#include "offline/common.h"

#include <ctime>
#include <filesystem>
#include <stdexcept>

namespace mixserve::offline {

std::vector<FlagDef> DataFlags(bool languages_required) {
  return {
      {"data", "data/multi30k", "folder of <split>.<lang>[.gz] files"},
      {"src", "", "source language (e.g. en)" + std::string(languages_required ? "" : "; default: the model's"),
       languages_required},
      {"tgt", "", "target language (e.g. de)" + std::string(languages_required ? "" : "; default: the model's"),
       languages_required},
      {"limit", "0", "use only the first N lines of each training file (0: all)"},
  };
}

std::vector<FlagDef> DeviceFlags() {
  return {
      {"device", "auto", "auto (CUDA when available), cpu, cuda, cuda:N"},
      {"threads", "0", "CPU intra-op threads (0: LibTorch default)"},
  };
}

std::vector<FlagDef> Concat(std::vector<std::vector<FlagDef>> parts) {
  std::vector<FlagDef> out;
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Corpus LoadCorpus(const std::string& src_path, const std::string& tgt_path,
                  const ModelTokenizers& tok, size_t limit, int max_len) {
  Corpus c;
  c.text = ReadParallel(src_path, tgt_path, limit);
  std::vector<TokenPair> pairs(c.text.src.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    pairs[i].src = tok.source->Encode(c.text.src[i]);
    pairs[i].tgt = tok.target->Encode(c.text.tgt[i]);
    pairs[i].index = static_cast<int>(i);
  }
  c.pairs = FilterByLength(std::move(pairs), max_len, &c.dropped);
  if (c.pairs.empty())
    throw std::runtime_error("no sentence pair of '" + src_path + "' fits max_len " +
                             std::to_string(max_len));
  return c;
}

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    throw std::runtime_error("tokenizer model '" + path + "' does not exist (train one with "
                             "'mixserve-offline spm')");
  return Tokenizer::Load(path);
}

ModelTokenizers JointTokenizers(std::shared_ptr<const Tokenizer> tok) {
  ModelTokenizers t;
  t.source = tok;
  t.target = std::move(tok);
  return t;
}

ModelTokenizers LoadTokenizers(const std::string& dir, const ModelSpec& spec) {
  for (const auto& file : TokenizerFiles(spec)) {
    if (!std::filesystem::is_regular_file(dir + "/" + file))
      throw std::runtime_error("tokenizer file '" + dir + "/" + file + "' does not exist");
  }
  return mixserve::LoadModelTokenizers(dir, spec);
}

void CheckVocab(const Tokenizer& tok, const ModelSpec& spec, const std::string& what) {
  if (tok.vocab_size() != spec.vocab_size)
    throw std::runtime_error("vocabulary mismatch: tokenizer '" + tok.path() + "' has " +
                             std::to_string(tok.vocab_size()) + " pieces but " + what + " has " +
                             std::to_string(spec.vocab_size));
}

void CheckVocab(const ModelTokenizers& tok, const ModelSpec& spec, const std::string& what) {
  CheckVocab(*tok.source, spec, what);
  if (tok.target != tok.source) CheckVocab(*tok.target, spec, what);
}

std::string TokenizerPath(const std::string& dir, const ModelSpec& spec) {
  return dir + "/" + (spec.tokenizer_file.empty() ? "spm.model" : spec.tokenizer_file);
}

void CopyTokenizerFiles(const std::string& from_dir, const ModelSpec& spec,
                        const std::string& to_dir) {
  for (const auto& file : TokenizerFiles(spec))
    CopyFileTo(from_dir + "/" + file, to_dir + "/" + file);
}

void RequireModelDir(const std::string& dir, const std::string& flag) {
  if (!std::filesystem::is_directory(dir))
    throw std::runtime_error("--" + flag + ": '" + dir + "' is not a directory");
  if (!std::filesystem::is_regular_file(dir + "/model.pbtxt"))
    throw std::runtime_error("--" + flag + ": '" + dir + "' is not a model directory (no " +
                             dir + "/model.pbtxt)");
}

void CopyFileTo(const std::string& from, const std::string& to) {
  if (!std::filesystem::is_regular_file(from))
    throw std::runtime_error("cannot copy '" + from + "': no such file");
  const auto parent = std::filesystem::path(to).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
}

std::string NowIso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void ResolveLanguages(const FlagSet& flags, const ModelSpec& spec, std::string* src,
                      std::string* tgt) {
  *src = flags.Get("src").empty() ? spec.source_language : flags.Get("src");
  *tgt = flags.Get("tgt").empty() ? spec.target_language : flags.Get("tgt");
  if (src->empty() || tgt->empty())
    throw UsageError("languages unknown: pass --src and --tgt (the model does not name them)");
}

}  // namespace mixserve::offline
