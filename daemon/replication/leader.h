// Leader: serves one stream that this region leads to every follower that
// subscribes to it.
//
// Per follower a Sender reads the local stream with a pull consumer starting
// at the sequence the follower asked for: for a limits-retention stream an
// ephemeral one with ack policy none; for an interest-retention stream a
// durable one named isthmus_<follower>_<n> with ack policy all, acknowledged
// as the follower's ACK frames report what it has stored, so the stream keeps
// every message until every follower has stored it (docs/architecture.md,
// "Replica retention"). The Sender issues pull requests only while the follower's window has room
// (window_messages / window_bytes of unacknowledged messages, and a bound on
// bytes queued on the link), batches messages into DATA frames of about
// batch_bytes, and tracks what the follower has acknowledged. A slow or
// stalled follower therefore stops the pulls: memory stays bounded.
//
// The leader also sends STATE (first/last sequence) every tick and promptly
// when its first sequence moves, and reconciles deletions: it reads the
// stream's deleted sequences and sends them in DELETED frames, on every
// SUBSCRIBE, every kReconcileInterval, and when the API audit advisory shows
// a delete or purge of the stream.
//
// Thread: loop thread only. Lifetime: owned by the Replicator; Senders are
// created and destroyed as followers subscribe, stop, or lose their link;
// asynchronous results find their Sender by id and are dropped when it is
// gone.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "link/frame.h"
#include "loop/timer.h"
#include "replication/context.h"
#include "replication/unanswered_pace.h"

namespace isthmus::replication {

// "region R does not lead stream S": a leader's answer to a follower that
// asks for (or replicates) a stream it does not lead.
std::string not_leader_error(const std::string& region, const std::string& stream);
// The STREAM_INFO frame a follower gets unasked when `region` does not (or
// no longer) lead `stream`: that error behind link::kNotLeaderPrefix.
std::vector<uint8_t> not_leader_frame(const std::string& region, const std::string& stream);

class Leader {
 public:
  Leader(Context& ctx, config::Stream cfg, std::vector<std::string> followers);
  ~Leader();

  const std::string& name() const { return cfg_.name; }

  void on_nats_up();
  void on_nats_down();
  void on_link_up(const std::string& peer);
  void on_link_down(const std::string& peer);
  Status on_stream_req(const std::string& peer, const link::StreamReq& req);
  Status on_subscribe(const std::string& peer, const link::Subscribe& sub);
  Status on_ack(const std::string& peer, const link::Ack& ack);
  Status on_stop(const std::string& peer, const link::Stop& stop);
  Status on_lag_report(const std::string& peer, const link::LagReport& r);
  void tick();   // about once a second
  // Re-reads the local stream's state; done() runs on the loop once known
  // (at once when NATS is down).
  void refresh_state(std::function<void()> done = {});
  // Issues pulls where windows allow; true if it issued any.
  bool pump();
  void flush();  // send batches built so far
  void drain();  // shutdown: no new pulls, nothing held
  // The stream was removed from the configuration (SIGHUP): tells every
  // follower whose link is up that this region does not lead it (a
  // STREAM_INFO error, link::kNotLeaderPrefix), drops every reader (an
  // ephemeral one is deleted; the Replicator deletes the durables) and
  // does nothing from now on. The Replicator keeps a retired Leader until
  // the daemon exits (results of jobs already started still arrive here:
  // each is dropped), and routes nothing to it.
  void retire();
  // Added back by reload after `retired` (the same stream): its followers
  // that had removed the stream stay `stopped` until they ask.
  void inherit_removed(const Leader& retired);
  // SIGHUP: a peer region added to the configuration follows this stream
  // like the others, from its first SUBSCRIBE; one removed is forgotten:
  // its reader is dropped, its row goes, and its durable reader (interest
  // retention) is deleted as a region that is no longer a peer (at once, or
  // once NATS is up).
  void add_follower(const std::string& peer);
  void remove_follower(const std::string& peer);
  // A $JS.API.STREAM.MSG.DELETE / PURGE of this stream was seen.
  void on_delete_or_purge();
  // A message deleted through the API (its audit advisory): sent at once to
  // the followers that may hold it, whatever the stream's count of deletes.
  void on_msg_deleted(uint64_t seq);

  nlohmann::json lag_json() const;
  // What /healthz reports for this stream: the local stream cannot be read,
  // a follower's pull requests are refused. Empty when healthy.
  std::vector<std::string> problems() const;

