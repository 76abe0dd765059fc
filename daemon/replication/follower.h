// Follower: keeps this region's replica of one stream aligned with the
// leader's stream, sequence for sequence.
//
// The durable position is the replica itself: its last sequence is the last
// applied leader sequence (replicas are sequence-aligned). On every (re)start
// of the pipeline the follower reads the replica's state, verifies that its
// last message carries the matching origin sequence, and subscribes from
// last + 1. Messages are published into the replica in sequence order, each
// with Nats-Expected-Last-Sequence, so JetStream itself refuses a write that
// would land anywhere but its own sequence; and since every later write then
// expects a sequence that is missing, a refusal also refuses everything
// pipelined behind it until Isthmus resumes. That chain lets the follower ask
// for an acknowledgement only at checkpoints (the last message of each burst,
// and every kCheckpointEvery messages): a checkpoint acknowledged at its own
// sequence confirms every write before it. Foreign writes, which could take a
// place in the chain, are seen at once on a watch subscription on the
// replica's subjects (the connection has no_echo, so it never sees Isthmus's
// own writes), and stop the stream as diverged. A write the server refuses
// outright (the daemon's user may not publish to its subject: -ERR, no
// acknowledgement) stops the stream with an error naming the subject,
// retried every 2 s. A refused checkpoint is
// resolved against the replica's real last sequence: a stale check (after a
// positioning purge nats-server 2.9 counts from the old position) is
// compensated, a foreign write diverges the stream, anything else is retried
// with an acknowledgement for every message so that the refusal is named. Gaps in the
// leader's sequence (deleted or expired messages) are kept: on an empty
// replica, or when the leader's first sequence is already past the gap, by a
// positioning purge; otherwise by a filler message that is deleted once
// stored.
//
// Retention in step with the leader (docs/architecture.md, "Replica
// retention"): the replica has neutral limits of its own (and, under
// interest retention, a retention anchor consumer), so it removes messages
// only when the leader did: when STATE or DELETED reports a higher leader
// first sequence, the replica is purged below it (never above applied + 1);
// the sequences a DELETED frame lists are deleted from the replica when it
// holds them (compared with the replica's own deleted set).
//
// Divergence: a diverged replica is marked in its description (so a restart
// knows), and the messages Isthmus did not write there are kept aside in the
// side stream (side_stream.h), checked again every second while diverged.
// Rebuild (operator's request): the replica is sealed and marked, its
// foreign messages are kept aside, then it is deleted, recreated (marked
// "syncing") and synced from the leader's first sequence; the mark is
// cleared once caught up. A restart at any point redoes or finishes it.
//
// Thread: loop thread only. Lifetime: owned by the Replicator for the life of
// the daemon; asynchronous results are matched by generation numbers and
// dropped when stale.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "link/frame.h"
#include "loop/timer.h"
#include "nats/pub_ack.h"
#include "replication/context.h"
#include "replication/unanswered_pace.h"
#include "replication/latency_histogram.h"
#include "replication/rebuild_progress.h"
#include "replication/sync_progress.h"

namespace isthmus::replication {

class Follower {
 public:
  Follower(Context& ctx, config::Stream cfg);
  ~Follower();

  const std::string& name() const { return cfg_.name; }
  const std::string& leader() const { return cfg_.leader; }

  void on_nats_up();
  void on_nats_down();
  void on_link_up();
  void on_link_down();
  Status on_stream_info(const link::StreamInfo& info);
  Status on_data(link::Data&& data);
  void on_state(const link::State& st);
  void on_deleted(link::Deleted&& d);
  void tick();    // about once a second
  void flush();   // send a pending ACK
  // Shutdown: publish nothing new; in-flight publishes still complete.
  void drain() { draining_ = true; }
  bool idle() const { return inflight_.empty() && !purge_pending_; }
  // The stream was removed from the configuration (SIGHUP): tells the
  // leader (STOP), drops what it holds and its subscriptions, and does
  // nothing from now on. The replica stays as it is. The Replicator keeps
  // a retired Follower until the daemon exits (results of jobs already
  // started still arrive here: each is dropped), and routes nothing to it.
  // `why`: the STOP's reason after its "removed: " prefix (default: the
  // stream was removed from this region's configuration).
  void retire(const std::string& why = {});
  // Tells the leader (over a link that is up) that this region's
  // configuration no longer has the stream: its row for us reads `stopped`.
  // At retire(), and by the Replicator each time the link comes up.
  void announce_removed();

