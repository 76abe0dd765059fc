#include <catch2/catch.hpp>

#include <string_view>
#include <vector>

#include "codec/crc32c.h"

using namespace isthmus::codec;

namespace {
std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
}  // namespace

TEST_CASE("crc32c: reference vectors", "[codec][crc]") {
  // From docs/s2.md (CRC-32C, masked, wire bytes little-endian).
  struct V {
    std::string_view data;
    uint32_t crc;
    uint32_t masked;
  };
  const V vs[] = {{"", 0x00000000u, 0xa282ead8u}, {"123456789", 0xe3069283u, 0xc78ab0e5u},
                  {"hello", 0x9a71bb4cu, 0x191c1fbbu}};
  for (const auto& v : vs) {
    INFO("data=" << v.data);
    CHECK(crc32c(bytes(v.data)) == v.crc);
    CHECK(crc32c_portable(bytes(v.data)) == v.crc);
    CHECK(crc32c_mask(v.crc) == v.masked);
    CHECK(masked_crc32c(bytes(v.data)) == v.masked);
  }
}

TEST_CASE("crc32c: hardware and portable agree on every length and alignment", "[codec][crc]") {
  std::vector<uint8_t> buf(1100);
  uint32_t x = 12345;
  for (auto& b : buf) {
    x = x * 1103515245u + 12345u;
    b = static_cast<uint8_t>(x >> 16);
  }
  for (size_t off = 0; off < 9; ++off) {
    for (size_t len = 0; len + off <= buf.size(); len += (len < 40 ? 1 : 37)) {
      auto s = std::span<const uint8_t>(buf).subspan(off, len);
      REQUIRE(crc32c(s) == crc32c_portable(s));
    }
  }
  // Incremental continuation equals one pass.
  auto all = std::span<const uint8_t>(buf);
  CHECK(crc32c(all.subspan(500), crc32c(all.first(500))) == crc32c(all));
  CHECK(crc32c_portable(all.subspan(3), crc32c_portable(all.first(3))) == crc32c(all));
  INFO("hardware crc32c available: " << crc32c_hardware_available());
  SUCCEED();
}
