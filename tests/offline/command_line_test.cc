// The command line of the real mixserve-offline binary: --version, --help of the program and
// of every command (which also checks that every flag a command lists is declared), and the
// exit status and format of usage errors, shared with the clients (base/flags.h).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "base/build_info.h"

namespace mixserve::offline {
namespace {

struct Outcome {
  int code = -1;
  std::string output;  // stdout and stderr
};

Outcome RunOffline(const std::string& args) {
  const std::string cmd =
      std::string(MIXSERVE_BINARY_DIR) + "/offline/mixserve-offline " + args + " 2>&1";
  Outcome o;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) o.output.append(buf, n);
  const int status = pclose(p);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

const char* const kCommands[] = {"spm",    "train",  "distill", "finetune",
                                 "eval",   "export", "import",  "sweep"};

TEST(OfflineCommandLine, VersionPrintsTheVersionAndLibTorch) {
  const Outcome o = RunOffline("--version");
  EXPECT_EQ(o.code, 0) << o.output;
  EXPECT_EQ(o.output.rfind(VersionLine("mixserve-offline") + "\nLibTorch ", 0), 0u) << o.output;
}

TEST(OfflineCommandLine, HelpOfTheProgramAndOfEveryCommand) {
  Outcome o = RunOffline("--help");
  EXPECT_EQ(o.code, 0) << o.output;
  EXPECT_EQ(o.output.rfind("usage: mixserve-offline COMMAND [flags]\n", 0), 0u) << o.output;
  for (const char* c : kCommands)
    EXPECT_NE(o.output.find("\n  " + std::string(c) + " "), std::string::npos)
        << c << "\n" << o.output;
  for (const char* c : kCommands) {
    o = RunOffline(std::string(c) + " --help");
    EXPECT_EQ(o.code, 0) << c << "\n" << o.output;
    EXPECT_EQ(o.output.rfind("usage: mixserve-offline " + std::string(c) + " [flags]\n", 0), 0u)
        << o.output;
    EXPECT_NE(o.output.find("\n  --"), std::string::npos) << o.output;
  }
  o = RunOffline("train --help");
  EXPECT_NE(o.output.find("  --spm=string  (required)\n"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("  --d_model=int  (default: 128)\n"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("  --resume  (default: false)\n"), std::string::npos) << o.output;
}

TEST(OfflineCommandLine, UsageErrorsExitTwoInTheSharedFormat) {
  Outcome o = RunOffline("train --frobnicate=1");
  EXPECT_EQ(o.code, 2) << o.output;
  EXPECT_EQ(o.output,
            "ERROR: Unknown command line flag 'frobnicate'\n"
            "Try 'mixserve-offline train --help'.\n");
  o = RunOffline("spm --out=x --beam=3");
  EXPECT_EQ(o.code, 2) << o.output;
  EXPECT_EQ(o.output,
            "ERROR: Unknown command line flag 'beam' for mixserve-offline spm\n"
            "Try 'mixserve-offline spm --help'.\n");
  o = RunOffline("spm --out=x --vocab_size=abc");
  EXPECT_EQ(o.code, 2) << o.output;
  EXPECT_EQ(o.output,
            "ERROR: Illegal value 'abc' specified for flag 'vocab_size'\n"
            "Try 'mixserve-offline spm --help'.\n");
  o = RunOffline("export --model=m --repo=r --name=n --version=latest");
  EXPECT_EQ(o.code, 2) << o.output;
  EXPECT_EQ(o.output.rfind("ERROR: Illegal value 'latest' specified for flag 'version'\n", 0), 0u)
      << o.output;
  o = RunOffline("eval");
  EXPECT_EQ(o.code, 2) << o.output;
  EXPECT_EQ(o.output.rfind("ERROR: Missing the required flag 'model'", 0), 0u) << o.output;
  o = RunOffline("frobnicate");
  EXPECT_EQ(o.code, 2) << o.output;
  EXPECT_EQ(o.output, "ERROR: Unknown command 'frobnicate'\nTry 'mixserve-offline --help'.\n");
  o = RunOffline("");
  EXPECT_EQ(o.code, 2) << o.output;
  EXPECT_EQ(o.output.rfind("ERROR: No command given (", 0), 0u) << o.output;
}

}  // namespace
}  // namespace mixserve::offline
