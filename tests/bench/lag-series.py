#!/usr/bin/env python3
"""Reads lag series written by `bench-replication.py --lag-series` (one line
per message, in arrival order: "<arrival ns> <lag ns>") and prints, per file,
the lag percentiles and the episodes that make the tail: runs of messages whose
lag exceeds a threshold, merged while consecutive ones arrive less than
--gap-ms apart, largest first. A tail made of a few long episodes points at
stalls (a process descheduled, a server pausing); one spread over many short
ones points at steady queueing.

usage: lag-series.py [--threshold-ms MS] [--gap-ms MS] [--top N] FILE...
"""
import argparse


def pct(sorted_v, p):
    if not sorted_v:
        return 0.0
    i = min(len(sorted_v) - 1, int(p * (len(sorted_v) - 1) + 0.5))
    return sorted_v[i] / 1e6


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
                at, lag = line.split()
                rows.append((int(at), int(lag)))
        if not rows:
            print(f"{path}: empty")
            continue
        v = sorted(r[1] for r in rows)
        thr = a.threshold_ms if a.threshold_ms is not None else pct(v, 0.90)
        print(f"{path}: {len(v)} msgs over {(rows[-1][0] - rows[0][0]) / 1e9:.1f} s; lag ms p50 {pct(v, .5):.1f} "
              f"p90 {pct(v, .9):.1f} p99 {pct(v, .99):.1f} max {v[-1] / 1e6:.1f}")
        t0 = rows[0][0]
        eps, cur = [], None
        for at, lag in rows:
            if lag / 1e6 <= thr:
                continue
            if cur is not None and at - cur["end"] < a.gap_ms * 1e6:
                cur["end"] = at
                cur["n"] += 1
                cur["max"] = max(cur["max"], lag)
            else:
                cur = {"start": at, "end": at, "n": 1, "max": lag}
                eps.append(cur)
        above = sum(e["n"] for e in eps)
        print(f"  above {thr:.1f} ms: {above} msgs in {len(eps)} episodes")
        for e in sorted(eps, key=lambda e: -e["n"])[:a.top]:
            print(f"    at {(e['start'] - t0) / 1e9:6.3f} s  {(e['end'] - e['start']) / 1e6:5.0f} ms long  "
                  f"{e['n']:6d} msgs  max lag {e['max'] / 1e6:.1f} ms")


if __name__ == "__main__":
    main()
