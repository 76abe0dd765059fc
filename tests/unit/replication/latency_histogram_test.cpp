// Unit tests: the lag histogram (bucket layout, relative error, quantiles,
// merge, sliding window, Prometheus buckets) and sync progress.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "replication/latency_histogram.h"
#include "replication/sync_progress.h"

using namespace isthmus::replication;

namespace {
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSec = 1'000'000'000;

// The exact q-quantile of a sample (the ceil(q n)-th smallest).
int64_t exact_quantile(std::vector<int64_t> v, double q) {
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  if (rank == 0) rank = 1;
  return v[rank - 1];
}
}  // namespace

TEST_CASE("log-linear buckets tile the range without gaps and with bounded width", "[histogram]") {
  using H = LogLinearHistogram;
  CHECK(H::bucket_of(0) == 0);
  CHECK(H::bucket_of(127) == 127);
  CHECK(H::bucket_of(128) == 128);
  CHECK(H::bucket_of(H::kMaxMicros) == H::kBuckets - 1);
  CHECK(H::bucket_of(H::kMaxMicros + 12345) == H::kBuckets - 1);
  CHECK(H::bucket_high(H::kBuckets - 1) == H::kMaxMicros);
  for (size_t i = 0; i + 1 < H::kBuckets; ++i) {
    INFO("bucket " << i);
    REQUIRE(H::bucket_high(i) + 1 == H::bucket_low(i + 1));
    REQUIRE(H::bucket_of(H::bucket_low(i)) == i);
    REQUIRE(H::bucket_of(H::bucket_high(i)) == i);
    if (i >= 128) {
      double width = static_cast<double>(H::bucket_high(i) - H::bucket_low(i) + 1);
      REQUIRE(width / static_cast<double>(H::bucket_low(i)) <= 1.0 / 64 + 1e-12);
    }
  }
  // About 9.5 hours at the top.
  CHECK(static_cast<double>(H::kMaxMicros) / 1e6 / 3600 > 9.0);
}

TEST_CASE("quantiles are within 1% of the exact ones from 1 µs to hours", "[histogram]") {
  std::mt19937_64 rng(42);
  // Log-uniform values over 1 µs .. 3 h, plus a dense cluster.
  std::uniform_real_distribution<double> lg(std::log(1e3), std::log(3.0 * 3600 * 1e9));
  std::vector<int64_t> v;
  LogLinearHistogram h;
  for (int i = 0; i < 20000; ++i) {
    auto x = static_cast<int64_t>(std::exp(lg(rng)));
    v.push_back(x);
    h.record_ns(x);
  }
  for (double q : {0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0}) {
    int64_t want = exact_quantile(v, q);
    int64_t got = h.quantile_ns(q);
    INFO("q=" << q << " exact " << want << " got " << got);
    // Below 128 µs buckets are 1 µs wide (absolute 0.5 µs error).
    CHECK(std::abs(static_cast<double>(got - want)) <= std::max(0.01 * static_cast<double>(want), 1000.0));
  }
  CHECK(h.count() == 20000);
  CHECK(h.quantile_ns(1.0) <= h.max_ns());
}

TEST_CASE("a constant value reads back as itself (capped by the max)", "[histogram]") {
  LogLinearHistogram h;
  for (int i = 0; i < 100; ++i) h.record_ns(20 * kMs);
  CHECK(std::abs(h.quantile_ns(0.5) - 20 * kMs) <= 20 * kMs / 100);
  CHECK(h.quantile_ns(0.99) <= 20 * kMs);
  LogLinearHistogram empty;
  CHECK(empty.quantile_ns(0.5) == -1);
  // Negative values count as 0; beyond the range they are overflow.
  LogLinearHistogram e;
  e.record_ns(-5);
  CHECK(e.quantile_ns(0.5) == 0);
  e.record_ns(int64_t{20} * 3600 * kSec);
  CHECK(e.overflow() == 1);
}

TEST_CASE("merging histograms equals recording everything in one", "[histogram]") {
  LogLinearHistogram a, b, all;
  for (int i = 1; i <= 1000; ++i) {
    int64_t x = i * 37 * 1000;
    (i % 3 == 0 ? a : b).record_ns(x);
    all.record_ns(x);
  }
  a.merge(b);
  CHECK(a.count() == all.count());
  CHECK(a.max_ns() == all.max_ns());
  for (double q : {0.1, 0.5, 0.9, 0.99}) CHECK(a.quantile_ns(q) == all.quantile_ns(q));
}

TEST_CASE("storage covers only the recorded buckets; merges of disjoint ranges are exact", "[histogram]") {
  using H = LogLinearHistogram;
  H empty;
  CHECK(empty.buckets_held() == 0);
  // Lags from 1 to 50 ms touch 7 octaves: 7 x 64 buckets, not all 1,920.
  H live;
  for (int i = 1; i <= 50; ++i) live.record_ns(i * kMs);
  CHECK(live.buckets_held() > 0);
  CHECK(live.buckets_held() <= 7 * H::kSub);
  // Disjoint ranges, merged either way round, equal one histogram of all.
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> low(1'000, 900'000), high(2 * kSec, 3600 * kSec);
  H a, b, all;
  for (int i = 0; i < 5000; ++i) {
    int64_t x = (i % 2 == 0) ? low(rng) : high(rng);
    (i % 2 == 0 ? a : b).record_ns(x);
    all.record_ns(x);
  }
  H ab = a, ba = b, into_empty;
  ab.merge(b);
  ba.merge(a);
  into_empty.merge(all);
  for (const H* h : {&ab, &ba, &into_empty}) {
    CHECK(h->count() == all.count());
    CHECK(h->max_ns() == all.max_ns());
    for (double q : {0.001, 0.25, 0.5, 0.51, 0.75, 0.99, 1.0}) CHECK(h->quantile_ns(q) == all.quantile_ns(q));
  }
  // clear() keeps a narrow range's storage and frees a wide one's.
  live.clear();
  CHECK(live.count() == 0);
  CHECK(live.quantile_ns(0.5) == -1);
  CHECK(live.buckets_held() > 0);
  ab.clear();
  CHECK(ab.buckets_held() == 0);
  ab.record_ns(3 * kMs);
  CHECK(ab.count() == 1);
  CHECK(std::abs(ab.quantile_ns(0.5) - 3 * kMs) <= 3 * kMs / 100);
}

