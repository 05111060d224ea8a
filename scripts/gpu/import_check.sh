#!/usr/bin/env bash
# On the GPU machine (docs/model.md, "Imported models"), in two phases that each fit one run:
#  exact:    1. an OPUS-MT-shaped MarianMT model (d_model 512, 6 + 6 layers, 8 heads, ffn 2048,
#               swish) made by transformers (scripts/reference/marian_reference.py: random
#               weights, then TRAIN_STEPS training steps on Multi30k), and transformers' answers
#               for 500 test sentences on the CPU in fp32 and on CUDA in fp32 and fp16;
#            2. `mixserve-offline import` of it and of tests/data/marian-tiny, and
#               import_exactness against those answers on the same devices.
#  students: 3. attention-free students distilled from the imported teacher (LSTM mixers in
#               encoder self-attention; aft_simple in decoder self-attention), exported beside
#               it, `mixserve-offline eval` of all three (BLEU, beam 4), then the three served by
#               mixserve-server (CUDA, fp16) and measured with mixserve-loadgen: BLEU of the
#               whole test set, latency at 1 in flight, throughput at 256 in flight.
# usage: scripts/gpu/import_check.sh OUT_DIR [exact] [students]   (default: both)
#   TRAIN_STEPS (1500) steps of the reference model; DISTILL_EPOCHS (4) of each student.
#   WORK (default build-gpu/import-check: kept between runs on a warm machine).
# needs .gpudeps/ (scripts/gpu/fetch_debs.sh) and REF (default .ref) holding en.model and
# de.model (the SentencePiece models) and m30k/ with {train,val,test_2016_flickr}.{en,de}.gz.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
out=${1:?usage: scripts/gpu/import_check.sh OUT_DIR [exact] [students]}
shift
phases=${*:-exact students}
ref=${REF:-.ref}
mkdir -p "$out"
S=scripts/reference/marian_reference.py
T=data/multi30k/test_2016_flickr.en.gz
D=$ref/m30k
B=${BUILD_DIR:-build-gpu}
W=${WORK:-$B/import-check}
export PYTHONUNBUFFERED=1
step() { echo "== $(date +%T) $*"; }

O=$B/offline/mixserve-offline
E=$B/bench/import_exactness
R=$W/repo
G=tests/data/marian-tiny-goldens

phase_exact() {
  step build
  (CMAKE_ARGS=-DMIXSERVE_WERROR=OFF scripts/gpu/build.sh mixserve-offline import_exactness \
     mixserve-server mixserve-loadgen > "$out/build.log" 2>&1
   echo "build exit $?" >> "$out/build.log") &
  local build_pid=$!

  step "reference model and answers"
  python3 $S make "$W/hf/marian-base" --shape base --source-spm "$ref/en.model" \
    --target-spm "$ref/de.model" --probe $T --train-src "$D/train.en.gz" \
    --train-tgt "$D/train.de.gz" --train-steps "${TRAIN_STEPS:-1500}" --lr 5e-4 2>&1 |
    grep -v "seem to have been set\|sacremoses\|Writing model shards"
  for c in "cpu fp32" "cuda fp32" "cuda fp16"; do
    # shellcheck disable=SC2086
    set -- $c
    python3 $S goldens "$W/hf/marian-base" $T "$out/base-$1-$2.tsv" --device "$1" --dtype "$2" 2>&1 |
      grep -v "seem to have been set\|sacremoses\|Loading weights"
  done
  wait $build_pid
  tail -1 "$out/build.log"
  # The binaries need the carried libraries (LD_LIBRARY_PATH); sourced only now, after the
  # python steps, which need nothing of them.
  # shellcheck disable=SC1091
  source .gpudeps/gpu-env.sh

  step import
  rm -rf "$R"
  $O import --hf_dir "$W/hf/marian-base" --repository "$R" --name marian-base
  $O import --hf_dir tests/data/marian-tiny --repository "$R" --name marian-tiny

  step exactness
  $E --model_dir "$R/marian-base/1" --reference "$out/base-cuda-fp32.tsv" --device cuda
  $E --model_dir "$R/marian-base/1" --reference "$out/base-cuda-fp16.tsv" \
    --reference_fp32 "$out/base-cuda-fp32.tsv" --device cuda --dtype fp16
  $E --model_dir "$R/marian-tiny/1" --reference $G/tiny-cuda-fp32.tsv --device cuda
  $E --model_dir "$R/marian-tiny/1" --reference $G/tiny-cuda-fp16.tsv \
    --reference_fp32 $G/tiny-cuda-fp32.tsv --device cuda --dtype fp16
  $E --model_dir "$R/marian-tiny/1" --reference $G/tiny-cpu-fp32.tsv --device cpu
  $E --model_dir "$R/marian-base/1" --reference "$out/base-cpu-fp32.tsv" --device cpu
}

