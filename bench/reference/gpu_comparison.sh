#!/usr/bin/env bash
# mixserve against CTranslate2 on one CUDA GPU, one after the other on the same weights
# (docs/performance.md, "Against CTranslate2 (GPU)"), per model:
#   1. the model's weights as .safetensors (export_safetensors);
#   2. mixserve's greedy translations of test_2016 on the GPU in fp32 (mixserve-offline eval);
#   3. bench/reference/ct2_compare.py --device cuda: the same model as a CTranslate2 model,
#      the agreement check against (2) in float32, then CTranslate2's timings in process in
#      float16 (batch 1, and the test set sorted by length in batches of BATCH_SIZES);
#   4. mixserve-server (fp16, CUDA) serving the model twice: as a configuration without a
#      batching section leaves it (the server's defaults for the device) and as
#      "<name>-large" (batches of up to 1,024 sentences and 65,536 tokens, joins of 64), each
#      driven by mixserve-loadgen at 1 and at LOAD_CONCURRENCY in flight (variant forced).
# CTranslate2 is not built here: CT2_PYTHONPATH names a folder from which python3 imports an
# installed `ctranslate2` package built with CUDA (its library and cuBLAS on LD_LIBRARY_PATH).
#   CT2_PYTHONPATH  required
#   MODELS          model version folders (default models/en-de-base/1), each served under the
#                   name of its parent folder
#   BUILD_DIR       mixserve build folder (default build-gpu)
#   OUT             results folder (default out/gpu-comparison)
#   BATCH_SIZES     CTranslate2's sorted batches (default 32,64,128,256,512,1024)
#   LOAD_CONCURRENCY  in-flight requests of the timed loads besides 1 (default "256 1024")
#   PORT            gRPC port (default 8597; metrics on PORT+1000)
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CT2_PYTHONPATH:?set CT2_PYTHONPATH to the folder holding an installed ctranslate2 package}"
build=${BUILD_DIR:-build-gpu}
out=${OUT:-out/gpu-comparison}
port=${PORT:-8597}
models=${MODELS:-models/en-de-base/1}
sizes=${BATCH_SIZES:-32,64,128,256,512,1024}
src=data/multi30k/test_2016_flickr.en.gz
ref=data/multi30k/test_2016_flickr.de.gz
mkdir -p "$out"

for bin in bench/export_safetensors offline/mixserve-offline server/mixserve-server \
           clients/mixserve-loadgen; do
  [[ -x "$build/$bin" ]] || { echo "gpu_comparison: $build/$bin missing (build it first)" >&2; exit 1; }
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt"
cat "$out/gpu.txt"

# One repository: each model under its own name and again as "<name>-large".
repo=$out/repo
rm -rf "$repo" && mkdir -p "$repo"
names=()
for m in $models; do
  dir=$(cd "$(dirname "$m")" && pwd)
  name=$(basename "$dir")
  ln -s "$dir" "$repo/$name"
  ln -s "$dir" "$repo/$name-large"
  names+=("$name")
done
{
  echo "listen_address: \"127.0.0.1:$port\""
  echo "metrics_address: \"127.0.0.1:$((port + 1000))\""
  echo "model_repository: \"$repo\""
  for n in "${names[@]}"; do
    echo "models { name: \"$n\" device: \"cuda\" dtype: \"fp16\" }"
    echo "models { name: \"$n-large\" device: \"cuda\" dtype: \"fp16\" batching {"
    echo "  max_batch_sentences: 1024 max_batch_tokens: 65536 max_queue_size: 8192 join_min_sentences: 64 } }"
  done
} > "$out/server.pbtxt"

for m in $models; do
  name=$(basename "$(cd "$(dirname "$m")" && pwd)")
  d="$out/$name"
  mkdir -p "$d"
  echo "== $name: CTranslate2"
  "$build/bench/export_safetensors" "$m" "$d/weights.safetensors"
  "$build/offline/mixserve-offline" eval --model="$m" --splits=test_2016_flickr --beam=1 \
    --device=cuda --dtype=fp32 --latency_sentences=0 --batch_size=64 --hyps_dir="$d/hyps" \
    --out="$d/mixserve-eval.jsonl" >/dev/null
  hyps=$(ls "$d"/hyps/*/test_2016_flickr.greedy.* | head -1)
  PYTHONPATH="$CT2_PYTHONPATH${PYTHONPATH:+:$PYTHONPATH}" python3 bench/reference/ct2_compare.py \
    --device=cuda --model_dir="$m" --weights="$d/weights.safetensors" --ct2_dir="$d/ct2" \
    --src="$src" --mixserve_hyps="$hyps" --compute_types=float16 --batch_sizes="$sizes" \
    --json="$d/ct2.json" | tee "$d/ct2.txt"
done

"$build/server/mixserve-server" --config="$out/server.pbtxt" >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 180); do grep -q "listening on" "$out/server.log" && break; kill -0 "$server" || { cat "$out/server.log"; exit 1; }; sleep 1; done
grep -E "loaded|batching" "$out/server.log" | head -20 || true
L=("$build/clients/mixserve-loadgen" --target="127.0.0.1:$port" --src="$src" --ref="$ref"
   --src-lang=en --tgt-lang=de --quiet)
for n in "${names[@]}"; do
  for v in "$n" "$n-large"; do
    echo "== $v: mixserve"
    "${L[@]}" --variants="$v" --concurrency=64 --count=1000 >/dev/null  # warm-up: every graph
    "${L[@]}" --variants="$v" --concurrency=1 --count=300 --json="$out/$n/$v.c1.json" | tail -n 1
    for c in ${LOAD_CONCURRENCY:-256 1024}; do
      "${L[@]}" --variants="$v" --concurrency=$c --duration=12 --warmup=2 --channels=4 \
        --json="$out/$n/$v.c$c.json" | tail -n 1
    done
  done
done
curl -s "http://127.0.0.1:$((port + 1000))/metrics" |
  grep -E '^mixserve_(scheduler_phase_duration_seconds_(sum|count)|batch_size_(sum|count))' \
  > "$out/metrics_end.txt" || true
echo "== end"
