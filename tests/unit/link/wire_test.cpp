// Unit tests for daemon/link/wire.{h,cpp}: LEB128 varints, zig-zag, bytes.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "link/wire.h"

using namespace isthmus;
using namespace isthmus::link;

namespace {

std::vector<uint8_t> enc_u(uint64_t v) {
  std::vector<uint8_t> out;
  WireWriter(out).uvarint(v);
  return out;
}

std::vector<uint8_t> enc_s(int64_t v) {
  std::vector<uint8_t> out;
  WireWriter(out).svarint(v);
  return out;
}

}  // namespace

TEST_CASE("uvarint encodes known values as unsigned LEB128", "[wire]") {
  CHECK(enc_u(0) == std::vector<uint8_t>{0x00});
  CHECK(enc_u(1) == std::vector<uint8_t>{0x01});
  CHECK(enc_u(127) == std::vector<uint8_t>{0x7f});
  CHECK(enc_u(128) == std::vector<uint8_t>{0x80, 0x01});
  CHECK(enc_u(300) == std::vector<uint8_t>{0xac, 0x02});
  CHECK(enc_u(16383) == std::vector<uint8_t>{0xff, 0x7f});
  CHECK(enc_u(16384) == std::vector<uint8_t>{0x80, 0x80, 0x01});
  CHECK(enc_u(0x49535448).size() == 5);
  auto max = enc_u(std::numeric_limits<uint64_t>::max());
  REQUIRE(max.size() == 10);
  for (int i = 0; i < 9; ++i) CHECK(max[i] == 0xff);
  CHECK(max[9] == 0x01);
}

TEST_CASE("uvarint round trips at every length boundary", "[wire]") {
  std::vector<uint64_t> values = {0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0xffffffffull, 0x100000000ull,
                                  (1ull << 56) - 1, 1ull << 56, (1ull << 63) - 1, 1ull << 63,
                                  std::numeric_limits<uint64_t>::max()};
  for (int bits = 0; bits < 64; ++bits) {
    values.push_back(1ull << bits);
    values.push_back((1ull << bits) - 1);
  }
  for (uint64_t v : values) {
    auto b = enc_u(v);
    size_t expect_len = 1;
    for (uint64_t x = v; x >= 0x80; x >>= 7) ++expect_len;
    CHECK(b.size() == expect_len);
    WireReader r(b);
    uint64_t got = 12345;
    REQUIRE(r.uvarint(got));
    CHECK(got == v);
    CHECK(r.done());
    CHECK(r.error().is_ok());
  }
}

TEST_CASE("uvarint reader accepts the 10-byte maximum and refuses overflow", "[wire]") {
  SECTION("10 bytes ending in 0x01 is UINT64_MAX") {
    std::vector<uint8_t> b(9, 0xff);
    b.push_back(0x01);
    WireReader r(b);
    uint64_t v = 0;
    REQUIRE(r.uvarint(v));
    CHECK(v == std::numeric_limits<uint64_t>::max());
    CHECK(r.done());
  }
  SECTION("a 10th byte above 1 overflows 64 bits") {
    for (uint8_t last : {uint8_t{0x02}, uint8_t{0x7f}, uint8_t{0x03}}) {
      std::vector<uint8_t> b(9, 0xff);
      b.push_back(last);
      WireReader r(b);
      uint64_t v = 0;
      CHECK_FALSE(r.uvarint(v));
      CHECK(r.error().code() == Code::kInvalid);
    }
  }
  SECTION("a 10th byte with its continuation bit set is refused") {
    std::vector<uint8_t> b(9, 0x80);
    b.push_back(0x81);
    b.push_back(0x00);
    WireReader r(b);
    uint64_t v = 0;
    CHECK_FALSE(r.uvarint(v));
    CHECK(r.error().code() == Code::kInvalid);
  }
  SECTION("eleven bytes are refused") {
    std::vector<uint8_t> b(10, 0x80);
    b.push_back(0x00);
    WireReader r(b);
    uint64_t v = 0;
    CHECK_FALSE(r.uvarint(v));
    CHECK(r.error().code() == Code::kInvalid);
  }
}

TEST_CASE("uvarint reader reports truncation", "[wire]") {
  SECTION("empty input") {
    WireReader r(std::span<const uint8_t>{});
    uint64_t v = 0;
    CHECK_FALSE(r.uvarint(v));
    CHECK(r.error().code() == Code::kTruncated);
  }
  SECTION("every strict prefix of a long varint") {
    auto full = enc_u(std::numeric_limits<uint64_t>::max() - 12345);
    for (size_t n = 0; n < full.size(); ++n) {
      std::span<const uint8_t> part(full.data(), n);
      WireReader r(part);
      uint64_t v = 0;
      CHECK_FALSE(r.uvarint(v));
      CHECK(r.error().code() == Code::kTruncated);
    }
  }
}

TEST_CASE("zig-zag svarint maps small magnitudes to small codes", "[wire]") {
  CHECK(enc_s(0) == std::vector<uint8_t>{0x00});
  CHECK(enc_s(-1) == std::vector<uint8_t>{0x01});
  CHECK(enc_s(1) == std::vector<uint8_t>{0x02});
  CHECK(enc_s(-2) == std::vector<uint8_t>{0x03});
  CHECK(enc_s(63) == std::vector<uint8_t>{0x7e});
  CHECK(enc_s(-64) == std::vector<uint8_t>{0x7f});
  CHECK(enc_s(64) == std::vector<uint8_t>{0x80, 0x01});
  CHECK(enc_s(std::numeric_limits<int64_t>::max()).size() == 10);
  CHECK(enc_s(std::numeric_limits<int64_t>::min()).size() == 10);
  // INT64_MIN is the all-ones code.
  CHECK(enc_s(std::numeric_limits<int64_t>::min()) == enc_u(std::numeric_limits<uint64_t>::max()));
  CHECK(enc_s(std::numeric_limits<int64_t>::max()) == enc_u(std::numeric_limits<uint64_t>::max() - 1));
}

