#include "text/tokenizer.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "text/spm_library.h"
#include "text/text_files.h"
#include "base/remove_tree.h"

namespace mixserve {

using text_internal::Spm;
using text_internal::SpmApi;

struct Tokenizer::Impl {
  const SpmApi* api = nullptr;
  MixserveSpm* model = nullptr;
  ~Impl() {
    if (model != nullptr) api->free_model(model);
  }
};

namespace {

namespace fs = std::filesystem;

// Owns a buffer handed out by the shim.
class ShimBuffer {
 public:
  ShimBuffer(const SpmApi& api, void* p) : api_(api), p_(p) {}
  ~ShimBuffer() { api_.free_buffer(p_); }
  ShimBuffer(const ShimBuffer&) = delete;
  ShimBuffer& operator=(const ShimBuffer&) = delete;

 private:
  const SpmApi& api_;
  void* p_;
};

// A private temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    if (ec) base = "/tmp";
    std::string tmpl = (base / "mixserve-spm-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("Tokenizer::Train: cannot create a temporary directory in " +
                               base.string());
    }
    path_ = tmpl;
  }
  ~TempDir() {
    mixserve::RemoveTree(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string Join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

// Concatenates the sentences of all inputs into one plain file; returns the sentence count.
size_t WriteTrainingText(const std::vector<std::string>& inputs, const fs::path& out_path) {
  std::ofstream out(out_path, std::ios::binary);
  if (!out) throw std::runtime_error("Tokenizer::Train: cannot write " + out_path.string());
  size_t sentences = 0;
  for (const auto& input : inputs) {
    ForEachTextLine(input, [&](const std::string& line) {
      if (line.find_first_not_of(" \t") == std::string::npos) return true;
      out << line << '\n';
      ++sentences;
      return true;
    });
  }
  out.flush();
  if (!out) throw std::runtime_error("Tokenizer::Train: cannot write " + out_path.string());
  return sentences;
}

std::string FloatFlag(float v) {
  std::ostringstream s;
  s.imbue(std::locale::classic());
  s.precision(9);
  s << v;
  return s.str();
}

void CheckOptions(const Tokenizer::TrainOptions& o) {
  auto bad = [](const std::string& what) {
    throw std::runtime_error("Tokenizer::Train: " + what);
  };
  // Four special pieces plus at least one more.
  if (o.vocab_size < 5) bad("vocab_size must be at least 5, got " + std::to_string(o.vocab_size));
  if (o.model_type != "unigram" && o.model_type != "bpe" && o.model_type != "char" &&
      o.model_type != "word") {
    bad("model_type must be unigram, bpe, char or word, got '" + o.model_type + "'");
  }
  if (!(o.character_coverage > 0.0f && o.character_coverage <= 1.0f)) {
    bad("character_coverage must be in (0, 1], got " + FloatFlag(o.character_coverage));
  }
  if (o.input_sentence_size < 0) bad("input_sentence_size must be >= 0");
  if (o.num_threads < 0) bad("num_threads must be >= 0");
  for (const auto& s : o.user_symbols) {
    if (s.empty() || s.find(',') != std::string::npos) {
      bad("user symbol '" + s + "' must be non-empty and contain no comma");
    }
  }
  for (const auto& [key, value] : o.extra_flags) {
    static const char* const kReserved[] = {"input", "model_prefix", "pad_id", "unk_id",
                                            "bos_id", "eos_id"};
    for (const char* r : kReserved) {
      if (key == r) bad("flag '" + key + "' is set by Tokenizer::Train and cannot be overridden");
    }
    if (key.empty()) bad("empty flag name in extra_flags");
  }
}

}  // namespace

void Tokenizer::Train(const std::vector<std::string>& inputs, const std::string& model_prefix,
                      const TrainOptions& options) {
  if (inputs.empty()) throw std::runtime_error("Tokenizer::Train: no input files");
  if (model_prefix.empty()) throw std::runtime_error("Tokenizer::Train: empty model_prefix");
  CheckOptions(options);
  const fs::path prefix_dir = fs::path(model_prefix).parent_path();
  std::error_code ec;
  if (!prefix_dir.empty() && !fs::is_directory(prefix_dir, ec)) {
    throw std::runtime_error("Tokenizer::Train: directory of model_prefix " + model_prefix +
                             " does not exist");
  }
  const SpmApi& api = Spm();

  static std::mutex train_mutex;  // the trainer keeps process-wide state (log level)
  std::lock_guard<std::mutex> lock(train_mutex);

  TempDir tmp;
  const fs::path text = tmp.path() / "sentences.txt";
  const size_t sentences = WriteTrainingText(inputs, text);
  if (sentences == 0) {
    throw std::runtime_error("Tokenizer::Train: no sentences in " + Join(inputs, ", "));
  }

  int threads = options.num_threads;
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  std::vector<std::pair<std::string, std::string>> flags = {
      {"input", text.string()},
      {"model_prefix", model_prefix},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"model_type", options.model_type},
      {"character_coverage", FloatFlag(options.character_coverage)},
      {"input_sentence_size", std::to_string(options.input_sentence_size)},
      {"shuffle_input_sentence", options.shuffle_input_sentence ? "true" : "false"},
      {"num_threads", std::to_string(threads)},
      {"hard_vocab_limit", options.hard_vocab_limit ? "true" : "false"},
      {"pad_id", std::to_string(kPad)},
      {"unk_id", std::to_string(kUnk)},
      {"bos_id", std::to_string(kBos)},
      {"eos_id", std::to_string(kEos)},
      {"pad_piece", "<pad>"},
      {"unk_piece", "<unk>"},
      {"bos_piece", "<s>"},
      {"eos_piece", "</s>"},
      {"minloglevel", options.verbose ? "0" : "1"},
  };
  if (!options.user_symbols.empty()) {
    flags.emplace_back("user_defined_symbols", Join(options.user_symbols, ","));
  }
  for (const auto& kv : options.extra_flags) {
    bool replaced = false;
    for (auto& f : flags) {
      if (f.first == kv.first) {
        f.second = kv.second;
        replaced = true;
      }
    }
    if (!replaced) flags.push_back(kv);
  }

  std::vector<const char*> keys, values;
  for (const auto& [k, v] : flags) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  if (api.train(keys.data(), values.data(), keys.size()) != 0) {
    throw std::runtime_error("Tokenizer::Train: SentencePiece training of " + model_prefix +
                             ".model from " + Join(inputs, ", ") + " failed: " + api.Error());
  }
}

