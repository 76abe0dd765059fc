// Whether the local nats-server the daemon is connected to still serves
// JetStream, and leaving it for another server of nats.urls when it does
// not.
//
// In a clustered region the daemon reaches the cluster through one server.
// A server cut off from the rest of its cluster (a network partition
// between the nodes, its routes down) stays up and keeps the daemon's
// connections, but every stream waits on it: after about 10 s it answers
// every JetStream request with "JetStream system temporarily unavailable"
// (err_code 10008), and nothing else would ever move the daemon to a node
// that works. So, with more than one URL configured, the daemon asks its
// server $JS.API.INFO every 2-3 s (1 s timeout) and leaves it
// (nats::Client::leave_server) once it has answered without JetStream
// (10008, or no responders) for LeaveRule::kFirstLeaveMs, answer after
// answer (a good answer, or more than kMaxGapMs without a bad one, starts
// the count again). A server electing a meta leader (a few seconds on
// 2.9.10) is kept. When every server fails (a whole cluster without
// quorum) each further leave waits twice as long, up to kMaxLeaveMs, until
// a server serves again. Past kUnansweredAtPace unanswered probes in a row
// (a slow or stopped server) the pace halves down to one every 30 s; a
// refused one (the user may not publish to $JS.API.INFO) ends the watch
// for that connection.
//
// A server that answers nothing at all (stopped with SIGSTOP, a frozen VM)
// is deliberately not left here: the replica writes it has buffered would
// be applied when it resumes, and nats-server 2.9.10 was seen to store
// such late writes of a stream it led at the wrong sequence (past their
// Nats-Expected-Last-Sequence) once the daemon had written on through
// another node: a misplaced message is a divergence. Waiting keeps the
// writes in order. (cnats' own stale-connection check, two PINGs 2 min
// apart unanswered, still closes such a connection after 4-6 min; the
// daemon then connects to whichever server answers. A node that is killed
// or restarted closes the connection at once.)
//
// Loop thread only (the probe itself runs on the NATS worker). Owned by
// the Replicator, which calls tick() every second.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "replication/context.h"

namespace isthmus::replication {

// What one probe found.
enum class ServerProbe {
  kServes,       // $JS.API.INFO answered
  kNoJetStream,  // answered, but without JetStream (err_code 10008, no responders)
  kRefused,      // the user may not ask (permissions): no verdict
  kUnknown,      // anything else (not connected, timed out): changes nothing
};

// The decision, without I/O.
class LeaveRule {
 public:
  static constexpr int64_t kFirstLeaveMs = 10'000;
  static constexpr int64_t kMaxLeaveMs = 120'000;
  static constexpr int64_t kMaxGapMs = 8'000;

  // Records a probe's result at now_ms (monotonic); true when the server
  // should be left now (reason() says why).
  bool observe(ServerProbe p, int64_t now_ms, const std::string& why);
  // A new connection: its failures count afresh (the wait stays doubled
  // until some server serves).
  void reset() { bad_since_ms_ = -1; }
  const std::string& reason() const { return reason_; }
  int64_t wait_ms() const { return wait_ms_; }

 private:
  int64_t bad_since_ms_ = -1;
  int64_t last_bad_ms_ = -1;
  int64_t wait_ms_ = kFirstLeaveMs;
  std::string reason_;
};

class ServerWatch {
 public:
  static constexpr int64_t kProbeIntervalMs = 2000;
  static constexpr int64_t kMaxProbeIntervalMs = 30'000;  // after unanswered probes
  static constexpr int kUnansweredAtPace = 8;              // before backing off
  static constexpr int64_t kProbeTimeoutMs = 1000;

  explicit ServerWatch(Context& ctx);
  ~ServerWatch();
  ServerWatch(const ServerWatch&) = delete;
  ServerWatch& operator=(const ServerWatch&) = delete;

  void tick();        // every second
  void on_nats_up(uint64_t generation);  // a new cnats connection
  void stop();

 private:
  void probe();

  Context& ctx_;
  LeaveRule rule_;
  bool in_flight_ = false;
  bool stopped_ = false;
  bool refused_ = false;   // this connection's user may not ask
  uint64_t conn_gen_ = 0;  // the cnats connection's generation
  int64_t last_probe_ms_ = 0;
  int64_t interval_ms_ = kProbeIntervalMs;
  int unanswered_ = 0;  // probes in a row without an answer
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace isthmus::replication
