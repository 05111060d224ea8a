// The command lines of the real mixserve-cli and mixserve-loadgen binaries (no server needed):
// --version, --help, and the exit status and format of usage errors, shared with
// mixserve-offline (base/flags.h).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "base/build_info.h"

namespace mixserve {
namespace {

struct Outcome {
  int exit_code = -1;
  std::string out;  // stdout and stderr
};

Outcome RunBinary(const std::string& binary, const std::string& args) {
  const std::string cmd =
      std::string(MIXSERVE_BINARY_DIR) + "/clients/" + binary + " " + args + " 2>&1 < /dev/null";
  Outcome o;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) o.out.append(buf, n);
  const int status = pclose(p);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

// What the loadgen needs before it looks at anything else.
const std::string kLoadgenArgs = "--src=a.en --ref=a.de --src-lang=en --tgt-lang=de ";

TEST(CommandLine, VersionPrintsTheVersionLine) {
  for (const std::string binary : {"mixserve-cli", "mixserve-loadgen"}) {
    const Outcome o = RunBinary(binary, "--version");
    EXPECT_EQ(o.exit_code, 0) << binary << "\n" << o.out;
    EXPECT_EQ(o.out, VersionLine(binary) + "\n");
  }
}

TEST(CommandLine, HelpListsTheFlags) {
  Outcome o = RunBinary("mixserve-cli", "--help");
  EXPECT_EQ(o.exit_code, 0) << o.out;
  EXPECT_EQ(o.out.rfind("usage: mixserve-cli", 0), 0u) << o.out;
  for (const char* needle : {"  translate ", "  set-route ",
                             "  --target=string  (default: localhost:8500)", "  --deadline-ms=int",
                             "  --version"})
    EXPECT_NE(o.out.find(needle), std::string::npos) << needle << "\n" << o.out;

  o = RunBinary("mixserve-cli", "translate --help");
  EXPECT_EQ(o.exit_code, 0) << o.out;
  EXPECT_EQ(o.out.rfind("usage: mixserve-cli translate [flags] [TEXT...]\n", 0), 0u) << o.out;
  for (const char* needle : {"  --from=string", "  --routing-key=string",
                             "  --json  (default: false)", "Common flags:\n  --target"})
    EXPECT_NE(o.out.find(needle), std::string::npos) << needle << "\n" << o.out;

  o = RunBinary("mixserve-loadgen", "--help");
  EXPECT_EQ(o.exit_code, 0) << o.out;
  EXPECT_EQ(o.out.rfind("usage: mixserve-loadgen", 0), 0u) << o.out;
  for (const char* needle :
       {"  --src-lang=string", "  --concurrency=int  (default: 8)", "  --quiet  (default: false)"})
    EXPECT_NE(o.out.find(needle), std::string::npos) << needle << "\n" << o.out;
}

TEST(CommandLine, UnknownFlagExitsTwoInTheSharedFormat) {
  Outcome o = RunBinary("mixserve-cli", "health --frobnicate=1");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_EQ(o.out,
            "ERROR: Unknown command line flag 'frobnicate'\nTry 'mixserve-cli health --help'.\n");
  // A flag of another command.
  o = RunBinary("mixserve-cli", "health --beam=2");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_EQ(o.out,
            "ERROR: Unknown command line flag 'beam' for mixserve-cli health\n"
            "Try 'mixserve-cli health --help'.\n");
  o = RunBinary("mixserve-loadgen", kLoadgenArgs + "--frobnicate");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_EQ(o.out,
            "ERROR: Unknown command line flag 'frobnicate'\nTry 'mixserve-loadgen --help'.\n");
}

TEST(CommandLine, BadIntegerExitsTwoNamingTheFlag) {
  Outcome o = RunBinary("mixserve-cli", "translate --from=en --to=de --beam=abc x");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_EQ(o.out,
            "ERROR: Illegal value 'abc' specified for flag 'beam'\n"
            "Try 'mixserve-cli translate --help'.\n");
  o = RunBinary("mixserve-cli", "--deadline-ms 1.5 health");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_NE(o.out.find("ERROR: Illegal value '1.5' specified for flag 'deadline-ms'"),
            std::string::npos)
      << o.out;
  o = RunBinary("mixserve-loadgen", kLoadgenArgs + "--concurrency=many");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_EQ(o.out,
            "ERROR: Illegal value 'many' specified for flag 'concurrency'\n"
            "Try 'mixserve-loadgen --help'.\n");
}

TEST(CommandLine, OtherUsageErrorsShareTheFormat) {
  Outcome o = RunBinary("mixserve-cli", "frobnicate");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_EQ(o.out, "ERROR: Unknown command 'frobnicate'\nTry 'mixserve-cli --help'.\n");
  o = RunBinary("mixserve-cli", "");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_EQ(o.out.rfind("ERROR: No command given", 0), 0u) << o.out;
  o = RunBinary("mixserve-cli", "translate --to=de x");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_EQ(o.out, "ERROR: translate needs --from and --to\nTry 'mixserve-cli --help'.\n");
  o = RunBinary("mixserve-loadgen", "--src=a.en");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_EQ(o.out.rfind("ERROR: --src and --ref", 0), 0u) << o.out;
  o = RunBinary("mixserve-loadgen", kLoadgenArgs + "--qps=5 --concurrency=2");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_NE(o.out.find("exclude each other"), std::string::npos) << o.out;
  o = RunBinary("mixserve-loadgen", kLoadgenArgs + "stray");
  EXPECT_EQ(o.exit_code, 2) << o.out;
  EXPECT_EQ(o.out, "ERROR: Unexpected argument 'stray'\nTry 'mixserve-loadgen --help'.\n");
}

}  // namespace
}  // namespace mixserve
