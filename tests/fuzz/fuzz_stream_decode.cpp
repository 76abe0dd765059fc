// libFuzzer driver: S2/Snappy stream decoding fed in pseudo-random splits.
// The first 4 bytes seed the split sizes and options; the result (status code
// and output) must not depend on how the input was split.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec/s2_stream.h"

using namespace isthmus;
using namespace isthmus::codec;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t seed = static_cast<uint32_t>(data[0]) | static_cast<uint32_t>(data[1]) << 8 |
                  static_cast<uint32_t>(data[2]) << 16 | static_cast<uint32_t>(data[3]) << 24;
  const std::span<const uint8_t> stream(data + 4, size - 4);
  StreamReader::Options opts;
  opts.max_chunk_size = (seed & 1) ? 65536 : (size_t{1} << 20);
  opts.verify_crc = (seed & 2) == 0;
  constexpr size_t kMaxTotal = size_t{8} << 20;

  auto whole = decode_stream(stream, opts, kMaxTotal);

  StreamReader reader(opts);
  std::vector<uint8_t> out;
  Status st;
  size_t pos = 0;
  uint32_t x = seed | 1;
  while (st.is_ok() && pos < stream.size()) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    size_t k = (x % 3 == 0) ? 1 : (x >> 8) % 97;
    if (k > stream.size() - pos) k = stream.size() - pos;
    st = reader.feed(stream.subspan(pos, k), [&](std::span<const uint8_t> chunk) {
      if (chunk.empty()) __builtin_trap();
      if (chunk.size() > kMaxTotal - out.size()) return Status(Code::kTooLarge, "fuzz: total limit");
      out.insert(out.end(), chunk.begin(), chunk.end());
      return Status::ok();
    });
    pos += k;
  }
  if (st.is_ok()) st = reader.finish();

  if (whole.is_ok() != st.is_ok()) __builtin_trap();
  if (st.is_ok()) {
    if (*whole != out) __builtin_trap();
  } else if (whole.status().code() != st.code()) {
    __builtin_trap();
  }
  return 0;
}
