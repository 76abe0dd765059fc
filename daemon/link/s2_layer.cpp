#include "link/s2_layer.h"

#include <algorithm>

#include "link/frame.h"

namespace isthmus::link {

size_t s2_chunk_limit(uint32_t max_frame_bytes) {
  size_t want = size_t{max_frame_bytes} + kFrameHeaderBytes;
  return std::clamp(want, kS2LinkBlockSize, codec::kS2MaxChunkSize);
}

namespace {
codec::StreamWriter::Options writer_opts(size_t block) {
  codec::StreamWriter::Options o;
  o.block_size = block;
  return o;
}
codec::StreamReader::Options reader_opts(size_t max_chunk) {
  codec::StreamReader::Options o;
  o.max_chunk_size = max_chunk;
  return o;
}
}  // namespace

S2Layer::S2Layer(size_t block_size, size_t max_chunk)
    : writer_(writer_opts(block_size)), reader_(reader_opts(max_chunk)) {}

Status S2Layer::write(std::span<const uint8_t> in, bool flush, std::vector<uint8_t>& to_net) {
  raw_out_ += in.size();
  if (!flush) {
    pending_.insert(pending_.end(), in.begin(), in.end());
    return Status::ok();
  }
  if (pending_.empty()) {
    writer_.write(in, to_net);
  } else {
    pending_.insert(pending_.end(), in.begin(), in.end());
    writer_.write(pending_, to_net);
    pending_.clear();
  }
  return Status::ok();
}

Status S2Layer::read(std::span<const uint8_t> in, std::vector<uint8_t>& to_app, std::vector<uint8_t>&) {
  Status st = reader_.feed(in, [&](std::span<const uint8_t> chunk) {
    raw_in_ += chunk.size();
    to_app.insert(to_app.end(), chunk.begin(), chunk.end());
    return Status::ok();
  });
  if (!st) reason_ = st.code() == Code::kTooLarge ? CloseReason::kFrameTooLarge : CloseReason::kProtocolError;
  return st;
}

}  // namespace isthmus::link
