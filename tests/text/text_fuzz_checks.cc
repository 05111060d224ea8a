#include "tests/text/text_fuzz_checks.h"

#include <cmath>
#include <cstdio>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "text/bleu.h"
#include "text/py_text.h"
#include "text/tokenizer.h"

namespace mixserve {
namespace fuzz {
namespace {

using text_internal::PyRStrip;
using text_internal::PySplit;

// Length of the well-formed sequence at s[i], 0 when it is ill formed (Table 3-7).
size_t WellFormedAt(const std::string& s, size_t i) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  auto in = [](unsigned char b, unsigned lo, unsigned hi) { return b >= lo && b <= hi; };
  const size_t left = s.size() - i;
  const unsigned char b0 = at(0);
  if (b0 <= 0x7F) return 1;
  if (in(b0, 0xC2, 0xDF)) return left >= 2 && in(at(1), 0x80, 0xBF) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (left < 3) return 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no UTF-16 surrogates
    return in(at(1), lo, hi) && in(at(2), 0x80, 0xBF) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (left < 4) return 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    return in(at(1), lo, hi) && in(at(2), 0x80, 0xBF) && in(at(3), 0x80, 0xBF) ? 4 : 0;
  }
  return 0;  // C0, C1, F5..FF and stray continuation bytes
}

bool IsAsciiPySpace(char c) {
  auto u = static_cast<unsigned char>(c);
  return (u >= 0x09 && u <= 0x0D) || (u >= 0x1C && u <= 0x20);
}

// Every occurrence of `from` replaced, scanning left to right (Python's str.replace).
std::string ReplaceEvery(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t pos = 0, hit;
  while ((hit = s.find(from, pos)) != std::string::npos) {
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  return out + s.substr(pos);
}

std::string Joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += w;
  return out;
}

// sacreBLEU's first 13a rule, r'([\{-\~\[-\` -\&\(-\+\:-\@\/])', written as its ranges.
bool IsSeparatedSymbol(char ch) {
  const std::string symbols = "{|}~[\\]^_` !\"#$%&()*+:;<=>?@/";
  return ch != ' ' && symbols.find(ch) != std::string::npos;
}

std::vector<std::string> Words(const std::string& sentence) {
  return PySplit(Tokenize13a(PyRStrip(sentence)));
}

bool Near(double a, double b) { return std::fabs(a - b) <= 1e-9 * std::max(1.0, std::fabs(b)); }

// Collects the first failed property.
struct Failures {
  std::string first;
  void Expect(bool ok, const std::string& what) {
    if (!ok && first.empty()) first = what;
  }
};

void CheckScore(const BleuScore& s, const std::string& what, Failures* f) {
  f->Expect(std::isfinite(s.score) && s.score >= 0 && s.score <= 100 + 1e-9,
            what + ": score " + std::to_string(s.score) + " outside [0, 100]");
  f->Expect(s.brevity_penalty >= 0 && s.brevity_penalty <= 1,
            what + ": brevity penalty " + std::to_string(s.brevity_penalty) + " outside [0, 1]");
  for (double p : s.precisions)
    f->Expect(std::isfinite(p) && p >= 0 && p <= 100 + 1e-9,
              what + ": precision " + std::to_string(p) + " outside [0, 100]");
}

void CheckWhitespaceHelpers(const std::string& s, Failures* f) {
  for (const auto& w : PySplit(s)) {
    f->Expect(!w.empty(), "PySplit returned an empty field");
    for (char c : w) f->Expect(!IsAsciiPySpace(c), "PySplit field holds white space");
  }
  const std::string r = PyRStrip(s);
  f->Expect(s.compare(0, r.size(), r) == 0, "PyRStrip result is not a prefix of its input");
  f->Expect(PyRStrip(r) == r, "PyRStrip is not idempotent");
  f->Expect(PySplit(r) == PySplit(s), "PyRStrip changed the fields of PySplit");
}

void CheckTokenize13a(const std::string& s, Failures* f) {
  const std::string t = Tokenize13a(s);
  if (IsWellFormedUtf8(s)) f->Expect(IsWellFormedUtf8(t), "Tokenize13a made UTF-8 ill formed");
  f->Expect(t.empty() || (t.front() != ' ' && t.back() != ' '),
            "Tokenize13a output starts or ends with a space");
  f->Expect(t.find("  ") == std::string::npos, "Tokenize13a output holds two spaces in a row");
  f->Expect(t.find('\n') == std::string::npos, "Tokenize13a output holds a newline");
  // 13a is not idempotent ("9...1" -> "9 . . .1" -> "9 . . . 1", in sacreBLEU too), but it
  // only inserts spaces and collapses white space after its four string replacements: the
  // non-space content is kept, in order.
  std::string pre = s;
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"<skipped>", ""}, {"-\n", ""}, {"\n", " "}})
    pre = ReplaceEvery(pre, from, to);
  if (pre.find('&') != std::string::npos)
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"&quot;", "\""}, {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}})
      pre = ReplaceEvery(pre, from, to);
  f->Expect(Joined(PySplit(pre)) == Joined(PySplit(t)),
            "Tokenize13a changed the text beyond spacing");
  // Each symbol of the first rule stands alone as a token.
  for (const auto& w : PySplit(t))
    for (char c : w)
      f->Expect(w.size() == 1 || !IsSeparatedSymbol(c),
                "13a token '" + w + "' holds a symbol that should stand alone");
}

