// Progress of a copy that has a known end: the initial sync of a replica
// (and later a rebuild). Pure code: the caller passes its monotonic clock.
//
// start(applied, target) begins a sync: `done` counts messages applied since
// then, `to_go` is target - applied. The state is "syncing" until the first
// time applied reaches the target, then "caught_up" for good (a later
// start() begins a new sync, e.g. a rebuild). The rate is an exponentially
// smoothed messages per second (time constant kRateTauNs, fed by update()
// about once a second); the estimated time is to_go / rate.
//
// Thread-safety: none (loop thread). Lifetime: a value member of its owner.
#pragma once

#include <cstdint>
#include <string>

namespace isthmus::replication {

// One shape for both copies with a known end, so that the API, the metrics
// and the leader's view read a rebuild exactly like an initial sync.
struct SyncSnapshot {
  const char* kind = "initial";  // "initial" or "rebuild" (RebuildProgress)
  bool started = false;
  bool syncing = false;  // started and not yet caught up
  uint64_t done = 0;
  uint64_t to_go = 0;
  double rate_per_s = 0;  // smoothed; 0 until measured
  double eta_s = -1;      // -1: unknown (no rate yet, or nothing to go)
  int64_t elapsed_ns = 0; // since start, or start to catch-up once caught up
  const char* state() const { return !started ? "waiting" : syncing ? "syncing" : "caught_up"; }
  // Sets to_go and the estimated time from it and rate_per_s: 0 with
  // nothing to go, unknown (-1) below half a message per second.
  void set_to_go(uint64_t n) {
    to_go = n;
    eta_s = n == 0 ? 0 : rate_per_s > 0.5 ? static_cast<double>(n) / rate_per_s : -1;
  }
};

class SyncProgress {
 public:
  static constexpr int64_t kRateTauNs = 5'000'000'000;

  // Begins a sync from `applied` towards `target` at time now.
  void start(int64_t now_mono_ns, uint64_t applied, uint64_t target);
  // Applied position and the leader's last sequence as now known.
  void update(int64_t now_mono_ns, uint64_t applied, uint64_t target);
  bool started() const { return started_; }
  bool syncing() const { return started_ && !caught_up_; }
  SyncSnapshot snapshot() const;

 private:
  bool started_ = false;
  bool caught_up_ = false;
  uint64_t base_ = 0;     // applied at start
  uint64_t applied_ = 0;
  uint64_t target_ = 0;
  int64_t start_ns_ = 0;
  int64_t caught_up_ns_ = 0;
  int64_t last_ns_ = 0;   // last rate sample
  uint64_t last_applied_ = 0;
  int64_t now_ns_ = 0;
  double rate_ = 0;
  bool rate_known_ = false;
};

}  // namespace isthmus::replication