  // Operator's request to rebuild the replica from the leader. Refused
  // (kConflict) when the existing stream is not an Isthmus replica.
  Status request_rebuild();
  bool diverged() const { return phase_ == Phase::kDiverged; }
  // A pipeline has begun since this Follower was made: the replica is
  // prepared (its neutral limits and, on an interest stream, the retention
  // anchor in place).
  bool prepared_once() const { return prepared_once_; }
  // A start of the pipeline has put the replica's neutral limits and (on an
  // interest stream) its retention anchor in place: durables of this
  // region's own readers on the stream may go (Replicator::tick()).
  bool replica_ready() const { return replica_ready_; }

  // The lag figures (docs/http-api.md, GET /v1/lag).
  nlohmann::json lag_json() const;
  // Empty when healthy, otherwise why not.
  std::string problem() const;

 private:
  enum class Phase { kIdle, kAwaitInfo, kPreparing, kReplicating, kDiverged, kError, kRebuilding };
  enum class Rebuild { kNone, kRequested, kSyncing };
  static const char* phase_name(Phase p);

  struct Inflight {
    int64_t sent_mono_ns = 0;
    int64_t origin_time_ns = 0;
    size_t bytes = 0;
    bool filler = false;
  };
  // The figures both /v1/lag and LAG_REPORT carry, at one instant.
  struct LagFigures {
    bool offset_known = false;
    int64_t offset_ns = 0, offset_error_ns = -1;
    int64_t newest_applied_age_ns = -1;
    int64_t time_lag_ns = -1;       // current, corrected, clamped >= 0; -1 unknown
    int64_t last_time_lag_ns = -1;  // the last applied message's (current before the idle rule)
    bool time_lag_clamped = false;  // the corrected value was negative, shown as 0
    LagQuantiles window;
    SyncSnapshot sync;
    bool leader_in_sight = false;   // leader_in_sight() when read
  };
  LagFigures figures() const;
  // What one checkpoint's confirmation applies: the time and offset, read
  // once for all its messages.
  struct ApplyClock {
    int64_t wall_ns = 0, mono_ns = 0, offset_ns = 0, offset_error_ns = -1;
    bool offset_known = false;
  };
  ApplyClock apply_clock() const;
  void record_apply(uint64_t seq, const Inflight& in, const ApplyClock& c);
  // One lag sample into the window and histogram, unless it is history
  // (stored at the leader before the replica was created: counted apart).
  void record_lag(int64_t uncorrected_ns, int64_t origin_ns, const ApplyClock& c);
  bool is_history(int64_t origin_ns, const ApplyClock& c) const;
  void note_caught_up();  // latches caught_up_after_backlog_; note_current()
  void note_current();    // advances current_as_of_wall_ns_ when the last STATE's sequence is applied
  bool caught_up_now() const;  // applied all the leader is known to hold, nothing queued or in flight
  bool leader_fresh(int64_t now_mono) const;
  // The link is up and, while replicating, the leader was heard from (a
  // STATE) within kLeaderFreshNs: what the follower knows of the leader's
  // stream is about now. (leader_fresh() asks more: no congested path.)
  bool leader_in_sight(int64_t now_mono) const;
  void send_lag_report();

