// Unaligned little-endian loads and stores for the codec's hot loops
// (memcpy compiles to a single move on x86-64). Pure, header-only.
#pragma once

#include <cstdint>
#include <cstring>

namespace isthmus::codec {

inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline void store64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

}  // namespace isthmus::codec
