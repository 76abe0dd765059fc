// Latency histograms for lag: pure code (no clocks of its own, no I/O), so
// it is unit-tested with made-up times.
//
// LogLinearHistogram: HdrHistogram-style buckets over microseconds. Values
// below 128 µs have a bucket each (exact); above, every power-of-two octave
// is split into 64 equal sub-buckets, so a bucket is at most 1/64 (1.6%) of
// its lower bound wide and a quantile read at the bucket's midpoint is within
// 0.8% of the true value. Range 0 .. 2^35 µs (about 9.5 hours); larger values
// land in the last bucket and are counted as overflow. Histograms of the same
// layout merge by adding counts. Storage covers only the run of buckets from
// the lowest to the highest recorded, in whole octaves (64 buckets, 512
// bytes): nothing while empty, a few KiB for lags within two decades (all
// 1,920 buckets, 15 KiB, only when values span 1 µs to hours).
//
// WindowedHistogram: a sliding window of about one minute made of 12
// sub-windows of 5 s, each a LogLinearHistogram (an idle stream's costs
// nothing; a sub-window whose values spanned more than 8 octaves gives its
// storage back when it is reused).
// Recording rotates out sub-windows older than the window; quantiles merge
// the live ones. Times are the caller's monotonic nanoseconds.
//
// CumulativeBuckets: exact counts since start for a fixed list of upper
// bounds in seconds, plus sum and count: a Prometheus histogram
// (`_bucket{le=...}`, `_sum`, `_count`).
//
// LagHistogram: the three above for one (stream, follower) time lag.
//
// Thread-safety: none; each is owned and used by one thread (the loop).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace isthmus::replication {

class LogLinearHistogram {
 public:
  static constexpr int kSubBits = 6;                        // 64 sub-buckets per octave
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  static constexpr int kMaxBits = 35;                       // values < 2^35 µs
  static constexpr uint64_t kMaxMicros = (uint64_t{1} << kMaxBits) - 1;
  static constexpr size_t kBuckets = 2 * kSub + (kMaxBits - kSubBits - 1) * kSub;

  // Records a value in nanoseconds (negative: as 0).
  void record_ns(int64_t ns, uint64_t n = 1);
  void merge(const LogLinearHistogram& other);
  // Zeroes the counts; keeps the storage unless it spans more than
  // kKeepBuckets (then frees it).
  void clear();
  static constexpr size_t kKeepBuckets = 8 * kSub;
  size_t buckets_held() const { return counts_.size(); }  // storage, for tests

  uint64_t count() const { return count_; }
  uint64_t overflow() const { return overflow_; }
  int64_t max_ns() const { return max_ns_; }
  // The value (ns) at quantile q in [0, 1]: the midpoint of the bucket that
  // holds the ceil(q * count)-th smallest value, capped by the largest value
  // recorded. -1 when empty.
  int64_t quantile_ns(double q) const;

  // Bucket layout, exposed for tests.
  static size_t bucket_of(uint64_t micros);
  static uint64_t bucket_low(size_t index);   // smallest µs in the bucket
  static uint64_t bucket_high(size_t index);  // largest µs in the bucket

 private:
  // Makes counts_ cover bucket indices [lo, hi), octave-aligned.
  void cover(size_t lo, size_t hi);

  std::vector<uint64_t> counts_;  // counts_[i] is bucket lo_ + i
  size_t lo_ = 0;
  uint64_t count_ = 0;
  uint64_t overflow_ = 0;
  int64_t max_ns_ = -1;
};

class WindowedHistogram {
 public:
  static constexpr int kSlots = 12;
  static constexpr int64_t kSlotNs = 5'000'000'000;
  static constexpr int64_t kWindowNs = kSlots * kSlotNs;

  void record_ns(int64_t now_mono_ns, int64_t value_ns);
  // The merge of the sub-windows that started within the last window.
  LogLinearHistogram snapshot(int64_t now_mono_ns) const;
  void clear();

 private:
  struct Slot {
    int64_t start_ns = 0;  // slot period start (multiple of kSlotNs); 0: unused
    LogLinearHistogram h;
  };
  std::array<Slot, kSlots> slots_;
};

class CumulativeBuckets {
 public:
  // Upper bounds in seconds; +Inf is implied after the last.
  static const std::vector<double>& bounds();

  void record_ns(int64_t ns);
  // Cumulative counts, one per bound, then +Inf (== count()).
  std::vector<uint64_t> cumulative() const;
  uint64_t count() const { return count_; }
  double sum_seconds() const { return sum_s_; }

 private:
  std::vector<uint64_t> counts_ = std::vector<uint64_t>(bounds().size() + 1, 0);
  uint64_t count_ = 0;
  double sum_s_ = 0;
};

struct LagQuantiles {
  int64_t p50_ns = -1, p95_ns = -1, p99_ns = -1, max_ns = -1;  // -1: no samples
  uint64_t samples = 0;
};

class LagHistogram {
 public:
  void record_ns(int64_t now_mono_ns, int64_t value_ns) {
    window_.record_ns(now_mono_ns, value_ns);
    total_.record_ns(value_ns);
  }
  LagQuantiles window_quantiles(int64_t now_mono_ns) const;
  const CumulativeBuckets& total() const { return total_; }

 private:
  WindowedHistogram window_;
  CumulativeBuckets total_;
};

}  // namespace isthmus::replication
