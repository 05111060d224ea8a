#!/usr/bin/env python3
"""Outside reference for docs/performance.md ("Against CTranslate2", CPU and GPU): a mixserve
model rebuilt as a CTranslate2 model from the same weights, checked against mixserve's own
greedy translations, then timed in process.

Not part of mixserve: it runs where python3 imports `ctranslate2` (CTranslate2 4.8.x, its
Python package) and numpy, with SentencePiece from python3's `sentencepiece` module where it
imports, else its `spm_encode` / `spm_decode` / `spm_export_vocab` on PATH (Debian's
`sentencepiece`). The weights come from `export_safetensors` (bench/), read here with json and
numpy only.

    build/bench/export_safetensors models/en-de-base/1 /tmp/en-de-base.safetensors
    ct2_compare.py --model_dir models/en-de-base/1 --weights /tmp/en-de-base.safetensors \
        --ct2_dir /tmp/en-de-base-ct2 --src data/multi30k/test_2016_flickr.en.gz \
        --mixserve_hyps hyps/test_2016_flickr.de --json out.json

The mapping (docs/model.md, "Architecture"): pre-norm layers with final encoder_norm and
decoder_norm, ReLU feed-forward, embeddings times sqrt(d_model), the shared embedding tied to
the output projection (no bias), q/k/v/o Linear layers with bias (CTranslate2 fuses q,k,v of
self-attention and k,v of cross-attention), LayerNorm epsilon 1e-5 (LibTorch's default), and
mixserve's own "positions" table (interleaved sinusoids) as CTranslate2's position encodings.
Vocabulary: the SentencePiece pieces in id order (pad 0, unk 1, BOS 2 = decoder start,
EOS 3); the source gets EOS appended, as mixserve does. Greedy decoding, at most max_len - 2
output tokens without EOS, as mixserve's default.

--device cuda: the agreement check in float32 on the GPU, timings per compute type (float16
is CTranslate2's best there), intra_threads not used.

Timing (after the agreement check), per compute type and intra_threads:
  batch 1   every sentence alone, in file order: median latency, sentences/s
  batch N   the sentences sorted by length in batches of N (CTranslate2's own sorting with
            max_batch_size): sentences/s and output tokens/s (tokens without EOS, as
            mixserve-loadgen counts them); latency is per batch
OpenBLAS's pthread build runs single-threaded (pin_pthread_openblas says why).
Tokenization is done before the clock starts (mixserve's latencies include it and gRPC).
The table has mixserve-loadgen's columns.
"""
import argparse
import ctypes
import ctypes.util
import gzip
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import time

import numpy as np


# --- inputs ---------------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64,
                       "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    """name -> float32 array. Layout: 8-byte little-endian header length, JSON header, data."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        sys.exit(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        sys.exit(f"{path}: header length {n} runs past the end of the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            sys.exit(f"{path}: tensor {name}: dtype {info['dtype']} not handled")
        begin, end = info["data_offsets"]
        if end > len(data):
            sys.exit(f"{path}: tensor {name}: data offsets {begin}..{end} beyond the file")
        a = np.frombuffer(data[begin:end], dtype=dtype)
        if a.size != int(np.prod(info["shape"])):
            sys.exit(f"{path}: tensor {name}: shape {info['shape']} disagrees with its bytes")
        out[name] = a.reshape(info["shape"]).astype(np.float32)
    return out


