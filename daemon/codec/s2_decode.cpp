// S2 block decoder. The fast paths copy in 8/16-byte pieces and may write up
// to 15 bytes past the end of the current op, but only when that much room is
// left in dst (later ops overwrite the slop); near the end of dst every copy
// is exact.
#include <bit>
#include <cstddef>
#include <cstring>
#include <string>

#include "codec/s2_block.h"
#include "codec/unaligned.h"

namespace isthmus::codec {
namespace {

inline void copy16(uint8_t* d, const uint8_t* s) {
  uint64_t a = load64(s);
  uint64_t b = load64(s + 8);
  store64(d, a);
  store64(d + 8, b);
}
inline uint32_t load_le(const uint8_t* p, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

Status corrupt(const char* what, size_t pos) {
  return Status(Code::kCorrupt, std::string("s2 block: ") + what + " at input offset " + std::to_string(pos));
}
Status truncated(const char* what, size_t pos) {
  return Status(Code::kTruncated,
                std::string("s2 block: input ends inside ") + what + " at offset " + std::to_string(pos));
}

}  // namespace

Result<size_t> decoded_len(std::span<const uint8_t> block, size_t limit) {
  uint64_t v = 0;
  for (size_t i = 0; i < 5; ++i) {
    if (i >= block.size()) return Status(Code::kTruncated, "s2 block: input ends inside the length varint");
    uint8_t b = block[i];
    v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      if (v > 0xFFFFFFFFu) return Status(Code::kCorrupt, "s2 block: length varint exceeds 2^32-1");
      if (v > limit)
        return Status(Code::kTooLarge, "s2 block: declared length " + std::to_string(v) + " exceeds limit " +
                                           std::to_string(limit));
      return static_cast<size_t>(v);
    }
  }
  return Status(Code::kCorrupt, "s2 block: length varint longer than 5 bytes");
}

static size_t varint_size(std::span<const uint8_t> block) {
  size_t i = 0;
  while (block[i] & 0x80) ++i;
  return i + 1;
}

Status decode_ops(std::span<const uint8_t> ops, std::span<uint8_t> out) {
  const uint8_t* const src_begin = ops.data();
  const uint8_t* src = src_begin;
  const uint8_t* const src_end = src + ops.size();
  uint8_t* const base = out.data();
  uint8_t* op = base;
  uint8_t* const end = base + out.size();
  size_t last_offset = 0;  // 0: no copy yet in this block, a repeat is corrupt

  // Fast loop: at least kInMargin input bytes left (every op header and a
  // short literal can be read without checks) and kOutMargin output bytes
  // (copies of up to 64 bytes and short literals may overshoot in 16-byte
  // pieces). The careful loop below finishes the block.
  constexpr ptrdiff_t kInMargin = 24;
  constexpr ptrdiff_t kOutMargin = 96;
  // (Reads several header bytes as one little-endian word.)
  while (std::endian::native == std::endian::little && src_end - src >= kInMargin && end - op >= kOutMargin) {
    const uint32_t tag = *src;
    size_t len;
    size_t off;
    if ((tag & 3) == 0) {
      len = (tag >> 2) + 1;
      if (len <= 16) {
        copy16(op, src + 1);
        op += len;
        src += len + 1;
        continue;
      }
      if (len > 60) {
        const size_t nb = len - 60;
        len = static_cast<size_t>(load32(src + 1) & (0xFFFFFFFFu >> (32 - 8 * nb))) + 1;
        src += nb + 1;
      } else {
        src += 1;
      }
      if (len > static_cast<size_t>(src_end - src)) return truncated("a literal", src - src_begin);
      if (len > static_cast<size_t>(end - op)) return corrupt("literal longer than the declared length", src - src_begin);
      if (len <= 64 && src_end - src >= 64) {
        copy16(op, src);
        copy16(op + 16, src + 16);
        copy16(op + 32, src + 32);
        copy16(op + 48, src + 48);
      } else {
        std::memcpy(op, src, len);
      }
      op += len;
      src += len;
      continue;
    }
    const uint32_t v = load32(src);
    switch (tag & 3) {
      case 1:
        len = ((tag >> 2) & 7) + 4;
        off = ((tag & 0xe0) << 3) | ((v >> 8) & 0xff);
        if (off != 0) {
          src += 2;
          break;
        }
        if (last_offset == 0) return corrupt("repeat before any copy", src - src_begin);
        off = last_offset;
        if (len < 9) {
          src += 2;
        } else if (len == 9) {
          len = ((v >> 16) & 0xFFu) + 8;
          src += 3;
        } else if (len == 10) {
          len = (v >> 16) + 260;
          src += 4;
        } else {
          len = (load32(src + 2) & 0xFFFFFFu) + 65540;
          src += 5;
        }
        break;
      case 2:
        len = (tag >> 2) + 1;
        off = (v >> 8) & 0xFFFFu;
        if (off == 0) return corrupt("copy2 with offset 0", src - src_begin);
        src += 3;
        break;
      default:
        len = (tag >> 2) + 1;
        off = load32(src + 1);
        if (off == 0) return corrupt("copy4 with offset 0", src - src_begin);
        src += 5;
        break;
    }
    if (off > static_cast<size_t>(op - base)) return corrupt("copy offset beyond the decoded data", src - src_begin);
    if (len > static_cast<size_t>(end - op)) return corrupt("copy longer than the declared length", src - src_begin);
    last_offset = off;
    const uint8_t* from = op - off;
    if (off >= 16) {
      copy16(op, from);
      if (len > 16) {
        copy16(op + 16, from + 16);
        if (len > 32) {
          copy16(op + 32, from + 32);
          copy16(op + 48, from + 48);
          if (len > 64) {
            if (static_cast<size_t>(end - op) >= len + 16) {
              for (size_t i = 64; i < len; i += 16) copy16(op + i, from + i);
            } else {
              for (size_t i = 64; i < len; ++i) op[i] = from[i];
            }
          }
        }
      }
      op += len;
      continue;
    }
    if (static_cast<size_t>(end - op) >= len + 8) {
      size_t dist = off;
      uint8_t* o = op;
      size_t left = len;
      while (dist < 8) {
        const size_t n = dist < left ? dist : left;
        std::memcpy(o, o - dist, n);
        o += n;
        left -= n;
        if (left == 0) break;
        dist *= 2;
      }
      for (size_t i = 0; i < left; i += 8) store64(o + i, load64(o - dist + i));
    } else {
      for (size_t i = 0; i < len; ++i) op[i] = from[i];
    }
    op += len;
  }

  while (src < src_end) {
    const uint32_t tag = *src;
    size_t len;
    size_t off;
    switch (tag & 3) {
      case 0: {  // literal
        len = (tag >> 2) + 1;
        if (len <= 16 && src_end - src > 16 && end - op >= 16) {
          copy16(op, src + 1);  // common short literal
          op += len;
          src += len + 1;
          continue;
        }
        if (len > 60) {
          const size_t nb = len - 60;  // 1..4 extra length bytes
          if (static_cast<size_t>(src_end - src) < nb + 1) return truncated("a literal length", src - src_begin);
          len = static_cast<size_t>(load_le(src + 1, nb)) + 1;
          src += nb + 1;
        } else {
          src += 1;
        }
        if (len > static_cast<size_t>(src_end - src)) return truncated("a literal", src - src_begin);
        if (len > static_cast<size_t>(end - op)) return corrupt("literal longer than the declared length", src - src_begin);
        std::memcpy(op, src, len);
        op += len;
        src += len;
        continue;
      }
      case 1: {  // copy1, or repeat when the 11-bit offset is 0
        if (src_end - src < 2) return truncated("a copy1", src - src_begin);
        len = ((tag >> 2) & 7) + 4;
        off = ((tag & 0xe0) << 3) | src[1];
        if (off == 0) {
          if (last_offset == 0) return corrupt("repeat before any copy", src - src_begin);
          off = last_offset;
          switch (len) {
            case 9:  // L=5
              if (src_end - src < 3) return truncated("a repeat", src - src_begin);
              len = static_cast<size_t>(src[2]) + 8;
              src += 3;
              break;
            case 10:  // L=6
              if (src_end - src < 4) return truncated("a repeat", src - src_begin);
              len = static_cast<size_t>(load_le(src + 2, 2)) + 260;
              src += 4;
              break;
            case 11:  // L=7
              if (src_end - src < 5) return truncated("a repeat", src - src_begin);
              len = static_cast<size_t>(load_le(src + 2, 3)) + 65540;
              src += 5;
              break;
            default:
              src += 2;
          }
        } else {
          src += 2;
        }
        break;
      }
      case 2: {  // copy2
        if (src_end - src < 3) return truncated("a copy2", src - src_begin);
        len = (tag >> 2) + 1;
        off = load_le(src + 1, 2);
        if (off == 0) return corrupt("copy2 with offset 0", src - src_begin);
        src += 3;
        break;
      }
      default: {  // copy4
        if (src_end - src < 5) return truncated("a copy4", src - src_begin);
        len = (tag >> 2) + 1;
        off = load_le(src + 1, 4);
        if (off == 0) return corrupt("copy4 with offset 0", src - src_begin);
        src += 5;
        break;
      }
    }
    // Copy `len` bytes from `off` back.
    if (off > static_cast<size_t>(op - base)) return corrupt("copy offset beyond the decoded data", src - src_begin);
    if (len > static_cast<size_t>(end - op)) return corrupt("copy longer than the declared length", src - src_begin);
    last_offset = off;
    const uint8_t* from = op - off;
    const size_t room = static_cast<size_t>(end - op);
    if (off >= 16 && room >= len + 16) {
      if (len <= 16) {
        copy16(op, from);
      } else {
        for (size_t i = 0; i < len; i += 16) copy16(op + i, from + i);
      }
      op += len;
      continue;
    }
    if (room >= len + 8) {
      // Short offset: grow the pattern until the distance is >= 8 (any multiple
      // of the period is a valid distance), then copy 8 bytes at a time.
      size_t dist = off;
      uint8_t* o = op;
      size_t left = len;
      while (dist < 8) {
        const size_t n = dist < left ? dist : left;
        std::memcpy(o, o - dist, n);  // n <= dist: no overlap
        o += n;
        left -= n;
        if (left == 0) break;
        dist *= 2;
      }
      for (size_t i = 0; i < left; i += 8) store64(o + i, load64(o - dist + i));
      op += len;
      continue;
    }
    for (size_t i = 0; i < len; ++i) op[i] = from[i];
    op += len;
  }
  if (op != end) return corrupt("input ends before the declared length is produced", ops.size());
  return Status::ok();
}

Status decode_block(std::span<const uint8_t> block, std::span<uint8_t> dst) {
  auto n = decoded_len(block);
  if (!n) return n.status();
  if (*n != dst.size()) return Status(Code::kInvalid, "s2 block: destination size differs from the declared length");
  return decode_ops(block.subspan(varint_size(block)), dst);
}

Result<std::vector<uint8_t>> decode_block(std::span<const uint8_t> block, size_t limit) {
  auto n = decoded_len(block, limit);
  if (!n) return n.status();
  // A block cannot expand by more than its ops allow; reject absurd claims
  // before allocating (the longest op, a 5-byte repeat, yields < 2^24 bytes).
  const size_t hdr = varint_size(block);
  const size_t ops = block.size() - hdr;
  if (*n / (size_t{1} << 22) > ops + 1)
    return Status(Code::kCorrupt, "s2 block: declared length impossible for the input size");
  std::vector<uint8_t> out(*n);
  Status st = decode_ops(block.subspan(hdr), out);
  if (!st) return st;
  return out;
}

}  // namespace isthmus::codec
