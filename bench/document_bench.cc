// document_bench: what TranslateDocument adds to the translation of real text, against a
// running server. Results: docs/performance.md, "Documents";
// docs/results.md, "Long sentences and paragraphs".
//
//   speed  N sentences of a test set (its lines that are one sentence each) as one
//          TranslateBatch and as one TranslateDocument (one sentence a line), alternating, R
//          times each: median wall time of each, the document's overhead, and whether both
//          gave the same translations.
//   bleu   every sentence of a test set one by one (Translate); paragraphs of 5 consecutive
//          sentences as documents; corpus BLEU of the paragraphs against the 5 references
//          joined, the one-by-one translations joined the same way beside it; and the BLEU of
//          the sentences over --long_tokens source tokens, with how they ran (whole or in
//          pieces); and long sentences made of --joined consecutive sentences joined with
//          "; " (references joined the same way), with their length and how they ran.
#include <absl/flags/flag.h>
#include <absl/flags/parse.h>
#include <absl/flags/usage.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "mixserve/v1/translation.grpc.pb.h"
#include "text/bleu.h"
#include "text/sentences.h"
#include "text/text_files.h"

ABSL_FLAG(std::string, target, "localhost:8500", "server address");
ABSL_FLAG(std::string, variant, "en-de-base", "model variant to ask for");
ABSL_FLAG(std::string, from, "en", "source language");
ABSL_FLAG(std::string, to, "de", "target language");
ABSL_FLAG(std::string, source, "data/multi30k/test_2016_flickr.en.gz", "source sentences");
ABSL_FLAG(std::string, reference, "data/multi30k/test_2016_flickr.de.gz", "references (bleu)");
ABSL_FLAG(std::string, mode, "all", "speed, bleu or all");
ABSL_FLAG(int, sentences, 1000, "speed: sentences of the document (the test set repeats)");
ABSL_FLAG(int, repeats, 5, "speed: timed calls of each kind");
ABSL_FLAG(int, paragraph, 5, "bleu: sentences joined into one paragraph");
ABSL_FLAG(int, long_tokens, 40, "bleu: a long sentence has more source tokens than this");
ABSL_FLAG(int, joined, 4,
          "bleu: also translate long sentences made of this many consecutive test sentences "
          "joined with \"; \" (0: not)");

namespace mixserve {
namespace {

namespace pb = ::mixserve::v1;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void Check(const grpc::Status& s, const char* what) {
  if (s.ok()) return;
  std::cerr << "document_bench: " << what << ": " << s.error_message() << "\n";
  std::exit(1);
}

void Prepare(grpc::ClientContext* c) {
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
}

template <typename R>
void Fill(R* r) {
  r->set_source_language(absl::GetFlag(FLAGS_from));
  r->set_target_language(absl::GetFlag(FLAGS_to));
  r->mutable_variant()->set_name(absl::GetFlag(FLAGS_variant));
}

int Speed(pb::TranslationService::Stub& stub, const std::vector<std::string>& lines) {
  const size_t n = static_cast<size_t>(absl::GetFlag(FLAGS_sentences));
  pb::TranslateBatchRequest batch;
  pb::TranslateDocumentRequest doc;
  Fill(&batch);
  Fill(&doc);
  // Lines that are one sentence each (a few captions hold two), so that the document's
  // sentences are the batch's texts.
  std::vector<std::string> single;
  for (const auto& l : lines)
    if (SplitSentences(l, absl::GetFlag(FLAGS_from)).size() == 1) single.push_back(l);
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    const std::string& s = single[i % single.size()];
    batch.add_texts(s);
    text += s + "\n";
  }
  doc.set_text(text);
  doc.set_return_segments(true);
  std::vector<double> batch_ms, doc_ms;
  int segments = 0, differing = 0;
  for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
    pb::TranslateBatchResponse br;
    pb::TranslateDocumentResponse dr;
    grpc::ClientContext c1, c2;
    Prepare(&c1);
    Prepare(&c2);
    auto t0 = Clock::now();
    Check(stub.TranslateBatch(&c1, batch, &br), "TranslateBatch");
    auto t1 = Clock::now();
    Check(stub.TranslateDocument(&c2, doc, &dr), "TranslateDocument");
    auto t2 = Clock::now();
    batch_ms.push_back(Ms(t1 - t0));
    doc_ms.push_back(Ms(t2 - t1));
    segments = dr.segments_size();
    differing = 0;
    if (segments == br.translations_size())
      for (int i = 0; i < segments; ++i)
        differing += dr.segments(i).translation() != br.translations(i).translation();
  }
  const bool same = segments == static_cast<int>(n) && differing == 0;
  const double b = Median(batch_ms), d = Median(doc_ms);
  std::printf("| call | sentences | median ms | min ms | max ms |\n|---|---|---|---|---|\n");
  std::printf("| TranslateBatch | %zu | %.1f | %.1f | %.1f |\n", n, b,
              *std::min_element(batch_ms.begin(), batch_ms.end()),
              *std::max_element(batch_ms.begin(), batch_ms.end()));
  std::printf("| TranslateDocument | %zu | %.1f | %.1f | %.1f |\n", n, d,
              *std::min_element(doc_ms.begin(), doc_ms.end()),
              *std::max_element(doc_ms.begin(), doc_ms.end()));
  // What the server adds for a document, timed here in process with the same code: the
  // split into sentences and the reassembly (median of 20).
  std::vector<double> split_ms;
  std::vector<std::string> same_text;
  for (int r = 0; r < 20; ++r) {
    auto t0 = Clock::now();
    const auto spans = SplitSentences(text, absl::GetFlag(FLAGS_from));
    same_text.clear();
    for (const auto& sp : spans) same_text.push_back(text.substr(sp.begin, sp.size()));
    const std::string back = JoinSentences(text, spans, same_text);
    split_ms.push_back(Ms(Clock::now() - t0));
    if (back != text) std::printf("reassembly changed the text\n");
  }
  const double split = Median(split_ms);
  std::printf("\ndocument against batch: median %+.1f%%, best %+.1f%%; splitting and "
              "reassembly in process: %.2f ms (%.3f%% of the batch's median); %d sentences in "
              "the document, %d translations differ from the batch's (last call)\n",
              100.0 * (d / b - 1.0),
              100.0 * (*std::min_element(doc_ms.begin(), doc_ms.end()) /
                           *std::min_element(batch_ms.begin(), batch_ms.end()) -
                       1.0),
              split, 100.0 * split / b, segments, differing);
  return same ? 0 : 1;
}