  void maybe_start();
  void read_local();
  void position_at(uint64_t to);
  // A divergence's detail for a replica whose leader stream was replaced.
  std::string replaced_detail(uint64_t seq, const std::string& evidence) const;
  // True when the replica lacks messages at its front (and it diverged).
  bool check_front(uint64_t replica_first);
  void reset(const std::string& why);
  // Drops what the pipeline holds (queued and in flight), remembering the
  // oldest dropped message for the current time lag (dropped_seq_).
  void drop_held();
  // from_seq: first sequence that may hold foreign messages (0: unknown);
  // marked: the replica's description already says so.
  void diverge(const std::string& why, uint64_t from_seq, bool marked = false);
  void mark_diverged(uint64_t from_seq);  // the replica's description says it (diverged=from_seq)
  void next_rebuild_part();
  void keep_foreign();
  void check_synced();
  void stop_leader(const std::string& reason);
  void prepared(uint64_t last_seq, uint64_t messages, uint64_t first_seq);
  void pump();
  // The leader's last messages are deleted (DELETED lists every sequence
  // from next_ to its last): nothing will come to fill that tail by, so
  // fill it now with deleted fillers, and the replica ends where the
  // leader's stream does (an idle stream read a sequence lag until the
  // next publish).
  void fill_deleted_tail();
  bool publish(const link::Message& m, bool filler, bool checkpoint);
  void on_ack(const nats::wire::ServerOp& msg);
  void on_late_ack(uint64_t seq, const nats::wire::ServerOp& msg);
  void confirm_through(uint64_t seq);
  void refused(uint64_t seq, const nats::PubAck& ack);
  void fail(const std::string& why);
  // Logs an error the stream stops on (fail(), a leader's refusal): a warning
  // the first time, and again only when it changes or a minute has passed
  // (every retry, 2 s, would repeat it); below that, debug.
  void warn_error(const std::string& why);
  void advance_applied();
  void forget_dropped_if_applied();
  bool watch_foreign();
  void on_foreign_publish(const nats::wire::ServerOp& msg);
  void on_write_refused(const std::string& subject, const std::string& error);
  bool write_refused_now() const;
  void check_replica();
  void trim();             // purge below the leader's first sequence
  // Purges the replica below `to` on the NATS worker (purge_pending_ until
  // it answers); `done` runs on the loop with the result, unless the
  // pipeline restarted meanwhile.
  void purge_replica_below(uint64_t to, std::function<void(Status)> done);
  void apply_deletes();    // delete what the leader deleted

  Context& ctx_;
  config::Stream cfg_;
  Phase phase_ = Phase::kIdle;
  bool retired_ = false;       // retire() ran: every callback returns at once
  std::unique_ptr<loop::Timer> retire_timer_;  // deletes fillers stored after retire()
  std::string detail_;         // why diverged/error
  std::string warned_error_;        // warn_error()'s last, until a write is acknowledged
  int64_t warned_error_mono_ns_ = 0;
  uint64_t unwarned_retries_ = 0;   // repeats of warned_error_ since it was logged
  int64_t unwarned_mono_ns_ = 0;    // the last of them
  bool retry_announced_ = false;    // the first retry after that warning was logged
  uint64_t gen_ = 1;           // pipeline generation: bumps on every reset
  uint64_t sub_id_ = 0;        // id of our current SUBSCRIBE
  int64_t phase_since_mono_ns_ = 0;
  // Preparing the replica is retried every 2 s after an error, less often
  // while its requests go unanswered and the server answers otherwise (a
  // clustered replica without a leader).
  UnansweredPace prepare_pace_{3};

