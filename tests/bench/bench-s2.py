#!/usr/bin/env python3
"""S2 benchmark: Isthmus vs the reference Go encoder (default, better) vs libsnappy.

Each corpus (tests/bench corpusgen) is cut into 4 KiB, 64 KiB and 1 MiB frames,
each frame compressed as one independent block (one stream chunk per flushed
batch). Every helper is single-threaded (GOMAXPROCS=1) and reports one timed
pass; repetitions are interleaved (every implementation once per round, the
order rotating) and the table shows medians. Not a test: prints a Markdown
table and checks the issue's target on JSON events in 64 KiB frames.

usage: bench-s2.py --corpusgen P --isthmus P --s2ref P --snappyref P --out DIR
                   [--reps 5] [--size BYTES] [--corpora a,b] [--frames 4096,...]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

IMPLS = ["isthmus", "go-default", "go-better", "libsnappy"]


def main():
    ap = argparse.ArgumentParser()
    for k in ("corpusgen", "isthmus", "s2ref", "snappyref", "out"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--size", type=int, default=8 << 20)
    ap.add_argument("--corpora", default="json_events,small_records,log_lines,random")
    ap.add_argument("--frames", default="4096,65536,1048576")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    env = dict(os.environ, GOMAXPROCS="1")
    corpora = a.corpora.split(",")
    frames = [int(x) for x in a.frames.split(",")]
    files = {}
    for c in corpora:
        path = os.path.join(a.out, c + ".bin")
        with open(path, "wb") as f:
            subprocess.run([a.corpusgen, c, str(a.size)], stdout=f, check=True)
        files[c] = path

    def cmd(impl, path, frame):
        if impl == "isthmus":
            return [a.isthmus, path, str(frame)]
        if impl.startswith("go-"):
            return [a.s2ref, "bench", path, str(frame), impl[3:]]
        return [a.snappyref, "bench", path, str(frame)]

    res = {}  # (corpus, frame, impl) -> list of dicts
    for rep in range(a.reps):
        order = IMPLS[rep % len(IMPLS):] + IMPLS[:rep % len(IMPLS)]
        for c in corpora:
            for fr in frames:
                for impl in order:
                    out = subprocess.run(cmd(impl, files[c], fr), stdout=subprocess.PIPE, env=env, check=True).stdout
                    res.setdefault((c, fr, impl), []).append(json.loads(out))
        print("round %d/%d done" % (rep + 1, a.reps), file=sys.stderr, flush=True)

    def med(c, fr, impl):
        rs = res[(c, fr, impl)]
        n = rs[0]["input"]
        return {
            "ratio": statistics.median(r["compressed"] / n for r in rs),
            "enc": statistics.median(n / r["encode_ns"] * 1e3 for r in rs),
            "dec": statistics.median(n / r["decode_ns"] * 1e3 for r in rs),
        }

    lines = ["| corpus | frame | implementation | size (% of input) | encode MB/s | decode MB/s |",
             "|---|---|---|---:|---:|---:|"]
    for c in corpora:
        for fr in frames:
            label = "%d KiB" % (fr // 1024) if fr < 1 << 20 else "%d MiB" % (fr >> 20)
            for impl in IMPLS:
                m = med(c, fr, impl)
                lines.append("| %s | %s | %s | %.1f%% | %.0f | %.0f |" % (c, label, impl, 100 * m["ratio"], m["enc"], m["dec"]))
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(a.out, "raw.json"), "w") as f:
        json.dump({"%s/%d/%s" % k: v for k, v in res.items()}, f, indent=1)

    if "json_events" in corpora and 65536 in frames:
        i, g, s = (med("json_events", 65536, x) for x in ("isthmus", "go-default", "libsnappy"))
        checks = [
            ("size <= reference default (within 5%)", i["ratio"] <= g["ratio"] * 1.05),
            ("encode >= reference default (within 5%)", i["enc"] >= g["enc"] * 0.95),
            ("decode >= reference default (within 5%)", i["dec"] >= g["dec"] * 0.95),
            ("encode > libsnappy", i["enc"] > s["enc"]),
            ("decode > libsnappy", i["dec"] > s["dec"]),
        ]
        print("\nTarget, JSON events in 64 KiB frames (median of %d):" % a.reps)
        for name, ok in checks:
            print("  %s %s" % ("MET " if ok else "MISS", name))
        print("  isthmus %.1f%% %.0f/%.0f MB/s; go default %.1f%% %.0f/%.0f; libsnappy %.1f%% %.0f/%.0f" % (
            100 * i["ratio"], i["enc"], i["dec"], 100 * g["ratio"], g["enc"], g["dec"],
            100 * s["ratio"], s["enc"], s["dec"]))
        return 0 if all(ok for _, ok in checks) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
