// Model repositories (<repo>/<name>/<version>/): names and version numbers, shared by the
// commands that write versions (export, import).
#pragma once

#include <string>

namespace mixserve::offline {

// One more than the largest numeric subdirectory of `dir` (1 when none, or no `dir`).
int NextModelVersion(const std::string& dir);

// Letters, digits, '-', '_' and '.', not starting with '.'.
bool ValidModelName(const std::string& name);

}  // namespace mixserve::offline
