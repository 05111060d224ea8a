// base/flags.h, the command-line parser of mixserve-cli, mixserve-loadgen and
// mixserve-offline: spellings, Abseil's error messages, commands and their flags, --help and
// --version. Flags declared here only (flagtest_*).
#include "base/flags.h"

#include <absl/flags/flag.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/build_info.h"

ABSL_FLAG(int32_t, flagtest_count, 3, "how many");
ABSL_FLAG(std::string, flagtest_name, "x", "a name");
ABSL_FLAG(bool, flagtest_verbose, false, "more output");
ABSL_FLAG(double, flagtest_rate, 0.5, "a rate");
ABSL_FLAG(std::string, flagtest_other, "", "a flag of another command");

namespace mixserve::flags {
namespace {

const std::vector<FlagRef> kAccepted = {
    {"flagtest_count", ""}, {"flagtest_name", ""}, {"flagtest_verbose", ""}, {"flagtest_rate", ""}};

ParsedArgs Parse(const std::vector<std::string>& args, bool positionals = true) {
  return ParseArgs(args, kAccepted, {}, "prog cmd", positionals);
}

std::string ErrorOf(const std::vector<std::string>& args) {
  try {
    Parse(args);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Flags, EverySpellingSetsTheAbseilFlag) {
  const ParsedArgs p = Parse({"--flagtest_count=7", "--flagtest-name", "y z", "--flagtest_verbose",
                              "pos", "--flagtest-rate=0.25"});
  EXPECT_EQ(absl::GetFlag(FLAGS_flagtest_count), 7);
  EXPECT_EQ(absl::GetFlag(FLAGS_flagtest_name), "y z");
  EXPECT_TRUE(absl::GetFlag(FLAGS_flagtest_verbose));
  EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_flagtest_rate), 0.25);
  EXPECT_EQ(p.positionals, std::vector<std::string>{"pos"});
  EXPECT_EQ(p.given, (std::set<std::string>{"flagtest_count", "flagtest_name", "flagtest_verbose",
                                            "flagtest_rate"}));
  EXPECT_FALSE(p.help);

  // A boolean never takes the next argument; --noNAME clears it; "--" ends the flags.
  const ParsedArgs q = Parse({"--flagtest_verbose", "false", "--", "--flagtest_count=9"});
  EXPECT_TRUE(absl::GetFlag(FLAGS_flagtest_verbose));
  EXPECT_EQ(q.positionals, (std::vector<std::string>{"false", "--flagtest_count=9"}));
  EXPECT_EQ(absl::GetFlag(FLAGS_flagtest_count), 3);  // reset to the default, not given
  Parse({"--noflagtest_verbose"});
  EXPECT_FALSE(absl::GetFlag(FLAGS_flagtest_verbose));
  Parse({"--flagtest_verbose=true"});
  EXPECT_TRUE(absl::GetFlag(FLAGS_flagtest_verbose));
}

TEST(Flags, EveryParseStartsFromTheDefaults) {
  Parse({"--flagtest_count=11", "--flagtest_name=changed"});
  const ParsedArgs p = ParseArgs({}, kAccepted, {{"flagtest_name", "command default"}}, "prog cmd",
                                 false);
  EXPECT_TRUE(p.given.empty());
  EXPECT_EQ(absl::GetFlag(FLAGS_flagtest_count), 3);
  EXPECT_EQ(absl::GetFlag(FLAGS_flagtest_name), "command default");
  EXPECT_EQ(CurrentValue("flagtest_name"), "command default");
  EXPECT_TRUE(IsBool("flagtest_verbose"));
  EXPECT_FALSE(IsBool("flagtest_count"));
}

TEST(Flags, ErrorsAreAbseilsMessagesNamingTheFlagAsTyped) {
  EXPECT_EQ(ErrorOf({"--nosuchflag=1"}), "Unknown command line flag 'nosuchflag'");
  EXPECT_EQ(ErrorOf({"--flagtest-count=abc"}),
            "Illegal value 'abc' specified for flag 'flagtest-count'");
  EXPECT_EQ(ErrorOf({"--flagtest_count=99999999999"}),
            "Illegal value '99999999999' specified for flag 'flagtest_count'");
  EXPECT_EQ(ErrorOf({"--flagtest_rate=fast"}),
            "Illegal value 'fast' specified for flag 'flagtest_rate'");
  EXPECT_EQ(ErrorOf({"--flagtest_verbose=maybe"}),
            "Illegal value 'maybe' specified for flag 'flagtest_verbose'");
  EXPECT_EQ(ErrorOf({"--flagtest_name"}), "Missing the value for the flag 'flagtest_name'");
  // Declared in the binary, but not a flag of this command.
  EXPECT_EQ(ErrorOf({"--flagtest_other=1"}),
            "Unknown command line flag 'flagtest_other' for prog cmd");
  try {
    Parse({"stray"}, false);
    ADD_FAILURE() << "a positional was accepted";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "Unexpected argument 'stray'");
  }
  // A command that lists a flag nobody declared is a bug, not a usage error.
  EXPECT_THROW(ParseArgs({}, {{"undeclared_flag", ""}}, {}, "prog", false), std::logic_error);
  EXPECT_THROW(ParseArgs({}, kAccepted, {{"flagtest_count", "many"}}, "prog", false),
               std::logic_error);
}