 private:
  struct Pull {
    uint64_t requested = 0;
    uint64_t delivered = 0;
    int64_t sent_mono_ns = 0;
    bool no_wait = false;     // answered at once with what the stream holds
  };
  // How a Sender reads (docs/architecture.md, "Flow control"); one pull is
  // open at a time in every mode. kBacklog: no_wait pulls back to back while
  // each is served in full; kLive: the stream is being written as we read
  // it: a no_wait pull at most once per kLivePullInterval, so messages
  // published in between arrive together; kIdle: nothing to read: a waiting
  // pull for a single message, whose arrival switches to kLive.
  enum class ReadMode { kBacklog, kLive, kIdle };
  static const char* mode_name(ReadMode m);  // "backlog" | "live" | "idle"
  struct Sender {
    std::string peer;
    uint64_t id = 0;          // our id, for matching async results
    uint64_t sub_id = 0;      // the follower's SUBSCRIBE id
    uint64_t start_seq = 0;   // consumer start
    std::string consumer;     // empty until created
    bool creating = false;
    // Reader creation asked again at the usual pace (tick(), every 2 s)
    // unless the stream's requests go unanswered while the server answers.
    UnansweredPace create_pace{3};
    std::string inbox;
    std::unique_ptr<nats::DataSub> sub;   // on the data connection (nats/data_conn.h)
    // Pull requests the server refuses (the daemon's user may not publish
    // to the consumer's MSG.NEXT subject): why, and when last refused; no
    // pull for kPullRefusedRetryNs after a refusal, and the first answer
    // after one clears it.
    std::unique_ptr<nats::RefusedPublishWatch> pull_watch;
    std::string pull_refused;
    int64_t pull_refused_mono_ns = 0;
    // A durable reader's acknowledgements the server refuses (the daemon's
    // user may not publish to $JS.ACK...): the latest ack subject, resent
    // every kAckRefusedRetryNs while they are refused (FollowerView).
    std::unique_ptr<nats::RefusedPublishWatch> ack_watch;
    std::string last_ack_reply;
    uint64_t last_dseq = 0;   // consumer sequence of the last delivery; 0: none yet from this consumer
    std::map<uint64_t, Pull> pulls;  // by request id
    uint64_t next_pull_id = 1;
    uint64_t outstanding = 0;        // requested, not yet delivered
    bool durable = false;     // consumer is an isthmus_<peer>_<n> durable (interest)
    struct Unacked {
      uint64_t seq;
      size_t bytes;
      std::string reply;      // the delivery's ack subject (durable only)
      int64_t time_ns;        // leader store time (for the oldest-unreplicated age)
    };
    std::deque<Unacked> unacked;     // sent, not acked by the follower
    size_t unacked_bytes = 0;
    uint64_t sent_seq = 0;
    link::Data batch;
    size_t batch_bytes = 0;
    int64_t batch_started_mono_ns = 0;  // when the first message of batch arrived
    double avg_msg_bytes = 0;     // recent message's window cost, for pull sizes; 0: none yet
    size_t last_msg_bytes = 0;    // window cost of the latest message
    uint64_t pull_cap = 16;       // slow start: doubles with each pull served in full
    ReadMode mode = ReadMode::kBacklog;
    int64_t next_pull_mono_ns = 0;  // kLive: no pull before this
    uint64_t accounted = 0;       // this sender's share of ctx.peer_inflight_bytes
    int64_t last_activity_mono_ns = 0;
    bool live_deletes_sent = false;  // live_deletes_ sent since this sender started
    int64_t last_pass_mono_ns = 0;   // when a reconcile pass was last sent to it
    bool pass_owed = false;          // a pass skipped for its full link: sent once it drains
    // A pull gone unanswered: the server is asked for a PONG first, and the
    // reader recreated only once it has answered for kServerAnsweringNs
    // with the pull still open (a stalled server answers nothing: no
    // reason to recreate every reader, each with a warning).
    int64_t liveness_ping_mono_ns = 0;  // 0: none asked
    int64_t liveness_pong_mono_ns = 0;  // 0: not answered yet
  };
  uint64_t inflight_bytes(const Sender& s) const;  // unacked + outstanding pulls (estimated)
  void account(Sender& s);                         // refresh s's share of the link's in-flight bytes
  static double msg_estimate(const Sender& s);     // message size for pull sizing
  struct FollowerView {
    uint64_t acked_seq = 0;
    int64_t acked_time_ns = 0;
    bool subscribed = false;
    std::string state = "waiting";  // waiting | syncing | replicating | stopped
    std::string detail;
    uint64_t msgs_sent = 0, bytes_sent = 0;
    bool seen = false;              // subscribed at least once since we started
    // Store time of the first message above acked_seq when it is not in
    // flight (looked up with MSG.GET next_by_subj): valid for lookup_for.
    uint64_t lookup_for = UINT64_MAX;
    int64_t lookup_time_ns = -1;    // -1: none stored above lookup_for
    uint64_t lookup_last_seq = 0;   // the stream's last sequence when -1 was learned
    uint64_t lookup_seq = 0;        // the message whose store time lookup_time_ns is
    // That message may be gone (expired past the stream's first sequence,
    // deleted, purged): look again; lookup_time_ns stands until answered.
    bool lookup_recheck = false;
    uint32_t recheck_gen = 0;       // counts rechecks: an answer asked before the latest does not clear it
    uint64_t sync_target = 0;       // last_seq_ at SUBSCRIBE: syncing until acked reaches it
    bool lookup_pending = false;
    // The follower's last LAG_REPORT and when it arrived.
    link::LagReport report;
    int64_t report_mono_ns = 0;
    // Acknowledgements of its durable reader refused by the server: why,
    // when last refused, and when an acknowledgement was last published. It
    // stands until one has gone unrefused for kAckRefusedRetryNs.
    std::string ack_refused;
    int64_t ack_refused_mono_ns = 0;
    int64_t ack_sent_mono_ns = 0;
    // Since when its link is up (0: down), and whether it has asked for the
    // stream since (STREAM_REQ, SUBSCRIBE or a lag report): a follower whose
    // configuration lacks the stream never does (not_asked()).
    int64_t link_up_mono_ns = 0;
    bool asked = false;
    bool removed = false;  // it stopped the stream for good (link::kStopRemovedPrefix), until it asks
    // It stored messages of a stream since deleted and created again, and
    // has not been told yet (tell_replaced()).
    bool replaced = false;
  };
  // Why the follower has not asked for the stream though its link has been
  // up for a while; "" when it has (or not long enough to tell).
  std::string not_asked(const std::string& peer, const FollowerView& v, int64_t now_mono) const;
  // The stream's creation time as last read; true when it changed (the
  // stream was deleted and created again): then on_recreated().
  bool note_created(const std::string& created);
  void on_recreated();
  void tell_replaced(const std::string& peer, FollowerView& v);
  std::string created_;
  // Store time (ns) of the oldest message the follower has not stored, 0
  // when it has everything, -1 when not known (yet).
  int64_t oldest_unreplicated_time(const std::string& peer, const FollowerView& v) const;
  void lookup_oldest(const std::string& peer, FollowerView& v);
  // The message whose store time v holds may be gone: look it up again at
  // the next lookup_oldest (the held time stands until then).
  static void recheck_oldest(FollowerView& v);
  void send_deleted(const nlohmann::json& stream_state);

