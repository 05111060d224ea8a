#!/usr/bin/env bash
# The GPU results of docs/results.md and docs/performance.md, as steps that fit runs of at most
# a few minutes each on the CUDA machine (docs/gpu.md). Long jobs start in the background
# (their own process session, logs under $WORK/logs) so that later steps can run beside them.
#   usage: scripts/gpu/results.sh <step>...
#     build    build everything into $BUILD_DIR
#     bench    CUDA timings of every mixer and of a whole decoding step (bench/mixer_bench,
#              bench/decode_bench; fp32 and fp16) and of a translation with every cell of the
#              ablation grid (bench/cell_bench, fp32) -> $WORK/bench
#     kernels  the device kernels of one d512 decoding step (eager and graphed, batches 1 and
#              256, fp16; bench/decode_bench --kernels) -> $WORK/bench/kernels_d512.txt
#     train    background: shipped models (en-de, de-en: teacher + 2 students), teachers for
#              en-fr and fr-en, from-scratch controls (en-de), the 6+6 d_model 512 models
#              of the serving comparison
#     train-perf background: only the d_model 512 models of the serving comparison
#     sweep    background: the ablation grid distilled from the shipped teachers
#              (models/en-de-base/1, models/de-en-base/1; TEACHERS overrides) in $SHARDS
#              parallel shards -> $WORK/sweep/<shard>, skipping the cells already published in
#              docs/data/gpu-sweep-ablation.csv (SWEEP_SKIP; empty: the whole grid); shards
#              resume their own folder; `pack` merges shards and published rows (sweep --merge)
#              into $WORK/sweep/all
#     pipeline the whole offline pipeline for en-de in one timed command (docs/offline.md):
#              scripts/train_shipped_models.sh with DIRECTIONS=en-de, EPOCHS=$PIPELINE_EPOCHS
#     perf     serving benchmark of the d_model 512 models through the server and
#              mixserve-loadgen, then the MarianMT reference -> $WORK/perf; background sweep
#              processes are paused (SIGSTOP) while it measures
#     perf-shipped the same for the shipped en-de models (models/, 3+3 layers, d_model 128)
#              beside a MarianMT model of their size -> $WORK/perf-shipped
#     enc-students candidates for the shipped encoder student: aft_full and lstm in place of
#              every encoder self-attention, distilled (8 epochs, as the shipped ALR-XS) from
#              the shipped teachers of both directions, exported in fp16 and evaluated
#              (greedy and beam 5, both test splits) -> $WORK/enc-students
#     wait     until the background jobs started so far have ended (e.g. `train-perf wait perf`)
#     status   progress of the background jobs
#     pack D   the results (tables, JSON, logs, shipped model repository) as files in D
#   JOIN_MIN (perf, perf-shipped: batching.join_min_sentences of the variants; default unset)
#   BUILD_DIR (default build-gpu), WORK (default work-gpu), SHARDS (default 4),
#   EPOCHS (teacher epochs, default 20), SWEEP_EPOCHS (default 2), PIPELINE_EPOCHS (default 12)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091
source .gpudeps/gpu-env.sh
B=${BUILD_DIR:-build-gpu}
W=${WORK:-work-gpu}
bin=$B/offline/mixserve-offline
mkdir -p "$W/logs"

background() {  # name command...
  local name=$1
  shift
  setsid nohup "$@" > "$W/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$W/logs/$name.pid"
  echo "started $name (log $W/logs/$name.log)"
}

job_train_perf() {  # en-de 6+6 d_model 512 teacher and two students for the serving comparison
  local w=$W/perf-train c=(--data=data/multi30k --device=cuda)
  mkdir -p "$w"
  [ -f "$w/spm.model" ] || "$bin" spm --data=data/multi30k --src=en --tgt=de --vocab_size=8000 --out="$w/spm"
  "$bin" train "${c[@]}" --src=en --tgt=de --spm="$w/spm.model" --d_model=512 --ffn_dim=2048 \
    --heads=8 --encoder_layers=6 --decoder_layers=6 --max_len=50 --dropout=0.3 --max_tokens=8192 \
    --epochs="${PERF_EPOCHS:-12}" --lr=7e-4 --warmup=1500 --log_every=100 --out="$w/base"
  "$bin" distill "${c[@]}" --teacher="$w/base/best" --mixer=aft_simple --sites=decoder_self \
    --max_tokens=8192 --epochs=3 --lr=1e-3 --warmup=100 --log_every=100 --out="$w/aft-dec"
  "$bin" distill "${c[@]}" --teacher="$w/base/best" --mixer=alr --size=xs --sites=encoder_self \
    --max_tokens=8192 --epochs=3 --lr=1e-3 --warmup=100 --log_every=100 --out="$w/alr-enc"
  for m in base/best:base aft-dec:aft-dec alr-enc:alr-enc; do
    "$bin" export "${c[@]}" --model="$w/${m%%:*}" --repo="$W/perf-repo" --name="en-de-512-${m#*:}" --fp16
  done
}