TEST_CASE("svarint round trips", "[wire]") {
  const int64_t now_ns = 1'718'000'000'123'456'789;
  std::vector<int64_t> values = {0, 1, -1, 2, -2, 63, -64, 64, -65, 1000000, -1000000, now_ns, -now_ns,
                                 std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min(),
                                 std::numeric_limits<int64_t>::min() + 1};
  for (int bits = 0; bits < 63; ++bits) {
    values.push_back(int64_t{1} << bits);
    values.push_back(-(int64_t{1} << bits));
  }
  for (int64_t v : values) {
    auto b = enc_s(v);
    WireReader r(b);
    int64_t got = 42;
    REQUIRE(r.svarint(got));
    CHECK(got == v);
    CHECK(r.done());
  }
}

TEST_CASE("svarint reader propagates varint errors", "[wire]") {
  std::vector<uint8_t> b = {0x80, 0x80};
  WireReader r(b);
  int64_t v = 0;
  CHECK_FALSE(r.svarint(v));
  CHECK(r.error().code() == Code::kTruncated);
}

TEST_CASE("bytes round trip: empty, text, binary with NULs", "[wire]") {
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  std::string big(100000, 'x');
  std::vector<uint8_t> out;
  WireWriter w(out);
  w.bytes("");
  w.bytes("COVENANT_COUNTRIES");
  w.bytes(binary);
  w.bytes(std::string_view("\0\0\0", 3));
  w.bytes(big);
  // Length prefix of the 100000-byte string takes 3 bytes.
  CHECK(out.size() == 1 + (1 + 18) + (2 + 256) + (1 + 3) + (3 + 100000));

  WireReader r(out);
  std::string s;
  REQUIRE(r.bytes(s, 0));
  CHECK(s.empty());
  REQUIRE(r.bytes(s, 256));
  CHECK(s == "COVENANT_COUNTRIES");
  REQUIRE(r.bytes(s, 256));
  CHECK(s == binary);
  std::string_view sv;
  REQUIRE(r.bytes_view(sv, 3));
  CHECK(sv == std::string_view("\0\0\0", 3));
  REQUIRE(r.bytes(s, big.size()));
  CHECK(s == big);
  CHECK(r.done());
  CHECK(r.remaining() == 0);
}

TEST_CASE("bytes limit is inclusive and checked before copying", "[wire]") {
  std::vector<uint8_t> out;
  WireWriter(out).bytes(std::string(10, 'a'));
  {
    WireReader r(out);
    std::string s;
    CHECK(r.bytes(s, 10));
    CHECK(s.size() == 10);
  }
  {
    WireReader r(out);
    std::string s = "unchanged";
    CHECK_FALSE(r.bytes(s, 9));
    CHECK(r.error().code() == Code::kTooLarge);
    CHECK(s == "unchanged");
  }
  SECTION("a huge declared length with a small limit is TooLarge, not Truncated") {
    std::vector<uint8_t> b;
    WireWriter(b).uvarint(uint64_t{1} << 40);
    b.push_back('x');
    WireReader r(b);
    std::string s;
    CHECK_FALSE(r.bytes(s, 4096));
    CHECK(r.error().code() == Code::kTooLarge);
  }
  SECTION("a declared length beyond the input within the limit is Truncated") {
    std::vector<uint8_t> b;
    WireWriter(b).uvarint(100);
    b.insert(b.end(), 99, 'y');
    WireReader r(b);
    std::string s;
    CHECK_FALSE(r.bytes(s, 1000));
    CHECK(r.error().code() == Code::kTruncated);
    std::string_view sv;
    WireReader r2(b);
    CHECK_FALSE(r2.bytes_view(sv, SIZE_MAX));
    CHECK(r2.error().code() == Code::kTruncated);
  }
  SECTION("a length of 2^64-1 with an unlimited max is Truncated, not wrapped") {
    std::vector<uint8_t> b;
    WireWriter(b).uvarint(std::numeric_limits<uint64_t>::max());
    b.push_back('z');
    WireReader r(b);
    std::string_view sv;
    CHECK_FALSE(r.bytes_view(sv, SIZE_MAX));
    CHECK(r.error().code() == Code::kTruncated);
  }
}

TEST_CASE("reader keeps the first error and never reads past the end", "[wire]") {
  std::vector<uint8_t> b = {0x05};
  WireReader r(b);
  uint8_t x = 0;
  REQUIRE(r.u8(x));
  CHECK(x == 5);
  CHECK(r.done());
  CHECK_FALSE(r.u8(x));
  CHECK(r.error().code() == Code::kTruncated);
  std::string s;
  CHECK_FALSE(r.bytes(s, 10));
  uint64_t v;
  CHECK_FALSE(r.uvarint(v));
  CHECK(r.error().code() == Code::kTruncated);
  CHECK(r.error().message() == "truncated byte");
  CHECK(r.remaining() == 0);
}

TEST_CASE("raw and u8 append verbatim", "[wire]") {
  std::vector<uint8_t> out = {0xaa};
  WireWriter w(out);
  w.u8(0x00);
  w.u8(0xff);
  const uint8_t data[] = {1, 2, 3};
  w.raw(data, sizeof data);
  w.raw(nullptr, 0);
  CHECK(out == std::vector<uint8_t>{0xaa, 0x00, 0xff, 1, 2, 3});
}
