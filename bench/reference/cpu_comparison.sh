#!/usr/bin/env bash
# mixserve against CTranslate2 on this CPU, one after the other on the same weights
# (docs/performance.md, "Against CTranslate2 (CPU)"):
#   1. the model's weights as .safetensors (build/bench/export_safetensors);
#   2. mixserve's greedy translations of test_2016 (mixserve-offline eval --hyps_dir);
#   3. bench/reference/ct2_compare.py: the same model as a CTranslate2 model, the agreement
#      check against (2), then CTranslate2's timings in process;
#   4. mixserve-server with deploy/default.pbtxt on models/, driven by mixserve-loadgen at 1 and
#      32 in flight (variant forced);
#   5. the same model with dtype int8 (weights quantized at load): in process (2) and through a
#      second server (4);
# 2 to 4 once per round, then one table. CTranslate2 is not built here: CT2_PYTHONPATH names
# a folder from which python3 imports an already-installed `ctranslate2` package.
#   CT2_PYTHONPATH  required
#   MODEL           variant (default en-de-base), served from models/MODEL/1
#   BUILD_DIR       mixserve build folder (default build) with export_safetensors,
#                   mixserve-offline, mixserve-server, mixserve-loadgen
#   OUT             results folder (default out/cpu-comparison)
#   PORT            gRPC port of the temporary server (default 8591; metrics on PORT+1000); the
#                   int8 server on PORT+1 (metrics PORT+1001)
#   THREADS         intra-op threads of mixserve in process (default: all cores, as
#                   CTranslate2's best intra_threads here); the server keeps its own default
#   ROUNDS          rounds of all measurements, one system after the other (default 3); the
#                   table gives each row's median and every round's sentences/s, because a
#                   shared 2-core machine moves single runs by a third
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CT2_PYTHONPATH:?set CT2_PYTHONPATH to the folder holding an installed ctranslate2 package}"
model=${MODEL:-en-de-base}
build=${BUILD_DIR:-build}
out=${OUT:-out/cpu-comparison}
port=${PORT:-8591}
rounds=${ROUNDS:-3}
threads=${THREADS:-$(nproc)}
src=data/multi30k/test_2016_flickr.en.gz
ref=data/multi30k/test_2016_flickr.de.gz
mkdir -p "$out"

for bin in bench/export_safetensors offline/mixserve-offline server/mixserve-server \
           clients/mixserve-loadgen; do
  [[ -x "$build/$bin" ]] || { echo "cpu_comparison: $build/$bin missing (build it first)" >&2; exit 1; }
done

"$build/bench/export_safetensors" "models/$model/1" "$out/$model.safetensors"

"$build/server/mixserve-server" --config=deploy/default.pbtxt --models=models \
  --listen="127.0.0.1:$port" --metrics="127.0.0.1:$((port + 1000))" >"$out/server.log" 2>&1 &
server=$!
printf 'model_repository: "models"\nmodels { name: "%s" dtype: "int8" }\n' "$model" >"$out/int8.pbtxt"
"$build/server/mixserve-server" --config="$out/int8.pbtxt" \
  --listen="127.0.0.1:$((port + 1))" --metrics="127.0.0.1:$((port + 1001))" >"$out/server-int8.log" 2>&1 &
server8=$!
trap 'kill "$server" "$server8" 2>/dev/null; wait "$server" "$server8" 2>/dev/null || true' EXIT
for p in "$port" "$((port + 1))"; do
  for _ in $(seq 120); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
    kill -0 "$server8" 2>/dev/null || { cat "$out/server-int8.log" >&2; exit 1; }
    sleep 1
  done
done
L=("$build/clients/mixserve-loadgen" --target="127.0.0.1:$port" --src="$src" --ref="$ref"
   --src-lang=en --tgt-lang=de --variants="$model" --quiet)
L8=("${L[@]}" --target="127.0.0.1:$((port + 1))")
"${L[@]}" --concurrency=1 --count=50 >/dev/null  # warm-up
"${L8[@]}" --concurrency=1 --count=50 >/dev/null

