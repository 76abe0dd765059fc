#include <catch2/catch.hpp>

#include "bytes.h"

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "codec/crc32c.h"
#include "codec/s2_stream.h"

using namespace isthmus;
using namespace isthmus::codec;

namespace {

using codec_test::B;
using codec_test::Bytes;
using codec_test::cat;
using codec_test::S;
Bytes random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}
Bytes texty(size_t n) {
  Bytes b;
  uint32_t i = 0;
  while (b.size() < n) {
    std::string s = "{\"code\":\"USA\",\"name\":\"United States\",\"seq\":" + std::to_string(i++) + "}\n";
    b.insert(b.end(), s.begin(), s.end());
  }
  b.resize(n);
  return b;
}

const Bytes kS2Id = B({0xff, 0x06, 0x00, 0x00, 'S', '2', 's', 'T', 'w', 'O'});
const Bytes kSnappyId = B({0xff, 0x06, 0x00, 0x00, 's', 'N', 'a', 'P', 'p', 'Y'});

Bytes chunk(uint8_t type, const Bytes& payload) {
  Bytes c = {type, static_cast<uint8_t>(payload.size()), static_cast<uint8_t>(payload.size() >> 8),
             static_cast<uint8_t>(payload.size() >> 16)};
  return cat(c, payload);
}
Bytes crc_le(const Bytes& data) {
  uint32_t c = masked_crc32c(data);
  return B({static_cast<int>(c & 0xff), static_cast<int>((c >> 8) & 0xff), static_cast<int>((c >> 16) & 0xff),
            static_cast<int>(c >> 24)});
}
Bytes uncompressed_chunk(const Bytes& data) { return chunk(0x01, cat(crc_le(data), data)); }
Bytes compressed_chunk(const Bytes& data) { return chunk(0x00, cat(crc_le(data), encode_block(data))); }

Result<Bytes> feed_in_pieces(const Bytes& stream, size_t piece, StreamReader::Options o = {}) {
  StreamReader r(o);
  Bytes out;
  auto sink = [&](std::span<const uint8_t> c) {
    REQUIRE_FALSE(c.empty());
    out.insert(out.end(), c.begin(), c.end());
    return Status::ok();
  };
  for (size_t i = 0; i < stream.size(); i += piece) {
    Status st = r.feed(std::span<const uint8_t>(stream).subspan(i, std::min(piece, stream.size() - i)), sink);
    if (!st) return st;
  }
  Status st = r.finish();
  if (!st) return st;
  return out;
}

Code stream_err(const Bytes& s, StreamReader::Options o = {}) {
  auto r = decode_stream(s, o);
  REQUIRE_FALSE(r.is_ok());
  CHECK_FALSE(r.status().message().empty());
  return r.status().code();
}

}  // namespace

TEST_CASE("s2 stream: the reference encoding of \"hello\"", "[codec][s2][stream]") {
  const Bytes want = B({0xff, 0x06, 0x00, 0x00, 0x53, 0x32, 0x73, 0x54, 0x77, 0x4f, 0x01, 0x09, 0x00, 0x00, 0xbb,
                        0x1f, 0x1c, 0x19, 0x68, 0x65, 0x6c, 0x6c, 0x6f});
  CHECK(encode_stream(S("hello")) == want);
  auto r = decode_stream(want);
  REQUIRE(r.is_ok());
  CHECK(*r == S("hello"));
}

TEST_CASE("s2 stream: empty input is an empty stream", "[codec][s2][stream]") {
  CHECK(encode_stream({}).empty());
  auto r = decode_stream({});
  REQUIRE(r.is_ok());
  CHECK(r->empty());
  // Identifier only is an empty stream too.
  auto r2 = decode_stream(kS2Id);
  REQUIRE(r2.is_ok());
  CHECK(r2->empty());
}

