// A model imported from a Hugging Face MarianMT directory, served: `mixserve-offline import`
// of the model transformers wrote (tests/data/marian-tiny) into a repository, the real server
// on it, and its answers over gRPC equal transformers' translations of the same sentences
// (tests/data/marian-tiny-goldens: greedy, and beam 4 on request), also as a document.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "base/remove_tree.h"
#include "offline/commands.h"
#include "offline/reference_check.h"
#include "offline/text_io.h"
#include "tests/server/support/server_fixture.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;

const std::string kRoot = MIXSERVE_SOURCE_DIR;
constexpr int kSentences = 40;

class ImportedModelE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = MakeTempDir("imported");
    ::testing::internal::CaptureStdout();
    const int code = offline::Main("import", {"--hf_dir", kRoot + "/tests/data/marian-tiny",
                                              "--repository", repo_, "--name", "opus-mt-tiny"});
    const std::string said = ::testing::internal::GetCapturedStdout();
    ASSERT_EQ(code, 0) << said;
    std::string error;
    ASSERT_TRUE(server_.Start("model_repository: \"" + repo_ + "\"\n", {}, &error)) << error;
    stub_ = server_.Translation();
    sources_ = offline::ReadLines(kRoot + "/data/multi30k/test_2016_flickr.en.gz", kSentences);
    reference_ = offline::ReadReferenceLines(kRoot +
                                             "/tests/data/marian-tiny-goldens/tiny-cpu-fp32.tsv");
  }
  void TearDown() override {
    server_.Stop();
    RemoveTree(repo_);
  }
  v1::TranslateResponse One(const std::string& text, int beam) {
    v1::TranslateRequest r = Request(text);
    r.mutable_variant()->set_name("opus-mt-tiny");
    r.mutable_options()->set_beam_size(beam);
    r.mutable_options()->set_max_output_tokens(47);  // the reference's 48 with the forced EOS
    v1::TranslateResponse out;
    grpc::ClientContext c;
    const grpc::Status s = stub_->Translate(&c, r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }
  std::string repo_;
  ServerProcess server_;
  std::unique_ptr<v1::TranslationService::Stub> stub_;
  std::vector<std::string> sources_;
  std::vector<offline::ReferenceLine> reference_;
};

TEST_F(ImportedModelE2E, AnswersAreTransformersTranslations) {
  int greedy = 0, beam = 0;
  for (int i = 0; i < kSentences; ++i) {
    greedy += One(sources_[i], 1).translation() == reference_[i].greedy_text;
    beam += One(sources_[i], 4).translation() == reference_[i].beam_text;
  }
  EXPECT_EQ(greedy, kSentences);
  EXPECT_EQ(beam, kSentences);
}

TEST_F(ImportedModelE2E, DocumentIsItsSentencesTranslated) {
  v1::TranslateDocumentRequest d;
  d.set_text(sources_[0] + " " + sources_[2] + "\n\n" + sources_[3]);
  d.set_source_language("en");
  d.set_target_language("de");
  d.mutable_variant()->set_name("opus-mt-tiny");
  v1::TranslateDocumentResponse out;
  grpc::ClientContext c;
  const grpc::Status s = stub_->TranslateDocument(&c, d, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  // Greedy with the server's default output limit: the reference's sentences all end well
  // before it.
  EXPECT_EQ(out.translation(), reference_[0].greedy_text + " " + reference_[2].greedy_text +
                                   "\n\n" + reference_[3].greedy_text);
}

}  // namespace
}  // namespace mixserve
