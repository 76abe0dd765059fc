// S2 block format (github.com/klauspost/compress/s2, a superset of Snappy's
// block format): a varint uncompressed length followed by literal, copy1,
// copy2, copy4 and S2 repeat ops. See docs/s2.md.
//
// Decoding accepts every valid S2 and Snappy block. Every malformed input is
// reported as a Status (kCorrupt, kTruncated, kTooLarge); the decoder never
// reads or writes outside the spans it is given and never allocates more than
// the caller's limit.
//
// Thread-safety: free functions are reentrant. A BlockEncoder holds scratch
// memory; use one per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "util/status.h"

namespace isthmus::codec {

// Largest uncompressed block this implementation encodes or decodes
// (the format allows 2^32-1; positions are kept in 32 bits).
inline constexpr size_t kMaxBlockSize = 0xFFFFFFFFu - 10;

// Upper bound of the encoded size of an n-byte block (n + 10); 0 if
// n > kMaxBlockSize.
constexpr size_t max_encoded_len(size_t n) {
  return n > kMaxBlockSize ? 0 : n + 10;
}

struct EncodeOptions {
  // Emit no repeat ops, so that any Snappy decoder accepts the block.
  bool snappy_compatible = false;
};

// Reusable block encoder. Keeps its hash table between calls, so encoding
// many small blocks does not allocate.
class BlockEncoder {
 public:
  explicit BlockEncoder(EncodeOptions opts = {}) : opts_(opts) {}

  // Encodes `src` into `dst`, which must hold at least
  // max_encoded_len(src.size()) bytes. Returns the number of bytes written.
  // Input that does not compress is stored as one literal (at most 10 bytes
  // of overhead). Precondition: src.size() <= kMaxBlockSize.
  size_t encode(std::span<const uint8_t> src, std::span<uint8_t> dst);

  // Like encode(), but writes only the ops (no length preamble) and gives up
  // when the result would not be meaningfully smaller than the input:
  // returns 0 then, and `dst` holds garbage. `dst` must hold src.size() + 16.
  // Used by the stream writer to choose compressed or uncompressed chunks.
  size_t encode_ops_or_give_up(std::span<const uint8_t> src, std::span<uint8_t> dst);

 private:
  EncodeOptions opts_;
  std::vector<uint32_t> table_;    // positions, blocks > 64 KiB
  std::vector<uint16_t> table16_;  // positions, blocks <= 64 KiB
};

// One-shot helpers.
std::vector<uint8_t> encode_block(std::span<const uint8_t> src, EncodeOptions opts = {});

// Reads the uncompressed length from a block's preamble. Fails with
// kTruncated / kCorrupt on a bad varint (more than 5 bytes, or > 2^32-1) and
// with kTooLarge if it exceeds `limit`.
Result<size_t> decoded_len(std::span<const uint8_t> block, size_t limit = kMaxBlockSize);

// Decodes `block` into `dst`, whose size must equal decoded_len(block).
Status decode_block(std::span<const uint8_t> block, std::span<uint8_t> dst);

// Decodes into a new vector; rejects (kTooLarge, before allocating) a block
// whose declared length exceeds `limit`.
Result<std::vector<uint8_t>> decode_block(std::span<const uint8_t> block, size_t limit);

// Decodes only the ops (what follows the preamble) into exactly dst.size()
// bytes. Exposed for the stream reader.
Status decode_ops(std::span<const uint8_t> ops, std::span<uint8_t> dst);

}  // namespace isthmus::codec
