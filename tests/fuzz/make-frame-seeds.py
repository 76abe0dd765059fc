#!/usr/bin/env python3
"""Regenerates tests/fuzz/corpus/frame/: seeds for fuzz_frame.cpp.

usage: make-frame-seeds.py
Each seed is one mode byte (how frame_fuzz splits the stream into feeds and
which frame limit it uses) followed by a stream of link frames
(docs/wire-format.md): every frame type, a realistic conversation, and
hand-made refusals (zero length, over-limit length, trailing bytes, huge
DATA count, too many headers, bad HELLO magic).
"""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "corpus", "frame")


def uv(n):
    b = bytearray()
    while n >= 0x80:
        b.append((n & 0x7F) | 0x80)
        n >>= 7
    b.append(n)
    return bytes(b)


def sv(n):
    return uv(((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF)


def bs(s):
    if isinstance(s, str):
        s = s.encode()
    return uv(len(s)) + s


def frame(t, body):
    return struct.pack(">IB", len(body) + 1, t) + body


NOW = 1718000000123456789


def hello(region="ams", epoch=1, flags=0, magic=0x49535448, version=1):
    return frame(1, uv(magic) + uv(version) + bs(region) + uv(epoch) + uv(flags))


def message(seq, subject, headers, payload, time=NOW):
    b = uv(seq) + sv(time) + bs(subject) + uv(len(headers))
    for k, v in headers:
        b += bs(k) + bs(v)
    return b + bs(payload)


def data(msgs, stream="COVENANT_COUNTRIES", epoch=1, sub_id=1, last=100, count=None):
    body = bs(stream) + uv(epoch) + uv(sub_id) + uv(last) + uv(len(msgs) if count is None else count)
    return frame(5, body + b"".join(msgs))


S = "COVENANT_COUNTRIES"
seeds = {
    "hello": hello(),
    "hello_bad_magic": hello(magic=0x48545349),
    "hello_v2_flags": hello(region="syd", epoch=2**64 - 1, flags=1, version=2),
    "stream_req": frame(2, bs(S)),
    "stream_info": frame(3, bs(S) + bs("") + uv(1) + uv(80) + bs('{"name":"COVENANT_COUNTRIES","subjects":["covenant.countries.>"]}')),
    "stream_info_error": frame(3, bs("NOPE") + bs("stream not found") + uv(0) + uv(0) + bs("")),
    "subscribe": frame(4, bs(S) + uv(1) + uv(1) + uv(7)),
    "data": data([message(i, "covenant.countries.%d" % (i % 3),
                          [("Nats-Msg-Id", "m%d" % i), ("X-Trace", "a"), ("X-Trace", "b")],
                          bytes(range(i * 7 % 50))) for i in range(1, 9)]),
    "data_empty": data([]),
    "data_huge_count": data([message(1, "a", [], b"")], count=2**62),
    "data_too_many_headers": data([message(1, "a", [("H", "v")] * 1025, b"")]),
    "data_trailing": b"",  # set below
    "ack": frame(6, bs(S) + uv(40) + sv(NOW)),
    "state": frame(7, bs(S) + uv(1) + uv(80) + sv(NOW)),
    "stop": frame(8, bs(S) + bs("diverged")),
    "heartbeat": frame(9, sv(NOW) + sv(NOW - 5000000) + sv(-1)),
    "goaway": frame(10, bs("shutdown")),
    "deleted": frame(11, bs(S) + uv(3) + uv(4) + uv(5) + uv(1) + uv(1) + uv(300)),
    "deleted_not_ascending": frame(11, bs(S) + uv(3) + uv(2) + uv(5) + uv(0)),
    "deleted_huge_count": frame(11, bs(S) + uv(3) + uv(2**40) + uv(1)),
    "zero_length": b"\x00\x00\x00\x00",
    "over_limit": b"\x7f\xff\xff\xff\x05" + b"\xab" * 64,
    "unknown_type": frame(77, b"\x01\x02"),
    "trailing_bytes": frame(6, bs(S) + uv(40) + sv(NOW) + b"\x00"),
    "varint_overflow": frame(9, b"\xff" * 9 + b"\x02" + b"\x00\x00"),
}
# trailing bytes in DATA: the frame says one more byte than the message uses
d = data([message(1, "a", [], b"x")])
seeds["data_trailing"] = struct.pack(">I", struct.unpack(">I", d[:4])[0] + 1) + d[4:] + b"\x00"

conversation = (hello("ams") + frame(2, bs(S)) + seeds["stream_info"] + seeds["subscribe"] +
                seeds["data"] + seeds["ack"] + seeds["state"] + seeds["deleted"] + seeds["heartbeat"] + seeds["stop"] +
                seeds["goaway"])

os.makedirs(out_dir, exist_ok=True)
for name, stream in seeds.items():
    # mode 0x02: one feed, 64 KiB limit
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(b"\x02" + stream)
# the conversation in every split mode and with every limit
for mode in (0x00, 0x05, 0x0D, 0x02, 0x03, 0x13, 0x23, 0x33):
    with open(os.path.join(out_dir, "conversation_%02x" % mode), "wb") as f:
        f.write(bytes([mode]) + conversation)
