// StreamInfoReader: the local streams' state, read for many streams at once.
//
// Every replicated stream reads its local stream's state once a second (the
// leader for its STATE, a follower to check its replica), and a leader
// again for each /v1/lag or /metrics call: one STREAM.INFO each, so the
// JetStream API load grew with the number of streams. Reads asked for in
// one loop iteration are served together: from eight streams up, by
// $JS.API.STREAM.LIST (256 streams per page: one request for a few hundred
// streams) and STREAM.INFO for the rest; fewer are read one by one. A
// stream the list does not show (or names as "missing": a clustered
// server's stream whose replicas did not answer) is read on its own, so a
// stream missing is never concluded from the list (a page can shift while
// streams are created or deleted). A batch is read one by one when the
// server held over four times its streams at the last listing; all are for
// a while after three listings in a row failed (the server is overloaded),
// and for 15 min at once when the daemon's user may not publish to
// $JS.API.STREAM.LIST (each try waits out a request timeout).
//
// Loop thread only; the requests run on the NATS worker (Context::async).
// Owned by the Replicator, which outlives its streams; callbacks run on the
// loop thread and, like every Context::async callback, rely on their stream
// still being there.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "loop/timer.h"
#include "replication/context.h"
#include "replication/unanswered_pace.h"
#include "util/status.h"

namespace isthmus::replication {

class StreamInfoReader {
 public:
  using Json = nlohmann::json;
  using Done = std::function<void(Result<Json>)>;

  explicit StreamInfoReader(Context& ctx);

  // Reads `stream`'s info (no deleted details); done runs on the loop thread.
  void read(const std::string& stream, Done done);
  void stop();
  // A new NATS connection: streams left quiet on the old server are asked
  // again at once (the new server may answer them).
  void on_nats_up() { quiet_.clear(); }

 private:
  struct Outcome {
    std::map<std::string, Result<Json>> infos;
    uint64_t list_requests = 0;
    uint64_t server_streams = 0;  // "total" of the last page read (0: none)
    bool list_failed = false;
    bool list_denied = false;  // refused for permissions
    bool list_timeout = false;  // unanswered (and not refused)
    std::string list_error;
    // Streams whose own request went unanswered while the server answered
    // (a PING, or was refusing it for permissions): not the server's silence.
    std::set<std::string> unanswered_alone;
  };
  void run();
  static Outcome read_all(natsConnection* nc, const std::vector<std::string>& names, bool use_list,
                          int64_t timeout_ms);

  Context& ctx_;
  std::map<std::string, std::vector<Done>> waiting_;
  std::unique_ptr<loop::Timer> timer_;
  bool scheduled_ = false;
  bool in_flight_ = false;  // a batch is being read: the next waits for it
  bool stopped_ = false;
  int64_t list_off_until_mono_ns_ = 0;  // read one by one until then
  int64_t list_off_ns_ = 0;             // the last such spell (0: listing works)
  uint64_t list_failures_in_row_ = 0;
  uint64_t back_offs_ = 0;
  uint64_t server_streams_ = 0;  // streams the server held at the last listing
  int64_t last_list_mono_ns_ = 0;
  // A stream whose own request went unanswered while its server answers
  // (a clustered stream without a leader, a user refused that one stream):
  // each read waits out a request timeout on the NATS worker, with every
  // other request of the daemon behind it, so from its second such round
  // in a row it is not asked again for a while (UnansweredPace; answered
  // meanwhile with its last error).
  struct Quiet {
    UnansweredPace pace;
    Status last;
  };
  std::map<std::string, Quiet> quiet_;
};

}  // namespace isthmus::replication
