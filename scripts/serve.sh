#!/usr/bin/env bash
# Builds mixserve and starts the server on the shipped model repository (models/): the
# README's first command. Installs missing Debian packages first (scripts/bootstrap.sh).
# When models/ holds no model yet, small models are trained on CPU from data/multi30k once
# (scripts/train_default_models.sh, a few minutes) and served from build/default-models/.
#   BUILD_DIR   build folder (default: build)
#   Extra arguments are passed to mixserve-server (e.g. --listen=0.0.0.0:8500).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target mixserve-server mixserve-offline mixserve-cli

repo=models
if ! compgen -G "models/*/[0-9]*/model.pbtxt" >/dev/null; then
  repo="$build/default-models"
  if ! compgen -G "$repo/*/[0-9]*/model.pbtxt" >/dev/null; then
    echo "serve: models/ is empty; training small default models into $repo"
    BUILD_DIR="$build" scripts/train_default_models.sh "$repo"
  fi
fi

echo "serve: starting mixserve-server on $repo (gRPC :8500, metrics :9500)"
echo "serve: try  $build/clients/mixserve-cli --target=localhost:8500 translate --from=en --to=de 'A man is riding a bike.'"
echo "serve: administration (mixserve-cli models/load/unload/set-route) is answered on this host only: no admin_token_file"
echo "serve: check a changed config with  $build/server/mixserve-server --config=deploy/default.pbtxt --models=$repo --check-config"
exec "$build/server/mixserve-server" --config=deploy/default.pbtxt --models="$repo" "$@"
