#include "offline/text_io.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mixserve::offline {

std::vector<std::string> ReadLines(const std::string& path, size_t limit) {
  if (!std::filesystem::is_regular_file(path))
    throw std::runtime_error("cannot read '" + path + "': no such file");
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
  std::vector<std::string> lines;
  std::string cur;
  char buf[1 << 14];
  bool done = false;
  while (!done) {
    if (!gzgets(f, buf, sizeof(buf))) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      if (err != Z_OK && err != Z_STREAM_END) {
        const std::string m = msg ? msg : "read error";
        gzclose(f);
        throw std::runtime_error("cannot read '" + path + "': " + m);
      }
      if (!cur.empty()) lines.push_back(cur);
      break;
    }
    cur += buf;
    if (!cur.empty() && cur.back() == '\n') {
      while (!cur.empty() && (cur.back() == '\n' || cur.back() == '\r')) cur.pop_back();
      lines.push_back(std::move(cur));
      cur.clear();
      if (limit > 0 && lines.size() >= limit) done = true;
    }
  }
  gzclose(f);
  return lines;
}

void WriteLines(const std::string& path, const std::vector<std::string>& lines) {
  std::ostringstream os;
  for (const auto& l : lines) os << l << '\n';
  WriteFile(path, os.str());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "': no such file");
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write '" + path + "'");
  out << text;
  if (!out) throw std::runtime_error("cannot write '" + path + "'");
}

std::string DataFile(const std::string& dir, const std::string& split, const std::string& lang) {
  const std::string base = dir + "/" + split + "." + lang;
  if (std::filesystem::is_regular_file(base + ".gz")) return base + ".gz";
  if (std::filesystem::is_regular_file(base)) return base;
  throw std::runtime_error("data file not found: neither '" + base + ".gz' nor '" + base +
                           "' exists (check --data, the split name and the language)");
}

ParallelText ReadParallel(const std::string& src_path, const std::string& tgt_path,
                          size_t limit) {
  ParallelText p;
  p.src_path = src_path;
  p.tgt_path = tgt_path;
  p.src = ReadLines(src_path, limit);
  p.tgt = ReadLines(tgt_path, limit);
  if (p.src.size() != p.tgt.size())
    throw std::runtime_error("parallel files differ in length: '" + src_path + "' has " +
                             std::to_string(p.src.size()) + " lines, '" + tgt_path + "' has " +
                             std::to_string(p.tgt.size()));
  if (p.src.empty()) throw std::runtime_error("no sentences in '" + src_path + "'");
  return p;
}

}  // namespace mixserve::offline
