#!/usr/bin/env bash
# Trains the shipped model repository (models/) on a CUDA machine: per direction (en-de,
# de-en) a baseline Transformer teacher and two attention-free students distilled from it,
# exported with fp16 weights, plus an eval JSON line per model (greedy and beam BLEU on
# test_2016_flickr and test_2017_flickr, latency, throughput). Directions train in parallel.
#   usage: scripts/train_shipped_models.sh <repository dir> <work dir>
#   BUILD_DIR   build folder with mixserve-offline (default: build)
#   DEVICE      cuda (default) or cpu
#   DIRECTIONS  default "en-de de-en"
#   EPOCHS      teacher epochs (default 20)
#   LIMIT       use only the first N training pairs (smoke runs; default: all)
#   STUDENTS    1 (default): teacher and both students; 0: the teacher alone
# docs/results.md lists the configuration, the command line used and what came out.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ]; then
  echo "usage: $0 <repository dir> <work dir>" >&2
  exit 2
fi
repo=$1
work=$2
build=${BUILD_DIR:-build}
device=${DEVICE:-cuda}
epochs=${EPOCHS:-20}
bin=$build/offline/mixserve-offline
[ -x "$bin" ] || { echo "train_shipped_models: $bin not found" >&2; exit 1; }
mkdir -p "$work" "$repo"
common=(--data=data/multi30k --device="$device")
fit=()   # flags of the training subcommands only
[ -n "${LIMIT:-}" ] && fit+=(--limit="$LIMIT" --valid_limit=100)

# Joint 4,000-piece SentencePiece model per language pair, shared by both of its directions
# (named by the pair in alphabetical order: spm-de-en serves en-de and de-en).
pair_spm() {
  local a=${1%-*} b=${1#*-}
  [[ "$a" < "$b" ]] && echo "$work/spm-$a-$b" || echo "$work/spm-$b-$a"
}
for dir in ${DIRECTIONS:-en-de de-en}; do
  spm=$(pair_spm "$dir")
  if [ ! -f "$spm.model" ]; then
    "$bin" spm --data=data/multi30k --src="${dir%-*}" --tgt="${dir#*-}" --vocab_size=4000 --out="$spm"
  fi
done

direction() {
  local dir=$1 src=${1%-*} tgt=${1#*-}
  local w=$work/$dir spm
  spm=$(pair_spm "$dir").model
  mkdir -p "$w"
  # Teacher: 3+3 layers, d_model 128, 4 heads, ffn 512, max 50 tokens (as in the study).
  "$bin" train "${common[@]}" "${fit[@]}" --src="$src" --tgt="$tgt" --spm="$spm" \
    --d_model=128 --ffn_dim=512 --heads=4 --encoder_layers=3 --decoder_layers=3 --max_len=50 \
    --dropout=0.2 --max_tokens=4096 --epochs="$epochs" --lr=2e-3 --warmup=1000 --log_every=200 --out="$w/base"
  "$bin" export "${common[@]}" --model="$w/base/best" --repo="$repo" --name="$dir-base" --fp16
  [ "${STUDENTS:-1}" = 1 ] || return 0
  # Student 1: a multi-head LSTM (FAR) in place of every encoder self-attention. It replaced
  # ALR-XS (2.7 M parameters, 4.2-4.5 BLEU below the teacher): 1.8 M parameters, 1.1-1.5 BLEU
  # below the teacher (docs/results.md, "Shipped models").
  "$bin" distill "${common[@]}" "${fit[@]}" --teacher="$w/base/best" --mixer=lstm \
    --sites=encoder_self --max_tokens=4096 --epochs=8 --lr=1e-3 --warmup=200 --log_every=200 --out="$w/lstm-enc"
  # Student 2: aft_simple in place of every decoder self-attention (O(1) decoding state),
  # distilled block-wise, then fine-tuned end to end with the teacher's distribution.
  "$bin" distill "${common[@]}" "${fit[@]}" --teacher="$w/base/best" --mixer=aft_simple \
    --sites=decoder_self --max_tokens=4096 --epochs=8 --lr=1e-3 --warmup=200 --log_every=200 --out="$w/aft-dec-distilled"
  "$bin" finetune "${common[@]}" "${fit[@]}" --student="$w/aft-dec-distilled" --teacher="$w/base/best" \
    --kd_alpha=0.5 --temperature=2 --max_tokens=4096 --epochs=5 --lr=3e-4 --warmup=200 --log_every=200 --out="$w/aft-dec"
  "$bin" export "${common[@]}" --model="$w/lstm-enc" --repo="$repo" --name="$dir-lstm-enc" --fp16
  "$bin" export "${common[@]}" --model="$w/aft-dec/best" --repo="$repo" --name="$dir-aft-dec" --fp16
}

pids=()
for dir in ${DIRECTIONS:-en-de de-en}; do
  direction "$dir" > "$work/$dir.log" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
for dir in ${DIRECTIONS:-en-de de-en}; do tail -n 5 "$work/$dir.log"; done
[ $status -eq 0 ] || { echo "train_shipped_models: a direction failed (logs in $work)" >&2; exit 1; }

# Evaluate what was exported (the fp16 files the server will load).
models=$(ls -d "$repo"/*/[0-9]* | paste -sd, -)
"$bin" eval "${common[@]}" --model="$models" --splits=test_2016_flickr,test_2017_flickr \
  --beam=5 --batch_size=64 --out="$work/eval.jsonl"
du -sh "$repo"
