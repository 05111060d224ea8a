// One process with the system protobuf runtime (through mixserve_proto) and SentencePiece
// (through the shim, which bundles its own protobuf 3.14): the situation of the server and the
// offline tool. Linking both plainly aborts at start-up (PLATFORM-NOTES trap 1); the shim's
// loader keeps them apart. The death test shows that the isolation is what makes it work.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <google/protobuf/text_format.h>

#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>

#include "mixserve/v1/config.pb.h"
#include "tests/text/text_test_util.h"
#include "text/tokenizer.h"

namespace mixserve {
namespace {

using testing_text::TempDir;

v1::ModelConfig MakeConfig() {
  v1::ModelConfig c;
  c.set_source_language("en");
  c.set_target_language("de");
  c.set_d_model(128);
  c.set_vocab_size(1000);
  c.mutable_encoder_self()->set_type("mha");
  return c;
}

void ExpectProtobufWorks() {
  const v1::ModelConfig c = MakeConfig();
  std::string wire;
  ASSERT_TRUE(c.SerializeToString(&wire));
  v1::ModelConfig back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.target_language(), "de");
  std::string text;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(back, &text));
  EXPECT_THAT(text, ::testing::HasSubstr("d_model: 128"));
}

TEST(ProtobufCoexistence, TokenizerAndSystemProtobufInOneProcess) {
  ExpectProtobufWorks();
  TempDir dir;
  Tokenizer::TrainOptions o;
  o.vocab_size = 400;
  auto tok = Tokenizer::Load(testing_text::TrainSmallModel(dir, o));
  const std::string s = "Ein Hund rennt durch den Schnee.";
  EXPECT_EQ(tok->Decode(tok->Encode(s)), s);
  // Both runtimes keep working, interleaved.
  ExpectProtobufWorks();
  v1::ModelConfig c = MakeConfig();
  c.set_tokenizer_file(tok->path());
  EXPECT_EQ(Tokenizer::Load(c.tokenizer_file())->vocab_size(), 400);
}

// Without isolation, SentencePiece's generated code binds to the system protobuf, whose version
// check fails (an exception the shim reports, or an abort where it is not caught). Run in a
// child process, so this process never loads the shim unisolated.
TEST(ProtobufCoexistenceDeathTest, WithoutIsolationSentencePieceFails) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ExpectProtobufWorks();
  const std::string dir = std::string(MIXSERVE_BINARY_DIR) + "/tests/text/global_loader";
  EXPECT_EXIT(
      {
        setenv("MIXSERVE_SPM_LOADER", "global", 1);
        std::filesystem::create_directories(dir);
        Tokenizer::TrainOptions o;
        o.vocab_size = 300;
        try {
          Tokenizer::Train({testing_text::Multi30k("val.en.gz")}, dir + "/spm", o);
          Tokenizer::Load(dir + "/spm.model");
        } catch (const std::exception& e) {
          std::fprintf(stderr, "%s\n", e.what());
          std::exit(3);
        }
        std::exit(0);
      },
      [](int status) {
        return (WIFEXITED(status) && WEXITSTATUS(status) == 3) || WIFSIGNALED(status);
      },
      "Protocol Buffer runtime");
}

}  // namespace
}  // namespace mixserve
