#!/usr/bin/env python3
"""Outside reference for mixserve's MarianMT import (docs/model.md, "Imported models").

Runs where python3 has torch, transformers and sentencepiece (the GPU machine); mixserve
itself never imports any of them. Two commands:

  make OUT_DIR --shape tiny|base --source-spm S --target-spm T [--seed N]
      A MarianMT model with random weights, in the Hugging Face layout (config.json,
      generation_config.json, model.safetensors, source.spm, target.spm, vocab.json,
      tokenizer_config.json; --bin adds pytorch_model.bin). vocab.json is the union of both
      SentencePiece models' pieces, "</s>" 0, "<unk>" 1, "<pad>" last, as in OPUS-MT. With
      --train-steps the random model is then trained on the given pairs (AdamW, bf16 autocast
      on CUDA), so that translations end at varied lengths as a real model's do (a random
      model repeats one token to the length limit).

  goldens MODEL_DIR SENTENCES OUT_TSV [--device cpu|cuda] [--dtype fp32|fp16] [--limit N]
      MarianTokenizer's ids of each sentence and `generate` greedy and beam-4 outputs (ids,
      their text with special tokens skipped, beam scores), one line a sentence:
        index  src_ids  greedy_ids  beam_ids  beam_score  greedy_text  beam_text
      ids space-separated, decoder start token dropped, EOS kept.
"""
import argparse
import gzip
import json
import os
import statistics
import sys
import time

SHAPES = {
    # d_model, layers (enc = dec), heads, ffn, max positions, init_std (transformers' default)
    "tiny": (32, 2, 4, 64, 128, 0.02),
    "base": (512, 6, 8, 2048, 512, 0.02),
}
MAX_NEW_TOKENS = 48


def read_lines(path, limit=None):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    return lines[:limit] if limit else lines


def spm_pieces(path):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=path)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def build_vocab(source_spm, target_spm):
    vocab = {"</s>": 0, "<unk>": 1}
    for path in (source_spm, target_spm):
        for piece in spm_pieces(path):
            if piece in ("<unk>", "<s>", "</s>", "<pad>") or piece in vocab:
                continue
            vocab[piece] = len(vocab)
    vocab["<pad>"] = len(vocab)
    return vocab


def median_greedy_length(model, tok, sentences):
    import torch
    batch = tok(sentences, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=MAX_NEW_TOKENS)
    pad = model.config.pad_token_id
    return statistics.median(int((row[1:] != pad).sum()) for row in out)


def cmd_make(a):
    import shutil
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    d, layers, heads, ffn, positions, init_std = SHAPES[a.shape]
    os.makedirs(a.out_dir, exist_ok=True)
    shutil.copy(a.source_spm, os.path.join(a.out_dir, "source.spm"))
    shutil.copy(a.target_spm, os.path.join(a.out_dir, "target.spm"))
    vocab = build_vocab(a.source_spm, a.target_spm)
    with open(os.path.join(a.out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=2)
    pad = vocab["<pad>"]
    tok = MarianTokenizer(vocab=os.path.join(a.out_dir, "vocab.json"),
                          source_spm=os.path.join(a.out_dir, "source.spm"),
                          target_spm=os.path.join(a.out_dir, "target.spm"),
                          source_lang="en", target_lang="de")
    config = MarianConfig(
        vocab_size=len(vocab), decoder_vocab_size=len(vocab), d_model=d,
        encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=ffn, decoder_ffn_dim=ffn, max_position_embeddings=positions,
        activation_function="swish", scale_embedding=True, init_std=init_std,
        pad_token_id=pad, eos_token_id=0, bos_token_id=0, decoder_start_token_id=pad,
        forced_eos_token_id=0, share_encoder_decoder_embeddings=True,
        dropout=0.1, attention_dropout=0.0, activation_dropout=0.0)
    torch.manual_seed(a.seed)
    model = MarianMTModel(config)
    model.generation_config.bad_words_ids = [[pad]]
    model.generation_config.num_beams = 4
    model.generation_config.max_length = positions
    if a.train_steps:
        train(model, tok, a)
    model = model.float().cpu().eval()
    model.save_pretrained(a.out_dir)
    tok.save_pretrained(a.out_dir)
    if a.bin:
        torch.save(model.state_dict(), os.path.join(a.out_dir, "pytorch_model.bin"))
    print(f"make {a.shape}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"vocab {len(vocab)}, median greedy length "
          f"{median_greedy_length(model, tok, read_lines(a.probe, 64))}, saved to {a.out_dir}: "
          f"{sorted(os.listdir(a.out_dir))}", flush=True)


def train(model, tok, a):
    """Adam on Multi30k pairs, so that outputs end at varied lengths like a real model's."""
    import random
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    src = read_lines(a.train_src)
    tgt = read_lines(a.train_tgt)
    pairs = list(zip(src, tgt))
    rng = random.Random(a.seed)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 200) * max(0.05, 1 - s / a.train_steps))
    started = time.time()
    for step in range(a.train_steps):
        batch = rng.sample(pairs, a.batch)
        enc = tok([p[0] for p in batch], text_target=[p[1] for p in batch], return_tensors="pt",
                  padding=True, truncation=True, max_length=64).to(device)
        enc["labels"][enc["labels"] == model.config.pad_token_id] = -100
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(**enc).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 250 == 0 or step == a.train_steps - 1:
            print(f"train step {step}: loss {loss.item():.3f} ({time.time() - started:.0f} s)",
                  flush=True)


