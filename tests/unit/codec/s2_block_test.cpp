#include <catch2/catch.hpp>

#include "bytes.h"

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "codec/s2_block.h"

using namespace isthmus;
using namespace isthmus::codec;

namespace {

using codec_test::B;
using codec_test::Bytes;
using codec_test::cat;
using codec_test::S;
std::string repeat_str(std::string_view s, size_t n) {
  std::string r;
  for (size_t i = 0; i < n; ++i) r += s;
  return r;
}

// Walks the ops of a valid block; counts repeats and reports whether the
// first copy-type op was a repeat.
struct OpStats {
  size_t literals = 0, copy1 = 0, copy2 = 0, copy4 = 0, repeats = 0;
  bool first_copy_is_repeat = false;
};
OpStats op_stats(const Bytes& blk) {
  OpStats st;
  size_t i = 0;
  while (blk[i] & 0x80) ++i;
  ++i;
  bool any_copy = false;
  while (i < blk.size()) {
    uint8_t t = blk[i];
    switch (t & 3) {
      case 0: {
        size_t m = t >> 2, len;
        if (m < 60) {
          len = m + 1;
          i += 1;
        } else {
          size_t nb = m - 59;
          len = 0;
          for (size_t k = 0; k < nb; ++k) len |= size_t{blk[i + 1 + k]} << (8 * k);
          len += 1;
          i += 1 + nb;
        }
        i += len;
        ++st.literals;
        break;
      }
      case 1: {
        size_t off = ((t & 0xe0u) << 3) | blk[i + 1];
        if (off == 0) {
          if (!any_copy) st.first_copy_is_repeat = true;
          ++st.repeats;
          size_t L = (t >> 2) & 7;
          i += 2 + (L == 5 ? 1 : L == 6 ? 2 : L == 7 ? 3 : 0);
        } else {
          ++st.copy1;
          i += 2;
        }
        any_copy = true;
        break;
      }
      case 2:
        ++st.copy2;
        any_copy = true;
        i += 3;
        break;
      default:
        ++st.copy4;
        any_copy = true;
        i += 5;
        break;
    }
  }
  return st;
}

Bytes decode_ok(const Bytes& blk) {
  auto r = decode_block(blk, size_t{64} << 20);
  INFO(r.status().to_string());
  REQUIRE(r.is_ok());
  return std::move(r).value();
}

Code decode_err(const Bytes& blk) {
  auto r = decode_block(blk, size_t{64} << 20);
  REQUIRE_FALSE(r.is_ok());
  CHECK_FALSE(r.status().message().empty());
  return r.status().code();
}

Bytes random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

Bytes text_like(size_t n, uint32_t seed) {
  static const char* words[] = {"region", "iad", "ams", "syd", "stream", "COVENANT_USERS", "\"code\":",
                                "\"name\":", "United States", "lag", "epoch", "{", "}", ",", " "};
  std::mt19937 rng(seed);
  Bytes b;
  while (b.size() < n) {
    std::string_view w = words[rng() % 15];
    b.insert(b.end(), w.begin(), w.end());
    if (rng() % 7 == 0) b.push_back(static_cast<uint8_t>('0' + rng() % 10));
  }
  b.resize(n);
  return b;
}

}  // namespace

TEST_CASE("s2 block: worked examples from the format notes decode", "[codec][s2][block]") {
  const Bytes want = S(repeat_str("0123456789", 30));
  // S2: literal, copy1 len 8 off 10, repeat L=6 len 282.
  const Bytes s2 = cat(cat(B({0xac, 0x02, 0x24}), S("0123456789")), B({0x11, 0x0a, 0x19, 0x00, 0x16, 0x00}));
  CHECK(decode_ok(s2) == want);
  // Snappy form: copy2 len 60 x4, copy2 len 50.
  Bytes sn = cat(B({0xac, 0x02, 0x24}), S("0123456789"));
  for (int i = 0; i < 4; ++i) sn = cat(sn, B({0xee, 0x0a, 0x00}));
  sn = cat(sn, B({0xc6, 0x0a, 0x00}));
  CHECK(decode_ok(sn) == want);
  // 80 000 bytes: literal 16, copy1 len 8 off 16, repeat L=7 len 79 976.
  const Bytes big = cat(cat(B({0x80, 0xf1, 0x04, 0x3c}), S("ABCDEFGHIJKLMNOP")),
                        B({0x11, 0x10, 0x1d, 0x00, 0x64, 0x38, 0x00}));
  CHECK(decode_ok(big) == S(repeat_str("ABCDEFGHIJKLMNOP", 5000)));
}

