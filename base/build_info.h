// What a binary reports of itself: `--version` of every program and the server's
// mixserve_build_info gauge. Torch-free and protobuf-free (the LibTorch version comes from
// the engine, engine/engine.h: TorchVersion()).
#pragma once

#include <string>

namespace mixserve {

// The project's version (CMake's project(VERSION)), e.g. "0.1.0".
const char* Version();
// The git commit the build was configured from ("unknown" outside a git checkout), with
// "-dirty" when the work tree had uncommitted changes then.
const char* GitCommit();
// "<program> <version> (commit <commit>)": the first line of every `--version`.
std::string VersionLine(const std::string& program);

}  // namespace mixserve
