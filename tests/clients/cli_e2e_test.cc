// mixserve-cli against the real mixserve-server (tiny random-weight models on loopback):
// translation from arguments, stdin and files (streamed), JSON output, health, administration,
// and the exit status and message of every kind of failure.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/remove_tree.h"
#include "tests/server/support/server_fixture.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;

struct Outcome {
  int exit_code = -1;
  std::string out;  // stdout
  std::string all;  // stdout and stderr
};

// Runs `mixserve-cli <args>` through the shell (so that `stdin_text` can be piped in).
Outcome RunCli(const std::string& args, const std::string& stdin_text = "") {
  const std::string dir = MakeTempDir("cli");
  const std::string in = dir + "/stdin", out = dir + "/stdout", err = dir + "/stderr";
  std::ofstream(in) << stdin_text;
  const std::string cmd = std::string(MIXSERVE_BINARY_DIR) + "/clients/mixserve-cli " + args +
                          " < " + in + " > " + out + " 2> " + err;
  const int status = std::system(cmd.c_str());
  Outcome o;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream so, se;
  so << std::ifstream(out).rdbuf();
  se << std::ifstream(err).rdbuf();
  o.out = so.str();
  o.all = o.out + se.str();
  RemoveTree(dir);
  return o;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream is(text);
  for (std::string l; std::getline(is, l);) lines.push_back(l);
  return lines;
}

class CliE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess();
    std::string error;
    if (!server_->Start("model_repository: \"" + StandardRepository() + "\"\n", {}, &error))
      start_error_ = error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(start_error_.empty()) << start_error_; }
  static std::string Target() { return "--target=" + server_->address(); }

  static ServerProcess* server_;
  static std::string start_error_;
};
ServerProcess* CliE2E::server_ = nullptr;
std::string CliE2E::start_error_;

TEST_F(CliE2E, TranslatesArgumentsJoinedIntoOneSentence) {
  const std::string v = " --variant=en-de-base";
  const auto r = RunCli(Target() + " translate --from=en --to=de" + v + " A dog runs.");
  ASSERT_EQ(r.exit_code, 0) << r.all;
  ASSERT_EQ(Lines(r.out).size(), 1u) << r.out;
  const auto piped = RunCli(Target() + " translate --from=en --to=de" + v, "A dog runs.\n");
  ASSERT_EQ(piped.exit_code, 0) << piped.all;
  EXPECT_EQ(r.out, piped.out);
}

TEST_F(CliE2E, TranslatesStdinAndStreamsFilesInOrder) {
  const auto sents = Sentences("en", 6);
  std::string text;
  for (const auto& s : sents) text += s + "\n";
  const auto piped = RunCli(Target() + " translate --from=en --to=de --variant=en-de-base", text);
  ASSERT_EQ(piped.exit_code, 0) << piped.all;
  EXPECT_EQ(Lines(piped.out).size(), sents.size());

  const std::string dir = MakeTempDir("cli-file");
  std::ofstream(dir + "/in.txt") << text;
  const auto streamed = RunCli(Target() + " translate --from=en --to=de --variant=en-de-base --file=" +
                               dir + "/in.txt");
  RemoveTree(dir);
  ASSERT_EQ(streamed.exit_code, 0) << streamed.all;
  // The same variant, greedy by default on both paths: the stream answers in input order.
  EXPECT_EQ(streamed.out, piped.out);
}

TEST_F(CliE2E, JsonNamesTheVariantThatAnswered) {
  const auto r = RunCli(Target() + " translate --json --from=de --to=en 'Ein Hund rennt.'");
  ASSERT_EQ(r.exit_code, 0) << r.all;
  EXPECT_NE(r.out.find("\"variant\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("de-en-base"), std::string::npos) << r.out;
}

TEST_F(CliE2E, HealthAndModels) {
  const auto h = RunCli(Target() + " health");
  ASSERT_EQ(h.exit_code, 0) << h.all;
  EXPECT_NE(h.out.find("SERVING"), std::string::npos) << h.out;
  const auto m = RunCli(Target() + " models");
  ASSERT_EQ(m.exit_code, 0) << m.all;
  for (const char* name : {"en-de-base", "en-de-alt", "de-en-base"})
    EXPECT_NE(m.out.find(name), std::string::npos) << name << "\n" << m.out;
}

TEST_F(CliE2E, FailuresExitNonZeroWithAClearMessage) {
  struct Case {
    std::string args;
    int code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"translate --to=de 'x'", 2, "--from"},
      {"frobnicate", 2, "frobnicate"},
      {"translate --from=en --to=de --beam=abc 'x'", 2, "flag 'beam'"},
      {"translate --from=en --to=de --variant=no-such-model 'x'", 1, "NOT_FOUND"},
      {"translate --from=en --to=xx 'x'", 1, "NOT_FOUND"},
      {"translate --from=en --to=de ''", 1, "INVALID_ARGUMENT"},
      {"unload", 2, "NAME"},
  };
  for (const auto& c : cases) {
    const auto r = RunCli(Target() + " " + c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.all;
    EXPECT_NE(r.all.find(c.needle), std::string::npos) << c.args << "\n" << r.all;
  }
  // Nothing listens on port 1.
  const auto down = RunCli("--target=127.0.0.1:1 --deadline-ms=2000 health");
  EXPECT_EQ(down.exit_code, 1) << down.all;
  EXPECT_NE(down.all.find("UNAVAILABLE"), std::string::npos) << down.all;
  // The server still answers after all of that.
  EXPECT_EQ(RunCli(Target() + " health").exit_code, 0);
}

TEST_F(CliE2E, HelpExitsZero) {
  const auto r = RunCli("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.all.find("usage: mixserve-cli"), std::string::npos) << r.all;
}

}  // namespace
}  // namespace mixserve