TEST_CASE("s2 stream: writer emits the identifier once and one chunk per batch", "[codec][s2][stream]") {
  StreamWriter w;
  Bytes out;
  w.write({}, out);
  CHECK(out.empty());
  CHECK_FALSE(w.started());
  const Bytes a = texty(5000), b = random_bytes(3000, 1), c = S("tiny");
  w.write(a, out);
  const size_t after_a = out.size();
  CHECK(std::equal(kS2Id.begin(), kS2Id.end(), out.begin()));
  CHECK(out[10] == kChunkCompressed);
  w.write(b, out);
  CHECK(out[after_a] == kChunkUncompressed);  // random: stored
  w.write(c, out);
  // Parse the chunk sequence: id, 00, 01, 01.
  std::vector<uint8_t> types;
  for (size_t i = 0; i < out.size();) {
    types.push_back(out[i]);
    i += 4 + (out[i + 1] | out[i + 2] << 8 | out[i + 3] << 16);
  }
  CHECK(types == std::vector<uint8_t>{0xff, 0x00, 0x01, 0x01});
  auto r = decode_stream(out);
  REQUIRE(r.is_ok());
  CHECK(*r == cat(cat(a, b), c));
  CHECK(out.size() <= w.max_output(a.size()) + w.max_output(b.size()) + w.max_output(c.size()));

  // Batches larger than the block size are split.
  StreamWriter w2(StreamWriter::Options{.block_size = 4096});
  Bytes o2;
  const Bytes big = texty(10000);
  w2.write(big, o2);
  size_t chunks = 0;
  for (size_t i = 0; i < o2.size(); i += 4 + (o2[i + 1] | o2[i + 2] << 8 | o2[i + 3] << 16)) ++chunks;
  CHECK(chunks == 4);
  CHECK(decode_stream(o2).value() == big);
}

TEST_CASE("s2 stream: reader takes input in any split", "[codec][s2][stream]") {
  Bytes data = cat(texty(300000), random_bytes(70000, 3));
  StreamWriter w(StreamWriter::Options{.block_size = 65536});
  Bytes s;
  w.write(data, s);
  for (size_t piece : {1u, 2u, 3u, 4u, 7u, 1000u, 65539u, 1000000u}) {
    INFO("piece=" << piece);
    auto r = feed_in_pieces(s, piece);
    REQUIRE(r.is_ok());
    CHECK(*r == data);
  }
  // A random split sequence.
  std::mt19937 rng(42);
  StreamReader rd;
  Bytes out;
  size_t chunks = 0;
  for (size_t i = 0; i < s.size();) {
    size_t k = std::min<size_t>(rng() % 20000, s.size() - i);
    REQUIRE(rd.feed(std::span<const uint8_t>(s).subspan(i, k), [&](std::span<const uint8_t> c) {
                  ++chunks;
                  out.insert(out.end(), c.begin(), c.end());
                  return Status::ok();
                }).is_ok());
    i += k;
  }
  CHECK(rd.finish().is_ok());
  CHECK(rd.at_chunk_boundary());
  CHECK(out == data);
  CHECK(chunks == (data.size() + 65535) / 65536);
}

TEST_CASE("s2 stream: snappy framing, padding, skippable chunks, concatenation", "[codec][s2][stream]") {
  const Bytes x = texty(1000), y = S("hello, world"), z = random_bytes(100, 9);
  Bytes s = kSnappyId;
  s = cat(s, compressed_chunk(x));
  s = cat(s, chunk(0xfe, Bytes(17, 0)));           // padding
  s = cat(s, chunk(0x80, S("skip me")));            // skippable
  s = cat(s, chunk(0x99, Bytes(40, 1)));            // an S2 index chunk
  s = cat(s, chunk(0xfd, {}));                      // empty skippable
  s = cat(s, uncompressed_chunk(y));
  s = cat(s, kS2Id);                                // concatenated S2 stream
  s = cat(s, compressed_chunk(z));
  s = cat(s, kSnappyId);                            // and Snappy again
  s = cat(s, uncompressed_chunk(y));
  s = cat(s, encode_stream(x));                     // a whole S2 stream appended
  const Bytes want = cat(cat(cat(cat(x, y), z), y), x);
  for (size_t piece : {1u, 5u, 100000u}) {
    auto r = feed_in_pieces(s, piece);
    REQUIRE(r.is_ok());
    CHECK(*r == want);
  }
  // Snappy-compatible writer output.
  Bytes big = texty(200000);
  Bytes sn = encode_stream(big, StreamWriter::Options{.block_size = 1 << 20, .snappy_compatible = true});
  CHECK(std::equal(kSnappyId.begin(), kSnappyId.end(), sn.begin()));
  CHECK(decode_stream(sn).value() == big);
}