void CheckBleu(const std::string& h, const std::string& r, Failures* f) {
  const size_t hyp_words = Words(h).size(), ref_words = Words(r).size();
  const BleuStats st = SentenceStats(h, {r});
  f->Expect(st.hyp_len == hyp_words, "hyp_len differs from the number of 13a tokens");
  f->Expect(st.ref_len == ref_words, "ref_len differs from the number of 13a tokens");
  for (int n = 0; n < kBleuOrder; ++n) {
    const double expect_total = hyp_words > static_cast<size_t>(n) ? hyp_words - n : 0;
    f->Expect(st.totals[n] == expect_total, "n-gram total of order " + std::to_string(n + 1) +
                                                " is not hyp_len - n + 1");
    f->Expect(st.matches[n] >= 0 && st.matches[n] <= st.totals[n],
              "matches of order " + std::to_string(n + 1) + " outside [0, total]");
  }
  const BleuScore sentence = SentenceBleu(h, {r});
  CheckScore(sentence, "SentenceBleu", f);
  if (hyp_words == 0) f->Expect(sentence.score == 0, "empty hypothesis scored above 0");
  const BleuScore corpus = CorpusBleu({h}, {r});
  CheckScore(corpus, "CorpusBleu", f);
  f->Expect(corpus.score == CorpusBleu(st).score, "CorpusBleu of texts differs from its stats");

  if (hyp_words > 0) {
    // A hypothesis scores 100 against itself, alone or among other references.
    f->Expect(Near(SentenceBleu(h, {h}).score, 100), "SentenceBleu(x, x) is not 100");
    f->Expect(Near(SentenceBleu(h, {r, h}).score, 100),
              "SentenceBleu(x, {y, x}) is not 100");
    // Corpus BLEU has no effective order: 100 needs a 4-gram.
    if (hyp_words >= static_cast<size_t>(kBleuOrder))
      f->Expect(Near(CorpusBleu({h}, {h}).score, 100), "CorpusBleu(x, x) is not 100");
  }
  // Statistics add up: BLEU of summed sentence statistics is corpus BLEU of the pair.
  BleuStats sum = st;
  sum += SentenceStats(r, {h});
  f->Expect(Near(CorpusBleu(sum).score, CorpusBleu({h, r}, {r, h}).score),
            "summed statistics disagree with corpus BLEU");
  bool threw = false;
  try {
    SentenceStats(h, {});
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  f->Expect(threw, "SentenceStats without references did not throw invalid_argument");
}

void CheckTokenizer(const std::string& s, const Tokenizer& tok, Failures* f) {
  const int vocab = tok.vocab_size();
  std::vector<int> ids;
  try {
    ids = tok.Encode(s);
  } catch (const std::runtime_error& e) {
    // Ill-formed UTF-8 may be refused, with a message; well-formed text never is.
    f->Expect(!IsWellFormedUtf8(s), std::string("Encode threw on well-formed text: ") + e.what());
    return;
  }
  for (int id : ids) {
    f->Expect(id >= 0 && id < vocab, "Encode returned id " + std::to_string(id) +
                                         " outside the vocabulary");
    f->Expect(id != Tokenizer::kPad && id != Tokenizer::kBos && id != Tokenizer::kEos,
              "Encode returned a control id");
  }
  f->Expect(tok.EncodePieces(s).size() == ids.size(), "EncodePieces and Encode disagree");
  f->Expect(IsWellFormedUtf8(tok.Decode(ids)), "Decode(Encode(x)) is not well-formed UTF-8");
  // Any in-range ids decode to well-formed text (what a model may emit).
  std::vector<int> arbitrary;
  for (unsigned char c : s) arbitrary.push_back((c * 7919 + static_cast<int>(arbitrary.size())) % vocab);
  f->Expect(IsWellFormedUtf8(tok.Decode(arbitrary)), "Decode of in-range ids is ill formed");
  bool threw = false;
  try {
    tok.Decode({vocab});
  } catch (const std::out_of_range&) {
    threw = true;
  }
  f->Expect(threw, "Decode of an id outside the vocabulary did not throw out_of_range");
}

// Code point -> UTF-8 (the caller avoids surrogates when it wants well-formed output).
std::string Utf8(uint32_t cp) {
  std::string o;
  if (cp < 0x80) {
    o += static_cast<char>(cp);
  } else if (cp < 0x800) {
    o += static_cast<char>(0xC0 | (cp >> 6));
    o += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    o += static_cast<char>(0xE0 | (cp >> 12));
    o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    o += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    o += static_cast<char>(0xF0 | (cp >> 18));
    o += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    o += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return o;
}

const char* const kFragments[] = {
    // 13a rules: separated symbols, '.'/',' next to digits or not, '-' after a digit.
    ".", ",", "-", "'", "1", "9", "0.5", "1,000", "3-4", "a.b", "e.g.", "...", "$", "%", "(",
    ")", "{", "}", "[", "]", "\\", "^", "_", "`", "~", "|", "/", ":", ";", "<", ">", "=", "?",
    "@", "!", "\"", "#", "*", "+", "&",
    // Entities and sacreBLEU's special strings.
    "&quot;", "&amp;", "&lt;", "&gt;", "&amp;quot;", "<skipped>", "-\n", "&",
    // Words.
    "a", "man", "dog", "Stra\xC3\x9F" "e", "\xC3\xBC" "ber", "caf\xC3\xA9",
    // White space: ASCII, Python's Unicode spaces, and a zero-width one that is not a space.
    " ", "  ", "\t", "\n", "\r\n", "\v", "\f", "\x1c", "\x1f", "\xC2\xA0", "\xC2\x85",
    "\xE3\x80\x80", "\xE2\x80\xA8", "\xE2\x80\x89", "\xE2\x80\x8B", "\xEF\xBB\xBF",
    // Control characters (NUL comes from Fragment()) and other code points.
    "\x01", "\x1b[31m", "\x7f", "\xC2\x80", "\xCC\x81",
    "\xE2\x82\xAC", "\xE6\xBC\xA2", "\xF0\x9F\x98\x80", "\xE2\x81\x87", "\xEF\xBF\xBD",
    "\xEF\xBC\x8E", "\xEF\xBC\x91",  // full-width '.' and '1' (NFKC folds them)
    // Ill-formed: overlong, surrogate, above U+10FFFF, stray and truncated sequences.
    "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xED\xBF\xBF", "\xF4\x90\x80\x80", "\xF8\x88",
    "\x80", "\xBF", "\xFE", "\xFF", "\xC3", "\xE2\x82", "\xF0\x9F\x98",
};

}  // namespace

bool IsWellFormedUtf8(const std::string& s) { return FirstIllFormedOffset(s) < 0; }

long FirstIllFormedOffset(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = WellFormedAt(s, i);
    if (n == 0) return static_cast<long>(i);
    i += n;
  }
  return -1;
}

