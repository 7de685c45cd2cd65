#!/usr/bin/env python3
"""Charts (PNG) from the benches' CSV files.

Usage: plot_bench.py [--dir target/bench-results] [--out docs/img]

Reads throughput.csv, latency.csv and connections.csv where present (written by
`cargo bench --bench throughput|latency|connections`) and writes one PNG per file, plotting
the median over each scenario's runs. Needs matplotlib (`pip install matplotlib`).
"""
import argparse
import csv
import os
import statistics
import sys
from collections import defaultdict


def rows(path):
    """The CSV's rows; a row with more fields than the header (an unquoted comma) is an
    error, not a silently shifted chart."""
    with open(path, newline="") as f:
        rs = list(csv.DictReader(f))
    for i, r in enumerate(rs, start=2):
        if None in r or None in r.values():
            sys.exit(f"{path}:{i}: {len(r)} fields, not the header's: unquoted comma? {r}")
    return rs


def throughput(plt, src, out):
    med = defaultdict(list)
    for r in rows(src):
        med[(r["stack"], r["path"], r["direction"], int(r["conns"]))].append(float(r["gbit_per_s"]))
    series = defaultdict(dict)
    for (stack, path, direction, conns), v in med.items():
        series[(stack, path, direction)][conns] = statistics.median(v)
    fig, ax = plt.subplots(figsize=(8, 5))
    for key in sorted(series):
        pts = sorted(series[key].items())
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        label = " ".join(key)
        style = "--" if key[0] == "kernel" else "-"
        ax.plot(xs, ys, style, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("connections (one app thread each)")
    ax.set_ylabel("Gbit/s (median)")
    ax.set_title("Throughput: netstack vs smoltcp and the kernel (veth, loopback)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def latency(plt, src, out):
    med = defaultdict(lambda: ([], []))
    for r in rows(src):
        med[r["scenario"]][0].append(float(r["p50_us"]))
        med[r["scenario"]][1].append(float(r["p99_us"]))
    names = list(med)
    p50 = [statistics.median(med[n][0]) for n in names]
    p99 = [statistics.median(med[n][1]) for n in names]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("round trip, µs")
    ax.set_title("Latency: netstack on tun0 vs the kernel over veth")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def connections(plt, src, out):
    rs = rows(src)
    names = [r["scenario"] for r in rs]
    kib = [float(r["kib_per_conn"]) for r in rs]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(names, kib)
    ax.axhline(8, color="gray", ls="--", lw=1, label="goal, library: 8 KiB")
    ax.axhline(16, color="gray", ls=":", lw=1, label="goal, host bin: 16 KiB")
    ax.set_ylabel("KiB per idle connection")
    ax.set_title(f"Memory per connection ({rs[0]['conns']} idle connections)")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="target/bench-results")
    ap.add_argument("--out", default="docs/img")
    a = ap.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_bench.py needs matplotlib: pip install matplotlib")
    os.makedirs(a.out, exist_ok=True)
    made = 0
    for name, fn in [("throughput", throughput), ("latency", latency), ("connections", connections)]:
        src = os.path.join(a.dir, f"{name}.csv")
        if not os.path.exists(src):
            print(f"skip {name}: no {src}", file=sys.stderr)
            continue
        out = os.path.join(a.out, f"{name}.png")
        fn(plt, src, out)
        print(f"wrote {out}")
        made += 1
    if made == 0:
        sys.exit(f"no CSV files in {a.dir}: run `cargo bench` first")


if __name__ == "__main__":
    main()