job_controls() {  # attention-free models trained from scratch (no teacher), en-de, as the teacher
  local w=$W/controls c=(--data=data/multi30k --device=cuda) spm=$W/shipped/spm-de-en.model
  mkdir -p "$w"
  while [ ! -f "$spm" ]; do sleep 5; done
  local shape=(--src=en --tgt=de --spm="$spm" --d_model=128 --ffn_dim=512 --heads=4
               --encoder_layers=3 --decoder_layers=3 --max_len=50 --dropout=0.2 --max_tokens=4096
               --epochs="${EPOCHS:-20}" --lr=2e-3 --warmup=1000 --log_every=200)
  "$bin" train "${c[@]}" "${shape[@]}" --encoder_mixer=alr --mixer_size=m --out="$w/alr-enc-m" &
  "$bin" train "${c[@]}" "${shape[@]}" --encoder_mixer=alr --decoder_self_mixer=alr \
    --decoder_cross_mixer=alr --mixer_size=m --out="$w/alr-all-m" &
  "$bin" train "${c[@]}" "${shape[@]}" --decoder_self_mixer=aft_simple --out="$w/aft-dec" &
  wait
  "$bin" eval "${c[@]}" --model="$w/alr-enc-m/best,$w/alr-all-m/best,$w/aft-dec/best" \
    --splits=test_2016_flickr,test_2017_flickr --beam=1 --batch_size=64 --out="$w/eval.jsonl"
}

job_sweep() {  # shard
  "$bin" sweep --teachers="${TEACHERS:-models/en-de-base/1,models/de-en-base/1}" --out="$W/sweep/s$1" \
    --shard="$1/${SHARDS:-4}" --mixers=alr,alrr,aslr,elr,aft_full,aft_simple,aft_local,aft_conv,lstm \
    --sizes=xs,s,m,l,- \
    --sites=encoder_self,decoder_self,decoder_cross,encoder_self+decoder_self+decoder_cross \
    --epochs="${SWEEP_EPOCHS:-2}" --max_tokens=4096 --lr=1e-3 --latency_sentences=30 \
    --device=cuda --resume ${SWEEP_SKIP:+--skip="$SWEEP_SKIP"}
}

