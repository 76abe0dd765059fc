// DurableCleanup: the durable readers (isthmus_<region>_<n>) a leader leaves
// on streams it no longer replicates. Each keeps its interest stream's
// messages for that region until it has stored them: left behind, for good.
//
// - A stream removed by reload (removed()): its durables are deleted once
//   NATS is up, in one job queued ahead of the consumers a stream added
//   back creates (the NATS worker runs jobs in order). A stream led again
//   before the job reaches it (led_again()) is skipped; a deletion that
//   fails is tried again 30 s later (warned once per 10 minutes).
// - Once per start (scan()): interest streams of the server that are not
//   configured and carry such durables (a stream removed at a restart) are
//   named in a warning, not deleted: a configuration that lost a stream by
//   mistake must not cost its followers what the applications consume
//   meanwhile. The scan reads one STREAM.LIST page, or the consumers of 16
//   streams, per job, so other NATS work runs in between; it leaves out
//   streams queued for deletion, names each stream once, and is tried
//   again a minute after a failure, three times at most. What it found
//   stays in leftover() (the /healthz JSON, a metric, isthmusctl health),
//   checked again every 5 s, 16 streams a round (up to a minute apart while
//   the server does not answer), until the durables are gone (deleted by
//   hand) or the stream is led here again.
//
// Thread: loop thread only (jobs run on the NATS worker; their results
// come back through the mailbox). Lifetime: owned by the Replicator, which
// outlives the NATS client's jobs (see replicator.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "replication/context.h"

namespace isthmus::replication {

class DurableCleanup {
 public:
  // `configured(stream)`: the stream is in the running configuration;
  // `led(stream)`: ... and this region leads it.
  DurableCleanup(Context& ctx, std::function<bool(const std::string&)> configured,
                 std::function<bool(const std::string&)> led);

  void removed(const std::string& stream);    // removed by reload: delete its durables
  void led_again(const std::string& stream);  // added back by reload, led here: keep them
  void on_nats_up();                          // before the streams' own jobs
  void tick();                                // about once a second: retries

  // Streams removed at a restart that still carry Isthmus durables, with
  // their names: what the start-up scan found, as last checked.
  using Leftover = std::map<std::string, std::vector<std::string>>;
  const Leftover& leftover() const { return leftover_; }

 private:
  void delete_now();
  void scan();
  void scan_page(uint64_t offset, int page_no);
  void scan_consumers(size_t from);
  void recheck();

  // Streams led again while a deletion job runs (checked by the job).
  struct Cancelled {
    std::mutex m;
    std::set<std::string> names;
  };

  Context& ctx_;
  std::function<bool(const std::string&)> configured_;
  std::function<bool(const std::string&)> led_;
  std::vector<std::string> to_delete_;
  std::vector<std::string> in_flight_;  // the deletion job's streams
  std::shared_ptr<Cancelled> cancelled_ = std::make_shared<Cancelled>();
  bool deleting_ = false;
  bool redo_ = false;  // NATS came back while a job ran: run again when it ends
  int64_t tried_mono_ns_ = 0;
  std::map<std::string, int64_t> warned_mono_ns_;  // per stream, failed deletions
  bool scanned_ = false;
  bool scanning_ = false;
  int64_t scan_tried_mono_ns_ = 0;
  std::vector<std::string> scan_candidates_;  // unconfigured interest streams with consumers
  std::set<std::string> scan_named_;          // warned of already
  int scan_stalls_ = 0;
  Leftover leftover_;
  bool rechecking_ = false;
  int64_t rechecked_mono_ns_ = 0;
  int64_t recheck_ns_ = 5'000'000'000;  // interval; doubles (to 60 s) while listings time out
  std::string recheck_after_;           // the last stream of the previous round (16 a round)
};

}  // namespace isthmus::replication
