#include "text/py_text.h"

#include <cstdint>

namespace mixserve {
namespace text_internal {
namespace {

bool IsPySpace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// Length in bytes of the character at s[i] and whether it is whitespace. Invalid UTF-8 gives a
// one-byte non-space character.
size_t CharAt(const std::string& s, size_t i, bool* space) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  *space = false;
  if (b0 < 0x80) {
    *space = IsPySpace(b0);
    return 1;
  }
  size_t len = 0;
  uint32_t c = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    c = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    c = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    c = b0 & 0x07;
  } else {
    return 1;
  }
  if (i + len > s.size()) return 1;
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 1;
    c = (c << 6) | (b & 0x3F);
  }
  *space = IsPySpace(c);
  return len;
}

}  // namespace

std::vector<std::string> PySplit(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0, start = 0;
  bool in_word = false;
  while (i < s.size()) {
    bool space = false;
    const size_t len = CharAt(s, i, &space);
    if (space) {
      if (in_word) out.emplace_back(s, start, i - start);
      in_word = false;
    } else if (!in_word) {
      in_word = true;
      start = i;
    }
    i += len;
  }
  if (in_word) out.emplace_back(s, start, s.size() - start);
  return out;
}

std::string PyRStrip(const std::string& s) {
  size_t end = 0;  // end of the last non-space character
  size_t i = 0;
  while (i < s.size()) {
    bool space = false;
    const size_t len = CharAt(s, i, &space);
    i += len;
    if (!space) end = i;
  }
  return s.substr(0, end);
}

}  // namespace text_internal
}  // namespace mixserve
