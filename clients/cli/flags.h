// The command line of mixserve-cli: its Abseil flags and which command takes which
// (base/flags.h parses it).
#pragma once

#include "base/flags.h"

namespace mixserve::cli {

const flags::Program& CliProgram();

}  // namespace mixserve::cli