  // Positions. next_ is the sequence the next publish must land at.
  uint64_t applied_ = 0;       // highest sequence stored with nothing missing below
  uint64_t next_ = 1;
  bool replica_empty_ = false; // no messages stored: a positioning purge is possible
  bool purge_pending_ = false;
  std::deque<link::Message> queue_;         // received, not yet published
  size_t queue_bytes_ = 0;
  // Published, not yet confirmed: sequences next_ - size() .. next_ - 1.
  std::deque<Inflight> inflight_;
  uint32_t since_checkpoint_ = 0;  // published since the last checkpoint
  bool last_publish_checkpoint_ = false;  // the newest of inflight_ asked for an acknowledgement
  size_t since_checkpoint_bytes_ = 0;
  bool ack_dirty_ = false;
  bool check_pending_ = false;
  bool draining_ = false;
  bool use_expected_last_ = true;  // false: no chain, every message acknowledged
  // nats-server's count for Nats-Expected-Last-Sequence minus the replica's
  // real last sequence (non-zero after a positioning purge on 2.9).
  int64_t guard_offset_ = 0;
  uint64_t ack_all_until_ = 0;     // acknowledge every message up to this sequence
  // After every (re)start and positioning purge, one write at a time until a
  // checkpoint is acknowledged: with a single write in flight a wrong offset
  // can only be refused, never accepted at another sequence (with several,
  // a too-low offset would let a later write match the count early).
  bool probation_ = true;
  // Late writes. A pipeline that restarts drops its writes in flight, but a
  // stalled nats-server may still hold them (the 10 s acknowledgement
  // timeout) and store them after the next pipeline read the replica: they
  // then take the places that pipeline writes to. Such a taken place is not
  // called foreign when it is no higher than this daemon (or the leader)
  // wrote: the next start checks every message from verify_from_ to the
  // replica's last, and resumes only if each is Isthmus's write of its own
  // sequence. Foreign publishes among late writes are the watch's: it stays
  // subscribed on the data connection across restarts and diverges the
  // stream in any phase; when that connection was replaced after dropped
  // writes were sent, the start checks from late_from_ as well.
  uint64_t written_high_ = 0;  // highest sequence written into this replica (0 when recreated)
  uint64_t verify_from_ = 0;   // a place was found taken: the next start checks from here (0: no)
  uint64_t late_from_ = 0, late_to_ = 0;  // dropped in flight, may still land (0: none)
  uint64_t late_nats_gen_ = 0;  // the data connection they were sent on
  bool late_unwatched_ = false;  // some were sent on an earlier connection
  std::set<uint64_t> late_fillers_pending_;  // dropped fillers: deleted if they landed
  // Dropped messages (not fillers), by sequence: those a start finds stored
  // are recorded as applied then (count, bytes, time lag), at most
  // kMaxLateWritesCheck of them.
  std::map<uint64_t, Inflight> late_held_;
  // Stored in place up to here, as an earlier pipeline's acknowledgement
  // said (on_late_ack): a later pipeline's write of these places is
  // refused, so dropping it adds nothing to late_held_ (no double count).
  uint64_t late_acked_to_ = 0;
  uint64_t late_checked_ = 0, late_fillers_ = 0;  // counted by the check's chunks so far
  bool late_writes_suspected(uint64_t replica_last, uint64_t from) const;
  void suspect_late_writes(uint64_t from);
  uint64_t check_from() const;  // where the next start's check begins (0: none)
  void late_writes_checked_to(uint64_t to);  // everything up to `to` was checked or confirmed
  void forget_late_writes();

  // Foreign writes: one watch subscription per replica subject.
  std::vector<std::string> replica_subjects_;
  std::vector<std::string> watched_subjects_;
  std::vector<std::unique_ptr<nats::DataSub>> watch_subs_;
  // Writes to those subjects that the server refuses (permissions).
  std::unique_ptr<nats::RefusedPublishWatch> write_watch_;
  std::string write_refused_;  // the last refused write's error, until a write is acknowledged
  int64_t write_refused_mono_ns_ = 0;
  uint64_t watch_nats_gen_ = 0;
  uint64_t foreign_publishes_seen_ = 0;