# Serving benchmark of three variants <prefix>-{base,aft-dec,$ENC} of a repository through
# the server and mixserve-loadgen, then MarianMT `generate` of the same dimensions.
#   ENC=<encoder student> step_perf OUT REPO PREFIX SPM D_MODEL LAYERS HEADS FFN
step_perf() {
  local p=$1 repo=$2 prefix=$3 spm=$4 port=8600
  mkdir -p "$p"
  {
    echo "listen_address: \"127.0.0.1:$port\""
    echo "metrics_address: \"127.0.0.1:9600\""
    echo "model_repository: \"$repo\""
    for m in base aft-dec "$ENC" ${SYNC:+base-sync}; do
      echo "models { name: \"$prefix-$m\" device: \"cuda\" dtype: \"fp16\" batching {"
      echo "  max_batch_sentences: 256 max_batch_tokens: 16384 max_queue_size: 8192"
      echo "  ${JOIN_MIN:+join_min_sentences: $JOIN_MIN} }"
      [ "$m" = base-sync ] && echo "  disable_step_lookahead: true"
      echo "}"
    done
  } > "$p/server.pbtxt"
  # SYNC=1: the base model once more as "<prefix>-base-sync" (a link to it in the repository),
  # served without the step lookahead, for a single-request latency side by side.
  [ -n "${SYNC:-}" ] && ln -sfn "$prefix-base" "$repo/$prefix-base-sync"
  # Measure on a quiet GPU: pause background sweep shards, resume them on any exit.
  pkill -STOP -f "[m]ixserve-offline sweep" || true
  "$B/server/mixserve-server" --config="$p/server.pbtxt" > "$p/server.log" 2>&1 &
  perf_pid=$!
  trap 'kill "${perf_pid:-0}" 2>/dev/null || true; pkill -CONT -f "[m]ixserve-offline sweep" || true' EXIT
  # The server prints "mixserve-server listening on ..." once its models are loaded.
  for _ in $(seq 120); do grep -q "listening on" "$p/server.log" && break; sleep 1; done
  cat "$p/server.log"
  curl -s "http://127.0.0.1:9600/metrics" | grep -c '^mixserve_' > "$p/metrics_lines.txt" || true
  local lg=(--target="127.0.0.1:$port" --src=data/multi30k/test_2016_flickr.en.gz
            --ref=data/multi30k/test_2016_flickr.de.gz --src-lang=en --tgt-lang=de --quiet)
  for m in base aft-dec "$ENC"; do
    local v=$prefix-$m
    "$B/clients/mixserve-loadgen" "${lg[@]}" --variants="$v" --concurrency=64 --hyps="$p/hyps" \
      --json="$p/$v.pass.json" | tail -n 4
    "$B/clients/mixserve-loadgen" "${lg[@]}" --variants="$v" --concurrency=1 --count=300 \
      --json="$p/$v.latency.json" | tail -n 4
    for c in 64 256; do
      "$B/clients/mixserve-loadgen" "${lg[@]}" --variants="$v" --concurrency=$c --duration=12 \
        --warmup=2 --channels=4 --json="$p/$v.c$c.json" | tail -n 4
    done
  done
  if [ -n "${SYNC:-}" ]; then
    for v in "$prefix-base-sync" "$prefix-base"; do
      "$B/clients/mixserve-loadgen" "${lg[@]}" --variants="$v" --concurrency=1 --count=300 \
        --json="$p/$v.latency2.json" | tail -n 4
    done
  fi
  # Where each variant's scheduler spent its time (admit / step / finish), for docs/performance.md.
  curl -s "http://127.0.0.1:9600/metrics" | grep -E '^mixserve_(scheduler_phase_duration_seconds_(sum|count)|batch_size_(sum|count))' \
    > "$p/metrics_end.txt" || true
  kill -TERM "$perf_pid"; wait "$perf_pid" || true
  nvidia-smi --query-gpu=name,memory.total --format=csv > "$p/gpu.txt" || true
  python3 bench/reference/marian_generate.py --spm="$spm" \
    --src=<(zcat data/multi30k/test_2016_flickr.en.gz) --hyps="$(ls "$p"/hyps."$prefix"-base*.txt | head -1)" \
    --d_model="$5" --layers="$6" --heads="$7" --ffn="$8" --json="$p/marian.json"
}

