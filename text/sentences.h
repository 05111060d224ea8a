// Sentence segmentation of documents and clause cutting of over-long sentences. Torch-free
// and protobuf-free; ICU does the sentence rules (docs/server.md, "Documents").
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace mixserve {

// A sentence of a document: bytes [begin, end) of the UTF-8 text, without the white space
// around it.
struct TextSpan {
  size_t begin = 0, end = 0;
  size_t size() const { return end - begin; }
};

// Splits UTF-8 `text` into sentences with ICU's sentence break rules for `language` (BCP 47,
// e.g. "en", "de"; "" or unknown: the root rules), for English with ICU's abbreviation
// suppressions ("Mr. Smith" stays one sentence; sentences.cc says why English only). A line
// break always ends a sentence, so
// a file of one sentence per line gives one span a line. Spans are in order, do not overlap,
// hold no leading or trailing white space and together cover every character of `text` that is
// not white space. Throws std::invalid_argument when `text` is not valid UTF-8.
std::vector<TextSpan> SplitSentences(const std::string& text, const std::string& language);

// `text` with the span `i` replaced by `replacements[i]` for every span: the white space between
// sentences (paragraph breaks included), before the first and after the last, is kept as it is.
std::string JoinSentences(const std::string& text, const std::vector<TextSpan>& spans,
                          const std::vector<std::string>& replacements,
                          std::vector<TextSpan>* placed = nullptr);

// Cuts one sentence into pieces of at most `max_tokens` tokens each (`count` gives the token
// count of a piece of text), preferring, in this order: clause boundaries (after , ; : and
// dashes and brackets followed by a space), then word boundaries (spaces), then the token
// budget alone (a single word longer than the budget: cut between UTF-8 characters). Pieces are
// trimmed of white space and hold every non-space character of `sentence` in order. A sentence
// that fits comes back as one piece.
std::vector<std::string> CutSentence(const std::string& sentence, size_t max_tokens,
                                     const std::function<size_t(const std::string&)>& count);

}  // namespace mixserve
