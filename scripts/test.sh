#!/usr/bin/env bash
# Builds mixserve and runs the whole test suite: the README's test command and CI's.
# Installs missing Debian packages first (scripts/bootstrap.sh).
#   BUILD_DIR   build folder (default: build)
#   SANITIZE=1  ASan/UBSan build of the tests in build-asan
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh

jobs=$(nproc)
extra=()
build=${BUILD_DIR:-build}
if [ "${SANITIZE:-0}" = 1 ]; then
  build=${BUILD_DIR:-build-asan}
  extra+=(-DMIXSERVE_SANITIZE=ON -DMIXSERVE_BUILD_BENCH=OFF)
fi

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMIXSERVE_WERROR=ON "${extra[@]}"
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 900
