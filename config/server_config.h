// Reading server.pbtxt (text-format mixserve.v1.ServerConfig): parse, fill defaults, validate.
// Protobuf-side code only (the server); never included next to Torch headers.
#pragma once

#include <string>
#include <vector>

#include "mixserve/v1/config.pb.h"

namespace mixserve {

// Parses text-format ServerConfig, applies defaults and validates it. On failure returns
// false and sets *error to a message naming the problem (parse error with line, bad value).
bool ParseServerConfig(const std::string& text, v1::ServerConfig* config, std::string* error);
bool ReadServerConfig(const std::string& path, v1::ServerConfig* config, std::string* error);

// Fills every unset field with its documented default (idempotent).
void ApplyServerDefaults(v1::ServerConfig* config);
void ApplyServingDefaults(v1::ModelServingConfig* model);
// The batching limits left unset (0) by the configuration, for the device a variant was loaded
// on: on the CPU 64 sentences, 4,096 source tokens, every waiting sentence joining at once; on
// CUDA 256 sentences, 16,384 tokens, joining in groups of 16 (or after 5 ms), the settings of
// the GPU serving measurements (docs/performance.md), where a step's cost hardly grows with
// its rows. Fields that are set are kept.
// decode_workers: 1 on CUDA, on the CPU `cpu_cores` (at most 8).
void ResolveBatchingForDevice(v1::BatchingConfig* batching, bool cuda, int cpu_cores);

// Text-format parsing only (no defaults, no checks); *error: "line L:C: what".
bool ParseServerConfigText(const std::string& text, v1::ServerConfig* config,
                           std::string* error);

// One problem of a configuration: the field's path (e.g. "models[0].device",
// "limits.max_text_bytes") and what is wrong with its value.
struct ConfigProblem {
  std::string field;
  std::string problem;
};
// Every problem of a configuration with its defaults applied; empty when it is valid.
std::vector<ConfigProblem> ServerConfigProblems(const v1::ServerConfig& config);
// Empty when valid, else the first problem as "field: problem".
std::string ValidateServerConfig(const v1::ServerConfig& config);
std::string ValidateRoute(const v1::RouteConfig& route);

// A model name safe to use as a directory name of the repository: 1-128 characters of
// [A-Za-z0-9._-], starting with a letter or digit (so no "..", no "/", no hidden files).
bool IsSafeModelName(const std::string& name);

}  // namespace mixserve
