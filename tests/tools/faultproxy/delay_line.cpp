#include "delay_line.h"

#include <algorithm>

namespace faultproxy {

void DelayLine::push(uint64_t release_ns, const char* data, size_t n) {
  if (n == 0) return;
  release_ns = std::max(release_ns, last_release_ns_);
  last_release_ns_ = release_ns;
  chunks_.push_back(Chunk{release_ns, std::vector<char>(data, data + n), 0});
  bytes_ += n;
}

std::vector<char> DelayLine::take(size_t n) {
  Chunk& head = chunks_.front();
  size_t left = head.data.size() - head.off;
  n = std::min(n, left);
  std::vector<char> out;
  if (n == left && head.off == 0) {
    out = std::move(head.data);
  } else {
    out.assign(head.data.begin() + static_cast<std::ptrdiff_t>(head.off),
               head.data.begin() + static_cast<std::ptrdiff_t>(head.off + n));
  }
  head.off += n;
  bytes_ -= n;
  if (n == left) chunks_.pop_front();
  return out;
}

void DelayLine::clear() {
  chunks_.clear();
  bytes_ = 0;
}

}  // namespace faultproxy
