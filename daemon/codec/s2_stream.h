// S2 stream (framing) format: a sequence of chunks
//   [type:1][length:3 LE][payload:length]
// starting with a stream identifier chunk. Data chunks carry the masked
// CRC-32C of their uncompressed bytes and either an S2 block (type 00) or the
// raw bytes (type 01). See docs/s2.md for the full rules.
//
// Thread-safety: StreamWriter and StreamReader are not thread-safe; use one
// per connection direction. Neither allocates beyond the stated limits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "codec/s2_block.h"
#include "util/status.h"

namespace isthmus::codec {

inline constexpr size_t kS2MaxChunkSize = size_t{4} << 20;     // uncompressed, per S2 chunk
inline constexpr size_t kSnappyMaxChunkSize = size_t{64} << 10;  // uncompressed, per Snappy chunk
inline constexpr size_t kDefaultBlockSize = size_t{1} << 20;     // the Go writer's default

// Chunk types.
inline constexpr uint8_t kChunkCompressed = 0x00;
inline constexpr uint8_t kChunkUncompressed = 0x01;
inline constexpr uint8_t kChunkPadding = 0xfe;
inline constexpr uint8_t kChunkStreamId = 0xff;

// Writes S2 streams. The stream identifier is emitted once, before the first
// data chunk (an empty stream is zero bytes, as with the Go writer). Each
// write() of a batch emits one chunk per block_size bytes of it (one chunk for
// a batch up to block_size), compressed (00) or uncompressed (01), whichever
// is smaller. Chunks are independent blocks: matches never span batches.
class StreamWriter {
 public:
  struct Options {
    // Uncompressed bytes per chunk, 1 .. 4 MiB (64 KiB with snappy_compatible);
    // larger values are clamped.
    size_t block_size = kDefaultBlockSize;
    // Write a Snappy framed stream ("sNaPpY", no repeat ops, <= 64 KiB chunks).
    bool snappy_compatible = false;
  };

  StreamWriter() : StreamWriter(Options{}) {}
  explicit StreamWriter(Options opts);

  // Appends the encoding of `batch` to `out`. An empty batch appends nothing.
  void write(std::span<const uint8_t> batch, std::vector<uint8_t>& out);

  // Upper bound of the bytes write() appends for a batch of n bytes.
  size_t max_output(size_t n) const;

  // True once the stream identifier has been written.
  bool started() const { return started_; }

  // Forget that the identifier was written (for a new stream on a new
  // connection). Keeps scratch memory.
  void reset() { started_ = false; }

 private:
  Options opts_;
  BlockEncoder enc_;
  std::vector<uint8_t> scratch_;
  bool started_ = false;
};

// Incremental S2/Snappy stream reader. Feed it bytes as they arrive, split
// anywhere; it calls the sink once per data chunk with the chunk's decoded
// bytes (never an empty span). Accepts S2 and Snappy framed streams and any
// concatenation of them; skips padding (fe) and skippable chunks (80-fd);
// refuses reserved chunks (02-7f), a first chunk that is not a stream
// identifier, bad CRCs and oversize chunks. After an error every further call
// returns the same error.
//
// Memory: buffers at most one compressed chunk (<= 36 + max_chunk_size * 7/6 bytes
// plus its 4-byte header) and one decoded chunk (<= max_chunk_size); skippable
// chunks are discarded as they stream past, never buffered. Every declared
// length is checked against the limits before anything is allocated.
class StreamReader {
 public:
  struct Options {
    // Largest decoded chunk accepted; 1 .. 4 MiB. Snappy streams are further
    // limited to 64 KiB per chunk.
    size_t max_chunk_size = kS2MaxChunkSize;
    bool verify_crc = true;
  };

  // Called for each decoded chunk. The span is valid only during the call.
  // A non-OK return stops the reader and is returned from feed().
  using Sink = std::function<Status(std::span<const uint8_t>)>;

  StreamReader() : StreamReader(Options{}) {}
  explicit StreamReader(Options opts);

  // Consumes all of `data`, calling `sink` for every chunk completed by it.
  Status feed(std::span<const uint8_t> data, const Sink& sink);

  // Call at end of input: kTruncated if the input stopped inside a chunk.
  // A zero-byte stream is a valid empty stream.
  Status finish() const;

  // True between chunks (nothing partial is buffered).
  bool at_chunk_boundary() const { return hdr_len_ == 0 && !in_chunk_; }

  // Start over for a new stream; keeps buffers.
  void reset();

 private:
  Status fail(Status st);
  Status process_chunk(uint8_t type, std::span<const uint8_t> payload, const Sink& sink);

  Options opts_;
  Status error_;
  bool seen_id_ = false;
  size_t chunk_limit_ = kS2MaxChunkSize;  // per current stream identifier
  uint8_t hdr_[4] = {};
  size_t hdr_len_ = 0;
  bool in_chunk_ = false;
  uint8_t type_ = 0;
  size_t remaining_ = 0;  // payload bytes still to come
  bool skipping_ = false;
  std::vector<uint8_t> pending_;  // partial payload
  std::unique_ptr<uint8_t[]> decoded_;
  size_t decoded_cap_ = 0;
};

// One-shot helpers.
std::vector<uint8_t> encode_stream(std::span<const uint8_t> data, StreamWriter::Options opts = {});
// Decodes a whole stream; kTooLarge if the output would exceed max_total.
Result<std::vector<uint8_t>> decode_stream(std::span<const uint8_t> data, StreamReader::Options opts = {},
                                           size_t max_total = SIZE_MAX);

}  // namespace isthmus::codec
