#include "text/sentences.h"

#include <unicode/brkiter.h>
#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/utext.h>
#include <unicode/utf8.h>

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace mixserve {
namespace {

// The code point at byte `i` of `s` (advancing `i`), or -1 for a malformed sequence.
UChar32 Next(const std::string& s, size_t* i) {
  UChar32 c;
  int32_t pos = static_cast<int32_t>(*i);
  U8_NEXT(reinterpret_cast<const uint8_t*>(s.data()), pos, static_cast<int32_t>(s.size()), c);
  *i = static_cast<size_t>(pos);
  return c;
}

// [begin, end) of `s` without the white space around it; begin == end when all is white space.
TextSpan Trimmed(const std::string& s, size_t begin, size_t end) {
  TextSpan t{end, end};
  for (size_t i = begin; i < end;) {
    size_t at = i;
    UChar32 c = Next(s, &i);
    if (c >= 0 && u_isUWhiteSpace(c)) continue;
    if (t.begin == end) t.begin = at;
    t.end = i;
  }
  if (t.begin == end) t.end = end;
  return t;
}

// One sentence break iterator per language, cloned for each call (creating one reads ICU's
// rule data: far slower than a clone).
std::unique_ptr<icu::BreakIterator> SentenceIterator(const std::string& language) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<icu::BreakIterator>> prototypes;
  std::lock_guard<std::mutex> lock(mu);
  auto it = prototypes.find(language);
  if (it == prototypes.end()) {
    std::string id = language;
    for (char& c : id)
      if (c == '-') c = '_';
    // ss=standard: the locale's list of abbreviations after which a period ends no sentence.
    // English only: measured on paragraphs of five Multi30k test sentences (2,000 of each
    // language), it keeps "Mr. Smith" together and changes nothing else in English (13 of
    // 400 paragraphs resegmented with or without it), while ICU's German list merges
    // ordinary sentences (139 of 400 against 7 without it).
    const std::string primary = id.substr(0, id.find('_'));
    if (primary == "en") id += "@ss=standard";
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<icu::BreakIterator> bi(
        icu::BreakIterator::createSentenceInstance(icu::Locale(id.c_str()), status));
    if (U_FAILURE(status) || !bi) {
      status = U_ZERO_ERROR;
      bi.reset(icu::BreakIterator::createSentenceInstance(icu::Locale::getRoot(), status));
    }
    if (U_FAILURE(status) || !bi)
      throw std::runtime_error(std::string("ICU sentence rules unavailable: ") +
                               u_errorName(status));
    it = prototypes.emplace(language, std::move(bi)).first;
  }
  return std::unique_ptr<icu::BreakIterator>(it->second->clone());
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && IsSpace(s[b])) ++b;
  while (e > b && IsSpace(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Byte offsets where `s` may be cut at `level`: 0 after clause punctuation followed by a
// space, 1 at spaces. Each unit keeps its delimiter at its end.
std::vector<std::string> Units(const std::string& s, int level) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    bool cut = false;
    if (level == 0) {
      const char c = s[i];
      // ASCII clause marks, or the last byte of an en or em dash (U+2013/2014: E2 80 93/94).
      bool mark = c == ',' || c == ';' || c == ':' || c == ')' || c == ']' ||
                  (i >= 2 && static_cast<unsigned char>(s[i - 2]) == 0xE2 &&
                   static_cast<unsigned char>(s[i - 1]) == 0x80 &&
                   (static_cast<unsigned char>(c) == 0x93 || static_cast<unsigned char>(c) == 0x94)) ||
                  (c == '-' && i > 0 && s[i - 1] == ' ');
      cut = mark && s[i + 1] == ' ';
    } else {
      cut = s[i] == ' ' && s[i + 1] != ' ';
    }
    if (cut) {
      out.push_back(s.substr(start, i + 1 - start));
      start = i + 1;
    }
  }
  out.push_back(s.substr(start));
  return out;
}

void Cut(const std::string& s, int level, size_t max_tokens,
         const std::function<size_t(const std::string&)>& count, std::vector<std::string>* out) {
  const std::string t = Trim(s);
  if (t.empty()) return;
  if (count(t) <= max_tokens) {
    out->push_back(t);
    return;
  }
  if (level == 2) {
    // One word above the budget: as many whole UTF-8 characters as fit, then the rest.
    size_t i = 0, end = 0;
    while (i < t.size()) {
      size_t next = i;
      if (Next(t, &next) < 0) next = i + 1;
      if (end > 0 && count(t.substr(0, next)) > max_tokens) break;
      end = next;
      i = next;
    }
    out->push_back(t.substr(0, end));
    if (end < t.size()) Cut(t.substr(end), 2, max_tokens, count, out);
    return;
  }
  const std::vector<std::string> units = Units(t, level);
  if (units.size() == 1) return Cut(t, level + 1, max_tokens, count, out);
  std::string current;
  for (const auto& u : units) {
    const std::string joined = current + u;
    if (count(Trim(joined)) <= max_tokens) {
      current = joined;
      continue;
    }
    if (!Trim(current).empty()) out->push_back(Trim(current));
    current.clear();
    if (count(Trim(u)) <= max_tokens) {
      current = u;
      continue;
    }
    // Cut the unit finer; its last piece may still share a piece with the units after it.
    std::vector<std::string> finer;
    Cut(u, level + 1, max_tokens, count, &finer);
    if (finer.empty()) continue;
    out->insert(out->end(), finer.begin(), finer.end() - 1);
    current = finer.back() + (IsSpace(u.back()) ? " " : "");
  }
  if (!Trim(current).empty()) out->push_back(Trim(current));
}

}  // namespace

