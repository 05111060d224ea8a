// Command-line flags of the mixserve-offline subcommands, on Abseil flags (base/flags.h):
// every flag is an ABSL_FLAG (offline/flags.cc declares them all, with their types); each
// command takes the flags its FlagSet lists, with the command's own default and help.
// Spellings: --name=value, --name value (not for booleans), --name / --noname (booleans);
// '-' and '_' in names are the same.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/flags.h"

namespace mixserve::offline {

// A bad command line: unknown flag, missing required flag, unparsable value.
using UsageError = flags::UsageError;

struct FlagDef {
  std::string name;
  std::string default_value;  // used when the flag is absent
  std::string help;
  bool required = false;
};

class FlagSet {
 public:
  FlagSet(std::string command, std::string summary, std::vector<FlagDef> defs);

  // Parses the arguments after the subcommand name. Returns false when --help was given (the
  // caller prints Usage()). Throws UsageError naming the problem (Abseil's words).
  bool Parse(const std::vector<std::string>& args);

  std::string Usage() const;
  const std::string& command() const { return command_; }

  bool Given(const std::string& name) const;  // set explicitly on the command line
  // The value as text (Abseil's spelling: "true"/"false", "0.001").
  std::string Get(const std::string& name) const;
  int GetInt(const std::string& name) const;
  int64_t GetInt64(const std::string& name) const;
  double GetDouble(const std::string& name) const;
  bool GetBool(const std::string& name) const;
  // Comma-separated list; empty entries dropped.
  std::vector<std::string> GetList(const std::string& name) const;
  // Every flag with its effective value (for logs and metadata).
  std::map<std::string, std::string> Values() const;

 private:
  const FlagDef& Def(const std::string& name) const;
  std::string command_, summary_;
  std::vector<FlagDef> defs_;
  // After Parse: the values of every flag (Abseil's text), and those given.
  std::map<std::string, std::string> values_;
  std::set<std::string> given_;
};

// The name of the ABSL_FLAG behind a mixserve-offline flag: the same, except export's
// --version (Abseil's own usage flags take "version").
std::string AbslFlagName(const std::string& name);

std::vector<std::string> SplitList(const std::string& s, char sep = ',');

}  // namespace mixserve::offline