TEST_CASE("the sliding window forgets values older than a minute", "[histogram][window]") {
  WindowedHistogram w;
  int64_t t0 = 1000 * kSec;
  // 30 s of 10 ms, then 30 s of 100 ms.
  for (int s = 0; s < 30; ++s) w.record_ns(t0 + s * kSec, 10 * kMs);
  for (int s = 30; s < 60; ++s) w.record_ns(t0 + s * kSec, 100 * kMs);
  auto snap = w.snapshot(t0 + 59 * kSec);
  CHECK(snap.count() == 60);
  // 90 s in: only the 100 ms values remain (the first 30 s are > 55 s old).
  snap = w.snapshot(t0 + 90 * kSec);
  CHECK(snap.count() > 0);
  CHECK(snap.quantile_ns(0.01) >= 99 * kMs);
  // Long after: empty.
  CHECK(w.snapshot(t0 + 200 * kSec).count() == 0);
  // Recording after a long pause reuses slots without old counts.
  w.record_ns(t0 + 300 * kSec, 1 * kMs);
  snap = w.snapshot(t0 + 300 * kSec);
  CHECK(snap.count() == 1);
}

TEST_CASE("LagHistogram: window quantiles and cumulative Prometheus buckets", "[histogram]") {
  LagHistogram h;
  int64_t t = 5000 * kSec;
  for (int i = 0; i < 100; ++i) h.record_ns(t + i * 10 * kMs, (i < 90 ? 20 : 400) * kMs);
  auto q = h.window_quantiles(t + kSec);
  CHECK(q.samples == 100);
  CHECK(std::abs(q.p50_ns - 20 * kMs) <= kMs / 2);
  CHECK(std::abs(q.p95_ns - 400 * kMs) <= 4 * kMs);
  CHECK(std::abs(q.p99_ns - 400 * kMs) <= 4 * kMs);
  const auto& b = h.total();
  auto cum = b.cumulative();
  const auto& bounds = CumulativeBuckets::bounds();
  REQUIRE(cum.size() == bounds.size() + 1);
  CHECK(cum.back() == 100);
  CHECK(b.count() == 100);
  CHECK(b.sum_seconds() == Approx(90 * 0.020 + 10 * 0.400));
  for (size_t i = 0; i < bounds.size(); ++i) {
    INFO("le " << bounds[i]);
    uint64_t want = (bounds[i] >= 0.020 ? 90 : 0) + (bounds[i] >= 0.400 ? 10 : 0);
    CHECK(cum[i] == want);
    if (i > 0) CHECK(bounds[i] > bounds[i - 1]);
  }
  // Window empty after a few minutes; totals stay.
  CHECK(h.window_quantiles(t + 300 * kSec).samples == 0);
  CHECK(h.window_quantiles(t + 300 * kSec).p50_ns == -1);
  CHECK(h.total().count() == 100);
}

TEST_CASE("sync progress: done, to go, smoothed rate, estimate, caught up once", "[sync]") {
  SyncProgress p;
  CHECK(std::string(p.snapshot().state()) == "waiting");
  int64_t t = 100 * kSec;
  p.start(t, 1000, 101000);  // 100,000 to go
  auto s = p.snapshot();
  CHECK(std::string(s.state()) == "syncing");
  CHECK(s.done == 0);
  CHECK(s.to_go == 100000);
  CHECK(s.eta_s == -1);  // no rate yet
  // 10,000 msgs/s for 5 s.
  for (int i = 1; i <= 5; ++i) p.update(t + i * kSec, 1000 + 10000u * i, 101000);
  s = p.snapshot();
  CHECK(s.done == 50000);
  CHECK(s.to_go == 50000);
  CHECK(s.rate_per_s == Approx(10000).epsilon(0.01));
  CHECK(s.eta_s == Approx(5).epsilon(0.02));
  // The rate slows to 5,000/s: the smoothed rate moves towards it.
  for (int i = 6; i <= 10; ++i) p.update(t + i * kSec, 51000 + 5000u * (i - 5), 101000);
  s = p.snapshot();
  CHECK(s.rate_per_s < 9000);
  CHECK(s.rate_per_s > 5000);
  // The leader grows meanwhile; then we catch up.
  p.update(t + 11 * kSec, 120000, 120000);
  s = p.snapshot();
  CHECK(std::string(s.state()) == "caught_up");
  CHECK(s.to_go == 0);
  CHECK(s.eta_s == 0);
  CHECK(s.elapsed_ns == 11 * kSec);
  // Falling behind later does not make it "syncing" again (only start() does).
  p.update(t + 12 * kSec, 120000, 130000);
  s = p.snapshot();
  CHECK(std::string(s.state()) == "caught_up");
  CHECK(s.to_go == 10000);
  // A start that is already caught up.
  SyncProgress q;
  q.start(t, 50, 50);
  CHECK(std::string(q.snapshot().state()) == "caught_up");
}
