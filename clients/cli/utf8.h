// UTF-8 validity, checked before a line is sent: protobuf would log an error for a string
// field that is not UTF-8, and the server refuses it anyway.
#pragma once

#include <string>

namespace mixserve::cli {

// Byte offset of the first invalid sequence (overlong forms, surrogates and code points above
// U+10FFFF included), or -1 when `s` is valid UTF-8. The server applies the same rules.
long InvalidUtf8Offset(const std::string& s);

}  // namespace mixserve::cli
