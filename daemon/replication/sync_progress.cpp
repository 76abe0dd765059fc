#include "replication/sync_progress.h"

#include <algorithm>
#include <cmath>

namespace isthmus::replication {

void SyncProgress::start(int64_t now, uint64_t applied, uint64_t target) {
  started_ = true;
  caught_up_ = false;
  base_ = applied;
  applied_ = applied;
  target_ = std::max(target, applied);
  start_ns_ = now;
  now_ns_ = now;
  last_ns_ = now;
  last_applied_ = applied;
  rate_ = 0;
  rate_known_ = false;
  if (applied_ >= target_) {
    caught_up_ = true;
    caught_up_ns_ = now;
  }
}

void SyncProgress::update(int64_t now, uint64_t applied, uint64_t target) {
  if (!started_) return;
  applied_ = std::max(applied_, applied);
  target_ = std::max(target, applied_);
  now_ns_ = now;
  // Rate: one sample per call at least 500 ms after the previous one.
  int64_t dt = now - last_ns_;
  if (dt >= 500'000'000) {
    double inst = static_cast<double>(applied_ - std::min(applied_, last_applied_)) * 1e9 / static_cast<double>(dt);
    if (!rate_known_) {
      rate_ = inst;
      rate_known_ = true;
    } else {
      double a = 1.0 - std::exp(-static_cast<double>(dt) / static_cast<double>(kRateTauNs));
      rate_ += a * (inst - rate_);
    }
    last_ns_ = now;
    last_applied_ = applied_;
  }
  if (!caught_up_ && applied_ >= target_) {
    caught_up_ = true;
    caught_up_ns_ = now;
  }
}

SyncSnapshot SyncProgress::snapshot() const {
  SyncSnapshot s;
  s.started = started_;
  if (!started_) return s;
  s.syncing = !caught_up_;
  s.done = applied_ - base_;
  s.rate_per_s = rate_;
  s.set_to_go(target_ - applied_);
  s.elapsed_ns = (caught_up_ ? caught_up_ns_ : now_ns_) - start_ns_;
  return s;
}

}  // namespace isthmus::replication