std::unique_ptr<Tokenizer> Tokenizer::Load(const std::string& path) {
  const SpmApi& api = Spm();
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw std::runtime_error("Tokenizer: SentencePiece model " + path + " does not exist");
  }
  MixserveSpm* model = api.load(path.c_str());
  if (model == nullptr) {
    throw std::runtime_error("Tokenizer: cannot load SentencePiece model " + path + ": " +
                             api.Error());
  }
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->impl_ = std::make_unique<Impl>();
  t->impl_->api = &api;
  t->impl_->model = model;
  t->path_ = path;
  // Every mixserve model carries the fixed special pieces; a model trained elsewhere may not.
  const int size = t->vocab_size();
  if (size <= kEos || t->PieceToId("<pad>") != kPad || t->PieceToId("<unk>") != kUnk ||
      t->PieceToId("<s>") != kBos || t->PieceToId("</s>") != kEos) {
    throw std::runtime_error("Tokenizer: SentencePiece model " + path +
                             " lacks the fixed special ids <pad>=0 <unk>=1 <s>=2 </s>=3 "
                             "(train it with Tokenizer::Train or mixserve-offline)");
  }
  return t;
}

Tokenizer::~Tokenizer() = default;

std::vector<int> Tokenizer::Encode(const std::string& text) const {
  const SpmApi& api = *impl_->api;
  int* ids = nullptr;
  size_t n = 0;
  if (api.encode_ids(impl_->model, text.data(), text.size(), &ids, &n) != 0) {
    throw std::runtime_error("Tokenizer(" + path_ + "): encode failed: " + api.Error());
  }
  ShimBuffer owned(api, ids);
  return std::vector<int>(ids, ids + n);
}

std::vector<std::string> Tokenizer::EncodePieces(const std::string& text) const {
  const SpmApi& api = *impl_->api;
  char* data = nullptr;
  size_t* ends = nullptr;
  size_t n = 0;
  if (api.encode_pieces(impl_->model, text.data(), text.size(), &data, &ends, &n) != 0) {
    throw std::runtime_error("Tokenizer(" + path_ + "): encode failed: " + api.Error());
  }
  ShimBuffer owned_data(api, data), owned_ends(api, ends);
  std::vector<std::string> pieces;
  pieces.reserve(n);
  size_t begin = 0;
  for (size_t i = 0; i < n; ++i) {
    pieces.emplace_back(data + begin, ends[i] - begin);
    begin = ends[i];
  }
  return pieces;
}

std::string Tokenizer::Decode(const std::vector<int>& ids) const {
  const SpmApi& api = *impl_->api;
  const int size = vocab_size();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= size) {
      throw std::out_of_range("Tokenizer(" + path_ + "): id " + std::to_string(ids[i]) +
                              " at position " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(size) + ")");
    }
  }
  char* text = nullptr;
  size_t len = 0;
  if (api.decode_ids(impl_->model, ids.data(), ids.size(), &text, &len) != 0) {
    throw std::runtime_error("Tokenizer(" + path_ + "): decode failed: " + api.Error());
  }
  ShimBuffer owned(api, text);
  return std::string(text, len);
}

int Tokenizer::vocab_size() const { return impl_->api->vocab_size(impl_->model); }

int Tokenizer::PieceToId(const std::string& piece) const {
  const int id = impl_->api->piece_to_id(impl_->model, piece.data(), piece.size());
  return id < 0 ? kUnk : id;
}

}  // namespace mixserve
