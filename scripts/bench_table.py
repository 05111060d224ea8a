#!/usr/bin/env python3
"""Turns mixer_bench's JSON output (--benchmark_format=json) into Markdown tables: per site,
one row per mixer, the time of each (B, T) shape and its ratio to mha at the same shape
(below 1.00: cheaper than attention).
   usage: scripts/bench_table.py bench.json > table.md"""
import collections
import json
import sys


def main():
    data = json.load(open(sys.argv[1]))
    times = collections.defaultdict(dict)  # (kind, site) -> {(mixer, B, T): us}
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
            continue
        parts = b["name"].split("/")
        kind, mixer, site = parts[0], parts[1], parts[2]
        shape = tuple(int(p.split(":")[1]) for p in parts[3:5])
        times[(kind, site)][(mixer, shape)] = b["real_time"]
    for (kind, site), t in sorted(times.items()):
        shapes = sorted({s for _, s in t})
        mixers = sorted({m for m, _ in t}, key=lambda m: (m != "mha", m))
        what = "forward" if kind == "Forward" else "one decoding step"
        print(f"\n### {site}: {what} (microseconds; in brackets: ratio to mha)\n")
        print("| mixer | " + " | ".join(f"B={b} T={n}" for b, n in shapes) + " |")
        print("| --- |" + " ---: |" * len(shapes))
        for m in mixers:
            cells = []
            for s in shapes:
                v, ref = t.get((m, s)), t.get(("mha", s))
                if v is None:
                    cells.append("-")
                elif m == "mha" or not ref:
                    cells.append(f"{v:.0f}")
                else:
                    cells.append(f"{v:.0f} ({v / ref:.2f})")
            print(f"| {m} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
