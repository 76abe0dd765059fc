// UnansweredPace: how soon to ask one stream again after its server left a
// request about it unanswered while answering the daemon otherwise.
//
// A clustered stream without a leader (its replicas lost, elections under
// way), or a user refused that one stream's API subjects, makes a request
// wait out the whole nats.request_timeout on the NATS worker, with every
// other request of the daemon queued behind it. Asked again at the usual
// pace (every 1-2 s) such a stream would hold the worker most of the time.
// So past a few unanswered attempts in a row the next one waits 5 s,
// doubling up to 60 s; any other outcome (an answer, an error answer, a
// server silent altogether) starts over. Used by the state reads
// (StreamInfoReader: from the second unanswered in a row; once may be a
// server that stalled and came back), and a leader's reader creation and a
// follower's replica preparation (from the fourth: each is tried 2-3 s
// after the last one failed, plus the timeout, 12-15 s for three with the
// default 2 s timeout, which a stream leader's election, 2-10 s on
// nats-server 2.9.10, should not be made to outlast).
//
// A plain value; loop thread only. nats::answers_ping() (worker thread)
// tells an unanswered request of a server that answers from a silent one.
#pragma once

#include <cstdint>

namespace isthmus::replication {

class UnansweredPace {
 public:
  static constexpr int64_t kFirstPauseNs = 5'000'000'000;
  static constexpr int64_t kMaxPauseNs = 60'000'000'000;

  // free_in_row: unanswered attempts in a row that change nothing.
  explicit UnansweredPace(int free_in_row = 1) : free_in_row_(free_in_row) {}

  // The outcome of one attempt, known at now_ns: unanswered while the
  // server answered otherwise, or not. Returns the pause before the next
  // attempt (0: none beyond the caller's usual pace).
  int64_t note(bool unanswered_alone, int64_t now_ns) {
    if (!unanswered_alone) {
      reset();
      return 0;
    }
    if (++strikes_ <= free_in_row_) return 0;
    pause_ns_ = pause_ns_ == 0 ? kFirstPauseNs : (pause_ns_ >= kMaxPauseNs / 2 ? kMaxPauseNs : 2 * pause_ns_);
    until_ns_ = now_ns + pause_ns_;
    return pause_ns_;
  }
  // Whether the next attempt must still wait at now_ns.
  bool holding(int64_t now_ns) const { return now_ns < until_ns_; }
  // Whether a pause was set (the stream is being asked less often).
  bool pausing() const { return until_ns_ > 0; }
  // A new connection: its server may answer; ask at the usual pace.
  void reset() {
    strikes_ = 0;
    pause_ns_ = 0;
    until_ns_ = 0;
  }

 private:
  int free_in_row_;
  int strikes_ = 0;
  int64_t pause_ns_ = 0;
  int64_t until_ns_ = 0;
};

}  // namespace isthmus::replication
