// mixserve-server --check-config: the server configuration and every model.pbtxt of the
// model repository, checked as the server would read them at start-up, without loading any
// weights or tokenizer (nothing reaches a device).
#pragma once

#include <functional>
#include <ostream>
#include <string>

#include "mixserve/v1/config.pb.h"

namespace mixserve {

// `path`: the server.pbtxt ("" when there is none: defaults and flags only). `apply_flags`
// applies the command line's overrides to the parsed file, as at start-up. Writes one line
// per file checked ("FILE: ok") and per problem ("FILE: field: problem", parse errors as
// "FILE: line L:C: problem"), then a summary line. Returns the number of problems.
int CheckConfig(const std::string& path,
                const std::function<void(v1::ServerConfig*)>& apply_flags, std::ostream& out);

}  // namespace mixserve
