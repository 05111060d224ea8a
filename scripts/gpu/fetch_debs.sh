#!/usr/bin/env bash
# Downloads (does not install) the Debian 12 packages that the GPU machine lacks, plus
# gpu-env.sh, into DIR (default: .gpudeps) of the current repo, and keeps DIR out of git.
# Then name DIR in the device tool's `carry` and start each device command with
#   source .gpudeps/gpu-env.sh
set -euo pipefail
dir=${1:-.gpudeps}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
grep -qxF "/$dir/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/$dir/" >> .git/info/exclude; }
apt-get update -qq >/dev/null 2>&1 || true
(cd "$dir" && apt-get download -qq \
  libgrpc-dev libgrpc29 libgrpc++-dev libgrpc++1.51 protobuf-compiler-grpc libprotoc32 \
  libabsl-dev libabsl20220623 libre2-9 libre2-dev libc-ares2 libc-ares-dev \
  prometheus-cpp-dev libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprometheus-cpp-push1.0 \
  libcivetweb1 libcivetweb-dev civetweb \
  libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian \
  libsentencepiece0 libsentencepiece-dev libicu72 libicu-dev 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
cp "$here/env.sh" "$dir/gpu-env.sh"
echo "$(ls "$dir"/*.deb | wc -l) packages, $(du -sh "$dir" | cut -f1) in $dir"
