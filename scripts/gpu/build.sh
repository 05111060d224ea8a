#!/usr/bin/env bash
# Configures and builds mixserve on a CUDA machine that has python3 with a CUDA build of
# torch (whose CMake package provides LibTorch) but not the Debian packages of gRPC, Abseil,
# prometheus-cpp, SentencePiece and GoogleTest: those come from .gpudeps/ (fetched on a
# Debian 12 machine with scripts/gpu/fetch_debs.sh) and are unpacked under /opt/deps.
#   usage: scripts/gpu/build.sh [targets...]      (default: everything)
#   BUILD_DIR  default build-gpu; extra CMake options in CMAKE_ARGS
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f .gpudeps/gpu-env.sh ] || { echo "gpu/build: .gpudeps/ missing (scripts/gpu/fetch_debs.sh)" >&2; exit 1; }
# shellcheck disable=SC1091
source .gpudeps/gpu-env.sh
build=${BUILD_DIR:-build-gpu}
# shellcheck disable=SC2086
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMIXSERVE_WERROR=ON ${CMAKE_ARGS:-} >/dev/null
if [ $# -gt 0 ]; then
  cmake --build "$build" -j "$(nproc)" --target "$@"
else
  cmake --build "$build" -j "$(nproc)"
fi
