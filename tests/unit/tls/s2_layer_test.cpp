// The S2 link layer: round trip in any split, one chunk per flush, and an
// oversize chunk refused before allocation with kFrameTooLarge.
#include <catch2/catch.hpp>

#include <random>

#include "codec/s2_stream.h"
#include "link/s2_layer.h"

using isthmus::link::CloseReason;
using isthmus::link::S2Layer;

TEST_CASE("S2 layer round trip in any split", "[s2layer]") {
  std::mt19937 rng(7);
  std::vector<uint8_t> data;
  for (int i = 0; i < 200000; ++i) data.push_back(static_cast<uint8_t>("frames compress well "[i % 21] ^ (rng() % 7 == 0)));
  for (size_t split : {size_t{1}, size_t{13}, size_t{4096}, SIZE_MAX}) {
    INFO("split " << split);
    S2Layer tx(isthmus::link::kS2LinkBlockSize, isthmus::link::kS2LinkBlockSize);
    S2Layer rx(isthmus::link::kS2LinkBlockSize, isthmus::link::kS2LinkBlockSize);
    std::vector<uint8_t> wire;
    // Three batches; the first written in two pieces before its flush.
    REQUIRE(tx.write(std::span(data).subspan(0, 1000), false, wire));
    CHECK(wire.empty());
    REQUIRE(tx.write(std::span(data).subspan(1000, 9000), true, wire));
    REQUIRE(tx.write(std::span(data).subspan(10000, 150000), true, wire));
    REQUIRE(tx.write(std::span(data).subspan(160000), true, wire));
    CHECK(wire.size() < data.size() / 2);
    std::vector<uint8_t> out, back;
    for (size_t off = 0; off < wire.size(); off += std::min(split, wire.size() - off)) {
      size_t n = std::min(split, wire.size() - off);
      REQUIRE(rx.read(std::span(wire).subspan(off, n), out, back));
    }
    CHECK(back.empty());
    CHECK(out == data);
  }
}

TEST_CASE("S2 layer refuses a chunk beyond its limit", "[s2layer]") {
  std::vector<uint8_t> big(300000, 'x');
  std::vector<uint8_t> wire;
  S2Layer tx(isthmus::link::kS2LinkBlockSize, isthmus::link::kS2LinkBlockSize);
  REQUIRE(tx.write(big, true, wire));
  S2Layer rx(isthmus::link::kS2LinkBlockSize, 64 * 1024);  // smaller limit than the chunk
  std::vector<uint8_t> out, back;
  isthmus::Status st = rx.read(wire, out, back);
  CHECK_FALSE(st);
  CHECK(rx.failure_reason() == CloseReason::kFrameTooLarge);
  CHECK(out.empty());

  S2Layer garbage_rx(isthmus::link::kS2LinkBlockSize, isthmus::link::kS2LinkBlockSize);
  std::vector<uint8_t> garbage(100, 0x42);
  st = garbage_rx.read(garbage, out, back);
  CHECK_FALSE(st);
  CHECK(garbage_rx.failure_reason() == CloseReason::kProtocolError);
}

TEST_CASE("the chunk limit follows max_frame_bytes within the format's bounds", "[s2layer]") {
  CHECK(isthmus::link::s2_chunk_limit(4096) == isthmus::link::kS2LinkBlockSize);
  CHECK(isthmus::link::s2_chunk_limit(2u << 20) == (2u << 20) + 5);
  CHECK(isthmus::link::s2_chunk_limit(8u << 20) == isthmus::codec::kS2MaxChunkSize);
}
