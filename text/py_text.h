// Python str semantics that sacreBLEU relies on, for UTF-8 std::string (internal to text/).
#pragma once

#include <string>
#include <vector>

namespace mixserve {
namespace text_internal {

// str.split() with no argument: splits on runs of Unicode whitespace (str.isspace: ASCII
// \t\n\v\f\r, \x1c-\x1f and space, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000) and drops empty fields. Bytes that are not valid UTF-8 count as
// non-space characters.
std::vector<std::string> PySplit(const std::string& s);

// str.rstrip() with no argument.
std::string PyRStrip(const std::string& s);

}  // namespace text_internal
}  // namespace mixserve
