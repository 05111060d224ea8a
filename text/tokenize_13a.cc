// sacreBLEU's "13a" tokenizer (Tokenizer13a + TokenizerRegexp of sacreBLEU 2.x), reproduced
// byte for byte on UTF-8 text.
//
// sacreBLEU applies four regular expressions to a Python str, one after the other, each with
// re.sub (leftmost, non-overlapping matches scanned left to right). Every pattern involves
// only ASCII characters or "[^0-9]", so running the same scan over UTF-8 bytes gives the same
// result: a multi-byte character can match "[^0-9]" only next to an ASCII '.' or ',', where
// its last (or first) byte stands in for it, and its other bytes can never start a match.
#include <string>

#include "text/bleu.h"
#include "text/py_text.h"

namespace mixserve {
namespace {

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    const size_t hit = s->find(from, pos);
    if (hit == std::string::npos) break;
    out.append(*s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  if (pos == 0) return;
  out.append(*s, pos, std::string::npos);
  *s = std::move(out);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsPeriodOrComma(char c) { return c == '.' || c == ','; }

// r'([\{-\~\[-\` -\&\(-\+\:-\@\/])' : { | } ~  [ \ ] ^ _ `  space ! " # $ % &  ( ) * +
// : ; < = > ? @  and /. Not: ' , - . digits letters.
bool IsSeparatedSymbol(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  return (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
         (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == 0x2F;
}

}  // namespace

std::string Tokenize13a(const std::string& input) {
  std::string line = input;
  ReplaceAll(&line, "<skipped>", "");
  ReplaceAll(&line, "-\n", "");
  ReplaceAll(&line, "\n", " ");
  if (line.find('&') != std::string::npos) {
    ReplaceAll(&line, "&quot;", "\"");
    ReplaceAll(&line, "&amp;", "&");
    ReplaceAll(&line, "&lt;", "<");
    ReplaceAll(&line, "&gt;", ">");
  }
  line = " " + line + " ";

  // 1. r' \1 ' around each separated symbol.
  std::string a;
  a.reserve(line.size() * 2);
  for (char c : line) {
    if (IsSeparatedSymbol(c)) {
      a += ' ';
      a += c;
      a += ' ';
    } else {
      a += c;
    }
  }

  // 2. r'([^0-9])([\.,])' -> r'\1 \2 ': period/comma not preceded by a digit.
  std::string b;
  b.reserve(a.size() * 2);
  for (size_t i = 0; i < a.size();) {
    if (i + 1 < a.size() && !IsDigit(a[i]) && IsPeriodOrComma(a[i + 1])) {
      b += a[i];
      b += ' ';
      b += a[i + 1];
      b += ' ';
      i += 2;
    } else {
      b += a[i++];
    }
  }

  // 3. r'([\.,])([^0-9])' -> r' \1 \2': period/comma not followed by a digit.
  std::string c;
  c.reserve(b.size() * 2);
  for (size_t i = 0; i < b.size();) {
    if (i + 1 < b.size() && IsPeriodOrComma(b[i]) && !IsDigit(b[i + 1])) {
      c += ' ';
      c += b[i];
      c += ' ';
      c += b[i + 1];
      i += 2;
    } else {
      c += b[i++];
    }
  }

  // 4. r'([0-9])(-)' -> r'\1 \2 ': dash preceded by a digit.
  std::string d;
  d.reserve(c.size() * 2);
  for (size_t i = 0; i < c.size();) {
    if (i + 1 < c.size() && IsDigit(c[i]) && c[i + 1] == '-') {
      d += c[i];
      d += " - ";
      i += 2;
    } else {
      d += c[i++];
    }
  }

  // ' '.join(line.split())
  std::string out;
  for (const auto& token : text_internal::PySplit(d)) {
    if (!out.empty()) out += ' ';
    out += token;
  }
  return out;
}

}  // namespace mixserve