TEST(Flags, HelpWinsOverErrors) {
  EXPECT_TRUE(Parse({"--nosuchflag", "--help"}).help);
  EXPECT_TRUE(Parse({"-h"}).help);
  EXPECT_FALSE(Parse({"--", "--help"}).help);
}

TEST(Flags, ReportUsageErrorPrintsTheSharedFormat) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(ReportUsageError("prog cmd", "Unknown command line flag 'x'"), 2);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "ERROR: Unknown command line flag 'x'\nTry 'prog cmd --help'.\n");
}

Program TestProgram() {
  Program p;
  p.name = "prog";
  p.usage = "usage: prog [flags] COMMAND\nA test program.\n";
  p.flags = {"flagtest_name"};
  p.commands = {{"run", "runs", "[ARG...]", {"flagtest_count", "flagtest_verbose"}},
                {"other-cmd", "does the other thing", "", {"flagtest_other"}}};
  p.separator = '-';
  p.version_details = "details line\n";
  return p;
}

struct Outcome {
  int status;
  std::string out, err;
  Invocation invocation;
};

Outcome RunProgram(const Program& program, std::vector<std::string> args) {
  args.insert(args.begin(), "prog");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  Outcome o;
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  o.status = flags::Parse(program, static_cast<int>(argv.size()), argv.data(), &o.invocation);
  o.out = ::testing::internal::GetCapturedStdout();
  o.err = ::testing::internal::GetCapturedStderr();
  return o;
}

TEST(Flags, ProgramWithCommands) {
  const Program p = TestProgram();
  // Common flags before or after the command; values of non-booleans may be separate.
  Outcome o = RunProgram(p, {"--flagtest-name", "n", "run", "a", "--flagtest-count", "4", "b"});
  ASSERT_EQ(o.status, -1) << o.err;
  EXPECT_EQ(o.invocation.command, "run");
  EXPECT_EQ(o.invocation.positionals, (std::vector<std::string>{"run", "a", "b"}));
  EXPECT_EQ(absl::GetFlag(FLAGS_flagtest_count), 4);
  EXPECT_EQ(absl::GetFlag(FLAGS_flagtest_name), "n");

  o = RunProgram(p, {"run", "--flagtest-other=1"});
  EXPECT_EQ(o.status, 2);
  EXPECT_EQ(o.err,
            "ERROR: Unknown command line flag 'flagtest-other' for prog run\n"
            "Try 'prog run --help'.\n");
  o = RunProgram(p, {"other-cmd", "extra"});
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("ERROR: Unexpected argument 'extra'"), std::string::npos) << o.err;
  o = RunProgram(p, {"run", "--flagtest-count=lots"});
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("ERROR: Illegal value 'lots' specified for flag 'flagtest-count'"),
            std::string::npos)
      << o.err;
  o = RunProgram(p, {"frobnicate"});
  EXPECT_EQ(o.status, 2);
  EXPECT_EQ(o.err, "ERROR: Unknown command 'frobnicate'\nTry 'prog --help'.\n");
  o = RunProgram(p, {});
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("No command given (run, other-cmd)"), std::string::npos) << o.err;
}

TEST(Flags, HelpAndVersion) {
  const Program p = TestProgram();
  Outcome o = RunProgram(p, {"--help"});
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(o.out.rfind(p.usage, 0), 0u) << o.out;
  EXPECT_NE(o.out.find("  other-cmd  does the other thing\n"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("  --flagtest-name=string  (default: x)\n      a name\n"), std::string::npos)
      << o.out;
  EXPECT_EQ(o.out.find("flagtest-count"), std::string::npos) << "a command's flag: " << o.out;

  o = RunProgram(p, {"run", "--help"});
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(o.out.rfind("usage: prog run [flags] [ARG...]\nruns\n", 0), 0u) << o.out;
  EXPECT_NE(o.out.find("  --flagtest-count=int  (default: 3)\n      how many\n"), std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("  --flagtest-verbose  (default: false)\n"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("Common flags:\n  --flagtest-name"), std::string::npos) << o.out;

  const std::vector<std::vector<std::string>> version_lines = {{"--version"}, {"run", "--version"}};
  for (const auto& args : version_lines) {
    o = RunProgram(p, args);
    EXPECT_EQ(o.status, 0);
    EXPECT_EQ(o.out, VersionLine("prog") + "\ndetails line\n");
  }
  EXPECT_EQ(VersionLine("prog").rfind(std::string("prog ") + Version() + " (commit ", 0), 0u);
}

}  // namespace
}  // namespace mixserve::flags
