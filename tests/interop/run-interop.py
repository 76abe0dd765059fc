#!/usr/bin/env python3
"""S2 interop tests: Isthmus (s2tool) against reference implementations.

usage: run-interop.py go S2TOOL S2REF
       run-interop.py snappy S2TOOL SNAPPYREF

go:     reference-compressed data (klauspost/compress/s2: block and stream,
        default/better/best and Snappy-compatible modes) must decode with
        Isthmus, and Isthmus-compressed data (S2 and Snappy-compatible, block
        and stream) must decode with the reference, byte for byte. Plus
        concatenated streams and corrupt input.
snappy: libsnappy blocks and Snappy framed streams must decode with Isthmus,
        and Isthmus' Snappy-compatible blocks must decode with libsnappy.
Prints one PASS/FAIL line per case and a summary; exits 1 on any failure.
Inputs are generated here, deterministically.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

KIB, MIB = 1024, 1024 * 1024


def json_events(n, seed):
    rng = random.Random(seed)
    countries = [("USA", "United States"), ("NLD", "Netherlands"), ("AUS", "Australia"),
                 ("DEU", "Germany"), ("JPN", "Japan"), ("BRA", "Brazil")]
    types = ["user.login", "user.logout", "project.created", "project.updated", "alert.raised"]
    out = bytearray()
    i = 0
    while len(out) < n:
        code, name = rng.choice(countries)
        ev = {
            "id": "%032x" % rng.getrandbits(128),
            "ts": "2024-05-01T12:%02d:%02d.%03dZ" % (i // 3600 % 60, i // 60 % 60, i % 1000),
            "type": rng.choice(types),
            "seq": 1000000 + i,
            "country": {"code": code, "name": name},
            "user": {"id": "u-%08d" % rng.randrange(10**8), "email": "user%d@example.com" % rng.randrange(5000)},
            "client": {"ip": "10.%d.%d.%d" % (rng.randrange(256), rng.randrange(256), rng.randrange(256)),
                       "ua": rng.choice(["Mozilla/5.0 (X11; Linux x86_64)", "curl/7.88.1", "nats.go/1.31"])},
            "token": "%064x" % rng.getrandbits(256),
        }
        out += json.dumps(ev, separators=(",", ":")).encode() + b"\n"
        i += 1
    return bytes(out[:n])


def log_lines(n, seed):
    rng = random.Random(seed)
    out = bytearray()
    i = 0
    while len(out) < n:
        out += b"2024-05-01T12:%02d:%02d.%03dZ %s isthmusd[%d]: link %s->%s lag_ms=%d seq=%d\n" % (
            i // 60 % 60, i % 60, rng.randrange(1000), rng.choice([b"INFO", b"WARN", b"DEBUG"]),
            rng.randrange(1000, 1100), rng.choice([b"iad", b"ams", b"syd"]), rng.choice([b"iad", b"ams", b"syd"]),
            rng.randrange(200), i)
        i += 1
    return bytes(out[:n])


def random_bytes(n, seed):
    return random.Random(seed).randbytes(n)


def make_inputs(d, big):
    inputs = {
        "empty": b"",
        "one_byte": b"x",
        "json_events": json_events(300 * KIB, 1),
        "log_lines": log_lines(300 * KIB, 2),
        "random": random_bytes(200 * KIB, 3),
        "run_one_byte": b"a" * MIB,
        "long_repeat_near": random_bytes(10 * KIB, 4) * 100,
        "long_repeat_far": random_bytes(100 * KIB, 5) * 3,
    }
    bounds = [32, 64 * KIB, MIB] + ([4 * MIB] if big else [])
    for b in bounds:
        base = json_events(b + 1, b) if b <= 64 * KIB else log_lines(b // 2, b) + json_events(b // 2 + 1, b)
        for n in (b - 1, b, b + 1):
            inputs["size_%d" % n] = base[:n]
    for name, data in inputs.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return inputs


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def result(self, ok, name, detail=""):
        print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail and not ok else ""), flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def s2tool(self, tool, args, data):
        return subprocess.run([tool] + args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def decode_with_isthmus(self, tool, name, kind, enc, want):
        p = self.s2tool(tool, ["decompress", "--" + kind], enc)
        ok = p.returncode == 0 and p.stdout == want
        self.result(ok, "isthmus-decode " + name, p.stderr.decode(errors="replace").strip() or
                    "output differs (%d bytes, want %d)" % (len(p.stdout), len(want)))

    def parse_ref_output(self, out):
        for line in out.splitlines():
            if line.startswith("PASS "):
                self.passed += 1
            elif line.startswith("FAIL "):
                self.failed += 1
            else:
                continue
            print(line, flush=True)

    def expect_failure(self, tool, name, kind, enc):
        p = self.s2tool(tool, ["decompress", "--" + kind], enc)
        ok = p.returncode != 0 and b"s2tool:" in p.stderr
        self.result(ok, "isthmus-rejects " + name, "exit %d, stderr %r" % (p.returncode, p.stderr[:200]))


ISTHMUS_MODES = {
    "block": ["--block"],
    "block-snappy": ["--block", "--snappy"],
    "stream": ["--stream"],
    "stream-snappy": ["--stream", "--snappy"],
    "stream-64k": ["--stream", "--block-size", "65536"],
}


def run_go(r, tool, ref, tmp):
    ind, refd, isd = (os.path.join(tmp, x) for x in ("in", "ref", "isthmus"))
    for x in (ind, refd, isd):
        os.makedirs(x)
    inputs = make_inputs(ind, big=True)
    # Reference -> Isthmus.
    subprocess.run([ref, "encode-dir", ind, refd], check=True)
    for f in sorted(os.listdir(refd)):
        name, mode = f.rsplit(".", 1)
        with open(os.path.join(refd, f), "rb") as fh:
            enc = fh.read()
        r.decode_with_isthmus(tool, "go:" + f, "block" if mode.startswith("block") else "stream", enc, inputs[name])
    # Isthmus -> reference.
    for name, data in inputs.items():
        for mode, args in ISTHMUS_MODES.items():
            p = r.s2tool(tool, ["compress"] + args, data)
            if p.returncode != 0:
                r.result(False, "isthmus-encode %s.%s" % (name, mode), p.stderr.decode())
                continue
            with open(os.path.join(isd, "%s.%s" % (name, mode)), "wb") as fh:
                fh.write(p.stdout)
    p = subprocess.run([ref, "check-dir", ind, isd], stdout=subprocess.PIPE, text=True)
    r.parse_ref_output(p.stdout)
    if p.returncode not in (0, 1):
        r.result(False, "go check-dir", "exit %d" % p.returncode)

    def rd(d, f):
        with open(os.path.join(d, f), "rb") as fh:
            return fh.read()

    # Concatenations: S2 + Snappy-compatible + better streams, and an Isthmus one.
    cat = rd(refd, "json_events.stream-default") + rd(refd, "log_lines.stream-snappy") + \
        rd(refd, "random.stream-better") + rd(isd, "size_65537.stream")
    want = inputs["json_events"] + inputs["log_lines"] + inputs["random"] + inputs["size_65537"]
    r.decode_with_isthmus(tool, "concat go+go-snappy+go-better+isthmus", "stream", cat, want)
    cat2 = rd(isd, "json_events.stream") + rd(refd, "log_lines.stream-snappy") + rd(isd, "random.stream-snappy")
    p = subprocess.run([ref, "decode-stream"], input=cat2, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    r.result(p.returncode == 0 and p.stdout == inputs["json_events"] + inputs["log_lines"] + inputs["random"],
             "go-decode concat isthmus+go-snappy+isthmus-snappy", p.stderr.decode())
    # Corrupt reference output is refused with a message.
    good = rd(refd, "json_events.stream-default")
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x20
    r.expect_failure(tool, "stream with a flipped byte", "stream", bytes(flipped))
    r.expect_failure(tool, "stream truncated mid-chunk", "stream", good[:len(good) - 3])
    r.expect_failure(tool, "stream without identifier", "stream", good[10:])
    blk = rd(refd, "json_events.block-default")
    r.expect_failure(tool, "block truncated", "block", blk[:len(blk) // 2])
    r.expect_failure(tool, "stream given to block decoder", "block", good)
    r.expect_failure(tool, "block given to stream decoder", "stream", blk)


def run_snappy(r, tool, ref, tmp):
    ind, refd, isd = (os.path.join(tmp, x) for x in ("in", "ref", "isthmus"))
    for x in (ind, refd, isd):
        os.makedirs(x)
    inputs = make_inputs(ind, big=False)
    subprocess.run([ref, "encode-dir", ind, refd], check=True)
    for f in sorted(os.listdir(refd)):
        name, mode = f.rsplit(".", 1)
        with open(os.path.join(refd, f), "rb") as fh:
            enc = fh.read()
        r.decode_with_isthmus(tool, "libsnappy:" + f, mode, enc, inputs[name])
    for name, data in inputs.items():
        p = r.s2tool(tool, ["compress", "--block", "--snappy"], data)
        with open(os.path.join(isd, name + ".block-snappy"), "wb") as fh:
            fh.write(p.stdout)
    p = subprocess.run([ref, "check-dir", ind, isd], stdout=subprocess.PIPE, text=True)
    r.parse_ref_output(p.stdout)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("go", "snappy"):
        print(__doc__, file=sys.stderr)
        return 2
    r = Runner()
    with tempfile.TemporaryDirectory(prefix="isthmus-interop-") as tmp:
        (run_go if sys.argv[1] == "go" else run_snappy)(r, sys.argv[2], sys.argv[3], tmp)
    print("%s: %d passed, %d failed" % ("PASS" if r.failed == 0 else "FAIL", r.passed, r.failed))
    return 0 if r.failed == 0 and r.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