TEST_CASE("s2 stream: malformed streams are refused", "[codec][s2][stream]") {
  const Bytes y = S("hello, world");
  // No identifier first.
  CHECK(stream_err(uncompressed_chunk(y)) == Code::kCorrupt);
  // Wrong identifier text and length.
  CHECK(stream_err(chunk(0xff, S("S2sTwo"))) == Code::kCorrupt);
  CHECK(stream_err(chunk(0xff, S("S2sTwO!"))) == Code::kCorrupt);
  // Reserved unskippable chunk types.
  for (int t : {0x02, 0x03, 0x40, 0x7f}) CHECK(stream_err(cat(kS2Id, chunk(static_cast<uint8_t>(t), y))) == Code::kUnsupported);
  // Bad CRC, both chunk kinds.
  Bytes bad = uncompressed_chunk(y);
  bad[5] ^= 1;
  CHECK(stream_err(cat(kS2Id, bad)) == Code::kCorrupt);
  Bytes badc = compressed_chunk(texty(500));
  badc[4] ^= 0x80;
  CHECK(stream_err(cat(kS2Id, badc)) == Code::kCorrupt);
  // CRC checking can be switched off.
  CHECK(decode_stream(cat(kS2Id, bad), StreamReader::Options{.verify_crc = false}).value() == y);
  // Data chunks shorter than the checksum.
  CHECK(stream_err(cat(kS2Id, chunk(0x00, B({1, 2, 3})))) == Code::kCorrupt);
  CHECK(stream_err(cat(kS2Id, chunk(0x01, {}))) == Code::kCorrupt);
  // Compressed chunk with an empty or corrupt block.
  CHECK(stream_err(cat(kS2Id, chunk(0x00, crc_le({})))) == Code::kTruncated);
  CHECK(stream_err(cat(kS2Id, chunk(0x00, cat(crc_le(y), B({12, 0x01, 0x00}))))) == Code::kCorrupt);
  // Truncated inside a chunk (header, payload).
  Bytes good = encode_stream(y);
  for (size_t cut = 1; cut < good.size(); ++cut) {
    if (cut == kS2Id.size()) continue;  // a chunk boundary: an empty stream
    INFO("cut=" << cut);
    CHECK(stream_err(Bytes(good.begin(), good.begin() + static_cast<long>(cut))) == Code::kTruncated);
  }
  // An error sticks.
  StreamReader r;
  auto sink = [](std::span<const uint8_t>) { return Status::ok(); };
  CHECK_FALSE(r.feed(chunk(0x01, y), sink).is_ok());
  CHECK_FALSE(r.feed(kS2Id, sink).is_ok());
  CHECK_FALSE(r.finish().is_ok());
  r.reset();
  CHECK(r.feed(cat(kS2Id, uncompressed_chunk(y)), sink).is_ok());
  // A sink error stops the reader.
  StreamReader r2;
  Status st = r2.feed(cat(kS2Id, uncompressed_chunk(y)),
                      [](std::span<const uint8_t>) { return Status(Code::kIo, "downstream full"); });
  CHECK(st.code() == Code::kIo);
}

TEST_CASE("s2 stream: limits are enforced from the headers", "[codec][s2][stream]") {
  // Snappy streams: 64 KiB per chunk.
  const Bytes big = texty(65537);
  CHECK(stream_err(cat(kSnappyId, uncompressed_chunk(big))) == Code::kTooLarge);
  CHECK(stream_err(cat(kSnappyId, compressed_chunk(big))) == Code::kTooLarge);
  CHECK(decode_stream(cat(kS2Id, compressed_chunk(big))).value() == big);
  // The same stream relabelled sNaPpY is refused when a chunk exceeds 64 KiB.
  Bytes s2 = encode_stream(texty(100000));
  Bytes relabelled = cat(kSnappyId, Bytes(s2.begin() + 10, s2.end()));
  CHECK(stream_err(relabelled) == Code::kTooLarge);
  // A configured limit, checked on the header alone (only 4+10 bytes fed).
  StreamReader r(StreamReader::Options{.max_chunk_size = 1000});
  auto sink = [](std::span<const uint8_t>) { return Status::ok(); };
  REQUIRE(r.feed(kS2Id, sink).is_ok());
  CHECK(r.feed(B({0x01, 0xee, 0x03, 0x00}), sink).code() == Code::kTooLarge);  // 1006-4 > 1000
  StreamReader r3(StreamReader::Options{.max_chunk_size = 1000});
  REQUIRE(r3.feed(kS2Id, sink).is_ok());
  CHECK(r3.feed(B({0x00, 0xff, 0xff, 0xff}), sink).code() == Code::kTooLarge);
  // Declared decoded length over the limit, in a small compressed chunk.
  Bytes blk = B({0xe9, 0x07, 0x00, 'a', 0x1d, 0x00, 0xff, 0xff, 0x00});  // claims 1001 bytes
  CHECK(stream_err(cat(kS2Id, chunk(0x00, cat(crc_le({}), blk))), StreamReader::Options{.max_chunk_size = 1000}) ==
        Code::kTooLarge);
  // S2: 4 MiB per chunk.
  Bytes huge(kS2MaxChunkSize + 1, 'q');
  Bytes hb = encode_block(huge);
  CHECK(stream_err(cat(kS2Id, chunk(0x00, cat(crc_le(huge), hb)))) == Code::kTooLarge);
  // decode_stream's total limit.
  CHECK(decode_stream(encode_stream(texty(5000)), {}, 4999).status().code() == Code::kTooLarge);
}
