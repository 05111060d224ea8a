#include "text/text_files.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace mixserve {

void ForEachTextLine(const std::string& path,
                     const std::function<bool(const std::string&)>& on_line) {
  // gzopen reads uncompressed files transparently.
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    throw std::runtime_error("cannot open text file " + path + ": " + std::strerror(errno));
  }
  std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(file, gzclose);
  gzbuffer(file, 1 << 17);

  std::string line;
  char buf[1 << 16];
  auto emit = [&]() {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const bool go_on = on_line(line);
    line.clear();
    return go_on;
  };
  for (;;) {
    const int n = gzread(file, buf, sizeof(buf));
    if (n < 0) {
      int code = 0;
      const char* msg = gzerror(file, &code);
      throw std::runtime_error("cannot read text file " + path + ": " +
                               (msg != nullptr ? msg : "zlib error"));
    }
    if (n == 0) break;
    const char* p = buf;
    const char* end = buf + n;
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
      if (nl == nullptr) {
        line.append(p, end);
        break;
      }
      line.append(p, nl);
      if (!emit()) return;
      p = nl + 1;
    }
  }
  // At the end of the input, Z_BUF_ERROR means a gzip stream that stops in the middle.
  int code = Z_OK;
  const char* msg = gzerror(file, &code);
  if (code != Z_OK) {
    throw std::runtime_error("cannot read text file " + path + ": " +
                             (code == Z_BUF_ERROR ? std::string("truncated gzip data")
                                                  : std::string(msg != nullptr ? msg : "zlib error")));
  }
  if (!line.empty()) emit();
}

std::vector<std::string> ReadTextLines(const std::string& path, std::size_t max_lines) {
  std::vector<std::string> lines;
  ForEachTextLine(path, [&](const std::string& line) {
    lines.push_back(line);
    return max_lines == 0 || lines.size() < max_lines;
  });
  return lines;
}

}  // namespace mixserve