def ids_text(row, start_dropped=True):
    return " ".join(str(int(t)) for t in row)


def cmd_goldens(a):
    import torch
    from transformers import MarianMTModel, MarianTokenizer

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dtype = torch.float16 if a.dtype == "fp16" else torch.float32
    tok = MarianTokenizer.from_pretrained(a.model_dir)
    model = MarianMTModel.from_pretrained(a.model_dir, dtype=dtype).to(a.device).eval()
    pad = model.config.pad_token_id
    sentences = read_lines(a.sentences, a.limit)
    rows = []
    started = time.time()
    for i in range(0, len(sentences), a.batch):
        chunk = sentences[i:i + a.batch]
        batch = tok(chunk, return_tensors="pt", padding=True).to(a.device)
        with torch.no_grad():
            greedy = model.generate(**batch, num_beams=1, do_sample=False,
                                    max_new_tokens=MAX_NEW_TOKENS)
            beam = model.generate(**batch, num_beams=4, do_sample=False,
                                  max_new_tokens=MAX_NEW_TOKENS, return_dict_in_generate=True,
                                  output_scores=True)
        for j, sentence in enumerate(chunk):
            src = [int(t) for t, m in zip(batch["input_ids"][j], batch["attention_mask"][j]) if m]
            g = [int(t) for t in greedy[j][1:] if int(t) != pad]
            b = [int(t) for t in beam.sequences[j][1:] if int(t) != pad]
            rows.append((i + j, src, g, b, float(beam.sequences_scores[j]),
                         tok.decode(g, skip_special_tokens=True),
                         tok.decode(b, skip_special_tokens=True)))
    with open(a.out_tsv, "w", encoding="utf-8") as f:
        for r in rows:
            f.write("\t".join([str(r[0]), ids_text(r[1]), ids_text(r[2]), ids_text(r[3]),
                               f"{r[4]:.6f}", r[5].replace("\t", " "), r[6].replace("\t", " ")])
                    + "\n")
    lengths = [len(r[2]) for r in rows]
    print(f"goldens {a.model_dir} {a.device} {a.dtype}: {len(rows)} sentences in "
          f"{time.time() - started:.1f} s, greedy length median {statistics.median(lengths)}, "
          f"at the limit {sum(1 for n in lengths if n >= MAX_NEW_TOKENS)}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out_dir")
    m.add_argument("--shape", choices=sorted(SHAPES), required=True)
    m.add_argument("--source-spm", required=True)
    m.add_argument("--target-spm", required=True)
    m.add_argument("--probe", required=True, help="sentences for the length report")
    m.add_argument("--train-src", help="source side of training pairs")
    m.add_argument("--train-tgt", help="target side of training pairs")
    m.add_argument("--train-steps", type=int, default=0)
    m.add_argument("--batch", type=int, default=64)
    m.add_argument("--lr", type=float, default=5e-4)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--bin", action="store_true", help="also write pytorch_model.bin")
    g = sub.add_parser("goldens")
    g.add_argument("model_dir")
    g.add_argument("sentences")
    g.add_argument("out_tsv")
    g.add_argument("--device", default="cpu")
    g.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    g.add_argument("--limit", type=int, default=500)
    g.add_argument("--batch", type=int, default=50)
    a = p.parse_args()
    {"make": cmd_make, "goldens": cmd_goldens}[a.cmd](a)


if __name__ == "__main__":
    main()
