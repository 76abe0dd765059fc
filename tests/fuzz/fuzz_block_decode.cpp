// libFuzzer driver: S2 block decoding. Any input must decode or fail cleanly;
// whatever decodes must survive re-encoding (both modes) unchanged.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec/s2_block.h"

using namespace isthmus::codec;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  auto r = decode_block(in, size_t{1} << 20);
  if (!r.is_ok()) {
    if (r.status().message().empty()) __builtin_trap();
    return 0;
  }
  for (bool snappy : {false, true}) {
    auto enc = encode_block(*r, EncodeOptions{snappy});
    if (enc.size() > max_encoded_len(r->size())) __builtin_trap();
    auto back = decode_block(enc, size_t{1} << 20);
    if (!back.is_ok() || *back != *r) __builtin_trap();
  }
  return 0;
}