  void start_sender(const std::string& peer, uint64_t sub_id, uint64_t from);
  // why empty: not logged; expected: logged at debug (else warn).
  void restart_consumer(Sender& s, const std::string& why, bool expected = false);
  // A pass over the stream's deleted list, sent to every follower. paced:
  // at most one a second (kReconcileGapNs); a later one runs from tick().
  // owed_only: only to the followers a pass skipped (Sender::pass_owed).
  void reconcile(bool paced = false, bool owed_only = false);
  struct ReconcileRead {
    uint64_t num_deleted = 0;
    bool over_limit = false;  // the list was not read
    nlohmann::json state;
    std::string created;  // the stream's, when the list was read
  };
  void on_reconcile_read(Result<ReconcileRead> r, uint64_t limit);
  void cleanup_stale_durables();
  void create_consumer(Sender& s);
  void drop_sender(const std::string& peer);
  void on_ack_refused(uint64_t sender_id, const std::string& subject, const std::string& error);
  void check_ack_refused(Sender& s, int64_t now);
  void forget_acks(Sender& s);
  void pull(Sender& s);
  void pull_completed(Sender& s, const Pull& p, bool in_full);
  void arm_pull_timer(int64_t at_mono_ns);
  void on_msg(uint64_t sender_id, const nats::wire::ServerOp& msg);
  void on_pull_refused(uint64_t sender_id, const std::string& subject, const std::string& error);
  uint64_t malformed_headers_ = 0;  // messages whose header block was partly unreadable
  void send_batch(Sender& s);
  Sender* find_sender(uint64_t id);

