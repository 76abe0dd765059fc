#!/usr/bin/env python3
"""Regenerates the committed seed corpora in tests/fuzz/corpus/.

usage: make-seeds.py BUILD_DIR   (needs BUILD_DIR/tests/tools/s2tool)
Seeds: the format notes' worked examples, hand-made edge cases, and small
blocks/streams compressed by s2tool from a few kinds of input.
"""
import os
import random
import struct
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
s2tool = os.path.join(sys.argv[1], "tests", "tools", "s2tool")
rng = random.Random(1234)


def run(args, data):
    return subprocess.run([s2tool] + args, input=data, stdout=subprocess.PIPE, check=True).stdout


def write(kind, name, data):
    d = os.path.join(here, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF).to_bytes(4, "little")


def chunk(t, payload):
    return bytes([t]) + len(payload).to_bytes(3, "little") + payload


inputs = {
    "empty": b"",
    "one": b"x",
    "hello": b"hello",
    "digits300": b"0123456789" * 30,
    "alpha80k": b"ABCDEFGHIJKLMNOP" * 5000,
    "json": b"".join(b'{"code":"USA","name":"United States","seq":%d}\n' % i for i in range(60)),
    "log": b"".join(b"2024-05-01T12:00:%02d.123Z INFO link iad->ams lag_ms=%d\n" % (i % 60, i * 7) for i in range(40)),
    "random": bytes(rng.getrandbits(8) for _ in range(700)),
    "run": b"\x00" * 3000,
    "mixed": bytes(rng.getrandbits(8) for _ in range(100)) + b"abc" * 300 + b"Z" * 70000,
}

# Block decoder seeds.
write("block_decode", "example_s2_repeat", bytes.fromhex("ac0224") + b"0123456789" + bytes.fromhex("110a19001600"))
write("block_decode", "example_snappy", bytes.fromhex("ac0224") + b"0123456789" + bytes.fromhex("ee0a00") * 4 + bytes.fromhex("c60a00"))
write("block_decode", "example_repeat7", bytes.fromhex("80f1043c") + b"ABCDEFGHIJKLMNOP" + bytes.fromhex("11101d00643800"))
write("block_decode", "literal_forms", bytes([0x83, 0x02, 60 << 2, 0x82]) + bytes(range(131)) + bytes([0x0f, 1, 0, 0, 0]) + bytes([0x02, 3, 0]))
write("block_decode", "repeat_first", bytes([5, 0, ord("a"), 1, 0]))
write("block_decode", "varint_long", bytes([0x80] * 5 + [0]))
for name, data in inputs.items():
    write("block_decode", "s2_" + name, run(["compress", "--block"], data))
    write("block_decode", "snappy_" + name, run(["compress", "--block", "--snappy"], data))

# Stream decoder seeds: 4 bytes of split/option seed, then the stream.
def sseed(name, stream):
    write("stream_decode", name, struct.pack("<I", rng.getrandbits(32) & ~3) + stream)


s2id = chunk(0xFF, b"S2sTwO")
snid = chunk(0xFF, b"sNaPpY")
sseed("hello", s2id + chunk(0x01, masked(b"hello") + b"hello"))
sseed("empty", b"")
sseed("id_only", s2id)
sseed("padding_skippable", snid + chunk(0xFE, b"\x00" * 9) + chunk(0x80, b"skip") + chunk(0x01, masked(b"hi") + b"hi"))
sseed("reserved", s2id + chunk(0x02, b"abcd"))
sseed("badcrc", s2id + chunk(0x01, b"\x00\x00\x00\x00hello"))
for name, data in inputs.items():
    sseed("s2_" + name, run(["compress", "--stream", "--block-size", "4096"], data))
    sseed("snappy_" + name, run(["compress", "--stream", "--snappy"], data))
sseed("concat", run(["compress", "--stream"], inputs["json"]) + run(["compress", "--stream", "--snappy"], inputs["log"]))

# Round-trip seeds: 2 option bytes, then data.
for i, (name, data) in enumerate(inputs.items()):
    write("roundtrip", name, bytes([i * 3 & 0xFF, i * 7 & 0xFF]) + data[:20000])
