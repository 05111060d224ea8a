// Reading server.pbtxt (text-format mixserve.v1.ServerConfig): parse, fill defaults, validate.
// Protobuf-side code only (the server); never included next to Torch headers.
#pragma once

#include <string>

#include "mixserve/v1/config.pb.h"

namespace mixserve {

// Parses text-format ServerConfig, applies defaults and validates it. On failure returns
// false and sets *error to a message naming the problem (parse error with line, bad value).
bool ParseServerConfig(const std::string& text, v1::ServerConfig* config, std::string* error);
bool ReadServerConfig(const std::string& path, v1::ServerConfig* config, std::string* error);

// Fills every unset field with its documented default (idempotent).
void ApplyServerDefaults(v1::ServerConfig* config);
void ApplyServingDefaults(v1::ModelServingConfig* model);

// Empty when valid, else a message naming the first problem.
std::string ValidateServerConfig(const v1::ServerConfig& config);
std::string ValidateRoute(const v1::RouteConfig& route);

// A model name safe to use as a directory name of the repository: 1-128 characters of
// [A-Za-z0-9._-], starting with a letter or digit (so no "..", no "/", no hidden files).
bool IsSafeModelName(const std::string& name);

}  // namespace mixserve
