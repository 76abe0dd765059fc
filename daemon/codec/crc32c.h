// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, the iSCSI CRC) and the
// "masked" form used by Snappy/S2 framed streams.
//
// crc32c() uses the SSE4.2 crc32 instruction when the CPU has it (detected once
// at run time) and a portable slicing-by-8 table otherwise; both give the same
// result. All functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace isthmus::codec {

// CRC-32C of `data`, continuing from `crc` (the value returned by a previous
// call; 0 to start). crc32c("123456789") == 0xE3069283.
uint32_t crc32c(std::span<const uint8_t> data, uint32_t crc = 0);

// The same, always with the portable table implementation.
uint32_t crc32c_portable(std::span<const uint8_t> data, uint32_t crc = 0);

// True when crc32c() uses the hardware instruction on this CPU.
bool crc32c_hardware_available();

// Snappy framing mask: rotate right by 15 bits, add 0xa282ead8.
constexpr uint32_t crc32c_mask(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

// Masked CRC-32C of `data`, as stored (little-endian) in stream chunks.
inline uint32_t masked_crc32c(std::span<const uint8_t> data) {
  return crc32c_mask(crc32c(data));
}

}  // namespace isthmus::codec
