#!/usr/bin/env bash
# Installs the Debian 12 packages mixserve needs, if any is missing. Idempotent: runs
# `apt-get update` at most once and does nothing when everything is already installed.
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build pkg-config
  libtorch-dev
  # LibTorch finds its BLAS through Debian's libblas.so.3 alternative; without this it gets
  # the reference BLAS, and CPU decoding is 5x slower at batch 32 (docs/performance.md).
  libopenblas0-openmp
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsentencepiece-dev sentencepiece
  prometheus-cpp-dev civetweb
  libabsl-dev
  libicu-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-grpcio python3-protobuf
  # The Python client's install test: a venv with pip (python3-pip brings setuptools, wheel).
  python3-venv python3-pip
  prometheus
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "bootstrap: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
echo "bootstrap: done"
