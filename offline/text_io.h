// Reading and writing line-oriented text (gzip or plain) and locating the data splits.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace mixserve::offline {

// Reads lines from a gzip or plain text file (zlib reads both); strips "\r\n". `limit` > 0
// keeps only the first `limit` lines. Throws std::runtime_error naming the file on failure.
std::vector<std::string> ReadLines(const std::string& path, size_t limit = 0);
void WriteLines(const std::string& path, const std::vector<std::string>& lines);
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);

// <dir>/<split>.<lang>.gz, or <dir>/<split>.<lang> when only the plain file exists. Throws
// naming both candidates when neither exists.
std::string DataFile(const std::string& dir, const std::string& split, const std::string& lang);

// A parallel text: both sides read with the same limit; throws when line counts differ.
struct ParallelText {
  std::vector<std::string> src, tgt;
  std::string src_path, tgt_path;
};
ParallelText ReadParallel(const std::string& src_path, const std::string& tgt_path,
                          size_t limit = 0);

}  // namespace mixserve::offline
