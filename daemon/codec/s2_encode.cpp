// S2 block encoder: a single-probe hash-table match finder over 6-byte hashes
// (positions s, s+1, s+2 per step, with a step that grows over incompressible
// data), a check for the last offset before each lookup (emitted as an S2
// repeat op), and match extension 8 bytes at a time.
#include <algorithm>
#include <bit>
#include <cstring>

#include "codec/s2_block.h"
#include "codec/unaligned.h"

namespace isthmus::codec {
namespace {

constexpr size_t kMinCompressSize = 32;  // shorter inputs are one literal
constexpr size_t kInputMargin = 8;       // keeps 8-byte loads inside src
constexpr int kMaxTableBits = 14;
constexpr int kMinTableBits = 8;


inline uint32_t hash6(uint64_t v, int bits) {
  constexpr uint64_t kPrime6 = 227718039650203ull;
  return static_cast<uint32_t>(((v << 16) * kPrime6) >> (64 - bits));
}

inline uint8_t u8(size_t v) { return static_cast<uint8_t>(v & 0xff); }

size_t put_varint(uint8_t* d, size_t v) {
  size_t i = 0;
  while (v >= 0x80) {
    d[i++] = u8(v | 0x80);
    v >>= 7;
  }
  d[i++] = u8(v);
  return i;
}

size_t emit_literal(uint8_t* d, const uint8_t* lit, size_t n) {
  const size_t m = n - 1;
  size_t i;
  if (m < 60) {
    d[0] = u8(m << 2);
    i = 1;
  } else if (m < (1u << 8)) {
    d[0] = 60 << 2;
    d[1] = u8(m);
    i = 2;
  } else if (m < (1u << 16)) {
    d[0] = 61 << 2;
    d[1] = u8(m);
    d[2] = u8(m >> 8);
    i = 3;
  } else if (m < (1u << 24)) {
    d[0] = 62 << 2;
    d[1] = u8(m);
    d[2] = u8(m >> 8);
    d[3] = u8(m >> 16);
    i = 4;
  } else {
    d[0] = 63 << 2;
    d[1] = u8(m);
    d[2] = u8(m >> 8);
    d[3] = u8(m >> 16);
    d[4] = u8(m >> 24);
    i = 5;
  }
  std::memcpy(d + i, lit, n);
  return i + n;
}

// emit_literal for dst with at least 17 bytes of room: short literals whose
// 16-byte neighbourhood lies inside the source move in one piece.
inline size_t emit_literal_fast(uint8_t* d, const uint8_t* lit, size_t n, const uint8_t* src_end) {
  if (n <= 16 && src_end - lit >= 16) {
    d[0] = u8((n - 1) << 2);
    uint64_t a, b;
    std::memcpy(&a, lit, 8);
    std::memcpy(&b, lit + 8, 8);
    std::memcpy(d + 1, &a, 8);
    std::memcpy(d + 9, &b, 8);
    return n + 1;
  }
  return emit_literal(d, lit, n);
}

// Repeat of the last offset, len >= 4. Lengths 9..11 with a short offset are
// cheaper as a plain copy1 (same 2 bytes, and no repeat semantics needed).
size_t emit_repeat(uint8_t* d, size_t off, size_t len) {
  constexpr size_t kMaxRepeat = 65540 + 0xFFFFFF;
  size_t i = 0;
  for (;;) {
    if (len <= 8) {
      d[i] = u8(((len - 4) << 2) | 1);
      d[i + 1] = 0;
      return i + 2;
    }
    if (len < 12 && off < 2048) {
      d[i] = u8(((off >> 8) << 5) | ((len - 4) << 2) | 1);
      d[i + 1] = u8(off);
      return i + 2;
    }
    if (len < 264) {
      d[i] = (5 << 2) | 1;
      d[i + 1] = 0;
      d[i + 2] = u8(len - 8);
      return i + 3;
    }
    if (len < 65796) {
      const size_t v = len - 260;
      d[i] = (6 << 2) | 1;
      d[i + 1] = 0;
      d[i + 2] = u8(v);
      d[i + 3] = u8(v >> 8);
      return i + 4;
    }
    const size_t chunk = len <= kMaxRepeat ? len : (len - kMaxRepeat >= 4 ? kMaxRepeat : kMaxRepeat - 4);
    const size_t v = chunk - 65540;
    d[i] = (7 << 2) | 1;
    d[i + 1] = 0;
    d[i + 2] = u8(v);
    d[i + 3] = u8(v >> 8);
    d[i + 4] = u8(v >> 16);
    i += 5;
    len -= chunk;
    if (len == 0) return i;
  }
}

// One copy op of 1..64 bytes (copy1 only for 4..11 bytes and offsets < 2048).
[[gnu::always_inline]] inline size_t emit_copy_op(uint8_t* d, size_t off, size_t len) {
  if (off >= 65536) {
    d[0] = u8(((len - 1) << 2) | 3);
    d[1] = u8(off);
    d[2] = u8(off >> 8);
    d[3] = u8(off >> 16);
    d[4] = u8(off >> 24);
    return 5;
  }
  if (len >= 12 || len < 4 || off >= 2048) {
    d[0] = u8(((len - 1) << 2) | 2);
    d[1] = u8(off);
    d[2] = u8(off >> 8);
    return 3;
  }
  d[0] = u8(((off >> 8) << 5) | ((len - 4) << 2) | 1);
  d[1] = u8(off);
  return 2;
}

// A copy of len >= 4 bytes at `off`; in S2 mode long copies become one short
// copy plus a repeat.
size_t emit_copy(uint8_t* d, size_t off, size_t len, bool snappy) {
  size_t i = 0;
  if (snappy) {
    while (len >= 68) {
      i += emit_copy_op(d + i, off, 64);
      len -= 64;
    }
    if (len > 64) {
      i += emit_copy_op(d + i, off, 60);
      len -= 60;
    }
    return i + emit_copy_op(d + i, off, len);
  }
  if (len <= 64) return emit_copy_op(d, off, len);
  if (off >= 65536) {
    i = emit_copy_op(d, off, 64);
    len -= 64;
    if (len < 4) return i + emit_copy_op(d + i, off, len);
  } else if (off < 2048) {
    i = emit_copy_op(d, off, 8);
    len -= 8;
  } else {
    i = emit_copy_op(d, off, 60);
    len -= 60;
  }
  return i + emit_repeat(d + i, off, len);
}

// Returns the end of the match of src[s..] against src[cand..] (cand < s).
inline size_t extend_match(const uint8_t* src, size_t s, size_t cand, size_t n) {
  while (s + 8 <= n) {
    const uint64_t x = load64(src + s) ^ load64(src + cand);
    if (x != 0) return s + (static_cast<size_t>(std::countr_zero(x)) >> 3);
    s += 8;
    cand += 8;
  }
  while (s < n && src[s] == src[cand]) {
    ++s;
    ++cand;
  }
  return s;
}

int table_bits_for(size_t n) {
  int bits = kMinTableBits;
  while (bits < kMaxTableBits && (size_t{1} << bits) < n) ++bits;
  return bits;
}

// Encodes the ops of src (n >= kMinCompressSize) into dst. Returns the number
// of bytes, or 0 if the output would exceed dst_limit. Never writes more than
// dst_limit + 16 + 5 * (n >> 24) bytes.
// The table holds positions; blocks of up to 64 KiB use 16-bit entries,
// which halves the table's cache footprint.
template <typename Pos>
size_t compress_ops(const uint8_t* src, size_t n, uint8_t* dst, size_t dst_limit, Pos* table, int bits,
                    bool snappy) {
  size_t d = 0;
  const size_t s_limit = n - kInputMargin;
  size_t next_emit = 0;
  size_t s = 1;
  uint64_t cv = load64(src + s);
  size_t repeat = 1;
  bool have_offset = false;  // no repeat op before the first copy

  for (;;) {
    size_t candidate;
    for (;;) {
      const size_t next_s = s + ((s - next_emit) >> 6) + 4;
      if (next_s > s_limit) goto emit_remainder;
      const uint32_t h0 = hash6(cv, bits);
      const uint32_t h1 = hash6(cv >> 8, bits);
      candidate = table[h0];
      const size_t candidate2 = table[h1];
      table[h0] = static_cast<Pos>(s);
      table[h1] = static_cast<Pos>(s + 1);
      const uint32_t h2 = hash6(cv >> 16, bits);

      // The last offset, one byte ahead.
      if (static_cast<uint32_t>(cv >> 8) == load32(src + s + 1 - repeat)) {
        size_t base = s + 1;
        while (base > next_emit && base > repeat && src[base - repeat - 1] == src[base - 1]) --base;
        if (d + (base - next_emit) + 5 > dst_limit) return 0;
        if (base > next_emit) d += emit_literal_fast(dst + d, src + next_emit, base - next_emit, src + n);
        s = extend_match(src, s + 5, s + 5 - repeat, n);
        if (have_offset && !snappy) {
          d += emit_repeat(dst + d, repeat, s - base);
        } else {
          d += emit_copy(dst + d, repeat, s - base, snappy);
          have_offset = true;
        }
        next_emit = s;
        if (s >= s_limit) goto emit_remainder;
        if (d > dst_limit) return 0;
        cv = load64(src + s);
        continue;
      }
      if (static_cast<uint32_t>(cv) == load32(src + candidate)) break;
      candidate = table[h2];
      if (static_cast<uint32_t>(cv >> 8) == load32(src + candidate2)) {
        table[h2] = static_cast<Pos>(s + 2);
        candidate = candidate2;
        s += 1;
        break;
      }
      table[h2] = static_cast<Pos>(s + 2);
      if (static_cast<uint32_t>(cv >> 16) == load32(src + candidate)) {
        s += 2;
        break;
      }
      cv = load64(src + next_s);
      s = next_s;
    }

    // A 4-byte match at s against candidate < s: extend backwards, emit.
    while (candidate > 0 && s > next_emit && src[candidate - 1] == src[s - 1]) {
      --candidate;
      --s;
    }
    if (d + (s - next_emit) + 5 > dst_limit) return 0;
    if (s > next_emit) d += emit_literal_fast(dst + d, src + next_emit, s - next_emit, src + n);

    for (;;) {
      const size_t base = s;
      repeat = base - candidate;
      s = extend_match(src, s + 4, candidate + 4, n);
      d += (s - base <= 64) ? emit_copy_op(dst + d, repeat, s - base) : emit_copy(dst + d, repeat, s - base, snappy);
      have_offset = true;
      next_emit = s;
      if (s >= s_limit) goto emit_remainder;
      // Index a position inside the match: cheap, and finds more matches.
      table[hash6(load64(src + base + 1), bits)] = static_cast<Pos>(base + 1);
      if (d > dst_limit) return 0;
      // An immediate second match? Index s-2 and s on the way.
      const uint64_t x = load64(src + s - 2);
      const uint32_t hm2 = hash6(x, bits);
      const uint32_t hc = hash6(x >> 16, bits);
      candidate = table[hc];
      table[hm2] = static_cast<Pos>(s - 2);
      table[hc] = static_cast<Pos>(s);
      if (static_cast<uint32_t>(x >> 16) != load32(src + candidate)) {
        cv = load64(src + s + 1);
        s += 1;
        break;
      }
    }
  }

emit_remainder:
  if (next_emit < n) {
    if (d + (n - next_emit) + 5 > dst_limit) return 0;
    d += emit_literal(dst + d, src + next_emit, n - next_emit);
  }
  return d;
}

}  // namespace

size_t BlockEncoder::encode_ops_or_give_up(std::span<const uint8_t> src, std::span<uint8_t> dst) {
  const size_t n = src.size();
  if (n < kMinCompressSize) return 0;
  const size_t slack = 16 + 5 * (n >> 24);
  if (dst.size() < slack + 16) return 0;
  const size_t limit = std::min(n - (n >> 5) - 6, dst.size() - slack);
  const int bits = table_bits_for(n);
  const size_t tsize = size_t{1} << bits;
  if (n <= 65536) {
    if (table16_.size() < tsize) table16_.resize(size_t{1} << kMaxTableBits);
    std::memset(table16_.data(), 0, tsize * sizeof(uint16_t));
    return compress_ops(src.data(), n, dst.data(), limit, table16_.data(), bits, opts_.snappy_compatible);
  }
  if (table_.size() < tsize) table_.resize(size_t{1} << kMaxTableBits);
  std::memset(table_.data(), 0, tsize * sizeof(uint32_t));
  return compress_ops(src.data(), n, dst.data(), limit, table_.data(), bits, opts_.snappy_compatible);
}

size_t BlockEncoder::encode(std::span<const uint8_t> src, std::span<uint8_t> dst) {
  const size_t n = src.size();
  size_t hdr = put_varint(dst.data(), n);
  size_t ops = encode_ops_or_give_up(src, dst.subspan(hdr));
  if (ops == 0) {
    if (n == 0) return hdr;
    return hdr + emit_literal(dst.data() + hdr, src.data(), n);
  }
  return hdr + ops;
}

std::vector<uint8_t> encode_block(std::span<const uint8_t> src, EncodeOptions opts) {
  std::vector<uint8_t> out(max_encoded_len(src.size()));
  BlockEncoder enc(opts);
  out.resize(enc.encode(src, out));
  return out;
}

}  // namespace isthmus::codec