TEST_CASE("s2 block: every literal form", "[codec][s2][block]") {
  for (size_t n : {1u, 59u, 60u, 61u, 255u, 256u, 257u, 65536u, 65537u, 70000u}) {
    Bytes data = random_bytes(n, static_cast<uint32_t>(n));
    Bytes blk;
    size_t v = n;
    while (v >= 0x80) {
      blk.push_back(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    blk.push_back(static_cast<uint8_t>(v));
    size_t m = n - 1;
    if (m < 60) {
      blk.push_back(static_cast<uint8_t>(m << 2));
    } else {
      size_t nb = m < 256 ? 1 : m < 65536 ? 2 : 3;
      blk.push_back(static_cast<uint8_t>((59 + nb) << 2));
      for (size_t k = 0; k < nb; ++k) blk.push_back(static_cast<uint8_t>(m >> (8 * k)));
    }
    blk = cat(blk, data);
    INFO("n=" << n);
    CHECK(decode_ok(blk) == data);
  }
  // 4-byte length form (m=63) for a short literal.
  CHECK(decode_ok(B({3, 63 << 2, 2, 0, 0, 0, 'a', 'b', 'c'})) == S("abc"));
}

TEST_CASE("s2 block: copy1, copy2, copy4, overlapping copies", "[codec][s2][block]") {
  // "abcd" then copy1 len 4 off 4.
  CHECK(decode_ok(B({8, 3 << 2, 'a', 'b', 'c', 'd', 0x01, 0x04})) == S("abcdabcd"));
  // copy1 len 11 off 1 (RLE).
  CHECK(decode_ok(B({12, 0, 'x', (7 << 2) | 1, 0x01})) == S(std::string(12, 'x')));
  // copy2 len 64 off 2 (overlap).
  CHECK(decode_ok(B({66, 1 << 2, 'a', 'b', (63 << 2) | 2, 2, 0})) == S(repeat_str("ab", 33)));
  // copy4 len 3 off 3 (short copies are legal in copy2/copy4).
  CHECK(decode_ok(B({6, 2 << 2, 'x', 'y', 'z', (2 << 2) | 3, 3, 0, 0, 0})) == S("xyzxyz"));
  // copy1 with a high offset (bits 8..10 in the tag).
  Bytes lit = random_bytes(1500, 7);
  Bytes blk = B({0xe0, 0x0b, 61 << 2, 0xdb, 0x05});  // varint 1504, literal 1500
  blk = cat(blk, lit);
  blk = cat(blk, B({(5 << 5) | 1, 0xdc}));  // copy1 len 4 offset 0x5dc=1500
  Bytes want = lit;
  want.insert(want.end(), lit.begin(), lit.begin() + 4);
  CHECK(decode_ok(blk) == want);
  // Short-offset copies of every period 1..17 and lengths up to 64.
  for (int period = 1; period <= 17; ++period) {
    for (int len = 1; len <= 64; len += 3) {
      Bytes pat = random_bytes(static_cast<size_t>(period), static_cast<uint32_t>(period));
      Bytes b;
      const size_t total = static_cast<size_t>(period + len);
      b.push_back(static_cast<uint8_t>(total));  // < 128
      b.push_back(static_cast<uint8_t>((period - 1) << 2));
      b = cat(b, pat);
      b = cat(b, B({((len - 1) << 2) | 2, period, 0}));
      Bytes w = pat;
      for (int i = 0; i < len; ++i) w.push_back(w[w.size() - static_cast<size_t>(period)]);
      INFO("period=" << period << " len=" << len);
      CHECK(decode_ok(b) == w);
    }
  }
}

TEST_CASE("s2 block: every repeat length form", "[codec][s2][block]") {
  // literal "abcdefgh", copy1 len 4 off 8, then a repeat (offset 8).
  struct R {
    Bytes op;
    size_t len;
  };
  const R rs[] = {
      {B({0x01, 0x00}), 4},          {B({0x05, 0x00}), 5},       {B({0x09, 0x00}), 6},
      {B({0x0d, 0x00}), 7},          {B({0x11, 0x00}), 8},       {B({0x15, 0x00, 0x00}), 8},
      {B({0x15, 0x00, 0xff}), 263},  {B({0x19, 0x00, 0, 0}), 260}, {B({0x19, 0x00, 0xff, 0xff}), 65795},
      {B({0x1d, 0x00, 0, 0, 0}), 65540}, {B({0x1d, 0x00, 0x10, 0x27, 0x01}), 65540 + 0x012710},
  };
  // Without and with a 100-byte literal after the repeat (the decoder's fast
  // loop handles ops only when plenty of input and output remain).
  for (const auto& r : rs)
  for (size_t tail : {0u, 100u}) {
    std::string want = repeat_str("abcdefgh", (8 + 4 + r.len + 7) / 8).substr(0, 12 + r.len);
    const std::string tail_str = repeat_str("T", tail);
    want += tail_str;
    Bytes blk;
    size_t v = want.size();
    while (v >= 0x80) {
      blk.push_back(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    blk.push_back(static_cast<uint8_t>(v));
    blk = cat(blk, cat(cat(B({7 << 2}), S("abcdefgh")), B({0x01, 0x08})));
    blk = cat(blk, r.op);
    if (tail) blk = cat(cat(blk, B({60 << 2, static_cast<int>(tail - 1)})), S(tail_str));
    INFO("repeat len " << r.len << " tail " << tail);
    CHECK(decode_ok(blk) == S(want));
  }
}

TEST_CASE("s2 block: malformed input is an error value", "[codec][s2][block]") {
  CHECK(decode_err({}) == Code::kTruncated);
  CHECK(decode_err(B({0x80})) == Code::kTruncated);
  CHECK(decode_err(B({0x80, 0x80, 0x80, 0x80, 0x80, 0x00})) == Code::kCorrupt);  // 6-byte varint
  CHECK(decode_err(B({0xff, 0xff, 0xff, 0xff, 0x1f})) == Code::kCorrupt);        // > 2^32-1
  CHECK(decode_err(B({0x05, 0x10, 'a'})) == Code::kTruncated);                   // literal past input
  CHECK(decode_err(B({0x05, 0xf0})) == Code::kTruncated);                        // literal length bytes missing
  CHECK(decode_err(B({0x01, 0x04, 'a', 'b'})) == Code::kCorrupt);                // literal past declared length
  CHECK(decode_err(B({0x03, 0x00, 'a'})) == Code::kCorrupt);                     // short of declared length
  CHECK(decode_err(B({0x05, 0x00, 'a', 0x01, 0x00})) == Code::kCorrupt);         // repeat before any copy
  CHECK(decode_err(B({0x05, 0x00, 'a', 0x01, 0x02})) == Code::kCorrupt);         // offset beyond output
  CHECK(decode_err(B({0x05, 0x00, 'a', 0x0e, 0x00, 0x00})) == Code::kCorrupt);   // copy2 offset 0
  CHECK(decode_err(B({0x05, 0x00, 'a', 0x0f, 0, 0, 0, 0})) == Code::kCorrupt);   // copy4 offset 0
  CHECK(decode_err(B({0x05, 0x00, 'a', 0x0f, 1, 0, 0})) == Code::kTruncated);    // copy4 cut
  CHECK(decode_err(B({0x05, 0x00, 'a', 0x02, 1})) == Code::kTruncated);          // copy2 cut
  CHECK(decode_err(B({0x05, 0x00, 'a', 0x01})) == Code::kTruncated);             // copy1 cut
  CHECK(decode_err(B({0x05, 0x00, 'a', 0x1d, 0x01})) == Code::kCorrupt);         // copy1 past declared length
  CHECK(decode_err(B({0x03, 0x00, 'a', 0x05, 0x01})) == Code::kCorrupt);         // copy past declared length
  // Repeat forms with missing extra bytes.
  CHECK(decode_err(B({0x20, 0x00, 'a', 0x01, 0x01, 0x15, 0x00})) == Code::kTruncated);
  CHECK(decode_err(B({0x20, 0x00, 'a', 0x01, 0x01, 0x19, 0x00, 0x01})) == Code::kTruncated);
  CHECK(decode_err(B({0x20, 0x00, 'a', 0x01, 0x01, 0x1d, 0x00, 0x01, 0x01})) == Code::kTruncated);
  // Limits are checked before allocating.
  auto r = decode_block(B({0xff, 0xff, 0xff, 0xff, 0x0f}), 1 << 20);
  CHECK(r.status().code() == Code::kTooLarge);
  auto r2 = decoded_len(B({0x81, 0x80, 0x04}), 65536);
  CHECK(r2.status().code() == Code::kTooLarge);
  // A 4 GiB claim with a few bytes of ops is rejected without allocating.
  CHECK(decode_block(B({0xfe, 0xff, 0xff, 0xff, 0x0f, 0x00, 'a'}), SIZE_MAX).status().code() == Code::kCorrupt);
  // Destination size must match.
  Bytes dst(3);
  CHECK(decode_block(B({0x02, 0x04, 'a', 'b'}), dst).code() == Code::kInvalid);
}

TEST_CASE("s2 block: encoder round-trips and emits the expected ops", "[codec][s2][block]") {
  std::vector<Bytes> inputs;
  inputs.push_back({});
  inputs.push_back(B({'x'}));
  for (size_t n : {31u, 32u, 33u, 100u, 4096u, 65535u, 65536u, 65537u, 300000u}) {
    inputs.push_back(random_bytes(n, static_cast<uint32_t>(n)));
    inputs.push_back(text_like(n, static_cast<uint32_t>(n)));
    inputs.push_back(Bytes(n, 'a'));
  }
  inputs.push_back(S(repeat_str("0123456789", 30)));
  inputs.push_back(S(repeat_str("ABCDEFGHIJKLMNOP", 5000)));
  // A long repeat at a far offset (copy4 + repeat).
  Bytes far = random_bytes(200000, 99);
  Bytes far2 = far;
  far2.insert(far2.end(), far.begin(), far.end());
  inputs.push_back(far2);
  // A repeat longer than one repeat op can express (> 16 842 755 bytes).
  inputs.push_back(Bytes(17u << 20, 'z'));

  for (bool snappy : {false, true}) {
    for (const auto& in : inputs) {
      INFO("size=" << in.size() << " snappy=" << snappy);
      Bytes blk = encode_block(in, EncodeOptions{snappy});
      CHECK(blk.size() <= max_encoded_len(in.size()));
      CHECK(decode_ok(blk) == in);
      OpStats st = op_stats(blk);
      CHECK_FALSE(st.first_copy_is_repeat);
      if (snappy) CHECK(st.repeats == 0);
    }
  }
  // Repeats are used where they pay off, and compression works.
  Bytes zs = Bytes(1 << 20, 'a');
  Bytes blk = encode_block(zs);
  CHECK(blk.size() < 32);
  CHECK(op_stats(blk).repeats >= 1);
  // Offsets >= 64 KiB use copy4.
  Bytes x = random_bytes(1000, 11);
  Bytes farx = x;
  farx.insert(farx.end(), 100000, 'z');
  farx.insert(farx.end(), x.begin(), x.end());
  Bytes fb = encode_block(farx);
  CHECK(op_stats(fb).copy4 >= 1);
  CHECK(fb.size() < 1100);
  CHECK(decode_ok(fb) == farx);
  // Incompressible data stays within the bound.
  Bytes rnd = random_bytes(100000, 5);
  CHECK(encode_block(rnd).size() <= rnd.size() + 10);
  // Reusing an encoder across sizes gives the same bytes as a fresh one.
  BlockEncoder enc;
  for (const auto& in : inputs) {
    Bytes out(max_encoded_len(in.size()));
    out.resize(enc.encode(in, out));
    CHECK(out == encode_block(in));
  }
}
