// The parsed command line of mixserve-cli, read by name: a view of the Abseil flags that
// base/flags.h set (clients/cli/flags.cc declares them), and the positional arguments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/flags.h"

namespace mixserve::cli {

class Args {
 public:
  explicit Args(flags::Invocation invocation);

  // Values were checked by Abseil when parsed: always ok.
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // Given on the command line (a boolean flag: given and true). Names as documented
  // ("routing-key") or as declared ("routing_key").
  bool Has(const std::string& name) const;
  // The value given on the command line, else `fallback`.
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  long GetInt(const std::string& name, long fallback) const;
  // The command first, then its arguments.
  const std::vector<std::string>& positionals() const { return invocation_.positionals; }

 private:
  flags::Invocation invocation_;
  std::string error_;
};

// A variant as the command lines name it: NAME or NAME:VERSION (version >= 0; 0 or none:
// the server's choice). False when the name is empty or the version is not a number.
bool ParseVariantRef(const std::string& text, std::string* name, int64_t* version);

}  // namespace mixserve::cli
