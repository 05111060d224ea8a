// Model repositories (<repo>/<name>/<version>/): names and version numbers, shared by the
// commands that write versions (export, import).
#pragma once

#include <string>

namespace mixserve::offline {

// One more than the largest numeric subdirectory of `dir` (1 when none, or no `dir`).
int NextModelVersion(const std::string& dir);

// Letters, digits, '-', '_' and '.', not starting with '.'.
bool ValidModelName(const std::string& name);

// Where a new version of model `name` goes: `dir` = <repo>/<name>/<version> (version 0: the
// next free one), written first into `tmp` beside it (a leftover of an earlier run is removed)
// and renamed into place. Throws UsageError for a bad --name or --version, std::runtime_error
// when that version exists.
struct NewVersion {
  int version = 0;
  std::string dir, tmp;
};
NewVersion PrepareNewVersion(const std::string& repo, const std::string& name, int version);

}  // namespace mixserve::offline
