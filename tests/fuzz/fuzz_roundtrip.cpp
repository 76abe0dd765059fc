// libFuzzer driver: encode -> decode round trip, block and stream, S2 and
// Snappy-compatible modes. The first 2 bytes choose options and batch splits.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec/s2_block.h"
#include "codec/s2_stream.h"

using namespace isthmus;
using namespace isthmus::codec;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const bool snappy = data[0] & 1;
  const size_t block_sizes[] = {1, 7, 64, 4096, 65536, size_t{1} << 20, 100, 33};
  const size_t block_size = block_sizes[(data[0] >> 1) & 7];
  const size_t batch = 1 + data[1] * 13u;
  const std::span<const uint8_t> in(data + 2, size - 2);

  auto blk = encode_block(in, EncodeOptions{snappy});
  if (blk.size() > max_encoded_len(in.size())) __builtin_trap();
  auto back = decode_block(blk, in.size());
  if (!back.is_ok()) __builtin_trap();
  if (!std::equal(back->begin(), back->end(), in.begin(), in.end())) __builtin_trap();

  StreamWriter w(StreamWriter::Options{.block_size = block_size, .snappy_compatible = snappy});
  std::vector<uint8_t> s;
  size_t bound = 0;
  for (size_t i = 0; i < in.size(); i += batch) {
    auto piece = in.subspan(i, std::min(batch, in.size() - i));
    bound += w.max_output(piece.size());
    w.write(piece, s);
  }
  if (s.size() > bound) __builtin_trap();
  auto got = decode_stream(s);
  if (!got.is_ok()) __builtin_trap();
  if (!std::equal(got->begin(), got->end(), in.begin(), in.end())) __builtin_trap();
  return 0;
}