phase_students() {
  # shellcheck disable=SC1091
  source .gpudeps/gpu-env.sh
  step "distill students"
  local common=(--teacher "$R/marian-base/1" --data "$D" --src en --tgt de --device cuda
                --epochs "${DISTILL_EPOCHS:-4}" --max_tokens 8192 --lr 1e-3 --warmup 100
                --log_every 100)
  local student models="$R/marian-base/1"
  for student in "dec-aft aft_simple decoder_self" "enc-lstm lstm encoder_self"; do
    # shellcheck disable=SC2086
    set -- $student
    $O distill "${common[@]}" --mixer "$2" --sites "$3" --out "$W/runs/$1" 2>&1 | grep -v "^  step"
    [ -f "$W/runs/$1/model.pbtxt" ] || continue
    models="$models,$W/runs/$1"
    $O export --model "$W/runs/$1" --repo "$R" --name "marian-base-$1" --data "$D" --bleu=false \
      --device cuda
  done
  step "eval $models"
  $O eval --model "$models" --data "$D" --splits test_2016_flickr --beam 4 --device cuda \
    --out "$out/eval.jsonl"

  step "serve"
  local port=8610 p=$out/serve
  mkdir -p "$p"
  {
    echo "listen_address: \"127.0.0.1:$port\""
    echo "metrics_address: \"127.0.0.1:9610\""
    echo "model_repository: \"$R\""
    for m in marian-base marian-base-dec-aft marian-base-enc-lstm; do
      [ -d "$R/$m" ] || continue
      echo "models { name: \"$m\" device: \"cuda\" dtype: \"fp16\" batching {"
      echo "  max_batch_sentences: 256 max_batch_tokens: 16384 max_queue_size: 8192 } }"
    done
  } > "$p/server.pbtxt"
  "$B"/server/mixserve-server --config="$p/server.pbtxt" > "$p/server.log" 2>&1 &
  local server_pid=$!
  for _ in $(seq 120); do grep -q "listening on" "$p/server.log" && break; sleep 1; done
  tail -n 5 "$p/server.log"
  local lg=(--target="127.0.0.1:$port" --src="$T" --ref=data/multi30k/test_2016_flickr.de.gz
            --src-lang=en --tgt-lang=de --quiet)
  for m in marian-base marian-base-dec-aft marian-base-enc-lstm; do
    [ -d "$R/$m" ] || continue
    step "loadgen $m"
    "$B"/clients/mixserve-loadgen "${lg[@]}" --variants="$m" --concurrency=64 --hyps="$p/hyps" \
      --json="$p/$m.pass.json" | tail -n 4
    "$B"/clients/mixserve-loadgen "${lg[@]}" --variants="$m" --concurrency=1 --count=300 \
      --json="$p/$m.latency.json" | tail -n 4
    "$B"/clients/mixserve-loadgen "${lg[@]}" --variants="$m" --concurrency=256 --duration=10 \
      --warmup=2 --channels=4 --json="$p/$m.c256.json" | tail -n 4
  done
  kill -TERM $server_pid; wait $server_pid
  nvidia-smi --query-gpu=name,memory.total --format=csv > "$p/gpu.txt" || true
}

for ph in $phases; do
  case $ph in
    exact) phase_exact ;;
    students) phase_students ;;
    *) echo "import_check: unknown phase $ph" >&2; exit 2 ;;
  esac
done
step finished
