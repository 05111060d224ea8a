// Real text through the real server: documents split into sentences and put back together,
// sentences beyond the model's max_len (whole on the long-sentence engine, or in pieces), and
// streams and documents that hold more sentences than the variant's queue.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/server/support/server_fixture.h"
#include "text/tokenizer.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;

class DocumentE2E : public ::testing::Test {
 protected:
  void Start(const std::string& extra = "", const std::vector<ModelDef>& more = {}) {
    repo_ = StandardRepository();
    for (const auto& d : more) CreateModel(repo_, d);
    std::string error;
    ASSERT_TRUE(server_.Start("model_repository: \"" + repo_ + "\"\n" + extra, {}, &error))
        << error;
    stub_ = server_.Translation();
  }
  // Translate of one text by `variant`; "" with the failure recorded when it fails.
  v1::TranslateResponse One(const std::string& text, const std::string& variant = "en-de-base") {
    v1::TranslateRequest r = Request(text);
    r.mutable_variant()->set_name(variant);
    v1::TranslateResponse out;
    grpc::ClientContext c;
    grpc::Status s = stub_->Translate(&c, r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }
  v1::TranslateDocumentRequest Document(const std::string& text, bool segments = true) {
    v1::TranslateDocumentRequest d;
    d.set_text(text);
    d.set_source_language("en");
    d.set_target_language("de");
    d.mutable_variant()->set_name("en-de-base");
    d.set_return_segments(segments);
    return d;
  }
  grpc::Status Translate(const v1::TranslateDocumentRequest& d,
                         v1::TranslateDocumentResponse* out) {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    return stub_->TranslateDocument(&c, d, out);
  }
  // A sentence of at least `tokens` tokens for the test tokenizer, from corpus words.
  static std::string LongSentence(size_t tokens) {
    auto tok = Tokenizer::Load(TokenizerPath());
    std::string s;
    const auto words = Sentences("en", 40);
    for (size_t i = 0; tok->Encode(s).size() < tokens; ++i) {
      std::string w = words[i % words.size()];
      if (!w.empty() && w.back() == '.') w.pop_back();
      s += (s.empty() ? "" : ", and ") + w;
    }
    return s + ".";
  }

  std::string repo_;
  ServerProcess server_;
  std::unique_ptr<v1::TranslationService::Stub> stub_;
};

TEST_F(DocumentE2E, ParagraphComesBackAsItsSentencesWithTheBreakKept) {
  Start();
  const auto s = Sentences("en", 5);
  const std::string text = "  " + s[0] + " " + s[1] + "\n\n" + s[2] + "  " + s[3] + "\n" + s[4] + "\n";
  v1::TranslateDocumentResponse out;
  grpc::Status st = Translate(Document(text), &out);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(out.sentences(), 5);
  ASSERT_EQ(out.segments_size(), 5);
  EXPECT_EQ(out.variant().name(), "en-de-base");
  std::vector<std::string> t;
  for (int i = 0; i < 5; ++i) {
    const auto& seg = out.segments(i);
    EXPECT_EQ(seg.source(), s[i]);
    EXPECT_EQ(text.substr(seg.source_offset(), seg.source_length()), s[i]);
    t.push_back(One(s[i]).translation());
    EXPECT_EQ(seg.translation(), t[i]) << i;  // the same as the sentence alone
    EXPECT_EQ(out.translation().substr(seg.translation_offset(), seg.translation_length()), t[i]);
    EXPECT_EQ(seg.pieces(), 1);
  }
  EXPECT_EQ(out.translation(),
            "  " + t[0] + " " + t[1] + "\n\n" + t[2] + "  " + t[3] + "\n" + t[4] + "\n");
  EXPECT_GT(out.input_tokens(), 0);
  // Without return_segments: the same text, no alignment.
  v1::TranslateDocumentResponse plain;
  ASSERT_TRUE(Translate(Document(text, false), &plain).ok());
  EXPECT_EQ(plain.translation(), out.translation());
  EXPECT_EQ(plain.segments_size(), 0);
}

TEST_F(DocumentE2E, DocumentsOverTheLimitsAreRefusedNamingTheLimit) {
  Start("limits { max_document_bytes: 2000 max_document_sentences: 4 }\n");
  v1::TranslateDocumentResponse out;
  grpc::Status st = Translate(Document(std::string(1990, 'a') + " b c d e f g."), &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(),
            "text is 2003 bytes, above the limit of 2000 (limits.max_document_bytes)");
  st = Translate(Document("One dog. Two dogs. Three dogs. Four dogs. Five dogs."), &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(),
            "text has 5 sentences, above the limit of 4 (limits.max_document_sentences)");
  st = Translate(Document(" \n\n "), &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto bad = Document("Dogs run.");
  bad.mutable_options()->set_beam_size(2);
  bad.mutable_options()->set_n_best(2);
  st = Translate(bad, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("n_best"), std::string::npos) << st.error_message();
  // Within the limits it is translated.
  st = Translate(Document("One dog. Two dogs. Three dogs. Four dogs."), &out);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(out.sentences(), 4);
}

TEST_F(DocumentE2E, SentenceOf300PiecesIsTranslatedByTheBaseVariant) {
  Start("models { name: \"en-de-base\" }\n"
        "models { name: \"en-de-alt\" max_sentence_tokens: 510 }\n");
  const std::string s = LongSentence(300);
  // By default in pieces of at most 34 tokens (three quarters of max_len 48 - 2).
  v1::TranslateResponse r = One(s);
  EXPECT_GE(r.input_tokens(), 300);
  EXPECT_GE(r.pieces(), 9);
  EXPECT_EQ(r.variant().name(), "en-de-base");
  // With max_sentence_tokens, whole on the long-sentence engine, greedy and beam (the random
  // test models end most greedy translations at once).
  r = One(s, "en-de-alt");
  EXPECT_GE(r.input_tokens(), 300);
  EXPECT_EQ(r.pieces(), 0);
  v1::TranslateRequest beam = Request(s);
  beam.mutable_variant()->set_name("en-de-alt");
  beam.mutable_options()->set_beam_size(4);
  v1::TranslateResponse b;
  grpc::ClientContext c;
  grpc::Status st = stub_->Translate(&c, beam, &b);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(b.pieces(), 0);
  // Above max_sentence_tokens: pieces again.
  EXPECT_GE(One(LongSentence(600), "en-de-alt").pieces(), 18);
}

TEST_F(DocumentE2E, LongSentencesOfFixedLengthMixersAreTranslatedInPieces) {
  ModelDef alr{"en-de-alr", 1, "en", "de", "alr", 44};
  // max_sentence_tokens cannot apply to a mixer of fixed length: it is ignored (logged).
  Start("models { name: \"en-de-alr\" max_sentence_tokens: 510 }\n"
        "models { name: \"en-de-base\" }\n",
        {alr});
  const std::string s = LongSentence(120);
  for (const std::string variant : {"en-de-alr", "en-de-base"}) {
    SCOPED_TRACE(variant);
    v1::TranslateResponse r = One(s, variant);
    EXPECT_GE(r.pieces(), 4) << "120 tokens in pieces of at most 34";
    EXPECT_GE(r.input_tokens(), 120);
  }
  EXPECT_NE(server_.Log().find("model en-de-alr version 1: max_sentence_tokens ignored"),
            std::string::npos);
  // In a document too, where the segment says so.
  v1::TranslateDocumentResponse doc;
  auto d = Document(Sentences("en", 1)[0] + "\n" + s + "\n");
  d.mutable_variant()->set_name("en-de-alr");
  ASSERT_TRUE(Translate(d, &doc).ok());
  ASSERT_EQ(doc.segments_size(), 2);
  EXPECT_EQ(doc.segments(0).pieces(), 1);  // a sentence that fits runs whole
  EXPECT_GE(doc.segments(1).pieces(), 4);
  EXPECT_EQ(doc.split_sentences(), 1);
  // max_input_tokens still refuses, naming the limit.
  ServerProcess capped;
  std::string error;
  ASSERT_TRUE(capped.Start("model_repository: \"" + repo_ +
                               "\"\nmodels { name: \"en-de-base\" max_input_tokens: 100 }\n",
                           {}, &error))
      << error;
  v1::TranslateRequest r = Request(s);
  r.mutable_variant()->set_name("en-de-base");
  v1::TranslateResponse out;
  grpc::ClientContext c;
  grpc::Status st = capped.Translation()->Translate(&c, r, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("(its max_input_tokens)"), std::string::npos)
      << st.error_message();
}

TEST_F(DocumentE2E, StreamsAndDocumentsWaitForRoomInsteadOfFailing) {
  Start("models { name: \"en-de-base\" batching { max_queue_size: 4 max_batch_sentences: 2 } }\n");
  const auto s = Sentences("en", 60);
  // A stream of 120 messages at once against a queue of 4: every one translated.
  {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    auto stream = stub_->TranslateStream(&c);
    std::vector<std::string> answers(120);
    std::thread reader([&] {
      v1::TranslateResponse r;
      while (stream->Read(&r)) {
        EXPECT_EQ(r.status_code(), 0) << r.status_message();
        answers[std::stoul(r.request_id())] = r.translation();
      }
    });
    for (int i = 0; i < 120; ++i) {
      v1::TranslateRequest q = Request(s[i % s.size()]);
      q.mutable_variant()->set_name("en-de-base");
      q.set_request_id(std::to_string(i));
      ASSERT_TRUE(stream->Write(q));
    }
    stream->WritesDone();
    reader.join();
    ASSERT_TRUE(stream->Finish().ok());
    for (int i = 0; i < 60; ++i) EXPECT_EQ(answers[i], answers[i + 60]) << i;
    EXPECT_EQ(answers[7], One(s[7]).translation());
  }
  // A document of 60 sentences (one a line), fifteen times the queue.
  std::string doc;
  for (const auto& x : s) doc += x + "\n";
  v1::TranslateDocumentResponse out;
  grpc::Status st = Translate(Document(doc), &out);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(out.sentences(), static_cast<int>(s.size()));
  // Unary calls above the queue still get RESOURCE_EXHAUSTED at once.
  v1::TranslateBatchRequest batch;
  for (int i = 0; i < 5; ++i) batch.add_texts(s[i]);
  batch.mutable_variant()->set_name("en-de-base");
  v1::TranslateBatchResponse br;
  grpc::ClientContext c;
  st = stub_->TranslateBatch(&c, batch, &br);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

}  // namespace
}  // namespace mixserve
