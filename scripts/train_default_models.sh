#!/usr/bin/env bash
# Trains small default models on CPU from data/multi30k and exports them into a model
# repository, so that the server can start on real (small) trained models when no shipped
# models exist. Per direction (en-de, de-en): a baseline Transformer teacher and one
# two attention-free students distilled from it (ALR in place of encoder self-attention;
# aft_simple in place of decoder self-attention, then fine-tuned end to end), exported with
# fp16 weights. docs/results.md has the measured times and BLEU.
#   usage: scripts/train_default_models.sh <repository dir>
#   BUILD_DIR   build folder with mixserve-offline (default: build)
#   WORK_DIR    intermediate files (default: $BUILD_DIR/default-models-work)
#   THREADS     CPU threads (default: nproc)
#   DIRECTIONS  default "en-de de-en"
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 1 ]; then
  echo "usage: $0 <repository dir>" >&2
  exit 2
fi
repo=$1
build=${BUILD_DIR:-build}
work=${WORK_DIR:-$build/default-models-work}
threads=${THREADS:-$(nproc)}
bin=$build/offline/mixserve-offline
if [ ! -x "$bin" ]; then
  echo "train_default_models: $bin not found; build it first:" >&2
  echo "  cmake --build $build --target mixserve-offline" >&2
  exit 1
fi
mkdir -p "$work" "$repo"
common=(--data=data/multi30k --device=cpu --threads="$threads")
start=$(date +%s)

# One joint tokenizer for English and German, shared by both directions.
if [ ! -f "$work/spm-en-de.model" ]; then
  "$bin" spm "${common[@]:0:1}" --src=en --tgt=de --vocab_size=2000 --out="$work/spm-en-de"
fi

for dir in ${DIRECTIONS:-en-de de-en}; do
  src=${dir%-*}
  tgt=${dir#*-}
  t0=$(date +%s)
  echo "== $dir: teacher"
  "$bin" train "${common[@]}" --src="$src" --tgt="$tgt" --spm="$work/spm-en-de.model" \
    --d_model=64 --ffn_dim=256 --heads=4 --encoder_layers=2 --decoder_layers=2 --max_len=40 \
    --dropout=0.1 --max_tokens=2500 --epochs=3 --lr=2e-3 --warmup=200 --valid_limit=300 \
    --log_every=50 --out="$work/$dir-base"
  echo "== $dir: distilled student (alr, encoder self-attention)"
  "$bin" distill "${common[@]}" --teacher="$work/$dir-base/best" --mixer=alr --size=m \
    --sites=encoder_self --max_tokens=2500 --epochs=1 --lr=1e-3 --warmup=50 --valid_limit=300 \
    --log_every=50 --out="$work/$dir-alr-enc-m"
  echo "== $dir: distilled student (aft_simple, decoder self-attention), fine-tuned"
  "$bin" distill "${common[@]}" --teacher="$work/$dir-base/best" --mixer=aft_simple \
    --sites=decoder_self --max_tokens=2500 --epochs=1 --lr=1e-3 --warmup=50 --valid_limit=300 \
    --log_every=50 --out="$work/$dir-aft-dec-distilled"
  "$bin" finetune "${common[@]}" --student="$work/$dir-aft-dec-distilled" \
    --teacher="$work/$dir-base/best" --kd_alpha=0.5 --temperature=2 --max_tokens=2500 \
    --epochs=1 --lr=5e-4 --warmup=50 --valid_limit=300 --log_every=50 --out="$work/$dir-aft-dec"
  echo "== $dir: export"
  "$bin" export "${common[@]}" --model="$work/$dir-base/best" --repo="$repo" --name="$dir-base" --fp16
  "$bin" export "${common[@]}" --model="$work/$dir-alr-enc-m" --repo="$repo" --name="$dir-alr-enc" --fp16
  "$bin" export "${common[@]}" --model="$work/$dir-aft-dec/best" --repo="$repo" --name="$dir-aft-dec" --fp16
  echo "== $dir: done in $(( $(date +%s) - t0 )) s"
done
echo "train_default_models: models in $repo ($(( $(date +%s) - start )) s in total)"
