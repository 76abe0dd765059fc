// A FIFO of byte chunks, each stamped with the time it may leave the proxy.
// Release times are forced to be monotonic (a chunk never leaves before the
// one read ahead of it), so jitter never reorders bytes. Pure: no libuv.
// Thread-safety: none (one direction of one connection owns it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace faultproxy {

class DelayLine {
 public:
  // Appends a copy of [data, data+n). The stored release time is
  // max(release_ns, release time of the previous chunk).
  void push(uint64_t release_ns, const char* data, size_t n);

  bool empty() const { return chunks_.empty(); }
  // Bytes waiting (not yet taken).
  size_t bytes() const { return bytes_; }
  // Release time of the head chunk; only when !empty().
  uint64_t head_release_ns() const { return chunks_.front().release_ns; }
  // Bytes left in the head chunk; only when !empty().
  size_t head_bytes() const { return chunks_.front().data.size() - chunks_.front().off; }

  // Removes and returns the first n bytes of the head chunk
  // (1 <= n <= head_bytes()). Moves the buffer out when n covers it whole.
  std::vector<char> take(size_t n);

  void clear();

 private:
  struct Chunk {
    uint64_t release_ns;
    std::vector<char> data;
    size_t off;
  };
  std::deque<Chunk> chunks_;
  size_t bytes_ = 0;
  uint64_t last_release_ns_ = 0;
};

}  // namespace faultproxy
