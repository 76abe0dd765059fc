#include "codec/s2_stream.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "codec/crc32c.h"

namespace isthmus::codec {
namespace {

constexpr uint8_t kS2Magic[6] = {'S', '2', 's', 'T', 'w', 'O'};
constexpr uint8_t kSnappyMagic[6] = {'s', 'N', 'a', 'P', 'p', 'Y'};

void put_le(uint8_t* d, uint32_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
size_t varint_len(size_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
std::string hex8(unsigned v) {
  char b[8];
  std::snprintf(b, sizeof b, "0x%02x", v & 0xffu);
  return b;
}

}  // namespace

// ---------------------------------------------------------------- writer

StreamWriter::StreamWriter(Options opts) : opts_(opts), enc_(EncodeOptions{opts.snappy_compatible}) {
  const size_t cap = opts_.snappy_compatible ? kSnappyMaxChunkSize : kS2MaxChunkSize;
  opts_.block_size = std::clamp<size_t>(opts_.block_size, 1, cap);
}

size_t StreamWriter::max_output(size_t n) const {
  const size_t chunks = (n + opts_.block_size - 1) / opts_.block_size;
  return 10 + n + chunks * 40;
}

void StreamWriter::write(std::span<const uint8_t> batch, std::vector<uint8_t>& out) {
  if (batch.empty()) return;
  if (!started_) {
    const uint8_t* magic = opts_.snappy_compatible ? kSnappyMagic : kS2Magic;
    out.insert(out.end(), {kChunkStreamId, 6, 0, 0});
    out.insert(out.end(), magic, magic + 6);
    started_ = true;
  }
  while (!batch.empty()) {
    const auto piece = batch.first(std::min(batch.size(), opts_.block_size));
    batch = batch.subspan(piece.size());
    const size_t n = piece.size();
    const size_t pos = out.size();
    const size_t vlen = varint_len(n);
    const size_t ops_room = n + 16 + 5 * (n >> 24);
    out.resize(pos + 8 + vlen + ops_room);
    uint8_t* h = out.data() + pos;
    put_le(h + 4, masked_crc32c(piece), 4);
    size_t ops = enc_.encode_ops_or_give_up(piece, std::span<uint8_t>(h + 8 + vlen, ops_room));
    size_t len;
    if (ops != 0 && vlen + ops < n) {
      size_t v = n;
      for (size_t i = 0; i < vlen; ++i, v >>= 7) h[8 + i] = static_cast<uint8_t>((v & 0x7f) | (i + 1 < vlen ? 0x80 : 0));
      h[0] = kChunkCompressed;
      len = 4 + vlen + ops;
    } else {
      h[0] = kChunkUncompressed;
      std::memcpy(h + 8, piece.data(), n);
      len = 4 + n;
    }
    put_le(h + 1, static_cast<uint32_t>(len), 3);
    out.resize(pos + 4 + len);
  }
}

std::vector<uint8_t> encode_stream(std::span<const uint8_t> data, StreamWriter::Options opts) {
  StreamWriter w(opts);
  std::vector<uint8_t> out;
  out.reserve(w.max_output(data.size()));
  w.write(data, out);
  return out;
}

// ---------------------------------------------------------------- reader

StreamReader::StreamReader(Options opts) : opts_(opts) {
  opts_.max_chunk_size = std::clamp<size_t>(opts_.max_chunk_size, 1, kS2MaxChunkSize);
  chunk_limit_ = opts_.max_chunk_size;
}

void StreamReader::reset() {
  error_ = Status::ok();
  seen_id_ = false;
  chunk_limit_ = opts_.max_chunk_size;
  hdr_len_ = 0;
  in_chunk_ = false;
  remaining_ = 0;
  skipping_ = false;
  pending_.clear();
}

Status StreamReader::fail(Status st) {
  error_ = st;
  return st;
}

Status StreamReader::finish() const {
  if (!error_.is_ok()) return error_;
  if (!at_chunk_boundary()) return Status(Code::kTruncated, "s2 stream: input ends inside a chunk");
  return Status::ok();
}

Status StreamReader::feed(std::span<const uint8_t> data, const Sink& sink) {
  if (!error_.is_ok()) return error_;
  const uint8_t* p = data.data();
  size_t n = data.size();
  while (n > 0 || (in_chunk_ && remaining_ == 0)) {
    if (!in_chunk_) {
      const size_t k = std::min(4 - hdr_len_, n);
      std::memcpy(hdr_ + hdr_len_, p, k);
      hdr_len_ += k;
      p += k;
      n -= k;
      if (hdr_len_ < 4) break;
      hdr_len_ = 0;
      type_ = hdr_[0];
      const size_t len = static_cast<size_t>(hdr_[1]) | static_cast<size_t>(hdr_[2]) << 8 |
                         static_cast<size_t>(hdr_[3]) << 16;
      // Validate the header before buffering anything.
      if (!seen_id_ && type_ != kChunkStreamId)
        return fail(Status(Code::kCorrupt, "s2 stream: does not start with a stream identifier (chunk type " +
                                               hex8(type_) + ")"));
      skipping_ = false;
      if (type_ == kChunkStreamId) {
        if (len != 6) return fail(Status(Code::kCorrupt, "s2 stream: stream identifier of length " + std::to_string(len)));
      } else if (type_ == kChunkCompressed) {
        if (len < 4) return fail(Status(Code::kCorrupt, "s2 stream: compressed chunk shorter than its checksum"));
        // Allow Snappy's worst case (32 + n + n/6): some Snappy framers store
        // a compressed chunk even when it came out larger than its input.
        if (len - 4 > 32 + chunk_limit_ + chunk_limit_ / 6)
          return fail(Status(Code::kTooLarge, "s2 stream: compressed chunk of " + std::to_string(len) +
                                                  " bytes exceeds the limit for " + std::to_string(chunk_limit_) +
                                                  "-byte chunks"));
      } else if (type_ == kChunkUncompressed) {
        if (len < 4) return fail(Status(Code::kCorrupt, "s2 stream: uncompressed chunk shorter than its checksum"));
        if (len - 4 > chunk_limit_)
          return fail(Status(Code::kTooLarge, "s2 stream: uncompressed chunk of " + std::to_string(len - 4) +
                                                  " bytes exceeds the limit of " + std::to_string(chunk_limit_)));
      } else if (type_ < 0x80) {
        return fail(Status(Code::kUnsupported, "s2 stream: reserved unskippable chunk type " + hex8(type_)));
      } else {
        skipping_ = true;  // 80-fd skippable, fe padding
      }
      in_chunk_ = true;
      remaining_ = len;
      pending_.clear();
    }
    if (skipping_) {
      const size_t k = std::min(remaining_, n);
      p += k;
      n -= k;
      remaining_ -= k;
      if (remaining_ == 0) in_chunk_ = false;
      continue;
    }
    if (pending_.empty() && n >= remaining_) {  // whole payload in this input: no copy
      const std::span<const uint8_t> payload(p, remaining_);
      p += remaining_;
      n -= remaining_;
      remaining_ = 0;
      in_chunk_ = false;
      Status st = process_chunk(type_, payload, sink);
      if (!st) return fail(st);
      continue;
    }
    const size_t k = std::min(remaining_, n);
    if (pending_.empty()) pending_.reserve(remaining_);
    pending_.insert(pending_.end(), p, p + k);
    p += k;
    n -= k;
    remaining_ -= k;
    if (remaining_ == 0) {
      in_chunk_ = false;
      Status st = process_chunk(type_, pending_, sink);
      pending_.clear();
      if (!st) return fail(st);
    }
  }
  return Status::ok();
}

Status StreamReader::process_chunk(uint8_t type, std::span<const uint8_t> payload, const Sink& sink) {
  if (type == kChunkStreamId) {
    if (std::memcmp(payload.data(), kS2Magic, 6) == 0) {
      chunk_limit_ = opts_.max_chunk_size;
    } else if (std::memcmp(payload.data(), kSnappyMagic, 6) == 0) {
      chunk_limit_ = std::min(opts_.max_chunk_size, kSnappyMaxChunkSize);
    } else {
      return Status(Code::kCorrupt, "s2 stream: unknown stream identifier");
    }
    seen_id_ = true;
    return Status::ok();
  }
  const uint32_t want_crc = get_le32(payload.data());
  std::span<const uint8_t> data;
  if (type == kChunkCompressed) {
    const auto block = payload.subspan(4);
    auto n = decoded_len(block, chunk_limit_);
    if (!n) {
      const Status& st = n.status();
      return Status(st.code(), "s2 stream: compressed chunk: " + st.message());
    }
    if (*n > decoded_cap_) {
      decoded_ = std::make_unique_for_overwrite<uint8_t[]>(*n);
      decoded_cap_ = *n;
    }
    size_t hdr = 1;
    while (block[hdr - 1] & 0x80) ++hdr;
    Status st = decode_ops(block.subspan(hdr), std::span<uint8_t>(decoded_.get(), *n));
    if (!st) return Status(st.code(), "s2 stream: compressed chunk: " + st.message());
    data = std::span<const uint8_t>(decoded_.get(), *n);
  } else {
    data = payload.subspan(4);
  }
  if (opts_.verify_crc && masked_crc32c(data) != want_crc)
    return Status(Code::kCorrupt, "s2 stream: chunk checksum mismatch");
  if (data.empty()) return Status::ok();
  return sink(data);
}

Result<std::vector<uint8_t>> decode_stream(std::span<const uint8_t> data, StreamReader::Options opts,
                                           size_t max_total) {
  StreamReader r(opts);
  std::vector<uint8_t> out;
  Status st = r.feed(data, [&](std::span<const uint8_t> chunk) {
    if (chunk.size() > max_total - out.size())
      return Status(Code::kTooLarge, "s2 stream: decoded data exceeds " + std::to_string(max_total) + " bytes");
    out.insert(out.end(), chunk.begin(), chunk.end());
    return Status::ok();
  });
  if (!st) return st;
  st = r.finish();
  if (!st) return st;
  return out;
}

}  // namespace isthmus::codec
