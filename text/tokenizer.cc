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
#include <unordered_map>

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

  // LoadWithVocabulary only: id -> piece, piece -> id, the special ids.
  bool mapped = false;
  std::vector<std::string> pieces;
  std::unordered_map<std::string, int> ids;
  int pad = kPad, unk = kUnk, eos = kEos;
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

MixserveSpm* LoadSpm(const SpmApi& api, const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw std::runtime_error("Tokenizer: SentencePiece model " + path + " does not exist");
  }
  MixserveSpm* model = api.load(path.c_str());
  if (model == nullptr) {
    throw std::runtime_error("Tokenizer: cannot load SentencePiece model " + path + ": " +
                             api.Error());
  }
  return model;
}

// Python's str.isspace() for one code point (MarianTokenizer strips decoded text with
// str.strip()).
bool IsPythonSpace(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x1C: case 0x1D: case 0x1E:
    case 0x1F: case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

// The code point starting at s[i] and its length in bytes; a byte that does not start a
// well-formed sequence counts as one (non-space) character.
std::pair<char32_t, size_t> CodePointAt(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return {0xFFFD, 1};
  char32_t cp = n == 1 ? c : c & (0xFF >> (n + 1));
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return {0xFFFD, 1};
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  return {cp, n};
}

// Python's str.strip() on UTF-8 text.
std::string StripPythonSpace(const std::string& s) {
  size_t begin = 0;
  while (begin < s.size()) {
    const auto [cp, n] = CodePointAt(s, begin);
    if (!IsPythonSpace(cp)) break;
    begin += n;
  }
  size_t end = begin;  // one past the last non-space character
  for (size_t i = begin; i < s.size();) {
    const auto [cp, n] = CodePointAt(s, i);
    i += n;
    if (!IsPythonSpace(cp)) end = i;
  }
  return s.substr(begin, end - begin);
}

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s->find(from, pos)) != std::string::npos; pos += to.size()) {
    s->replace(pos, from.size(), to);
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
  MixserveSpm* model = LoadSpm(api, path);
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

std::unique_ptr<Tokenizer> Tokenizer::LoadWithVocabulary(const std::string& spm_path,
                                                         std::vector<std::string> pieces,
                                                         const VocabularyIds& ids) {
  const int size = static_cast<int>(pieces.size());
  for (const auto& [name, id] : {std::make_pair("pad", ids.pad), std::make_pair("unk", ids.unk),
                                 std::make_pair("eos", ids.eos)}) {
    if (id < 0 || id >= size) {
      throw std::runtime_error("Tokenizer(" + spm_path + "): the " + name + " id " +
                               std::to_string(id) + " is outside the vocabulary [0, " +
                               std::to_string(size) + ")");
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->mapped = true;
  impl->ids.reserve(pieces.size());
  for (int i = 0; i < size; ++i) {
    const auto [it, inserted] = impl->ids.emplace(pieces[i], i);
    if (!inserted) {
      throw std::runtime_error("Tokenizer(" + spm_path + "): the vocabulary has piece '" +
                               pieces[i] + "' twice (ids " + std::to_string(it->second) +
                               " and " + std::to_string(i) + ")");
    }
  }
  impl->pieces = std::move(pieces);
  impl->pad = ids.pad;
  impl->unk = ids.unk;
  impl->eos = ids.eos;
  const SpmApi& api = Spm();
  impl->api = &api;
  impl->model = LoadSpm(api, spm_path);
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->impl_ = std::move(impl);
  t->path_ = spm_path;
  return t;
}

Tokenizer::~Tokenizer() = default;

std::vector<int> Tokenizer::Encode(const std::string& text) const {
  if (impl_->mapped) {
    const auto pieces = EncodePieces(text);
    std::vector<int> ids;
    ids.reserve(pieces.size());
    for (const auto& p : pieces) ids.push_back(PieceToId(p));
    return ids;
  }
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
  if (!impl_->mapped) return SpmPieces(text);
  // MarianTokenizer.tokenize: the special pieces split the text first (leftmost match; none
  // of "</s>", "<unk>", "<pad>" overlaps another), then each other part loses a leading
  // language code (remove_language_code) and goes through SentencePiece.
  const std::string* specials[] = {&impl_->pieces[impl_->eos], &impl_->pieces[impl_->unk],
                                   &impl_->pieces[impl_->pad]};
  std::vector<std::string> out;
  auto add_part = [&](std::string part) {
    if (part.empty()) return;
    if (part.compare(0, 2, ">>") == 0) {
      const size_t end = part.find("<<");
      if (end != std::string::npos) {
        out.push_back(part.substr(0, end + 2));
        part.erase(0, end + 2);
      }
    }
    auto pieces = SpmPieces(part);
    out.insert(out.end(), std::make_move_iterator(pieces.begin()),
               std::make_move_iterator(pieces.end()));
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best = std::string::npos;
    const std::string* found = nullptr;
    for (const std::string* s : specials) {
      if (s->empty()) continue;
      const size_t at = text.find(*s, pos);
      if (at < best || (at == best && found != nullptr && s->size() > found->size())) {
        best = at;
        found = s;
      }
    }
    if (found == nullptr) break;
    add_part(text.substr(pos, best - pos));
    out.push_back(*found);
    pos = best + found->size();
  }
  add_part(text.substr(pos));
  return out;
}

std::vector<std::string> Tokenizer::SpmPieces(const std::string& text) const {
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
  if (!impl_->mapped) {
    if (api.decode_ids(impl_->model, ids.data(), ids.size(), &text, &len) != 0) {
      throw std::runtime_error("Tokenizer(" + path_ + "): decode failed: " + api.Error());
    }
    ShimBuffer owned(api, text);
    return std::string(text, len);
  }
  // MarianTokenizer.decode(ids, skip_special_tokens=True): the special ids go, the pieces of
  // the others are joined by the SentencePiece model (convert_tokens_to_string).
  std::string joined;
  std::vector<size_t> ends;
  for (int id : ids) {
    if (id == impl_->pad || id == impl_->eos || id == impl_->unk) continue;
    joined += impl_->pieces[id];
    ends.push_back(joined.size());
  }
  if (api.decode_pieces(impl_->model, joined.data(), ends.data(), ends.size(), &text, &len) !=
      0) {
    throw std::runtime_error("Tokenizer(" + path_ + "): decode failed: " + api.Error());
  }
  ShimBuffer owned(api, text);
  std::string out(text, len);
  ReplaceAll(&out, "\xE2\x96\x81", " ");  // U+2581 in pieces SentencePiece kept as they are
  return StripPythonSpace(out);
}

int Tokenizer::vocab_size() const {
  if (impl_->mapped) return static_cast<int>(impl_->pieces.size());
  return impl_->api->vocab_size(impl_->model);
}

int Tokenizer::PieceToId(const std::string& piece) const {
  if (impl_->mapped) {
    const auto it = impl_->ids.find(piece);
    return it == impl_->ids.end() ? impl_->unk : it->second;
  }
  const int id = impl_->api->piece_to_id(impl_->model, piece.data(), piece.size());
  return id < 0 ? kUnk : id;
}

int Tokenizer::pad_id() const { return impl_->pad; }
int Tokenizer::unk_id() const { return impl_->unk; }
int Tokenizer::eos_id() const { return impl_->eos; }
bool Tokenizer::has_vocabulary() const { return impl_->mapped; }

}  // namespace mixserve
