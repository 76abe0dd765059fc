// S2Layer: the link's S2 stream (daemon/codec/s2_stream.h) as a Layer
// between TLS and frames. Each flushed batch (Connection::flush) becomes one
// S2 chunk, or one per kS2LinkBlockSize bytes of a larger batch; the stream
// identifier precedes the first chunk. Bytes written without flush wait for
// the next flush. The reader refuses a chunk whose declared size exceeds
// `max_chunk` before allocating anything (kFrameTooLarge); any other
// malformed stream is kProtocolError.
//
// Pushed on both ends right after the HELLO exchange when both ends have
// compression on (docs/wire-format.md). Pure bytes in/out; loop thread only.
#pragma once

#include "codec/s2_stream.h"
#include "link/layer.h"

namespace isthmus::link {

// Uncompressed bytes per chunk written: small enough that a heartbeat never
// waits behind more than one such chunk being compressed.
inline constexpr size_t kS2LinkBlockSize = size_t{1} << 20;

// Decoded-size limit for a link whose frames are at most max_frame_bytes:
// max_frame_bytes plus the frame header, at least kS2LinkBlockSize (what a
// peer writes), at most the format's 4 MiB.
size_t s2_chunk_limit(uint32_t max_frame_bytes);

class S2Layer : public Layer {
 public:
  S2Layer(size_t block_size, size_t max_chunk);
  Status write(std::span<const uint8_t> in, bool flush, std::vector<uint8_t>& to_net) override;
  Status read(std::span<const uint8_t> in, std::vector<uint8_t>& to_app,
              std::vector<uint8_t>& to_net) override;
  CloseReason failure_reason() const override { return reason_; }

  uint64_t raw_in() const { return raw_in_; }    // decoded bytes received
  uint64_t raw_out() const { return raw_out_; }  // bytes before compression sent

 private:
  codec::StreamWriter writer_;
  codec::StreamReader reader_;
  std::vector<uint8_t> pending_;  // written, awaiting flush
  CloseReason reason_ = CloseReason::kProtocolError;
  uint64_t raw_in_ = 0, raw_out_ = 0;
};

}  // namespace isthmus::link
