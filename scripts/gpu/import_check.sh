#!/usr/bin/env bash
# On the GPU machine, in one run (docs/model.md, "Imported models"):
#  1. an OPUS-MT-shaped MarianMT model (d_model 512, 6 + 6 layers, 8 heads, ffn 2048, swish)
#     made by transformers (scripts/reference/marian_reference.py: random weights, then 1,500
#     training steps on Multi30k), and transformers' answers for 500 test sentences on the
#     CPU in fp32 and on CUDA in fp32 and fp16;
#  2. `mixserve-offline import` of it and of tests/data/marian-tiny, and import_exactness
#     against those answers on the same devices (plus the tiny model from pytorch_model.bin);
#  3. attention-free students distilled from the imported teacher (LSTM mixers in encoder
#     self-attention; aft_simple in decoder self-attention) and `mixserve-offline eval` of
#     teacher and students (BLEU, latency, throughput through the serving engine).
# usage: scripts/gpu/import_check.sh OUT_DIR
#   TRAIN_STEPS (1500) steps of the reference model; DISTILL=0 skips step 3; DISTILL_STEPS (0:
#   one epoch) bounds each distillation.
# needs .gpudeps/ (scripts/gpu/fetch_debs.sh) and REF (default .ref) holding en.model and
# de.model (the SentencePiece models) and m30k/ with {train,val,test_2016_flickr}.{en,de}.gz.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: scripts/gpu/import_check.sh OUT_DIR}
ref=${REF:-.ref}
mkdir -p "$out"
S=scripts/reference/marian_reference.py
T=data/multi30k/test_2016_flickr.en.gz
D=$ref/m30k
B=${BUILD_DIR:-build-gpu}
W=${WORK:-/tmp/import-check}
export PYTHONUNBUFFERED=1
step() { echo "== $(date +%T) $*"; }

step build
(CMAKE_ARGS=-DMIXSERVE_WERROR=OFF scripts/gpu/build.sh mixserve-offline import_exactness \
   > "$out/build.log" 2>&1
 echo "build exit $?" >> "$out/build.log") &
build_pid=$!

step "reference model and answers"
python3 $S make "$W/hf/marian-base" --shape base --source-spm "$ref/en.model" \
  --target-spm "$ref/de.model" --probe $T --train-src "$D/train.en.gz" \
  --train-tgt "$D/train.de.gz" --train-steps "${TRAIN_STEPS:-1500}" --lr 5e-4 2>&1 |
  grep -v "seem to have been set\|sacremoses"
for c in "cpu fp32" "cuda fp32" "cuda fp16"; do
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
O=$B/offline/mixserve-offline
E=$B/bench/import_exactness
R=$W/repo
rm -rf "$R"
$O import --hf_dir "$W/hf/marian-base" --repository "$R" --name marian-base
$O import --hf_dir tests/data/marian-tiny --repository "$R" --name marian-tiny
mkdir -p "$W/hf/marian-tiny-bin"
cp tests/data/marian-tiny/* "$W/hf/marian-tiny-bin/" && rm "$W/hf/marian-tiny-bin/model.safetensors"
$O import --hf_dir "$W/hf/marian-tiny-bin" --repository "$R" --name marian-tiny-bin

step exactness
G=tests/data/marian-tiny-goldens
$E --model_dir "$R/marian-base/1" --reference "$out/base-cpu-fp32.tsv" --device cpu
$E --model_dir "$R/marian-base/1" --reference "$out/base-cuda-fp32.tsv" --device cuda
$E --model_dir "$R/marian-base/1" --reference "$out/base-cuda-fp16.tsv" \
  --reference_fp32 "$out/base-cuda-fp32.tsv" --device cuda --dtype fp16
$E --model_dir "$R/marian-tiny/1" --reference $G/tiny-cpu-fp32.tsv --device cpu
$E --model_dir "$R/marian-tiny/1" --reference $G/tiny-cuda-fp32.tsv --device cuda
$E --model_dir "$R/marian-tiny/1" --reference $G/tiny-cuda-fp16.tsv \
  --reference_fp32 $G/tiny-cuda-fp32.tsv --device cuda --dtype fp16
[ -d "$R/marian-tiny-bin/1" ] &&
  $E --model_dir "$R/marian-tiny-bin/1" --reference $G/tiny-cpu-fp32.tsv --device cpu

[ "${DISTILL:-1}" = 1 ] || { step done; exit 0; }
step "distill students"
common=(--teacher "$R/marian-base/1" --data "$D" --src en --tgt de --device cuda --epochs 1
        --max_steps "${DISTILL_STEPS:-0}")
models="$R/marian-base/1"
for student in "dec-aft aft_simple decoder_self" "enc-lstm lstm encoder_self"; do
  set -- $student
  timeout "${DISTILL_TIMEOUT:-120}" $O distill "${common[@]}" --mixer "$2" --sites "$3" \
    --out "$W/runs/$1" 2>&1 | grep -v "^  step"
  [ -f "$W/runs/$1/model.pbtxt" ] && models="$models,$W/runs/$1"
  step "eval $models"
  $O eval --model "$models" --data "$D" --splits test_2016_flickr --beam 4 --device cuda \
    --out "$out/eval-$1.jsonl"
done
step done
