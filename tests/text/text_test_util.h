// Helpers shared by the text/ tests: temporary folders, corpus paths, a small trained model.
#pragma once

#include <stdlib.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "text/text_files.h"
#include "text/tokenizer.h"
#include "base/remove_tree.h"

namespace mixserve {
namespace testing_text {

// A fresh folder under $TMPDIR (or /tmp), removed with its content.
class TempDir {
 public:
  TempDir() {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::temp_directory_path(ec);
    if (ec) base = "/tmp";
    std::string tmpl = (base / "mixserve-text-test-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    mixserve::RemoveTree(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string Multi30k(const std::string& file) {
  return std::string(MIXSERVE_SOURCE_DIR) + "/data/multi30k/" + file;
}

inline void WriteText(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::binary);
  for (const auto& l : lines) out << l << '\n';
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline void WriteGzipText(const std::string& path, const std::vector<std::string>& lines) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  for (const auto& l : lines) {
    gzwrite(f, l.data(), static_cast<unsigned>(l.size()));
    gzputc(f, '\n');
  }
  gzclose(f);
}

// Trains the test tokenizer in dir: the first 3000 English sentences of Multi30k's training
// set (written as .gz) and the first 3000 German ones (plain text), 1000 pieces, unigram.
// Returns the .model path. Takes about a second.
inline std::string TrainSmallModel(const TempDir& dir, Tokenizer::TrainOptions options = {}) {
  const std::string en = dir / "train.en.gz";
  const std::string de = dir / "train.de.txt";
  WriteGzipText(en, ReadTextLines(Multi30k("train.en.gz"), 3000));
  WriteText(de, ReadTextLines(Multi30k("train.de.gz"), 3000));
  if (options.vocab_size == Tokenizer::TrainOptions{}.vocab_size) options.vocab_size = 1000;
  const std::string prefix = dir / "spm";
  Tokenizer::Train({en, de}, prefix, options);
  return prefix + ".model";
}

}  // namespace testing_text
}  // namespace mixserve