for step in "$@"; do
  case $step in
    build) scripts/gpu/build.sh ;;
    bench)
      mkdir -p "$W/bench"
      for dt in fp32 fp16; do
        "$B/bench/mixer_bench" --device cuda --dtype $dt --benchmark_format=json \
          --benchmark_out="$W/bench/mixer_cuda_$dt.json" > "$W/bench/mixer_cuda_$dt.txt" 2>&1
        "$B/bench/decode_bench" --device cuda --dtype $dt --benchmark_format=json \
          --benchmark_out="$W/bench/decode_cuda_$dt.json" > "$W/bench/decode_cuda_$dt.txt" 2>&1
      done
      "$B/bench/cell_bench" --device cuda --csv "$W/bench/cell_cuda_fp32.csv" \
        > "$W/bench/cell_cuda_fp32.txt" 2>&1
      tail -n 3 "$W/bench/mixer_cuda_fp16.txt"
      cat "$W/bench/decode_cuda_fp16.txt" ;;
    kernels)
      mkdir -p "$W/bench"
      "$B/bench/decode_bench" --device cuda --dtype fp16 --kernels --benchmark_min_time=0.05 \
        --benchmark_filter='d512x6/mha(/graph)?/(1|256)$' > "$W/bench/kernels_d512.txt" 2>&1
      grep -A 25 'device kernels' "$W/bench/kernels_d512.txt" | head -n 120 ;;
    train)
      background shipped env BUILD_DIR="$B" scripts/train_shipped_models.sh "$W/models" "$W/shipped"
      background fr env BUILD_DIR="$B" STUDENTS=0 DIRECTIONS="en-fr fr-en" \
        scripts/train_shipped_models.sh "$W/models-fr" "$W/fr"
      export -f job_controls job_train_perf
      export B W bin
      background controls bash -c job_controls
      background perf-train bash -c job_train_perf ;;
    train-perf)
      export -f job_train_perf
      export B W bin
      background perf-train bash -c job_train_perf ;;
    sweep)
      # Cells already published are not run again (SWEEP_SKIP= runs the whole grid); `pack`
      # merges the published rows with the new ones.
      SWEEP_SKIP=${SWEEP_SKIP-docs/data/gpu-sweep-ablation.csv}
      if [ -n "$SWEEP_SKIP" ]; then
        mkdir -p "$W/sweep/published"
        cp "$SWEEP_SKIP" "$W/sweep/published/ablation.csv"
        if [ "$SWEEP_SKIP" = docs/data/gpu-sweep-ablation.csv ]; then
          cp docs/data/gpu-sweep.jsonl "$W/sweep/published/results.jsonl"
        fi
      fi
      export -f job_sweep
      export B W bin SWEEP_SKIP
      for ((i = 0; i < ${SHARDS:-4}; ++i)); do background "sweep$i" bash -c "job_sweep $i"; done ;;
    pipeline)
      rm -rf "$W/pipeline" "$W/pipeline-repo"
      t0=$SECONDS
      env BUILD_DIR="$B" DIRECTIONS=en-de EPOCHS="${PIPELINE_EPOCHS:-12}" \
        scripts/train_shipped_models.sh "$W/pipeline-repo" "$W/pipeline" > "$W/logs/pipeline.log" 2>&1
      echo "pipeline: exit 0, wall $((SECONDS - t0)) s" | tee -a "$W/logs/pipeline.log"
      tail -n 12 "$W/logs/pipeline.log" ;;
    perf) ENC=alr-enc step_perf "$W/perf" "$W/perf-repo" en-de-512 "$W/perf-train/spm.model" 512 6 8 2048 ;;
    perf-shipped) ENC=lstm-enc step_perf "$W/perf-shipped" models en-de models/en-de-base/1/spm.model 128 3 4 512 ;;
    enc-students)
      e=$W/enc-students
      rm -rf "$e"
      mkdir -p "$e"
      for t in en-de de-en; do
        for m in aft_full lstm; do
          "$bin" distill --data=data/multi30k --device=cuda --teacher="models/$t-base/1" --mixer=$m \
            --sites=encoder_self --max_tokens=4096 --epochs=8 --lr=1e-3 --warmup=200 \
            --log_every=200 --out="$e/$t-$m" > "$e/$t-$m.log" 2>&1 &
        done
      done
      wait
      for t in en-de de-en; do
        for m in aft_full lstm; do
          "$bin" export --model="$e/$t-$m" --repo="$e/repo" --name="$t-${m%%_*}-enc" --fp16 \
            >> "$e/export.log" 2>&1
        done
      done
      "$bin" eval --data=data/multi30k --device=cuda --model="$(ls -d "$e"/repo/*/1 | paste -sd, -)" \
        --splits=test_2016_flickr,test_2017_flickr --beam=5 --batch_size=64 --out="$e/eval.jsonl" \
        > "$e/eval.log" 2>&1
      du -ab "$e/repo" | sort -n | tail -n 5 ;;
    wait)
      # Until every background job started so far has ended (by its process id: a search of
      # the process list by command line would also find the shell that runs this step).
      for f in "$W"/logs/*.pid; do
        [ -f "$f" ] || continue
        while kill -0 "$(cat "$f")" 2> /dev/null; do sleep 2; done
        echo "ended $(basename "$f" .pid)"
      done ;;
    status)
      for f in "$W"/logs/*.log "$W"/shipped/*.log "$W"/fr/*.log; do
        [ -f "$f" ] && { echo "== $f"; tail -n 2 "$f" | cut -c1-200; }
      done
      nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true ;;
    pack)
      d=${2:?pack needs a folder}
      mkdir -p "$d"
      shards=$(ls -d "$W"/sweep/s[0-9]* "$W"/sweep/published 2>/dev/null | paste -sd, -)
      [ -n "$shards" ] && "$bin" sweep --merge="$shards" --out="$W/sweep/all" > /dev/null || true
      tar -czf "$d/results.tgz" --exclude='*.pt' --exclude='*.model' --exclude='last' \
        "$W"/logs "$W"/bench "$W"/perf "$W"/sweep "$W"/controls "$W"/shipped "$W"/fr \
        "$W"/perf-train "$W"/models "$W"/models-fr "$W"/perf-repo "$W"/pipeline "$W"/perf-shipped \
        "$W"/pipeline-repo/*/*/metadata.json "$W"/enc-students 2>/dev/null || true
      for t in en-de de-en; do
        [ -d "$W/models" ] && tar -cf "$d/models-$t.tar" -C "$W/models" $(cd "$W/models" && ls -d $t-* 2>/dev/null) || true
      done
      [ -d "$W/enc-students/repo" ] && tar -cf "$d/enc-students-repo.tar" -C "$W/enc-students" repo
      ls -la "$d"
      break ;;
    *) echo "results.sh: unknown step $step" >&2; exit 2 ;;
  esac
done
