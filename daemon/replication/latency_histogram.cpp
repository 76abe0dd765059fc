#include "replication/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace isthmus::replication {

size_t LogLinearHistogram::bucket_of(uint64_t us) {
  if (us > kMaxMicros) us = kMaxMicros;
  if (us < 2 * kSub) return static_cast<size_t>(us);
  int msb = 63 - std::countl_zero(us);        // >= kSubBits + 1
  int shift = msb - kSubBits;                 // us >> shift in [kSub, 2 kSub)
  return static_cast<size_t>(2 * kSub + static_cast<uint64_t>(shift - 1) * kSub + ((us >> shift) - kSub));
}

uint64_t LogLinearHistogram::bucket_low(size_t i) {
  if (i < 2 * kSub) return i;
  uint64_t k = i - 2 * kSub;
  uint64_t shift = k / kSub + 1;
  return (kSub + k % kSub) << shift;
}

uint64_t LogLinearHistogram::bucket_high(size_t i) {
  if (i < 2 * kSub) return i;
  uint64_t k = i - 2 * kSub;
  uint64_t shift = k / kSub + 1;
  return bucket_low(i) + (uint64_t{1} << shift) - 1;
}

void LogLinearHistogram::cover(size_t lo, size_t hi) {
  size_t cur_hi = lo_ + counts_.size();
  if (!counts_.empty() && lo >= lo_ && hi <= cur_hi) return;
  if (!counts_.empty()) {
    lo = std::min(lo, lo_);
    hi = std::max(hi, cur_hi);
  }
  lo = lo / kSub * kSub;
  hi = std::min<size_t>((hi + kSub - 1) / kSub * kSub, kBuckets);
  std::vector<uint64_t> grown(hi - lo, 0);
  if (!counts_.empty()) std::copy(counts_.begin(), counts_.end(), grown.begin() + static_cast<std::ptrdiff_t>(lo_ - lo));
  counts_ = std::move(grown);
  lo_ = lo;
}

void LogLinearHistogram::record_ns(int64_t ns, uint64_t n) {
  if (ns < 0) ns = 0;
  uint64_t us = static_cast<uint64_t>(ns) / 1000;
  if (us > kMaxMicros) overflow_ += n;
  size_t b = bucket_of(us);
  if (counts_.empty() || b < lo_ || b >= lo_ + counts_.size()) cover(b, b + 1);
  counts_[b - lo_] += n;
  count_ += n;
  max_ns_ = std::max(max_ns_, ns);
}

void LogLinearHistogram::merge(const LogLinearHistogram& o) {
  if (o.count_ == 0) return;
  cover(o.lo_, o.lo_ + o.counts_.size());
  for (size_t i = 0; i < o.counts_.size(); ++i) counts_[o.lo_ - lo_ + i] += o.counts_[i];
  count_ += o.count_;
  overflow_ += o.overflow_;
  max_ns_ = std::max(max_ns_, o.max_ns_);
}

void LogLinearHistogram::clear() {
  if (counts_.size() > kKeepBuckets) {
    std::vector<uint64_t>().swap(counts_);
    lo_ = 0;
  } else {
    std::fill(counts_.begin(), counts_.end(), 0);
  }
  count_ = 0;
  overflow_ = 0;
  max_ns_ = -1;
}

int64_t LogLinearHistogram::quantile_ns(double q) const {
  if (count_ == 0) return -1;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t k = 0; k < counts_.size(); ++k) {
    seen += counts_[k];
    if (seen >= rank) {
      size_t i = lo_ + k;
      // Midpoint in ns; the exact buckets (< 128 µs) hold [i, i+1) µs.
      double lo = static_cast<double>(bucket_low(i)) * 1000.0;
      double hi = static_cast<double>(bucket_high(i) + 1) * 1000.0;
      auto mid = static_cast<int64_t>((lo + hi) / 2);
      return std::min(mid, max_ns_);
    }
  }
  return max_ns_;
}

void WindowedHistogram::record_ns(int64_t now, int64_t value_ns) {
  // Slot periods start at multiples of kSlotNs (+1 so that 0 means unused).
  int64_t start = (now / kSlotNs) * kSlotNs + 1;
  Slot& s = slots_[static_cast<size_t>((now / kSlotNs) % kSlots)];
  if (s.start_ns != start) {
    s.h.clear();
    s.start_ns = start;
  }
  s.h.record_ns(value_ns);
}

LogLinearHistogram WindowedHistogram::snapshot(int64_t now) const {
  LogLinearHistogram out;
  int64_t current = (now / kSlotNs) * kSlotNs + 1;
  for (const Slot& s : slots_) {
    if (s.start_ns == 0 || s.start_ns > current || current - s.start_ns >= kWindowNs) continue;
    out.merge(s.h);
  }
  return out;
}

void WindowedHistogram::clear() {
  for (Slot& s : slots_) {
    s.start_ns = 0;
    s.h.clear();
  }
}

const std::vector<double>& CumulativeBuckets::bounds() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,      2.5,   5,    10,    30,   60,  300, 900, 3600};
  return b;
}

void CumulativeBuckets::record_ns(int64_t ns) {
  if (ns < 0) ns = 0;
  double s = static_cast<double>(ns) / 1e9;
  const auto& b = bounds();
  size_t i = static_cast<size_t>(std::lower_bound(b.begin(), b.end(), s) - b.begin());
  counts_[i]++;
  count_++;
  sum_s_ += s;
}

std::vector<uint64_t> CumulativeBuckets::cumulative() const {
  std::vector<uint64_t> out(counts_.size());
  uint64_t acc = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    acc += counts_[i];
    out[i] = acc;
  }
  return out;
}

LagQuantiles LagHistogram::window_quantiles(int64_t now) const {
  LogLinearHistogram h = window_.snapshot(now);
  LagQuantiles q;
  q.samples = h.count();
  if (q.samples == 0) return q;
  q.p50_ns = h.quantile_ns(0.50);
  q.p95_ns = h.quantile_ns(0.95);
  q.p99_ns = h.quantile_ns(0.99);
  q.max_ns = h.max_ns();
  return q;
}

}  // namespace isthmus::replication
