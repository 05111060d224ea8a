#include "base/build_info.h"

#include "base/build_info_values.h"

namespace mixserve {

const char* Version() { return MIXSERVE_VERSION; }
const char* GitCommit() { return MIXSERVE_GIT_COMMIT; }
std::string VersionLine(const std::string& program) {
  return program + " " + Version() + " (commit " + GitCommit() + ")";
}

}  // namespace mixserve
