#!/usr/bin/env bash
# Docker build step: copies the shared libraries that ELF files load (their ldd closure) into
# DEST, named by soname, skipping the sonames the base image already has and the project's own
# libraries under /usr/local. Fails when ldd cannot resolve a library.
#   usage: deploy/docker/collect-libs.sh DEST BASE_LIBS_LIST ELF...
#   BASE_LIBS_LIST: `ls /usr/lib/x86_64-linux-gnu` of the base image, one name a line
set -euo pipefail
dest=$1
base=$2
shift 2
mkdir -p "$dest"
out=$(ldd "$@")
if grep -q "not found" <<<"$out"; then
  echo "collect-libs: unresolved libraries:" >&2
  grep "not found" <<<"$out" >&2
  exit 1
fi
count=0
while read -r soname path; do
  case "$path" in /usr/local/*) continue ;; esac
  if grep -qxF "$soname" "$base"; then continue; fi
  cp -L "$path" "$dest/$soname"
  count=$((count + 1))
done < <(awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' <<<"$out" | sort -u)
echo "collect-libs: $count libraries ($(du -sh "$dest" | cut -f1)) in $dest"
