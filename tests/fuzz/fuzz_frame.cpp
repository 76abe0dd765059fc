// libFuzzer driver: link frames. The first byte chooses how the rest is split
// into feeds (1 byte, small, large, or seeded pseudo-random sizes) and the
// frame limit; FrameReader splits the stream into frames and every frame body
// is decoded by its type. Decoded frames are re-encoded and must decode to the
// same bytes (encode(decode(x)) is canonical). Links codec sources only.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "link/frame.h"

using namespace isthmus;
using namespace isthmus::link;

namespace {

template <typename T>
void check(std::span<const uint8_t> body) {
  T f;
  if (!decode(body, f).is_ok()) return;
  // A decoded frame re-encodes to a frame that decodes again, and re-encoding
  // that gives the same bytes.
  std::vector<uint8_t> once;
  encode(f, once);
  T g;
  if (!decode(std::span<const uint8_t>(once).subspan(kFrameHeaderBytes), g).is_ok()) __builtin_trap();
  std::vector<uint8_t> twice;
  encode(g, twice);
  if (once != twice) __builtin_trap();
}

Status on_frame(FrameType t, std::span<const uint8_t> body) {
  switch (t) {
    case FrameType::kHello: check<Hello>(body); break;
    case FrameType::kStreamReq: check<StreamReq>(body); break;
    case FrameType::kStreamInfo: check<StreamInfo>(body); break;
    case FrameType::kSubscribe: check<Subscribe>(body); break;
    case FrameType::kData: check<Data>(body); break;
    case FrameType::kAck: check<Ack>(body); break;
    case FrameType::kState: check<State>(body); break;
    case FrameType::kStop: check<Stop>(body); break;
    case FrameType::kHeartbeat: check<Heartbeat>(body); break;
    case FrameType::kGoAway: check<GoAway>(body); break;
    case FrameType::kDeleted: check<Deleted>(body); break;
    default: break;  // unknown types are the link's business
  }
  return Status::ok();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const std::span<const uint8_t> in(data + 1, size - 1);
  const uint32_t limits[] = {1u << 16, 4096, 64, 8u << 20};
  const uint32_t limit = limits[(mode >> 4) & 3];

  FrameReader reader(limit);
  uint32_t rng = 0x9e3779b9u ^ mode;
  size_t pos = 0;
  while (pos < in.size()) {
    size_t n;
    switch (mode & 3) {
      case 0: n = 1; break;
      case 1: n = 1 + (mode >> 2 & 3) * 7; break;
      case 2: n = in.size(); break;
      default:
        rng = rng * 1103515245u + 12345u;
        n = (rng >> 16) % 97;  // includes empty feeds
        break;
    }
    n = n > in.size() - pos ? in.size() - pos : n;
    Status st = reader.feed(in.subspan(pos, n), on_frame);
    if (!st) return 0;  // a refused stream closes the link
    if (reader.buffered() > size_t{limit} + 4) __builtin_trap();
    pos += n;
  }
  return 0;
}
