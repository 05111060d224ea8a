// An imported MarianMT model translates exactly as transformers does: the model that
// transformers 5.17 wrote (tests/data/marian-tiny), imported by `mixserve-offline import`,
// against transformers' own tokenization and generate() answers for 500 test sentences
// (tests/data/marian-tiny-goldens, tests/data/README.md), through the serving engine.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "base/remove_tree.h"
#include "offline/commands.h"
#include "offline/reference_check.h"
#include "offline/text_io.h"
#include "tests/support/temp_dir.h"

namespace mixserve::offline {
namespace {

const std::string kRoot = MIXSERVE_SOURCE_DIR;

class ImportExactness : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = new std::string(testing::MakeTempDir("exact"));
    ::testing::internal::CaptureStdout();
    const int code = Main("import", {"--hf_dir", kRoot + "/tests/data/marian-tiny",
                                     "--repository", *repo_, "--name", "marian-tiny"});
    const std::string out = ::testing::internal::GetCapturedStdout();
    ASSERT_EQ(code, 0) << out;
  }
  static void TearDownTestSuite() {
    RemoveTree(*repo_);
    delete repo_;
  }
  static ExactnessReport Check(const std::string& reference, int beam = 4) {
    ExactnessOptions o;
    o.engine.device = "cpu";
    o.beam_size = beam;
    return CheckAgainstReference(
        *repo_ + "/marian-tiny/1",
        ReadLines(kRoot + "/data/multi30k/test_2016_flickr.en.gz"),
        ReadReferenceLines(kRoot + "/tests/data/marian-tiny-goldens/" + reference), o);
  }
  static std::string* repo_;
};
std::string* ImportExactness::repo_ = nullptr;

std::string Examples(const ExactnessReport& r) {
  std::string s;
  for (const auto& e : r.examples) s += "\n  " + e;
  return s;
}

TEST_F(ImportExactness, CpuFp32EqualsTransformersTokenForToken) {
  const auto r = Check("tiny-cpu-fp32.tsv");
  ASSERT_EQ(r.sentences, 500);
  EXPECT_EQ(r.source_equal, 500) << Examples(r);
  EXPECT_EQ(r.greedy_equal, 500) << Examples(r);
  EXPECT_EQ(r.beam_equal, 500) << Examples(r);
  EXPECT_EQ(r.greedy_text_equal, 500) << Examples(r);
  EXPECT_EQ(r.beam_text_equal, 500) << Examples(r);
}

// The reference's answers depend on its rules: a beam search of other rules (mixserve's own
// GNMT ranking) or another width disagrees with it somewhere, so the equality above is not
// the model's only possible output.
TEST_F(ImportExactness, OtherBeamWidthsDisagree) {
  const auto r = Check("tiny-cpu-fp32.tsv", 2);
  EXPECT_LT(r.beam_equal, 500);
  EXPECT_EQ(r.greedy_equal, 500);
}

}  // namespace
}  // namespace mixserve::offline
