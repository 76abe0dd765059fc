#!/usr/bin/env python3
"""Reads lag series written by `bench-replication.py --lag-series` (one line
per message, in arrival order: "<arrival> <lag> <origin store> <replica store>",
Unix ns; see tests/tools/loadgen/lag_consumer.h) and prints, per file:

- the end-to-end lag percentiles;
- where the time went, for the median tenth and for the slowest 1% of
  messages: publisher to the leader's store (Isthmus: the Isthmus-Origin-Time
  header), to the replica's store (the consumed stream's own store time), and
  from there to the consumer. A native mirror keeps the source's store time,
  so for it only "to replica store" and "to consumer" are shown, and the
  first includes nothing of the mirroring;
- the episodes that make the tail: runs of messages whose lag exceeds a
  threshold, merged while they arrive less than --gap-ms apart, largest
  first. A few long episodes point at stalls (a process descheduled, a server
  pausing); many short ones at steady queueing.

usage: lag-series.py [--threshold-ms MS] [--gap-ms MS] [--top N] FILE...
"""
import argparse


def pct(sorted_v, p):
    if not sorted_v:
        return 0.0
    i = min(len(sorted_v) - 1, int(p * (len(sorted_v) - 1) + 0.5))
    return sorted_v[i] / 1e6


def split(rows, label):
    """Mean milliseconds per stage over rows (arrival, lag, origin, replica)."""
    n = len(rows)
    if n == 0:
        return
    sent = [a - l for a, l, _, _ in rows]
    has_origin = all(o > 0 for _, _, o, _ in rows)
    has_replica = all(r > 0 for _, _, _, r in rows)
    parts = [f"lag {sum(l for _, l, _, _ in rows) / n / 1e6:.1f}"]
    if has_origin:
        parts.append(f"to leader store {sum(o - s for (_, _, o, _), s in zip(rows, sent)) / n / 1e6:.1f}")
        if has_replica:
            parts.append(f"to replica store {sum(r - o for _, _, o, r in rows) / n / 1e6:.1f}")
    elif has_replica:
        parts.append(f"to replica store {sum(r - s for (_, _, _, r), s in zip(rows, sent)) / n / 1e6:.1f}")
    if has_replica:
        parts.append(f"to consumer {sum(a - r for a, _, _, r in rows) / n / 1e6:.1f}")
    print(f"  {label:>14} ({n} msgs), mean ms: " + ", ".join(parts))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threshold-ms", type=float, default=None,
                    help="lag above which a message belongs to an episode (default: the file's p90)")
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    for path in a.files:
        rows = []
        with open(path) as f:
            for line in f:
                p = [int(x) for x in line.split()]
                rows.append((p[0], p[1], p[2] if len(p) > 2 else 0, p[3] if len(p) > 3 else 0))
        if not rows:
            print(f"{path}: empty")
            continue
        v = sorted(r[1] for r in rows)
        print(f"{path}: {len(v)} msgs over {(rows[-1][0] - rows[0][0]) / 1e9:.1f} s; lag ms p50 {pct(v, .5):.1f} "
              f"p90 {pct(v, .9):.1f} p99 {pct(v, .99):.1f} max {v[-1] / 1e6:.1f}")
        by_lag = sorted(rows, key=lambda r: r[1])
        n = len(by_lag)
        split(by_lag[int(n * .45):int(n * .55)], "median tenth")
        split(by_lag[int(n * .99):], "slowest 1%")
        thr = a.threshold_ms if a.threshold_ms is not None else pct(v, 0.90)
        t0 = rows[0][0]
        eps, cur = [], None
        for at, lag, _, _ in rows:
            if lag / 1e6 <= thr:
                continue
            if cur is not None and at - cur["end"] < a.gap_ms * 1e6:
                cur["end"] = at
                cur["n"] += 1
                cur["max"] = max(cur["max"], lag)
            else:
                cur = {"start": at, "end": at, "n": 1, "max": lag}
                eps.append(cur)
        print(f"  above {thr:.1f} ms: {sum(e['n'] for e in eps)} msgs in {len(eps)} episodes; largest:")
        for e in sorted(eps, key=lambda e: -e["n"])[:a.top]:
            print(f"    at {(e['start'] - t0) / 1e9:6.3f} s  {(e['end'] - e['start']) / 1e6:5.0f} ms long  "
                  f"{e['n']:6d} msgs  max lag {e['max'] / 1e6:.1f} ms")


if __name__ == "__main__":
    main()
