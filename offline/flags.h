// Command-line flags of the mixserve-offline subcommands: --name=value (or --name for a true
// boolean), declared up front so that --help lists them and unknown flags are rejected.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace mixserve::offline {

// A bad command line: unknown flag, missing required flag, unparsable value.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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
  // caller prints Usage()). Throws UsageError naming the problem.
  bool Parse(const std::vector<std::string>& args);

  std::string Usage() const;
  const std::string& command() const { return command_; }

  bool Given(const std::string& name) const;  // set explicitly on the command line
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
  std::map<std::string, std::string> given_;
};

std::vector<std::string> SplitList(const std::string& s, char sep = ',');

}  // namespace mixserve::offline
