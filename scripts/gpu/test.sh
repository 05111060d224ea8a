#!/usr/bin/env bash
# Builds mixserve on the CUDA machine (scripts/gpu/build.sh) and runs the whole test suite
# there; CUDA-only test cases run as well (they skip on CPU-only machines).
#   usage: scripts/gpu/test.sh [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/gpu/build.sh
# shellcheck disable=SC1091
source .gpudeps/gpu-env.sh
cd "${BUILD_DIR:-build-gpu}"
ctest --output-on-failure -j "$(( $(nproc) / 2 ))" --timeout 600 "$@"
