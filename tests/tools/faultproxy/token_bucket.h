// Token bucket for a bandwidth cap in bytes per second. Holds at most
// 20 ms worth of tokens (at least 1 byte), so bursts stay short. Rate 0 means
// unlimited. Pure: the caller passes the clock. Thread-safety: none.
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultproxy {

class TokenBucket {
 public:
  // Changes the rate; keeps the tokens already earned, up to the new burst.
  void set_rate(uint64_t bytes_per_sec, uint64_t now_ns);
  uint64_t rate() const { return rate_; }
  bool limited() const { return rate_ != 0; }
  // Largest write the bucket can ever grant at once.
  size_t burst() const;

  // Nanoseconds to wait before n bytes (n <= burst()) are available; 0 when
  // they are available now.
  uint64_t wait_ns(size_t n, uint64_t now_ns);
  // Spends n tokens (after wait_ns(n) returned 0).
  void take(size_t n);

 private:
  void refill(uint64_t now_ns);

  uint64_t rate_ = 0;
  double tokens_ = 0;
  uint64_t last_ns_ = 0;
};

}  // namespace faultproxy
