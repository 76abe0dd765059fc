// Progress of a rebuild: a replica syncing from the leader again: messages done
// and to go, the rate over the last few seconds, and an estimated time.
// Pure code, header-only. Thread: whoever owns it (the Follower: loop thread).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "replication/sync_progress.h"

namespace isthmus::replication {

class RebuildProgress {
 public:
  static constexpr int64_t kWindowNs = 10'000'000'000;  // rate over the last 10 s

  // `base` is the sequence below the first one to sync (leader first_seq - 1);
  // `applied` the highest sequence already there. Times are monotonic ns.
  void start(uint64_t base, uint64_t applied, int64_t now_mono_ns) {
    base_ = base;
    started_ns_ = now_mono_ns;
    samples_.clear();
    samples_.emplace_back(now_mono_ns, applied);
    active_ = true;
    caught_up_ = false;
  }
  // The rebuild holds the leader's last sequence (the follower's check):
  // the state stays caught_up from now on, and the elapsed time stops.
  void caught_up(int64_t now_mono_ns) {
    if (!active_ || caught_up_) return;
    caught_up_ = true;
    caught_up_ns_ = now_mono_ns;
  }
  void stop() { active_ = false; }
  bool active() const { return active_; }
  // About once a second, with the highest sequence applied so far.
  void sample(uint64_t applied, int64_t now_mono_ns) {
    if (!active_) return;
    samples_.emplace_back(now_mono_ns, applied);
    while (samples_.size() > 2 && now_mono_ns - samples_.front().first > kWindowNs) samples_.pop_front();
  }
  // Messages per second from the oldest sample in the window (at most
  // kWindowNs old, or the start) to (now_mono_ns, applied); 0 when unknown.
  double rate(uint64_t applied, int64_t now_mono_ns) const {
    if (samples_.empty()) return 0;
    auto [t0, a0] = samples_.front();
    if (now_mono_ns <= t0 || applied < a0) return 0;
    return static_cast<double>(applied - a0) * 1e9 / static_cast<double>(now_mono_ns - t0);
  }
  // As a sync snapshot: kind "rebuild", syncing until caught_up() (latched,
  // like the initial sync's); eta_s -1 while the rate is unknown.
  SyncSnapshot snapshot(uint64_t applied, uint64_t leader_last, int64_t now_mono_ns) const {
    SyncSnapshot s;
    s.kind = "rebuild";
    s.started = active_;
    if (!active_) return s;
    s.done = applied > base_ ? applied - base_ : 0;
    s.syncing = !caught_up_;
    s.rate_per_s = rate(applied, now_mono_ns);
    s.set_to_go(leader_last > applied ? leader_last - applied : 0);
    s.elapsed_ns = (caught_up_ ? caught_up_ns_ : now_mono_ns) - started_ns_;
    return s;
  }

 private:
  bool active_ = false;
  uint64_t base_ = 0;
  int64_t started_ns_ = 0;
  bool caught_up_ = false;
  int64_t caught_up_ns_ = 0;
  std::deque<std::pair<int64_t, uint64_t>> samples_;
};

}  // namespace isthmus::replication