std::string CheckTextPath(const std::string& h, const std::string& r, const Tokenizer* tok) {
  Failures f;
  try {
    CheckWhitespaceHelpers(h, &f);
    CheckTokenize13a(h, &f);
    CheckTokenize13a(r, &f);
    CheckBleu(h, r, &f);
    if (tok) CheckTokenizer(h, *tok, &f);
  } catch (const std::exception& e) {
    f.Expect(false, std::string("exception escaped: ") + e.what());
  }
  return f.first;
}

TextGenerator::TextGenerator(uint64_t seed, std::vector<std::string> sentences)
    : rng_(seed), sentences_(std::move(sentences)) {
  if (sentences_.empty()) sentences_.push_back("A man rides a horse.");
}

std::string TextGenerator::Fragment() {
  constexpr size_t kCount = sizeof(kFragments) / sizeof(kFragments[0]);
  switch (rng_() % 8) {
    case 0: {  // a random code point, surrogates skipped
      uint32_t cp;
      do cp = static_cast<uint32_t>(rng_() % 0x110000); while (cp >= 0xD800 && cp <= 0xDFFF);
      return Utf8(cp);
    }
    case 1:
      return std::string(1, static_cast<char>(rng_() & 0xFF));
    case 2:
      return std::string(1, '\0');
    default:
      return kFragments[rng_() % kCount];
  }
}

std::string TextGenerator::Mutate(std::string s) {
  const int edits = 1 + static_cast<int>(rng_() % 6);
  for (int e = 0; e < edits; ++e) {
    const size_t at = s.empty() ? 0 : rng_() % (s.size() + 1);
    switch (rng_() % 4) {
      case 0:
        s.insert(at, Fragment());
        break;
      case 1:
        if (at < s.size()) s.erase(at, 1 + rng_() % 3);
        break;
      case 2:
        if (at < s.size()) s[at] = static_cast<char>(rng_() & 0xFF);
        break;
      default:
        s = s.substr(0, at);  // truncation, possibly inside a multi-byte character
    }
  }
  return s;
}

std::string TextGenerator::Next() {
  const unsigned mode = rng_() % 20;
  const std::string& sentence = sentences_[rng_() % sentences_.size()];
  if (mode < 8) {
    std::string s;
    const int n = static_cast<int>(rng_() % 40);
    for (int i = 0; i < n; ++i) s += Fragment();
    return s;
  }
  if (mode < 14) return Mutate(sentence);
  if (mode < 17) return sentence;
  if (mode < 19) {
    std::string s(rng_() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng_() & 0xFF);
    return s;
  }
  // Long text: a sentence and fragments repeated to several kilobytes.
  std::string s;
  const size_t target = 2000 + rng_() % 30000;
  while (s.size() < target) s += (rng_() % 2 ? sentence + " " : Fragment());
  return s;
}

std::string Escape(const std::string& s) {
  std::string o;
  char buf[8];
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '\\' && c != '"') {
      o += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      o += buf;
    }
  }
  return o;
}

}  // namespace fuzz
}  // namespace mixserve