  Context& ctx_;
  config::Stream cfg_;
  std::vector<std::string> followers_;
  std::map<std::string, std::unique_ptr<Sender>> senders_;
  std::map<std::string, FollowerView> views_;
  uint64_t next_sender_id_ = 1;
  bool refresh_pending_ = false;
  std::vector<std::function<void()>> refresh_waiters_;
  bool draining_ = false;
  bool retired_ = false;  // retire() ran: every callback returns at once
  std::unique_ptr<loop::Timer> pull_timer_;  // deferred kLive pulls
  int64_t pull_timer_at_ns_ = 0;             // when it fires; 0: not armed
  std::unique_ptr<loop::Timer> hold_timer_;  // releases batches held for their pull
  int64_t hold_timer_at_ns_ = 0;
  bool holds(const Sender& s, int64_t now) const;

  // Local stream state (from periodic stream info and delivered messages).
  std::string retention_;  // "limits" | "interest" | "workqueue"; empty until known
  bool reconcile_pending_ = false;
  bool reconcile_again_ = false;
  bool pass_owed_only_ = false;  // the pass under way goes to Sender::pass_owed only
  int64_t last_reconcile_mono_ns_ = 0;
  // Interior deletes (the stream state's num_deleted); above
  // nats.reconcile_max_deleted the deleted list is not read.
  uint64_t num_deleted_ = 0;
  bool deletes_over_limit_ = false;
  // The sequences of live API deletes (at most nats.reconcile_max_deleted,
  // oldest dropped), for followers that subscribe while over the limit.
  std::deque<uint64_t> live_deletes_;
  uint64_t under_limit() const;  // the count at which reconciling resumes
  void send_seqs(Sender& s, const std::vector<uint64_t>& sorted_seqs, uint64_t first);
  // An empty DELETED after a reconcile's complete list: the frames since the
  // previous one listed every sequence the stream lacked from `first` to
  // what was sent to that follower (docs/wire-format.md).
  void send_seqs_end(Sender& s, uint64_t first);
  uint64_t cleaned_nats_gen_ = 0;
  // The durables of regions that are no longer peers (cleanup_stale_durables,
  // at each NATS connection and when a peer is removed): a listing or
  // deletion that failed is tried again every kStaleRetryNs (doubling up to
  // kStaleRetryMaxNs while the server does not answer); a failed deletion
  // is warned at most every kStaleRewarnNs, a failed listing logged at
  // debug (there may be nothing stale).
  static constexpr int64_t kStaleRetryNs = 30'000'000'000;
  static constexpr int64_t kStaleRetryMaxNs = 300'000'000'000;
  static constexpr int64_t kStaleRewarnNs = 600'000'000'000;
  int64_t stale_retry_ns_ = kStaleRetryNs;
  bool stale_cleaning_ = false;
  bool stale_owed_ = false;
  bool stale_redo_ = false;  // a peer was removed while a job ran: run again
  int64_t stale_tried_mono_ns_ = 0;
  int64_t stale_warned_mono_ns_ = 0;
  uint64_t first_seq_ = 0;
  uint64_t last_seq_ = 0;
  uint64_t delivered_seq_ = 0;
  uint64_t deliveries_ = 0;  // deliveries counted (note_last_seq())
  // A state reading of the stream's last sequence, issued when deliveries_
  // was `deliveries_then`.
  void note_last_seq(uint64_t read, uint64_t deliveries_then);  // highest stream sequence a reader delivered (of this stream: on_recreated resets)
  int64_t last_time_ns_ = 0;
  uint64_t last_time_seq_ = 0;  // the sequence last_time_ns_ is the store time of
  std::string error_;  // the local stream cannot be read
  bool read_error_timeout_ = false;  // error_ is a state read that timed out
  // A follower's request for the stream (on_stream_req) is asked at once,
  // except while the stream's requests go unanswered (from the fourth in a
  // row): answered with the last error meanwhile.
  UnansweredPace info_req_pace_{3};
  std::string info_req_error_;
};

}  // namespace isthmus::replication