for r in $(seq "$rounds"); do
  d="$out/round$r"
  rm -rf "$d" && mkdir -p "$d"
  echo "== round $r: $(uptime)"
  # In process as well (the engine without gRPC): batch-1 latency over the first 300
  # sentences, then batches of 32 in file order; the greedy pass gives the translations
  # that CTranslate2's must equal.
  "$build/offline/mixserve-offline" eval --model="models/$model/1" --splits=test_2016_flickr \
    --beam=1 --latency_sentences=300 --batch_size=32 --threads="$threads" --hyps_dir="$d/hyps" \
    --out="$d/mixserve-eval.jsonl" >/dev/null
  hyps=$(ls "$d"/hyps/*/test_2016_flickr.greedy.* | head -1)
  PYTHONPATH="$CT2_PYTHONPATH${PYTHONPATH:+:$PYTHONPATH}" /usr/bin/python3 \
    bench/reference/ct2_compare.py --model_dir="models/$model/1" \
    --weights="$out/$model.safetensors" --ct2_dir="$out/$model-ct2" --src="$src" \
    --mixserve_hyps="$hyps" --json="$d/ct2.json" | tee "$d/ct2.txt"
  "${L[@]}" --concurrency=1 --count=300 --json="$d/mixserve-c1.json" | tee "$d/mixserve-c1.txt"
  "${L[@]}" --concurrency=32 --count=1000 --json="$d/mixserve-c32.json" | tee "$d/mixserve-c32.txt"
  "$build/offline/mixserve-offline" eval --model="models/$model/1" --splits=test_2016_flickr \
    --beam=1 --latency_sentences=300 --batch_size=32 --threads="$threads" --dtype=int8 \
    --out="$d/mixserve-int8-eval.jsonl" >/dev/null
  "${L8[@]}" --concurrency=1 --count=300 --json="$d/mixserve-int8-c1.json" | tee "$d/mixserve-int8-c1.txt"
  "${L8[@]}" --concurrency=32 --count=1000 --json="$d/mixserve-int8-c32.json" | tee "$d/mixserve-int8-c32.txt"
done
echo "== end: $(uptime)"

echo
echo "medians of $rounds rounds (CTranslate2 rows: requests are batches of the sorted test set;"
echo "mixserve in process: the engine alone, batches in file order, zeros where eval does not"
echo "measure; gRPC: sentences; last column: sentences/s of each round)"
/usr/bin/python3 - "$out" "$rounds" <<'EOF'
import json, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])


def g(d, name, default=0):
    """A field by its proto name or its JSON (lowerCamelCase) name."""
    camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
    return d.get(name, d.get(camel, default))


def row(label, requests, sps, tps, lat, bleu="-", bleu_sents="0"):
    return {"variant": label, "requests": str(requests), "ok": str(requests), "errors": "-",
            "sents/s": f"{sps:.2f}", "tok/s": f"{tps:.1f}", "p50 ms": f"{g(lat, 'p50'):.1f}",
            "p90 ms": f"{g(lat, 'p90'):.1f}", "p99 ms": f"{g(lat, 'p99'):.1f}",
            "max ms": f"{g(lat, 'max'):.1f}", "BLEU": bleu, "BLEU sents": bleu_sents}


def round_rows(d):
    rows = json.load(open(f"{d}/ct2.json"))["rows"]
    for kind, pre in (("", "mixserve"), ("int8-", "mixserve int8")):
        e = json.loads(open(f"{d}/mixserve-{kind}eval.jsonl").readline())
        l1, b = g(e, "latency_batch1", {}), g(e, "batched", {})
        split = g(g(e, "splits", {}), "test_2016_flickr", {})
        rows.append(row(f"{pre} in process batch 1", g(l1, "sentences"),
                        1000 / g(l1, "ms_mean", 1), 0, {"p50": g(l1, "ms_p50"), "p90": g(l1, "ms_p90")}))
        rows.append(row(f"{pre} in process batch {g(b, 'batch_size')}", 1000,
                        g(b, "sentences_per_s"), g(b, "tokens_per_s"), {},
                        f"{g(split, 'bleu_greedy'):.2f}", str(g(split, "sentences"))))
    for kind, pre in (("", "mixserve"), ("int8-", "mixserve int8")):
        for c in ("1", "32"):
            for v in json.load(open(f"{d}/mixserve-{kind}c{c}.json"))["variants"]:
                rows.append(row(f"{pre} {g(v, 'variant', '')} gRPC {c} in flight",
                                g(v, "requests"), g(v, "sentences_per_s"),
                                g(v, "output_tokens_per_s"), g(v, "latency_ms", {}),
                                f"{g(v, 'bleu'):.2f}", str(g(v, "bleu_sentences"))))
    return rows


all_rounds = [round_rows(f"{out}/round{r}") for r in range(1, rounds + 1)]
numeric = ["sents/s", "tok/s", "p50 ms", "p90 ms", "p99 ms", "max ms"]
rows = []
for i, first in enumerate(all_rounds[0]):
    same = [rr[i] for rr in all_rounds]
    m = dict(first)
    for k in numeric:
        vals = [float(x[k]) for x in same]
        m[k] = f"{statistics.median(vals):.{2 if k == 'sents/s' else 1}f}"
    m["rounds sents/s"] = " ".join(f"{float(x['sents/s']):.0f}" for x in same)
    rows.append(m)
cols = list(rows[0])
t = [cols] + [[r[k] for k in cols] for r in rows]
w = [max(len(x[i]) for x in t) for i in range(len(cols))]
for x in t:
    print("  ".join(v.ljust(w[i]) for i, v in enumerate(x)).rstrip())
EOF