def read_model_pbtxt(path):
    """The top-level scalar fields of model.pbtxt and the mixer type of each site."""
    text = open(path, encoding="utf-8").read()
    fields = {}
    depth = 0
    site = None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^(\w+)\s*\{$", line)
        if m:
            depth += 1
            site = m.group(1) if depth == 1 else site
            continue
        if line == "}":
            depth -= 1
            continue
        m = re.match(r'^(\w+)\s*:\s*"?([^"]*)"?$', line)
        if not m:
            sys.exit(f"{path}: line not understood: {line}")
        key, value = m.groups()
        if depth == 0:
            fields[key] = value
        elif depth == 1 and key == "type":
            fields[site + ".type"] = value
        else:
            fields[f"{site}.{key}"] = value
    return fields


def check_supported(fields, path):
    """Refuses what the mapping does not cover, naming the item."""
    need = {"encoder_self.type": "mha", "decoder_self.type": "mha", "decoder_cross.type": "mha",
            "share_embeddings": "true"}
    for key, want in need.items():
        if fields.get(key) != want:
            sys.exit(f"{path}: {key} is {fields.get(key)!r}; this mapping needs {want!r}")
    defaults = {"norm": "pre", "activation": "relu", "positions": "interleaved",
                "scale_embeddings": "true", "final_logits_bias": "false"}
    for key, want in defaults.items():
        if fields.get(key, want) != want:
            sys.exit(f"{path}: {key} is {fields[key]!r}; this mapping needs {want!r}")
    for key in fields:
        if key.startswith(("overrides", "special_tokens", "decoding")) or key in (
                "vocabulary_file", "target_tokenizer_file"):
            sys.exit(f"{path}: {key} is set; this mapping covers mixserve's default layout only")


def read_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def _spm_module(spm_model):
    try:
        import sentencepiece
    except ImportError:
        return None
    return sentencepiece.SentencePieceProcessor(model_file=spm_model)


def spm(tool, spm_model, lines, *flags):
    """spm_encode to pieces / spm_decode from pieces, through the python module if any."""
    sp = _spm_module(spm_model)
    if sp is not None:
        if tool == "spm_encode":
            return [" ".join(sp.encode(line, out_type=str)) for line in lines]
        return [sp.decode_pieces(line.split()) for line in lines]
    r = subprocess.run([tool, f"--model={spm_model}", *flags], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, check=True)
    return r.stdout.split("\n")[:len(lines)]


def spm_vocab(spm_model):
    sp = _spm_module(spm_model)
    if sp is not None:
        return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    r = subprocess.run(["spm_export_vocab", f"--model={spm_model}"], capture_output=True,
                       text=True, check=True)
    return [line.split("\t")[0] for line in r.stdout.splitlines()]


# --- the CTranslate2 model ----------------------------------------------------------------------

def build_ct2_model(fields, w, vocab, out_dir):
    from ctranslate2.specs import common_spec, transformer_spec

    enc_layers, dec_layers = int(fields["encoder_layers"]), int(fields["decoder_layers"])
    spec = transformer_spec.TransformerSpec.from_config(
        (enc_layers, dec_layers), int(fields["heads"]), pre_norm=True,
        activation=common_spec.Activation.RELU)
    spec.config.layer_norm_epsilon = 1e-5
    spec.config.add_source_eos = True
    spec.config.decoder_start_token = "<s>"

    used = set()

    def get(name):
        if name not in w:
            sys.exit(f"weights: tensor {name} missing")
        used.add(name)
        return w[name]

    def linear(s, scope):
        s.weight = get(scope + ".weight")
        s.bias = get(scope + ".bias")

    def fused(s, scopes):
        s.weight = np.concatenate([get(p + ".weight") for p in scopes])
        s.bias = np.concatenate([get(p + ".bias") for p in scopes])

    def norm(s, scope):
        s.gamma = get(scope + ".weight")
        s.beta = get(scope + ".bias")

    def ffn(s, scope):
        norm(s.layer_norm, scope + ".norm")
        linear(s.linear_0, scope + ".fc1")
        linear(s.linear_1, scope + ".fc2")

    embed = get("embed.weight")
    positions = get("positions")
    spec.encoder.embeddings[0].weight = embed  # a list: one per source feature
    spec.decoder.embeddings.weight = embed
    for side in (spec.encoder, spec.decoder):
        side.position_encodings.encodings = positions
        side.scale_embeddings = fields.get("scale_embeddings", "true") == "true"
    norm(spec.encoder.layer_norm, "encoder_norm")
    norm(spec.decoder.layer_norm, "decoder_norm")
    spec.decoder.projection.weight = embed  # tied, no bias

    for i, layer in enumerate(spec.encoder.layer):
        p = f"encoder.{i}.self"
        norm(layer.self_attention.layer_norm, p + ".norm")
        fused(layer.self_attention.linear[0], [f"{p}.mixer.{x}" for x in "qkv"])
        linear(layer.self_attention.linear[1], p + ".mixer.o")
        ffn(layer.ffn, f"encoder.{i}.ffn")
    for i, layer in enumerate(spec.decoder.layer):
        p = f"decoder.{i}.self"
        norm(layer.self_attention.layer_norm, p + ".norm")
        fused(layer.self_attention.linear[0], [f"{p}.mixer.{x}" for x in "qkv"])
        linear(layer.self_attention.linear[1], p + ".mixer.o")
        c = f"decoder.{i}.cross"
        norm(layer.attention.layer_norm, c + ".norm")
        linear(layer.attention.linear[0], c + ".mixer.q")
        fused(layer.attention.linear[1], [f"{c}.mixer.{x}" for x in "kv"])
        linear(layer.attention.linear[2], c + ".mixer.o")
        ffn(layer.ffn, f"decoder.{i}.ffn")

    unused = sorted(set(w) - used)
    if unused:
        sys.exit(f"weights: tensors the mapping does not place: {', '.join(unused)}")
    spec.register_source_vocabulary(vocab)
    spec.register_target_vocabulary(vocab)
    spec.validate()
    spec.optimize(quantization=None)
    os.makedirs(out_dir, exist_ok=True)
    spec.save(out_dir)


# --- timing ---------------------------------------------------------------------------------------

def pin_pthread_openblas():
    """OpenBLAS's pthread build keeps its own pool, one thread per core, beside CTranslate2's
    OpenMP threads; with intra_threads 2 on 2 cores the two fight (measured here: 1,000
    sentences in batches of 64 at 175-208 sentences/s against 920-1,030 with that pool pinned
    to one thread). The OpenMP build shares CTranslate2's OpenMP pool and is left alone.
    Returns the build: "sequential", "pthread", "openmp" or "not found"."""
    for name in ("openblas", "openblas64_"):
        path = ctypes.util.find_library(name)
        if not path:
            continue
        lib = ctypes.CDLL(path)
        get = getattr(lib, "openblas_get_parallel", None)
        if get is None:
            continue
        build = {0: "sequential", 1: "pthread", 2: "openmp"}.get(get(), "unknown")
        if build == "pthread":
            lib.openblas_set_num_threads(1)
        return build
    return "not found"


def translate(translator, batch, max_len, max_batch_size=0):
    return translator.translate_batch(batch, beam_size=1, max_decoding_length=max_len,
                                      max_batch_size=max_batch_size, batch_type="examples")


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def row(label, latencies_s, sentences, tokens, wall_s):
    ms = [x * 1e3 for x in latencies_s]
    return {"variant": label, "requests": str(len(ms)), "ok": str(len(ms)), "errors": "-",
            "sents/s": f"{sentences / wall_s:.2f}", "tok/s": f"{tokens / wall_s:.1f}",
            "p50 ms": f"{statistics.median(ms):.1f}", "p90 ms": f"{pct(ms, 0.9):.1f}",
            "p99 ms": f"{pct(ms, 0.99):.1f}", "max ms": f"{max(ms):.1f}", "BLEU": "-",
            "BLEU sents": "0"}


def time_batch1(translator, src, max_len, count):
    translate(translator, src[:5], max_len)  # warm-up
    lat, tokens = [], 0
    t0 = time.perf_counter()
    for s in src[:count]:
        a = time.perf_counter()
        r = translate(translator, [s], max_len)
        lat.append(time.perf_counter() - a)
        tokens += len(r[0].hypotheses[0])
    return lat, tokens, time.perf_counter() - t0


def time_batched(translator, src, max_len, batch):
    # The same sorted batches CTranslate2 forms itself from max_batch_size, cut here so that
    # each batch is timed as one request.
    order = sorted(range(len(src)), key=lambda i: len(src[i]))
    batches = [[src[i] for i in order[k:k + batch]] for k in range(0, len(order), batch)]
    translate(translator, batches[len(batches) // 2], max_len)  # warm-up
    lat, tokens = [], 0
    t0 = time.perf_counter()
    for b in batches:
        a = time.perf_counter()
        r = translate(translator, b, max_len, max_batch_size=batch)
        lat.append(time.perf_counter() - a)
        tokens += sum(len(x.hypotheses[0]) for x in r)
    return lat, tokens, time.perf_counter() - t0


def print_table(rows):
    cols = list(rows[0])
    table = [cols] + [[r[c] for c in cols] for r in rows]
    width = [max(len(t[i]) for t in table) for i in range(len(cols))]
    for t in table:
        print("  ".join(v.ljust(width[i]) for i, v in enumerate(t)).rstrip())


# --- main -----------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_dir", required=True, help="mixserve model version directory")
    p.add_argument("--weights", required=True, help="its .safetensors (export_safetensors)")
    p.add_argument("--ct2_dir", required=True, help="where the CTranslate2 model is written")
    p.add_argument("--src", required=True, help="source sentences (.gz or plain)")
    p.add_argument("--mixserve_hyps", help="mixserve's greedy translations, one per line")
    p.add_argument("--min_agreement", type=float, default=0.99)
    p.add_argument("--compute_types", default="float32,int8")
    p.add_argument("--intra_threads", default="1,2")
    p.add_argument("--batch1_count", type=int, default=300)
    p.add_argument("--batch_sizes", default="32,64",
                   help="sorted-batch sizes to time (64: the best of 16..256 here)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args()
    if a.device == "cuda":
        a.intra_threads = "1"

    import ctranslate2

    pbtxt = os.path.join(a.model_dir, "model.pbtxt")
    fields = read_model_pbtxt(pbtxt)
    check_supported(fields, pbtxt)
    spm_model = os.path.join(a.model_dir, fields.get("tokenizer_file", "spm.model"))
    max_len = int(fields["max_len"])
    max_out = max_len - 2  # mixserve's default max_output_tokens (without EOS)

    vocab = spm_vocab(spm_model)
    if len(vocab) != int(fields["vocab_size"]) or vocab[:4] != ["<pad>", "<unk>", "<s>", "</s>"]:
        sys.exit(f"{spm_model}: {len(vocab)} pieces starting {vocab[:4]}; expected "
                 f"{fields['vocab_size']} starting <pad> <unk> <s> </s>")
    build_ct2_model(fields, read_safetensors(a.weights), vocab, a.ct2_dir)
    print(f"CTranslate2 {ctranslate2.__version__}; model written to {a.ct2_dir}")

    lines = read_lines(a.src)
    src = [s.split() for s in spm("spm_encode", spm_model, lines, "--output_format=piece")]
    too_long = [i for i, s in enumerate(src) if len(s) + 1 > max_len]
    if too_long:
        sys.exit(f"{a.src}: sentences {too_long[:5]} longer than max_len {max_len}")

    blas = pin_pthread_openblas() if a.device == "cpu" else "-"
    print(f"OpenBLAS build: {blas}")
    result = {"ctranslate2": ctranslate2.__version__, "openblas": blas, "sentences": len(src),
              "device": a.device, "rows": []}
    if a.mixserve_hyps:
        t = ctranslate2.Translator(a.ct2_dir, device=a.device, compute_type="float32",
                                   intra_threads=2)
        out = translate(t, src, max_out, max_batch_size=32)
        hyps = spm("spm_decode", spm_model, [" ".join(x.hypotheses[0]) for x in out],
                   "--input_format=piece")
        ref = read_lines(a.mixserve_hyps)
        if len(ref) != len(hyps):
            sys.exit(f"{a.mixserve_hyps}: {len(ref)} lines, {len(hyps)} sentences")
        diff = [i for i in range(len(ref)) if ref[i] != hyps[i]]
        agree = 1 - len(diff) / len(ref)
        print(f"agreement with mixserve (greedy, fp32): {len(ref) - len(diff)}/{len(ref)} "
              f"identical ({100 * agree:.1f}%)")
        for i in diff:
            print(f"  line {i + 1}\n    src      {lines[i]}\n    mixserve {ref[i]}\n"
                  f"    ct2      {hyps[i]}")
        result.update(identical=len(ref) - len(diff), compared=len(ref),
                      differing=[i + 1 for i in diff])
        if agree < a.min_agreement:
            sys.exit(f"agreement {agree:.3f} below {a.min_agreement}: the timing would compare "
                     "different computations")

    for ct in a.compute_types.split(","):
        for th in [int(x) for x in a.intra_threads.split(",")]:
            t = ctranslate2.Translator(a.ct2_dir, device=a.device, compute_type=ct,
                                       inter_threads=1, intra_threads=th)
            label = f"ct2 {ct} intra={th}" if a.device == "cpu" else f"ct2 cuda {ct}"
            lat, tok, wall = time_batch1(t, src, max_out, a.batch1_count)
            result["rows"].append(row(f"{label} batch 1", lat, len(lat), tok, wall))
            for b in [int(x) for x in a.batch_sizes.split(",")]:
                lat, tok, wall = time_batched(t, src, max_out, b)
                result["rows"].append(row(f"{label} batch {b}", lat, len(src), tok, wall))
            del t
    print()
    print_table(result["rows"])
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