  // Retention in step with the leader.
  uint64_t leader_first_ = 0;      // highest first sequence the leader reported
  uint64_t replica_first_ = 0;     // the replica holds nothing below this
  std::set<uint64_t> to_delete_;   // deleted at the leader, maybe held here
  bool delete_pending_ = false;
  uint64_t trims_ = 0;
  uint64_t deletes_applied_ = 0;
  uint64_t deletes_unlogged_ = 0;     // applied since the last log line
  int64_t deletes_logged_mono_ns_ = 0;
  void log_deletes();

  std::unique_ptr<nats::DataSub> ack_sub_;
  nats::wire::HeaderBlock hdrs_;  // publish()'s scratch
  uint64_t unwritable_headers_ = 0;   // messages stored without a header the protocol cannot carry
  std::string last_matched_subject_;  // the last subject found among replica_subjects_
  uint64_t config_last_seq_ = 0;      // the leader's last sequence when replica_subjects_ were read
  std::string ack_prefix_;
  uint64_t ack_sub_nats_gen_ = 0;

  // What the leader told us, for lag.
  uint64_t leader_last_seq_ = 0;
  uint64_t leader_first_seq_ = 0;
  int64_t leader_last_time_ns_ = 0;
  int64_t last_applied_origin_ns_ = 0;
  int64_t last_apply_wall_ns_ = 0;
  int64_t leader_heard_mono_ns_ = 0;  // last STATE (or STREAM_INFO) from the leader
  // The replica's last confirmed message from this leader and its origin
  // store time (0: none known): a resend of it by the leader is compared
  // (on_data()), and a STATE must not end below it (on_state()).
  uint64_t known_seq_ = 0;
  int64_t known_time_ns_ = 0;
  bool awaiting_overlap_ = false;  // subscribed from known_seq_, not yet received: no trim()
  // Non-empty while known_seq_ is not the leader's message by its headers
  // (PrepResult::unverified): the leader's resend of it must carry the
  // same origin store time, or the replica diverges with this reason.
  std::string unverified_;
  // The last unverified message found to be this leader's (by sequence and
  // origin time): not compared again by a later pipeline of this daemon.
  uint64_t verified_seq_ = 0;
  int64_t verified_time_ns_ = 0;
  // Subscribed from known_seq_ below a deleted tail of the replica (its
  // sequences up to next_ - 1 were probed, none held): whatever of it the
  // leader sends again is a message the leader holds and the replica lost
  // (nats-server 2.9 drops writes into an interest stream while it shuts
  // down, each acknowledged; or deleted by hand). A sequence cannot be
  // written again: counted (missing_*), reported until a rebuild recreates
  // the replica or the leader removes them too (after a restart of the
  // daemon the hole check below finds them again).
  uint64_t deleted_tail_above_ = 0;
  std::set<uint64_t> lost_;  // such sequences, found so (at most kMaxMissingTracked)
  // Holes: sequences the replica lacks although the leader held them,
  // anywhere (a lost tail once written above, a message deleted by hand,
  // nats-server 2.9.10 dropping what an application consumer acknowledged
  // on an interest replica at a restart). The leader ends each complete
  // reconcile pass with an empty DELETED; the frames since the previous end
  // listed every sequence it lacked from its first to what it had sent us.
  // At that end the follower reads its replica's deleted list: a sequence
  // deleted here, at or below what was applied and received on this
  // subscription then, that the pass did not list, and that this daemon did
  // not delete itself since the end before that pass's (a leader's delete or
  // gap made after its read: the leader reads each pass after sending the one
  // before, so anything it deleted earlier is listed), is one the leader
  // held and the replica lacks. Reported once two checks in a row find it
  // (holes_); recomputed at every check, so it outlives a restart of the
  // daemon and clears when the leader removes it too.
  // The check covers what this subscription received (received_high_):
  // the pass lists the leader's deletes only up to what it sent. At most one
  // check every kHoleCheckEveryNs.
  std::vector<uint64_t> pass_deleted_;  // listed since the last end (unsorted)
  bool pass_overflow_ = false;          // too many to keep: this pass is not checked
  uint64_t pass_ends_seen_ = 0;         // none: a leader built before ends; nothing is kept
  // Sequences this daemon deleted from the replica (the leader's deletes,
  // fillers), each with the number of ends received when it did
  // (pass_ends_seen_): a check of the pass ended by end e excludes those
  // from e - 1 on. Kept only as long as a check may need them.
  std::deque<std::pair<uint64_t, uint64_t>> self_deleted_;  // (ends seen, sequence)
  uint64_t self_deleted_valid_from_ = 0;  // complete from this many ends on (an overflow cleared them)
  bool hole_check_pending_ = false;
  uint64_t hole_check_end_ = 0;  // the end number of the pass being checked
  void prune_self_deleted();
  int64_t next_hole_check_mono_ns_ = 0;
  uint64_t received_high_ = 0;             // highest DATA sequence of the current subscription
  std::vector<uint64_t> hole_candidates_;  // the last check's, sorted
  std::vector<uint64_t> holes_;            // reported: in the last two checks, sorted
  uint64_t hole_checks_ = 0;               // since the daemon started (/v1/lag)
  uint64_t hole_checked_to_ = 0;           // the last check's highest sequence
  uint64_t hole_candidate_seqs_ = 0;       // candidates found, summed over the checks (/v1/lag)
  void on_pass_end(uint64_t leader_first);
  // A complete pass to compare with, and the range it covers.
  struct HolePass {
    std::vector<uint64_t> listed;  // sorted
    uint64_t from = 0, upto = 0;
    uint64_t gen = 0;  // the pipeline it came in
    uint64_t end = 0;  // its end's number (pass_ends_seen_)
  };
  std::optional<HolePass> deferred_pass_;
  void start_hole_check();  // the deferred pass, when the pace allows
  void finish_hole_check(uint64_t from, uint64_t upto, const std::vector<uint64_t>& listed,
                         std::vector<uint64_t> replica_deleted);
  void note_self_deleted(uint64_t seq);
  size_t hole_check_cap() const;
  // missing_*: lost_ and holes_ together (what /v1/lag reports), after a change.
  void update_missing();
  void forget_missing();                   // a new replica lacks nothing
  void forget_missing_below(uint64_t seq);  // the leader no longer holds these either
  uint64_t missing_ = 0, missing_first_ = 0, missing_last_ = 0;
  uint64_t states_seen_ = 0;           // STATE frames received
  bool front_suspect_ = false;         // check_front() found the replica short once
  uint64_t front_suspect_states_ = 0;  // states_seen_ then
  bool local_read_ = false;           // read_local() asked (once per daemon run)
  std::string removed_why_;  // retire()'s reason (empty: the default)
  bool prepared_once_ = false;
  bool replica_ready_ = false;  // replica_ready()        // a pipeline has begun since this daemon started

