// Replicator: every replicated stream of this region, leader or follower
// side, wired to the links and to the local NATS connection.
//
// Thread: loop thread only (link frames, NATS up/down and job results all
// arrive here). Lifetime: created by the App after the Mailbox, NATS client
// and link Manager; destroyed after the NATS client has stopped and the
// Mailbox has closed, so no callback can reach it afterwards.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "link/manager.h"
#include "loop/timer.h"
#include "nats/client.h"
#include "replication/context.h"
#include "replication/durable_cleanup.h"
#include "replication/follower.h"
#include "replication/info_reader.h"
#include "replication/leader.h"
#include "replication/log_limiter.h"
#include "replication/server_watch.h"

namespace isthmus::replication {

class Replicator : public link::LinkListener, public nats::ClientListener, public nats::DataConn::Listener {
 public:
  Replicator(uv_loop_t* loop, const config::Config& cfg, loop::Mailbox* mailbox);
  ~Replicator() override;
  // The links and NATS client are created by the App with this object as
  // their listener, then attached here before start().
  void attach(nats::Client* nats, link::Manager* links);
  void start();
  void stop();
  // SIGHUP: takes `next` (which differs from the running configuration only
  // in reloadable keys: config::reload_blockers), starts replicating the
  // streams it adds, as at start-up, and stops those it removes (their
  // replicas stay; the durable readers of a stream this region led are
  // deleted).
  void reconfigure(const config::Config& next);

  // nats::ClientListener
  void on_nats_up(nats::ConnPtr conn, uint64_t generation, const std::string& url) override;
  void on_nats_down(const std::string& reason) override;
  // nats::DataConn::Listener: the data connection, opened once cnats'
  // is up; the streams see NATS up only when both are.
  void on_data_up() override;
  void on_data_down(const std::string& reason) override;
  // link::LinkListener
  void on_link_up(const std::string& peer) override;
  void on_link_down(const std::string& peer) override;
  Status on_link_frame(const std::string& peer, link::FrameType type, std::span<const uint8_t> body) override;

  // Shutdown: stop starting new work; drained() once in-flight writes are done.
  void drain();
  bool drained() const;
  void flush_now();

  bool nats_up() const { return static_cast<bool>(ctx_.conn); }
  // Why the data connection is down (its last close), while it is; "" when
  // up or never tried.
  const std::string& data_error() const { return data_error_; }
  nlohmann::json lag_json() const;
  // Refreshes every led stream's state from the local nats-server, then
  // runs done() on the loop thread: a lag report read right after it is
  // current, not up to a second old. Waits at most kRefreshWaitMs: a
  // nats-server that answers slowly (stalled, overloaded) must not hold up
  // /v1/lag and /metrics, exactly when they are needed; past that done()
  // runs with the state last read (the refresh goes on).
  static constexpr uint64_t kRefreshWaitMs = 250;
  void refresh(std::function<void()> done);
  std::vector<std::string> problems() const;
  // Operator's request to rebuild this region's replica of `stream` from
  // its leader (POST /v1/streams/<name>/rebuild). kNotFound: not a
  // configured stream; kConflict: this region leads it, or the existing
  // stream is not an Isthmus replica. OK: accepted, the rebuild runs on.
  Status request_rebuild(const std::string& stream);
  // Isthmus durables left on streams removed at a restart (DurableCleanup).
  const DurableCleanup::Leftover& leftover_durables() const { return durables_->leftover(); }

 private:
  void schedule_flush();
  void tick();
  void open_data();
  void watch_advisories();  // on the current connection, while this region leads a stream
  void start_state_timer();
  void pump_round();
  void streams_down();
  void refresh_deadlines();  // runs the refresh waits that are due
  // `why`: a retired Follower's STOP reason (Follower::retire); `switched`:
  // the stream stays, with another leader (reconfigure()).
  void remove_stream(const std::string& name, const std::string& why = {}, bool switched = false);
  void tell_not_leader(const std::string& peer, const std::string& stream);

  struct RefreshWait {
    int64_t deadline_mono_ns = 0;
    std::function<void()> finish;  // runs done() unless it ran already
  };
  std::deque<RefreshWait> refresh_waits_;  // in deadline order
  std::unique_ptr<loop::Timer> refresh_timer_;

  config::Config cfg_;
  Context ctx_;
  std::unique_ptr<StreamInfoReader> infos_;  // ctx_.infos
  std::unique_ptr<LogLimiter> warnings_;     // ctx_.warnings
  std::unique_ptr<ServerWatch> server_watch_;
  std::map<std::string, std::unique_ptr<Leader>> leaders_;
  size_t pump_first_ = 0;  // the stream (index in leaders_) the pump serves first next time
  bool pump_soon_ = false;  // pump_soon_timer_ armed (Context::pump_in_turn)
  std::map<std::string, std::unique_ptr<Follower>> followers_;
  // Streams removed by reload: inert, kept until the daemon exits.
  std::vector<std::unique_ptr<Leader>> retired_leaders_;
  std::vector<std::unique_ptr<Follower>> retired_followers_;
  std::unique_ptr<DurableCleanup> durables_;
  // Followed streams whose durable readers from when this region led them
  // (isthmus_<region>_<n>) are deleted once the replica is ready (tick()):
  // every followed stream at start, and one this region stopped leading by
  // reload (true: said in the log).
  std::map<std::string, bool> readers_to_drop_;
  std::unique_ptr<loop::Timer> flush_timer_;
  std::unique_ptr<loop::Timer> tick_timer_;
  std::unique_ptr<loop::Timer> pump_timer_;
  std::unique_ptr<loop::Timer> pump_soon_timer_;  // a round on the next loop iteration
  std::unique_ptr<loop::Timer> state_timer_;
  // $JS.EVENT.ADVISORY.API on the current connection: deletes and purges of
  // led streams trigger a prompt STATE and deletion reconcile.
  std::unique_ptr<nats::Subscription> advisory_sub_;
  void on_api_advisory(natsMsg* msg);
  nats::ConnPtr cnats_;                          // cnats' connection while it is up
  std::string cnats_url_;                        // the nats.urls entry it was made with
  std::shared_ptr<nats::DataConn> data_;         // connecting or up
  std::shared_ptr<nats::DataConn> dead_data_;    // lost; freed at the next flush
  std::unique_ptr<loop::Timer> data_retry_timer_;
  int64_t data_backoff_ms_ = 0;
  std::string data_error_;
  uint64_t data_failures_ = 0;  // attempts failed since the data connection was last up
  uint64_t gen_ = 0;
  bool flush_scheduled_ = false;
  bool stopped_ = false;  // stop() ran: no more flushes
};

}  // namespace isthmus::replication
