#!/usr/bin/env bash
# Docker build step: puts the model repository of the image into DEST.
#   MODELS=auto   (default) the shipped models/ when it holds a model, else small models
#                 trained on CPU from data/multi30k (scripts/train_default_models.sh)
#   MODELS=shipped  models/ only; fails when it holds no model
#   MODELS=train    always train the small default models
#   MODELS=none     an empty repository (mount one at /opt/mixserve/models at run time)
#   usage: deploy/docker/stage-models.sh DEST BUILD_DIR   (from the repository root)
set -euo pipefail
dest=$1
build=$2
mode=${MODELS:-auto}
mkdir -p "$dest"

shipped=no
if compgen -G "models/*/[0-9]*/model.pbtxt" >/dev/null; then shipped=yes; fi

case "$mode" in
  auto) if [ "$shipped" = yes ]; then mode=shipped; else mode=train; fi ;;
  shipped|train|none) ;;
  *) echo "stage-models: MODELS must be auto, shipped, train or none, not '$mode'" >&2; exit 2 ;;
esac

case "$mode" in
  shipped)
    if [ "$shipped" != yes ]; then
      echo "stage-models: MODELS=shipped but models/ holds no <model>/<version>/model.pbtxt" >&2
      exit 1
    fi
    cp -a models/. "$dest/"
    ;;
  train)
    cmake --build "$build" -j "$(nproc)" --target mixserve-offline
    BUILD_DIR="$build" WORK_DIR=/tmp/default-models-work \
      scripts/train_default_models.sh "$dest"
    rm -rf /tmp/default-models-work
    ;;
  none) ;;
esac
echo "stage-models: $mode: $(find "$dest" -name model.pbtxt | wc -l) model versions in $dest"