  // Time lag (docs/architecture.md "Lag"): apply time (our wall clock when
  // the replica acknowledged) minus the origin store time (the leader's
  // clock), plus the leader's clock offset (leader minus us).
  int64_t time_lag_uncorrected_ns_ = 0;   // of the last applied message (may be negative)
  // Backlog: what the leader already held when this pipeline started
  // (sequences up to backlog_to_). When the last message applied was
  // backlog, its "lag" is its age; once the follower has caught up after
  // it (and nothing newer came), the current time lag is 0. So it is while
  // the follower is caught up and has applied nothing for kIdleLagZeroNs.
  uint64_t backlog_to_ = 0;
  bool last_apply_backlog_ = false;
  bool caught_up_after_backlog_ = false;
  int64_t last_apply_mono_ns_ = 0;
  // The oldest message a pipeline restart dropped unapplied (drop_held()):
  // its age counts in the current time lag until the follower applies it
  // (or the leader no longer holds it), so a replica stalled past the
  // acknowledgement timeout does not read as healthy.
  uint64_t dropped_seq_ = 0;
  int64_t dropped_origin_ns_ = 0;
  // When the leader was first known to hold sequences beyond what is
  // applied: (its last sequence, when it held it, on our clock), from its
  // STATEs, ascending, at most kMaxHoldMarks (while full, new ones wait).
  // A message this region lacks was stored no later than the first mark
  // at or above it: while the stream cannot apply (its NATS down, an
  // error, diverged) with the leader in sight, the current time lag is at
  // least that long ago, as the leader's row for it says.
  std::deque<std::pair<uint64_t, int64_t>> hold_marks_;
  void note_leader_holds(uint64_t last_seq, int64_t as_of_wall_ns);
  // Applied while no clock offset estimate existed (after a start, the
  // first heartbeats): their raw differences wait here, at most
  // kMaxDeferredLagSamples, and go into the histograms with the first
  // estimate (a restart's catch-up, the largest lags, is not lost); beyond
  // that they are only counted.
  struct DeferredLag {
    int64_t uncorrected_ns, origin_ns;
  };
  std::vector<DeferredLag> deferred_lag_uncorrected_;
  uint64_t lag_samples_unrecorded_ = 0;
  // The replica's creation time (its nats-server's clock, from the last
  // preparation; 0: unknown), and the messages applied that the leader had
  // stored before it: history copied, not lag samples (record_apply()).
  int64_t replica_created_ns_ = 0;
  // When the leader sent the last STATE (our clock: arrival minus the
  // heartbeats' transit; its sequence is state_last_seq_); and the latest
  // such time at which the replica held all that STATE named: the replica
  // was current then. It bounds the newest-applied age from above while
  // the leader is out of sight (figures()). 0: unknown.
  int64_t state_wall_ns_ = 0;
  int64_t current_as_of_wall_ns_ = 0;
  uint64_t history_applied_ = 0;
  void record_deferred_lag(const ApplyClock& c);
  LagHistogram lag_hist_;
  SyncProgress sync_;