std::vector<TextSpan> SplitSentences(const std::string& text, const std::string& language) {
  for (size_t i = 0; i < text.size();)
    if (Next(text, &i) < 0)
      throw std::invalid_argument("text is not valid UTF-8 (byte offset " +
                                  std::to_string(i) + ")");
  std::vector<TextSpan> spans;
  if (text.empty()) return spans;
  auto bi = SentenceIterator(language);
  UErrorCode status = U_ZERO_ERROR;
  UText* ut = utext_openUTF8(nullptr, text.data(), static_cast<int64_t>(text.size()), &status);
  if (U_FAILURE(status)) throw std::runtime_error(std::string("ICU: ") + u_errorName(status));
  bi->setText(ut, status);
  if (U_FAILURE(status)) {
    utext_close(ut);
    throw std::runtime_error(std::string("ICU: ") + u_errorName(status));
  }
  // With UTF-8 text, ICU's boundaries are byte offsets.
  int32_t start = bi->first();
  for (int32_t end = bi->next(); end != icu::BreakIterator::DONE; start = end, end = bi->next()) {
    TextSpan t = Trimmed(text, static_cast<size_t>(start), static_cast<size_t>(end));
    if (t.size() > 0) spans.push_back(t);
  }
  utext_close(ut);
  return spans;
}

std::string JoinSentences(const std::string& text, const std::vector<TextSpan>& spans,
                          const std::vector<std::string>& replacements,
                          std::vector<TextSpan>* placed) {
  if (replacements.size() != spans.size())
    throw std::invalid_argument("JoinSentences: " + std::to_string(replacements.size()) +
                                " replacements for " + std::to_string(spans.size()) + " spans");
  std::string out;
  if (placed) placed->clear();
  size_t at = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    out.append(text, at, spans[i].begin - at);
    if (placed) placed->push_back({out.size(), out.size() + replacements[i].size()});
    out += replacements[i];
    at = spans[i].end;
  }
  out.append(text, at, std::string::npos);
  return out;
}

std::vector<std::string> CutSentence(const std::string& sentence, size_t max_tokens,
                                     const std::function<size_t(const std::string&)>& count) {
  if (max_tokens == 0) throw std::invalid_argument("CutSentence: max_tokens is 0");
  std::vector<std::string> out;
  Cut(sentence, 0, max_tokens, count, &out);
  return out;
}

}  // namespace mixserve
