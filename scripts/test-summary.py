#!/usr/bin/env python3
"""Counts test results from meson's testlog.json.

Catch2 executables contribute their test cases (parsed from Catch2's own
summary line); every other meson test counts as one. Prints a per-test table
and the closing line "N passed, N failed". Exits non-zero if anything failed.
"""
import json
import re
import sys

ALL_PASSED = re.compile(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)")
MIXED = re.compile(r"test cases:\s*(\d+)\s*\|\s*(\d+)\s*passed\s*\|\s*(\d+)\s*failed")
ONLY_FAILED = re.compile(r"test cases:\s*(\d+)\s*\|\s*(\d+)\s*failed")


def count(entry):
    out = entry.get("stdout", "") or ""
    ok = entry.get("result") in ("OK", "EXPECTEDFAIL")
    m = ALL_PASSED.search(out)
    if m:
        n = int(m.group(2))
        return (n, 0) if ok else (n, 1)
    m = MIXED.search(out)
    if m:
        return int(m.group(2)), int(m.group(3))
    m = ONLY_FAILED.search(out)
    if m:
        return 0, int(m.group(2))
    return (1, 0) if ok else (0, 1)


def main():
    path = sys.argv[1]
    passed = failed = 0
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            e = json.loads(line)
            p, fl = count(e)
            passed += p
            failed += fl
            rows.append((e.get("name", "?"), e.get("result", "?"), p, fl, e.get("duration", 0)))
    print()
    print(f"{'test':40} {'result':10} {'passed':>6} {'failed':>6} {'seconds':>8}")
    for name, res, p, fl, d in rows:
        print(f"{name:40} {res:10} {p:6d} {fl:6d} {d:8.1f}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
