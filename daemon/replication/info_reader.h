// StreamInfoReader: the local streams' state, read for many streams at once.
//
// Every replicated stream reads its local stream's state once a second (the
// leader for its STATE, a follower to check its replica), and a leader
// again for each /v1/lag or /metrics call: one STREAM.INFO each, so the
// JetStream API load grew with the number of streams. Reads asked for in
// one loop iteration are served together: from eight streams up, by
// $JS.API.STREAM.LIST (256 streams per page: one request for a few hundred
// streams) and STREAM.INFO for the rest; fewer are read one by one. A
// stream the list does not show is read on its own, so a stream missing is
// never concluded from the list (a page can shift while streams are created
// or deleted). Where listing is not possible (it fails: the daemon's user
// may not publish to $JS.API.STREAM.LIST, or the server holds many more
// streams than Isthmus replicates) streams are read one by one for a while.
//
// Loop thread only; the requests run on the NATS worker (Context::async).
// Owned by the Replicator, which outlives its streams; callbacks run on the
// loop thread and, like every Context::async callback, rely on their stream
// still being there.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loop/timer.h"
#include "replication/context.h"
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

  // Counts, for /debug and tests.
  uint64_t list_requests() const { return list_requests_; }
  uint64_t single_requests() const { return single_requests_; }

 private:
  struct Outcome {
    std::map<std::string, Result<Json>> infos;
    uint64_t list_requests = 0;
    uint64_t single_requests = 0;
    bool list_failed = false;
    std::string list_error;
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
  uint64_t list_failures_ = 0;
  uint64_t list_requests_ = 0, single_requests_ = 0;
};

}  // namespace isthmus::replication
