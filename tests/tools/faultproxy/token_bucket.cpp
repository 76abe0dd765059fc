#include "token_bucket.h"

#include <algorithm>
#include <cmath>

namespace faultproxy {

void TokenBucket::set_rate(uint64_t bytes_per_sec, uint64_t now_ns) {
  if (rate_ != 0) refill(now_ns);
  bool was_unlimited = rate_ == 0;
  rate_ = bytes_per_sec;
  last_ns_ = now_ns;
  if (rate_ == 0) return;
  double cap = static_cast<double>(burst());
  tokens_ = was_unlimited ? cap : std::min(tokens_, cap);
}

size_t TokenBucket::burst() const {
  if (rate_ == 0) return SIZE_MAX;
  return static_cast<size_t>(std::max<uint64_t>(rate_ / 50, 1));
}

void TokenBucket::refill(uint64_t now_ns) {
  if (now_ns <= last_ns_) return;
  double earned = static_cast<double>(now_ns - last_ns_) * static_cast<double>(rate_) / 1e9;
  tokens_ = std::min(tokens_ + earned, static_cast<double>(burst()));
  last_ns_ = now_ns;
}

uint64_t TokenBucket::wait_ns(size_t n, uint64_t now_ns) {
  if (rate_ == 0) return 0;
  refill(now_ns);
  double need = static_cast<double>(n) - tokens_;
  if (need <= 0) return 0;
  return static_cast<uint64_t>(std::ceil(need * 1e9 / static_cast<double>(rate_)));
}

void TokenBucket::take(size_t n) {
  if (rate_ == 0) return;
  tokens_ -= static_cast<double>(n);
}

}  // namespace faultproxy
