// What every replicated stream (leader or follower side) shares: the loop,
// configuration, the NATS client and current connection, and the links.
// Loop thread only. Owned by the Replicator, which outlives its streams.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <string>

#include "config/config.h"
#include "link/manager.h"
#include "loop/mailbox.h"
#include "nats/client.h"
#include "nats/data_conn.h"

namespace isthmus::replication {

class LogLimiter;
class StreamInfoReader;

struct Context {
  uv_loop_t* loop = nullptr;
  const config::Config* cfg = nullptr;
  loop::Mailbox* mailbox = nullptr;
  nats::Client* nats = nullptr;
  link::Manager* links = nullptr;
  // The local nats-server, up when both are: cnats' connection (API
  // requests, advisories) and the data path's (nats/data_conn.h).
  nats::ConnPtr conn;        // current cnats connection (null when down)
  std::shared_ptr<nats::DataConn> data;  // current data connection (null when down)
  uint64_t nats_gen = 0;     // grows with every new pair of connections
  std::function<void()> request_flush;  // ask for a flush of links soon
  // Reads local streams' info, many streams per request (info_reader.h).
  StreamInfoReader* infos = nullptr;
  // Warnings many streams give at once for one cause (log_limiter.h).
  LogLimiter* warnings = nullptr;
  // Bytes in flight to each peer over every stream this region leads: sent
  // and not yet acknowledged, plus what outstanding pull requests may still
  // deliver (estimated). link.peer_window_bytes bounds it (Leader::pull).
  std::map<std::string, uint64_t> peer_inflight_bytes;
  // When a pull for each peer last found its link full (peer_inflight_bytes
  // at link.peer_window_bytes, or the link's send queue at its high-water
  // mark). While that is recent, room that an acknowledgement frees is
  // handed out by pump_in_turn, a different stream first each time
  // (Replicator), instead of being taken at once by the stream whose
  // acknowledgement freed it: on a saturated link every stream gets its
  // turn, rather than the first few starving the rest until they are done.
  std::map<std::string, int64_t> peer_full_mono_ns;
  std::function<void()> pump_in_turn;  // every stream's pull(), in turn
  int64_t timeout_ms() const { return cfg->nats.request_timeout.count(); }
  // Runs job on the NATS worker and then done(result) on the loop thread.
  template <typename R>
  void async(std::function<R(natsConnection*)> job, std::function<void(R)> done) {
    loop::Mailbox* mb = mailbox;
    nats->run([job = std::move(job), done = std::move(done), mb](natsConnection* nc) mutable {
      auto r = std::make_shared<R>(job(nc));
      mb->post([done = std::move(done), r]() mutable { done(std::move(*r)); });
    });
  }
};

}  // namespace isthmus::replication
