#!/usr/bin/env python3
"""Outside reference for docs/performance.md: a Hugging Face MarianMT model of the same
dimensions as a mixserve model, timed with `generate` (greedy) on the same sentences.

Not part of mixserve: it runs where python3 has torch, transformers and sentencepiece (the GPU
machine). The weights are random, so the model never chooses its own output length; instead
every sentence is made to produce exactly as many tokens as the mixserve model produced for it
(read from the hypothesis file that `mixserve-loadgen --hyps` wrote, re-tokenized with the same
SentencePiece model), so both sides generate the same number of tokens.

    marian_generate.py --spm spm.model --src test.en --hyps hyps.txt --d_model 512 \
        --layers 6 --heads 8 --ffn 2048 --json out.json
"""
import argparse
import json
import statistics
import time

import sentencepiece as spm
import torch
from transformers import MarianConfig, MarianMTModel


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spm", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--hyps", required=True, help="mixserve translations, one per line")
    p.add_argument("--d_model", type=int, default=512)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--ffn", type=int, default=2048)
    p.add_argument("--latency_sentences", type=int, default=200)
    p.add_argument("--batch_sizes", default="1,16,64,128")
    p.add_argument("--dtype", default="fp16", choices=["fp16", "fp32"])
    p.add_argument("--json", required=True)
    a = p.parse_args()

    sp = spm.SentencePieceProcessor(model_file=a.spm)
    vocab = sp.get_piece_size()
    src = [line.rstrip("\n") for line in open(a.src, encoding="utf-8")]
    hyps = [line.rstrip("\n") for line in open(a.hyps, encoding="utf-8")]
    n = min(len(src), len(hyps))
    src, hyps = src[:n], hyps[:n]
    eos = vocab  # ids beyond the SentencePiece vocabulary for eos / pad / start
    pad = vocab + 1
    ids = [sp.encode(s)[:48] + [eos] for s in src]
    out_len = [len(sp.encode(h)) + 1 for h in hyps]  # + EOS, as mixserve counts it

    cfg = MarianConfig(vocab_size=vocab + 2, d_model=a.d_model, encoder_layers=a.layers,
                       decoder_layers=a.layers, encoder_attention_heads=a.heads,
                       decoder_attention_heads=a.heads, encoder_ffn_dim=a.ffn,
                       decoder_ffn_dim=a.ffn, max_position_embeddings=256, pad_token_id=pad,
                       eos_token_id=eos, decoder_start_token_id=pad, forced_eos_token_id=None)
    dtype = torch.float16 if a.dtype == "fp16" else torch.float32
    model = MarianMTModel(cfg).to("cuda", dtype).eval()
    params = sum(t.numel() for t in model.parameters())

    def run(batch):
        m = max(len(x) for x in batch[0])
        inp = torch.full((len(batch[0]), m), pad, dtype=torch.long)
        att = torch.zeros_like(inp)
        for i, x in enumerate(batch[0]):
            inp[i, :len(x)] = torch.tensor(x)
            att[i, :len(x)] = 1
        L = max(batch[1])
        with torch.inference_mode():
            model.generate(input_ids=inp.cuda(), attention_mask=att.cuda(), num_beams=1,
                           do_sample=False, min_new_tokens=L, max_new_tokens=L)

    for i in range(5):  # warm-up
        run(([ids[i]], [out_len[i]]))
    torch.cuda.synchronize()

    lat = []
    for i in range(min(a.latency_sentences, n)):
        t0 = time.perf_counter()
        run(([ids[i]], [out_len[i]]))
        torch.cuda.synchronize()
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    result = {"model": "MarianMTModel (random weights)", "parameters": params,
              "dtype": a.dtype, "d_model": a.d_model, "layers": a.layers, "heads": a.heads,
              "ffn": a.ffn, "vocab": vocab + 2, "sentences": n,
              "latency_ms": {"sentences": len(lat), "p50": statistics.median(lat),
                             "p90": lat[int(0.9 * (len(lat) - 1))], "mean": statistics.mean(lat)},
              "throughput": []}
    # Throughput: batches in file order and, as a best case for static batching, sorted by
    # output length so that little padding is generated.
    for bs in [int(x) for x in a.batch_sizes.split(",")]:
        for order in ("file", "sorted"):
            idx = list(range(n))
            if order == "sorted":
                idx.sort(key=lambda i: out_len[i])
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for s in range(0, n, bs):
                b = idx[s:s + bs]
                run(([ids[i] for i in b], [out_len[i] for i in b]))
            torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            result["throughput"].append({"batch": bs, "order": order, "seconds": dt,
                                         "sentences_per_s": n / dt,
                                         "tokens_per_s": sum(out_len) / dt})
            print(f"batch {bs} {order}: {n / dt:.1f} sentences/s, {sum(out_len) / dt:.0f} tokens/s",
                  flush=True)
    print(f"latency p50 {result['latency_ms']['p50']:.2f} ms, p90 {result['latency_ms']['p90']:.2f} ms",
          flush=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