std::string Joined(const std::vector<std::string>& v, size_t from, size_t count) {
  std::string out;
  for (size_t i = from; i < from + count && i < v.size(); ++i) out += (out.empty() ? "" : " ") + v[i];
  return out;
}

int Bleu(pb::TranslationService::Stub& stub, const std::vector<std::string>& src,
         const std::vector<std::string>& ref) {
  if (src.size() != ref.size()) {
    std::cerr << "document_bench: --source has " << src.size() << " lines, --reference "
              << ref.size() << "\n";
    return 2;
  }
  // One by one.
  std::vector<std::string> one(src.size());
  std::vector<int> tokens(src.size()), pieces(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    pb::TranslateRequest r;
    Fill(&r);
    r.set_text(src[i]);
    pb::TranslateResponse out;
    grpc::ClientContext c;
    Prepare(&c);
    Check(stub.Translate(&c, r, &out), "Translate");
    one[i] = out.translation();
    tokens[i] = out.input_tokens();
    pieces[i] = out.pieces();
  }
  // Paragraphs as documents: `sentences` in groups of k, each group one TranslateDocument;
  // returns how many came back with another sentence count than k.
  const size_t k = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_paragraph)));
  auto documents = [&](const std::vector<std::string>& sentences,
                       std::vector<std::string>* hyps) {
    size_t resegmented = 0;
    for (size_t i = 0; i < sentences.size(); i += k) {
      pb::TranslateDocumentRequest d;
      Fill(&d);
      d.set_text(Joined(sentences, i, k));
      pb::TranslateDocumentResponse out;
      grpc::ClientContext c;
      Prepare(&c);
      Check(stub.TranslateDocument(&c, d, &out), "TranslateDocument");
      resegmented += static_cast<size_t>(out.sentences()) != std::min(k, sentences.size() - i);
      hyps->push_back(out.translation());
    }
    return resegmented;
  };
  std::vector<std::string> para_hyp, para_one, para_ref;
  const size_t resegmented = documents(src, &para_hyp);
  for (size_t i = 0; i < src.size(); i += k) {
    para_one.push_back(Joined(one, i, k));
    para_ref.push_back(Joined(ref, i, k));
  }
  // The same paragraphs with a full stop at the end of every sentence that has no final
  // punctuation (many captions have none, and ICU then reads two of them as one sentence).
  std::vector<std::string> stopped(src);
  for (auto& x : stopped) {
    while (!x.empty() && x.back() == ' ') x.pop_back();
    if (!x.empty() && x.back() != '.' && x.back() != '!' && x.back() != '?') x += '.';
  }
  std::vector<std::string> stop_hyp;
  const size_t stop_resegmented = documents(stopped, &stop_hyp);
  // Long sentences.
  const int long_tokens = absl::GetFlag(FLAGS_long_tokens);
  std::vector<std::string> long_hyp, long_ref;
  size_t split = 0;
  for (size_t i = 0; i < src.size(); ++i)
    if (tokens[i] > long_tokens) {
      long_hyp.push_back(one[i]);
      long_ref.push_back(ref[i]);
      split += pieces[i] > 1;
    }
  std::printf("| input | units | BLEU |\n|---|---|---|\n");
  std::printf("| sentences one by one | %zu | %.2f |\n", src.size(), CorpusBleu(one, ref).score);
  std::printf("| paragraphs of %zu as documents | %zu | %.2f |\n", k, para_hyp.size(),
              CorpusBleu(para_hyp, para_ref).score);
  std::printf("| the same sentences one by one, joined | %zu | %.2f |\n", para_one.size(),
              CorpusBleu(para_one, para_ref).score);
  std::printf("| paragraphs of %zu, every sentence ending in . ! or ? | %zu | %.2f |\n", k,
              stop_hyp.size(), CorpusBleu(stop_hyp, para_ref).score);
  if (!long_hyp.empty())
    std::printf("| sentences over %d tokens, one by one (%zu of them in pieces) | %zu | %.2f |\n",
                long_tokens, split, long_hyp.size(), CorpusBleu(long_hyp, long_ref).score);
  else
    std::printf("| sentences over %d tokens | 0 | - |\n", long_tokens);
  std::printf("\nparagraphs whose sentence count differs from %zu after segmentation: %zu (with "
              "final punctuation everywhere: %zu)\n",
              k, resegmented, stop_resegmented);
  const size_t j = static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_joined)));
  if (j > 1) {
    auto join = [](const std::vector<std::string>& v, size_t from, size_t count) {
      std::string out;
      for (size_t i = from; i < from + count; ++i) {
        std::string x = v[i];
        while (!x.empty() && (x.back() == '.' || x.back() == ' ')) x.pop_back();
        out += (out.empty() ? "" : "; ") + x;
      }
      return out + ".";
    };
    std::vector<std::string> hyp, ref_joined, one_joined;
    double tokens_sum = 0;
    size_t in_pieces = 0, count = 0;
    for (size_t i = 0; i + j <= src.size(); i += j, ++count) {
      pb::TranslateRequest r;
      Fill(&r);
      r.set_text(join(src, i, j));
      pb::TranslateResponse out;
      grpc::ClientContext c;
      Prepare(&c);
      Check(stub.Translate(&c, r, &out), "Translate");
      hyp.push_back(out.translation());
      tokens_sum += out.input_tokens();
      in_pieces += out.pieces() > 1;
      ref_joined.push_back(join(ref, i, j));
      one_joined.push_back(join(one, i, j));
    }
    std::printf("\n| %zu sentences joined with \"; \" | units | mean tokens | in pieces | BLEU |\n"
                "|---|---|---|---|---|\n", j);
    std::printf("| translated as one sentence | %zu | %.1f | %zu | %.2f |\n", count,
                tokens_sum / std::max<size_t>(1, count), in_pieces,
                CorpusBleu(hyp, ref_joined).score);
    std::printf("| the sentences one by one, joined | %zu | - | - | %.2f |\n", count,
                CorpusBleu(one_joined, ref_joined).score);
  }
  return 0;
}

}  // namespace
}  // namespace mixserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "document_bench --target=HOST:PORT [--mode=speed|bleu|all] [--variant=NAME]: what "
      "TranslateDocument adds to translating a test set (speed, BLEU)");
  absl::ParseCommandLine(argc, argv);
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials());
  auto stub = mixserve::v1::TranslationService::NewStub(channel);
  const auto src = mixserve::ReadTextLines(absl::GetFlag(FLAGS_source));
  const std::string mode = absl::GetFlag(FLAGS_mode);
  int rc = 0;
  if (mode == "speed" || mode == "all") rc |= mixserve::Speed(*stub, src);
  if (mode == "bleu" || mode == "all") {
    if (mode == "all") std::printf("\n");
    rc |= mixserve::Bleu(*stub, src, mixserve::ReadTextLines(absl::GetFlag(FLAGS_reference)));
  }
  return rc;
}