  // Divergence: foreign messages in the replica, kept aside.
  uint64_t foreign_from_ = 0;        // first sequence that may hold one (0: unknown yet)
  uint64_t foreign_walk_next_ = 0;   // finding foreign_from_: the walk down goes on from here (0: from the end)
  uint64_t foreign_scanned_to_ = 0;  // examined up to here
  uint64_t foreign_found_ = 0;
  uint64_t foreign_kept_ = 0;
  bool foreign_busy_ = false;
  std::string foreign_error_;        // last failure keeping them aside
  bool pipeline_verified_ = false;   // applied_ was acknowledged in this run

  // Rebuild.
  Rebuild rebuild_ = Rebuild::kNone;
  uint64_t rebuild_known_from_ = 0;  // where foreign messages may start, if known
  uint64_t rebuild_resume_from_ = 0;  // the scan's next chunk starts here (0: from the start)
  uint64_t rebuild_walk_next_ = 0;    // the walk for the foreign tail's start goes on down from here (0: from the end)
  uint64_t rebuild_found_ = 0, rebuild_kept_ = 0;  // counted by the chunks done so far
  std::string storage_ = "file";     // the replica's storage (for the side stream)
  bool marker_clearing_ = false;
  bool state_seen_ = false;          // a STATE frame arrived since subscribing
  uint64_t state_last_seq_ = 0;      // the leader's last sequence in that frame
  RebuildProgress progress_;
  int64_t rebuild_started_mono_ns_ = 0;
  bool conflict_ = false;            // the existing stream is not a replica we may touch

  // Counters.
  uint64_t applied_msgs_ = 0;
  uint64_t applied_bytes_ = 0;
  uint64_t apply_errors_ = 0;
  uint64_t fillers_ = 0;
  uint64_t skipped_ = 0;  // sequences crossed by positioning after the replica held messages
  int64_t skipped_logged_mono_ns_ = 0;
  uint64_t resets_ = 0;
};

}  // namespace isthmus::replication
