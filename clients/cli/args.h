// A small command-line parser: `--name=value`, `--name value`, `--flag`, and positionals.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace mixserve::cli {

class Args {
 public:
  // `flags` are the options that take no value; every other --option takes one.
  Args(int argc, char** argv, int first, const std::set<std::string>& flags);

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  // Integer option; sets error() when the value is not an integer.
  long GetInt(const std::string& name, long fallback);
  const std::vector<std::string>& positionals() const { return positionals_; }
  // Names given on the command line that are not in `known`.
  std::vector<std::string> Unknown(const std::set<std::string>& known) const;

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positionals_;
  std::string error_;
};

// A variant as the command lines name it: NAME or NAME:VERSION (version >= 0; 0 or none:
// the server's choice). False when the name is empty or the version is not a number.
bool ParseVariantRef(const std::string& text, std::string* name, int64_t* version);

}  // namespace mixserve::cli
