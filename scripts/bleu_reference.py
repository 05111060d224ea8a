#!/usr/bin/env python3
"""Reference BLEU values from sacreBLEU for tests/text/bleu_reference_test.cc.

Reads tests/text/data/bleu_cases.tsv (one case per line: hypothesis, then one or more
references, separated by tabs) and writes tests/text/data/bleu_expected.tsv with, for each case,
sacreBLEU's sentence BLEU (sacrebleu.sentence_bleu: exp smoothing, effective order) and its
statistics, the 13a tokenization of hypothesis and first reference, and corpus BLEU
(sacrebleu.corpus_bleu defaults) of all cases and of fixed subsets.

Usage (needs python3 with sacrebleu 2.x):
    python3 scripts/bleu_reference.py [--cases PATH] [--out PATH]
"""
import argparse
import os
import sys

import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Subsets by 0-based case index; bleu_reference_test.cc defines the same ones.
SUBSETS = {
    "all": lambda i, n: True,
    "first_half": lambda i, n: i < n // 2,
    "even_index": lambda i, n: i % 2 == 0,
    "every_third": lambda i, n: i % 3 == 0,
}


def read_cases(path):
    # Split on "\n" only: str.splitlines() would also break at U+2028, U+0085 and others.
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    cases = []
    for number, line in enumerate(lines, 1):
        fields = line.split("\t")
        if len(fields) < 2:
            sys.exit(f"{path}:{number}: expected hypothesis<TAB>reference[<TAB>reference...]")
        cases.append((fields[0], fields[1:]))
    return cases


def stats_fields(score):
    return [
        f"{score.score:.6f}",
        " ".join(str(int(c)) for c in score.counts),
        " ".join(str(int(t)) for t in score.totals),
        str(int(score.sys_len)),
        str(int(score.ref_len)),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=os.path.join(ROOT, "tests/text/data/bleu_cases.tsv"))
    parser.add_argument("--out", default=os.path.join(ROOT, "tests/text/data/bleu_expected.tsv"))
    args = parser.parse_args()

    cases = read_cases(args.cases)
    n = len(cases)
    tok = Tokenizer13a()
    rows = [
        f"# sacreBLEU {sacrebleu.__version__} reference values for {os.path.basename(args.cases)};"
        " written by scripts/bleu_reference.py, do not edit",
        f"cases\t{n}",
        "# sentence<TAB>case<TAB>score<TAB>counts<TAB>totals<TAB>sys_len<TAB>ref_len"
        " (sacrebleu.sentence_bleu)",
        "# tok13a<TAB>case<TAB>tokenized hypothesis<TAB>tokenized first reference",
        "# corpus<TAB>subset<TAB>score<TAB>counts<TAB>totals<TAB>sys_len<TAB>ref_len"
        " (sacrebleu.corpus_bleu)",
    ]
    for i, (hyp, refs) in enumerate(cases, 1):
        score = sacrebleu.sentence_bleu(hyp, refs)
        rows.append("\t".join(["sentence", str(i)] + stats_fields(score)))
        rows.append("\t".join(["tok13a", str(i), tok(hyp.rstrip()), tok(refs[0].rstrip())]))

    for name, keep in SUBSETS.items():
        chosen = [c for i, c in enumerate(cases) if keep(i, n)]
        hyps = [h for h, _ in chosen]
        width = max(len(r) for _, r in chosen)
        # One stream per reference position; None where a case has fewer references (sacreBLEU
        # 2.x skips None, while "" counts as an empty reference of length 0).
        streams = [[r[k] if k < len(r) else None for _, r in chosen] for k in range(width)]
        score = sacrebleu.corpus_bleu(hyps, streams)
        rows.append("\t".join(["corpus", name] + stats_fields(score)))

    # Corpus BLEU through the metric object too (same defaults); a guard against API drift.
    all_hyps = [h for h, _ in cases]
    width = max(len(r) for _, r in cases)
    streams = [[r[k] if k < len(r) else None for _, r in cases] for k in range(width)]
    check = BLEU().corpus_score(all_hyps, streams)
    assert abs(check.score - sacrebleu.corpus_bleu(all_hyps, streams).score) < 1e-9

    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(rows) + "\n")
    print(f"wrote {args.out}: {n} cases, corpus BLEU {check.score:.4f}")


if __name__ == "__main__":
    main()
