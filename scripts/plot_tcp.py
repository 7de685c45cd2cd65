#!/usr/bin/env python3
"""Draw a TCP trace (the bins' `--trace-tcp FILE`) as a PNG.

Usage: plot_tcp.py TRACE.csv [--out trace.png] [--conn N]

The CSV has one row per event of a connection: `send` (a new segment), `rexmit` (a
retransmission) or `ack` (an acknowledgment that moved the sender), with the time in seconds,
the segment's sequence range relative to the ISS, SND.UNA, cwnd, ssthresh, the bytes in flight,
srtt and rto. The top panel is the time/sequence graph (segments sent as dots, retransmissions
in red, SND.UNA as a line); the bottom one cwnd, ssthresh and the bytes in flight, with srtt on
a second axis. Needs matplotlib (`pip install matplotlib`).
"""
import argparse
import os
import csv
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--out", default=None, help="PNG to write (default: TRACE with .png)")
    ap.add_argument("--conn", type=int, default=None, help="connection id (default: the busiest)")
    a = ap.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_tcp.py needs matplotlib: pip install matplotlib")

    with open(a.trace, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{a.trace}: no rows")
    counts = {}
    for r in rows:
        counts[r["conn"]] = counts.get(r["conn"], 0) + 1
    conn = str(a.conn) if a.conn is not None else max(counts, key=counts.get)
    rows = [r for r in rows if r["conn"] == conn]
    t0 = float(rows[0]["time_s"])
    t = lambda r: float(r["time_s"]) - t0
    mib = 1 << 20

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    sends = [r for r in rows if r["event"] == "send"]
    rexmits = [r for r in rows if r["event"] == "rexmit"]
    acks = [r for r in rows if r["event"] == "ack"]
    top.scatter([t(r) for r in sends], [int(r["seq"]) / mib for r in sends], s=1, c="tab:blue", label="sent")
    top.scatter([t(r) for r in rexmits], [int(r["seq"]) / mib for r in rexmits], s=8, c="tab:red", label="retransmitted")
    top.plot([t(r) for r in acks], [int(r["snd_una"]) / mib for r in acks], c="tab:green", lw=0.8, label="SND.UNA")
    top.set_ylabel("sequence (MiB from ISS)")
    top.set_title(f"{os.path.basename(a.trace)}: connection {conn} ({len(sends)} sent, {len(rexmits)} retransmitted)")
    top.legend(loc="upper left", markerscale=4)
    top.grid(alpha=0.3)

    kib = 1024
    bottom.plot([t(r) for r in acks], [int(r["cwnd"]) / kib for r in acks], c="tab:blue", lw=0.8, label="cwnd")
    ss = [(t(r), int(r["ssthresh"]) / kib) for r in acks if int(r["ssthresh"]) < 1 << 40]
    if ss:
        bottom.plot([x for x, _ in ss], [y for _, y in ss], c="tab:orange", lw=0.8, label="ssthresh")
    bottom.plot([t(r) for r in acks], [int(r["in_flight"]) / kib for r in acks], c="tab:gray", lw=0.5, label="in flight")
    bottom.set_ylabel("KiB")
    bottom.set_xlabel("time (s)")
    bottom.grid(alpha=0.3)
    rtt = bottom.twinx()
    rtt.plot([t(r) for r in acks], [float(r["srtt_ms"]) for r in acks], c="tab:purple", lw=0.6, label="srtt")
    rtt.set_ylabel("srtt (ms)")
    lines = bottom.get_legend_handles_labels()
    lines2 = rtt.get_legend_handles_labels()
    bottom.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right")

    out = a.out or a.trace.rsplit(".", 1)[0] + ".png"
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
