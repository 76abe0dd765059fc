#include "replication/follower.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "loop/timer.h"
#include "nats/jsapi.h"
#include "replication/foreign.h"
#include "replication/headers.h"
#include "replication/info_reader.h"
#include "replication/lag_json.h"
#include "replication/replica_config.h"
#include "replication/side_stream.h"
#include "util/rfc3339.h"

namespace isthmus::replication {

using Json = nlohmann::json;

namespace {

// Publishes awaiting acknowledgement, per stream. Bounds what one stream can
// have outstanding at its local nats-server.
constexpr size_t kMaxInflight = 4096;
// Replica writes made and not yet taken by the socket (the data connection's
// buffer, shared by every stream): past this a follower publishes no more
// than one checkpoint and goes on when it is acknowledged. Without it a
// catch-up of hundreds of streams serialised every window's messages into
// that buffer in one loop iteration (and its TLS copy): 215 MB at 200 streams.
constexpr size_t kWriteBudgetBytes = 2 * 1024 * 1024;
// A checkpoint (a publish that asks for an acknowledgement) at least every
// this many messages or bytes, and at the end of every burst.
constexpr uint32_t kCheckpointEvery = 64;
constexpr size_t kCheckpointBytes = 256 * 1024;
constexpr int64_t kAckTimeoutNs = 10'000'000'000;
constexpr int64_t kInfoRetryNs = 5'000'000'000;
constexpr int64_t kErrorRetryNs = 2'000'000'000;
// A leader heard from (a STATE) this recently, over a link that is
// up, tells us its last sequence: "caught up" can be trusted.
constexpr int64_t kLeaderFreshNs = 3'000'000'000;
// Frames from the leader that take this long to arrive (its heartbeats'
// transit) come over a congested path: its last STATE is not recent enough
// to call a follower caught up.
constexpr int64_t kCongestedPathNs = 500'000'000;
// Caught up and nothing applied for this long: the current time lag is 0.
// Long enough that a stream written every few seconds shows its messages'
// lag, short enough that an idle one clears within seconds.
constexpr int64_t kIdleLagZeroNs = 5'000'000'000;
// Time-lag samples kept while no clock offset is known (8 bytes each).
constexpr size_t kMaxDeferredLagSamples = 131'072;
// A stream replicating this long since its last error has recovered from it.
constexpr int64_t kErrorClearedNs = 10'000'000'000;
// A refused replica write is still the stream's error this long after the
// last refusal, through the retries in between (write_refused_now()).
constexpr int64_t kWriteRefusedHoldNs = 10'000'000'000;
// JetStream's error code for a failed Nats-Expected-Last-Sequence check.
constexpr int kErrWrongLastSequence = 10071;
// A gap at least this long, entirely below the leader's first sequence, is
// crossed with one positioning purge rather than a filler per sequence.
constexpr uint64_t kPositionGapMin = 16;
// Deletions remembered for sequences not yet applied here.
constexpr size_t kMaxPendingDeletes = 1'000'000;
// Up to this many sequences to delete, the replica's deleted list is not read
// first (see apply_deletes).
constexpr size_t kDirectDeletes = 64;
// Sequences kept for the hole check (a pass's list, this daemon's deletes
// between two ends of a pass): a complete pass lists at most
// nats.reconcile_max_deleted, plus a deleted tail and the live deletes sent
// meanwhile; beyond this margin over it, a pass is not checked.
constexpr size_t kHoleCheckMargin = 65'536;
// At most one hole check in this long (each may read the replica's deleted
// list; a leader ends a pass after every delete advisory).
constexpr int64_t kHoleCheckEveryNs = 2'000'000'000;
// Lost tail sequences kept by sequence (a lost tail is tens of messages).
constexpr size_t kMaxMissingTracked = 1'000'000;

// Foreign messages examined per worker job (while diverged, and by a
// rebuild's scan), so one stream's backlog does not hold up the other
// streams' JetStream requests for long.
constexpr uint64_t kKeepAsideChunk = 2000;
// At most this many places (four windows in flight) are checked for late
// writes of a restarted pipeline; beyond that a taken place is foreign.
constexpr uint64_t kMaxLateWritesCheck = 4 * kMaxInflight;

// The origin headers of a message as STREAM.MSG.GET returns it (base64
// "hdrs"): false when it has none that parse.
bool message_origin(const Json& msg, Origin& o) {
  std::string block;
  std::vector<std::pair<std::string, std::string>> hv;
  return msg.contains("hdrs") && msg["hdrs"].is_string() &&
         nats::base64_decode(msg["hdrs"].get<std::string>(), block) && nats::parse_header_block(block, hv) &&
         parse_origin(hv, o);
}

struct PrepResult {
  Status st;
  bool conflict = false;  // the existing stream is not a replica we may touch
  std::string diverged;   // non-empty: the replica does not match
  uint64_t foreign_from = 0;
  bool marked = false;    // the replica's description already says diverged
  bool syncing = false;   // a rebuild's sync was under way (marker)
  bool rebuilt = false;   // the replica was deleted and recreated just now
  uint64_t rebuild_next = 0;  // a rebuild's scan stopped after a chunk: go on from here
  uint64_t rebuild_walk_next = 0;  // a rebuild's walk for the foreign tail's start goes on down from here
  bool scanned = false;       // a rebuild's scan ran: found/kept count this part of it
  bool scan_fresh = false;    // ... and it was the first part
  bool scan_done = false;     // a rebuild's scan reached the replica's end
  bool deleted = false;       // a rebuild deleted the replica (or found none)
  uint64_t found = 0, kept = 0;
  std::string storage;
  uint64_t last_seq = 0;
  uint64_t first_seq = 0;
  uint64_t messages = 0;
  int64_t last_origin_ns = 0;  // origin store time of the replica's last message
  // Non-empty: that message is not this leader's by its headers (stored
  // here while this region led the stream, or copied from an earlier
  // leader), and says why; it is this leader's message only if the leader's
  // at known_seq has the same origin store time (last_origin_ns).
  std::string unverified;
  bool anchored = false;  // the replica's limits and retention anchor are in place
  // Sequence of that message: last_seq, or below it when the replica's
  // last sequences are deleted (a filled deleted tail; the leader's
  // deletes applied); 0 when none was found.
  uint64_t known_seq = 0;
  uint64_t late_checked = 0;   // late writes checked (check_own_writes()), all Isthmus's own
  uint64_t late_fillers = 0;   // fillers among them, deleted
  bool unanswered_alone = false;  // timed out while the server answers (UnansweredPace)
  uint64_t verify_next = 0;    // the check stopped after a chunk: go on from here
  // The replica's creation time (its nats-server's clock; 0: unknown):
  // messages stored at the leader before it are history, not lag samples.
  int64_t created_ns = 0;
};

int64_t created_ns_of(const Json& info) {
  auto t = util::parse_rfc3339_ns(info.value("created", std::string()));
  return t ? *t : 0;
}

// Worker thread: keeps the foreign messages aside, then deletes the replica
// and recreates it empty (marked "syncing"). `sinfo` is the replica's
// current info (null: it does not exist). The sealed replica is examined
// kKeepAsideChunk sequences per call, from `resume_from` once an earlier
// call examined everything below it: a call that stops short sets
// r.rebuild_next and deletes nothing, so other streams' JetStream requests
// run between the chunks. So does the walk for where the foreign messages
// begin, when nothing says it: kKeepAsideChunk sequences per call, from
// `walk_top` down (0: from the last), r.rebuild_walk_next where it stopped;
// the start found goes into the marker.
void rebuild_replica(natsConnection* nc, const std::string& stream, const std::string& leader, const Json& want,
                     const Json* sinfo, uint64_t known_from, uint64_t resume_from, uint64_t walk_top, int replicas,
                     int64_t tmo, PrepResult& r) {
  r.rebuilt = true;
  if (sinfo != nullptr) {
    const Json& cfg = (*sinfo)["config"];
    Json state = (*sinfo)["state"];
    Marker mk = parse_marker(cfg.value("description", std::string()));
    uint64_t from = mk.kind == Marker::Kind::kDiverged || mk.kind == Marker::Kind::kRebuildRequested ? mk.seq : 0;
    // (What was known of an earlier replica says nothing of one a rebuild
    // has already recreated.)
    if (from == 0 && mk.kind != Marker::Kind::kRebuildSyncing) from = known_from;
    // A scan goes on from resume_from only in a replica this rebuild has
    // already sealed and marked; in any other (say, one recreated by a
    // rebuild whose last step failed, and written to since) it starts over.
    const bool continuing = mk.kind == Marker::Kind::kRebuildRequested && cfg.value("sealed", false);
    if (!continuing) resume_from = 0;
    if (!continuing) {
      // A replica Isthmus created is recreated with the leader's settings,
      // whatever they are now (subjects, storage, retention: a leader
      // stream created again with others); any other stream is not ours.
      std::string conflict = is_isthmus_replica(cfg, stream) ? std::string() : replica_conflict(cfg, want);
      if (!conflict.empty()) {
        r.conflict = true;
        r.st = Status(Code::kConflict, "existing stream conflicts with the leader's: " + conflict +
                                           "; Isthmus does not rebuild a stream it did not create");
        return;
      }
      // Sealed: nothing lands in the replica any more while we look.
      Marker req{Marker::Kind::kRebuildRequested, from};
      Status st = write_marker(nc, cfg, req, true, tmo);
      if (!st) {
        r.st = Status(st.code(), "rebuild: cannot seal the replica: " + st.message());
        return;
      }
      spdlog::info("stream {}: rebuild: replica sealed and marked", stream);
      // What landed before the seal is part of the scan.
      auto sealed = nats::stream_info(nc, stream, tmo);
      if (!sealed) {
        r.st = Status(sealed.status().code(), "rebuild: " + sealed.status().message());
        return;
      }
      state = (*sealed)["state"];
    }
    uint64_t first = state.value("first_seq", uint64_t{0});
    uint64_t last = state.value("last_seq", uint64_t{0});
    if (state.value("messages", uint64_t{0}) > 0) {
      // Where an earlier part stopped is past the tail's start: no need to
      // walk down to it again.
      if (from == 0) from = resume_from;
      if (from == 0) {
        auto w = foreign_tail_walk(nc, stream, leader, first, walk_top > 0 ? std::min(walk_top, last) : last,
                                   kKeepAsideChunk, tmo);
        if (!w) {
          r.st = Status(w.status().code(), "rebuild: " + w.status().message());
          return;
        }
        if (!w->done) {
          r.rebuilt = false;
          r.rebuild_walk_next = w->next;
          spdlog::info("stream {}: rebuild: looking for the last message Isthmus wrote from {}: none above "
                       "sequence {} (of {}..{})",
                       stream, leader, w->next, first, last);
          return;
        }
        from = w->start;
        // Later parts, and a restart, start from it.
        Status st = write_marker(nc, cfg, {Marker::Kind::kRebuildRequested, from}, true, tmo);
        if (!st) {
          r.st = Status(st.code(), "rebuild: cannot mark the replica: " + st.message());
          return;
        }
      }
      KeepAsideArgs ka;
      ka.stream = stream;
      ka.leader = leader;
      ka.storage = cfg.value("storage", std::string("file"));
      ka.replicas = replicas;
      ka.from_seq = std::max({from, first, resume_from});
      ka.to_seq = last;
      ka.max_scan = kKeepAsideChunk;
      ka.timeout_ms = tmo;
      KeepAsideResult k = keep_aside(nc, ka);
      if (!k.st) {
        r.st = Status(k.st.code(), "rebuild: keeping foreign messages aside: " + k.st.message());
        return;
      }
      r.found = k.found;
      r.kept = k.kept;
      r.scanned = true;
      r.scan_fresh = resume_from == 0;
      if (k.scanned_to < last) {
        r.rebuilt = false;
        r.rebuild_next = k.scanned_to + 1;
        spdlog::info("stream {}: rebuild: examined the replica up to sequence {} of {} ({} foreign in this part)",
                     stream, k.scanned_to, last, k.found);
        return;
      }
    }
    r.scan_done = true;
    Status st = nats::stream_delete(nc, stream, tmo);
    if (!st && st.code() != Code::kNotFound) {
      r.st = Status(st.code(), "rebuild: cannot delete the replica: " + st.message());
      return;
    }
    r.deleted = true;
    spdlog::info("stream {}: rebuild: replica deleted", stream);
  } else {
    r.deleted = true;
  }
  Json fresh = want;
  fresh["description"] = with_marker(want.value("description", std::string()), {Marker::Kind::kRebuildSyncing, 0});
  auto c = nats::stream_create(nc, fresh, tmo);
  if (!c) {
    r.st = Status(c.status().code(), "rebuild: cannot create the replica: " + c.status().message());
    return;
  }
  r.storage = fresh.value("storage", std::string("file"));
  r.created_ns = created_ns_of(*c);
  if (needs_retention_anchor(want)) {
    // Before anything is published (see the normal preparation).
    auto ci = nats::durable_create(nc, stream, retention_anchor_config(), tmo);
    if (!ci) {
      r.st = Status(ci.status().code(), std::string("rebuild: cannot create the retention anchor consumer ") +
                                            kRetentionAnchor + ": " + ci.status().message());
      return;
    }
  }
  spdlog::info("stream {}: rebuild: replica recreated", stream);
}

bool parse_u64(std::string_view s, uint64_t& out) {
  return !s.empty() && std::from_chars(s.data(), s.data() + s.size(), out).ec == std::errc();
}

}  // namespace

const char* Follower::phase_name(Phase p) {
  switch (p) {
    case Phase::kIdle: return "starting";
    case Phase::kAwaitInfo: return "starting";
    case Phase::kPreparing: return "starting";
    case Phase::kReplicating: return "replicating";
    case Phase::kDiverged: return "diverged";
    case Phase::kError: return "error";
    case Phase::kRebuilding: return "rebuilding";
  }
  return "unknown";
}

Follower::Follower(Context& ctx, config::Stream cfg) : ctx_(ctx), cfg_(std::move(cfg)) {
  phase_since_mono_ns_ = loop::mono_ns();
}

Follower::~Follower() = default;

void Follower::maybe_start() {
  if (phase_ != Phase::kIdle || retired_) return;
  if (!ctx_.conn || !ctx_.links->is_up(cfg_.leader)) return;
  link::StreamReq req;
  req.stream = cfg_.name;
  std::vector<uint8_t> f;
  encode(req, f);
  if (ctx_.links->send(cfg_.leader, std::move(f))) {
    phase_ = Phase::kAwaitInfo;
    phase_since_mono_ns_ = loop::mono_ns();
    ctx_.request_flush();
  }
}

void Follower::on_nats_up() {
  prepare_pace_.reset();  // a new server may answer
  read_local();
  maybe_start();
}

// What the replica holds, read once after this daemon starts without
// waiting for the leader: a follower started while its leader is away
// shows its applied sequence and the newest applied message's age (rising)
// instead of nothing. For the API only; the pipeline reads the replica
// again when it prepares, and a result that comes after that is dropped.
void Follower::read_local() {
  if (local_read_ || prepared_once_ || !ctx_.conn) return;
  local_read_ = true;
  struct Local {
    Status st;
    uint64_t last_seq = 0;
    int64_t last_origin_ns = 0;
  };
  std::string stream = cfg_.name;
  std::string leader = cfg_.leader;
  int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Local>(
      [stream, leader, tmo](natsConnection* nc) {
        Local r;
        auto si = nats::stream_info(nc, stream, tmo);
        if (!si) {
          r.st = si.status();
          return r;
        }
        const Json& state = (*si)["state"];
        if (state.value("messages", uint64_t{0}) == 0) return r;
        const uint64_t last = state.value("last_seq", uint64_t{0});
        auto m = nats::msg_get(nc, stream, last, tmo);
        Origin o;
        // Only a last message Isthmus wrote there, from this leader, says
        // how far the replica is applied (anything else is for the
        // pipeline's checks to name).
        if (m && message_origin(*m, o) && o.seq == last && o.region == leader) {
          r.last_seq = last;
          r.last_origin_ns = o.time_ns;
        }
        return r;
      },
      [this](Local r) {
        if (retired_ || prepared_once_ || !r.st || r.last_seq == 0) return;
        applied_ = std::max(applied_, r.last_seq);
        last_applied_origin_ns_ = std::max(last_applied_origin_ns_, r.last_origin_ns);
      });
}

void Follower::on_nats_down() {
  ack_sub_.reset();
  ack_sub_nats_gen_ = 0;
  watch_subs_.clear();
  write_watch_.reset();
  watched_subjects_.clear();
  watch_nats_gen_ = 0;
  reset("local NATS connection lost");
}

void Follower::on_link_up() { maybe_start(); }

void Follower::on_link_down() { reset("link to leader " + cfg_.leader + " down"); }

void Follower::announce_removed() {
  if (!ctx_.links->is_up(cfg_.leader)) return;
  stop_leader(std::string(link::kStopRemovedPrefix) +
              (!removed_why_.empty() ? removed_why_
                                     : "stream " + cfg_.name + " was removed from region " + ctx_.cfg->region.name +
                                           "'s configuration"));
}

void Follower::retire(const std::string& why) {
  if (retired_) return;
  removed_why_ = why;
  announce_removed();
  retired_ = true;
  ++gen_;  // every result of a job under way is dropped
  drop_held();
  // Fillers in flight (or dropped in flight by an earlier restart of the
  // pipeline) that get stored would stay in the replica: nobody confirms
  // them now. Once they have had time to land, each that is a filler is
  // deleted, as a confirmed one is.
  if (!late_fillers_pending_.empty() && ctx_.loop != nullptr) {
    std::vector<uint64_t> fillers(late_fillers_pending_.begin(), late_fillers_pending_.end());
    retire_timer_ = std::make_unique<loop::Timer>(ctx_.loop);
    retire_timer_->start(3000, 0, [this, fillers] {
      const std::string stream = cfg_.name, leader = cfg_.leader;
      const int64_t tmo = ctx_.timeout_ms();
      ctx_.nats->run([stream, leader, fillers, tmo](natsConnection* nc) {
        if (nc == nullptr) return;
        uint64_t deleted = 0;
        for (uint64_t fs : fillers) {
          auto c = check_own_writes(nc, stream, leader, fs, fs, tmo);
          if (!c.st) break;
          deleted += c.fillers_deleted;
        }
        if (deleted > 0) spdlog::info("stream {}: {} filler(s) stored after it was removed deleted", stream, deleted);
      });
    });
  }
  late_fillers_pending_.clear();
  ack_sub_.reset();
  watch_subs_.clear();
  write_watch_.reset();
  watched_subjects_.clear();
  to_delete_.clear();
  purge_pending_ = check_pending_ = delete_pending_ = false;
  if (removed_why_.empty()) {
    spdlog::info("stream {}: no longer followed; the replica stays as it is (last sequence {})", cfg_.name, applied_);
  } else {
    spdlog::info("stream {}: no longer followed from {}: {} (last sequence {})", cfg_.name, cfg_.leader, removed_why_,
                 applied_);
  }
}

void Follower::reset(const std::string& why) {
  if (phase_ == Phase::kDiverged || retired_) return;
  bool was_active = phase_ == Phase::kReplicating || !inflight_.empty();
  ++gen_;
  drop_held();
  purge_pending_ = false;
  check_pending_ = false;
  delete_pending_ = false;
  if (was_active) {
    ++resets_;
    spdlog::info("stream {}: replication pipeline reset ({}); resuming from the replica's last sequence",
                 cfg_.name, why);
  }
  phase_ = Phase::kIdle;
  phase_since_mono_ns_ = loop::mono_ns();
  maybe_start();
}

void Follower::drop_held() {
  int64_t origin = 0;
  uint64_t first = 0;
  if (!inflight_.empty()) {
    first = next_ - inflight_.size();
    origin = inflight_.front().origin_time_ns;
  } else if (!queue_.empty()) {
    first = queue_.front().seq;
    origin = queue_.front().time_ns;
  }
  // Keep the older of the two (an earlier restart's, if still unapplied).
  if (origin > 0 && first > applied_ && (dropped_seq_ <= applied_ || first < dropped_seq_)) {
    dropped_seq_ = first;
    dropped_origin_ns_ = origin;
  }
  // Writes dropped in flight may still be stored (late writes).
  if (!inflight_.empty()) {
    const uint64_t from = next_ - inflight_.size();
    if (late_to_ > 0 && late_nats_gen_ != ctx_.nats_gen) late_unwatched_ = true;
    late_from_ = late_from_ == 0 ? from : std::min(late_from_, from);
    late_to_ = std::max(late_to_, next_ - 1);
    late_nats_gen_ = ctx_.nats_gen;
    uint64_t s = from;
    for (const Inflight& in : inflight_) {
      if (in.filler) {
        if (late_fillers_pending_.size() < kMaxInflight) late_fillers_pending_.insert(s);
      } else if (s > late_acked_to_ && late_held_.size() < kMaxLateWritesCheck) {
        late_held_.emplace(s, in);  // (at or below late_acked_to_: stored, and recorded, already)
      }
      ++s;
    }
  }
  queue_.clear();
  queue_bytes_ = 0;
  inflight_.clear();
}

bool Follower::late_writes_suspected(uint64_t replica_last, uint64_t from) const {
  // Isthmus's own writes never go past the leader's last sequence (after a
  // daemon restart written_high_ knows nothing of the old process's).
  return from > 0 && replica_last >= from && replica_last <= std::max(written_high_, leader_last_seq_) &&
         replica_last - from < kMaxLateWritesCheck;
}

void Follower::suspect_late_writes(uint64_t from) {
  verify_from_ = verify_from_ == 0 ? from : std::min(verify_from_, from);
}

uint64_t Follower::check_from() const {
  uint64_t from = verify_from_;
  // The watch for foreign writes was not up on one connection throughout
  // since dropped writes were sent (the data connection was replaced, or is
  // down): a foreign publish stored among them may have gone unseen. Check
  // them all.
  if (late_from_ > 0 && (late_unwatched_ || late_nats_gen_ != ctx_.nats_gen || !ctx_.data)) {
    from = from == 0 ? late_from_ : std::min(from, late_from_);
  }
  return from;
}

void Follower::forget_late_writes() {
  late_held_.clear();
  late_acked_to_ = 0;
  verify_from_ = 0;
  late_from_ = late_to_ = late_nats_gen_ = 0;
  late_unwatched_ = false;
  late_fillers_pending_.clear();
  late_checked_ = late_fillers_ = 0;
}

void Follower::late_writes_checked_to(uint64_t to) {
  if (verify_from_ > 0 && verify_from_ <= to) verify_from_ = 0;
  if (late_from_ > 0 && late_from_ <= to) late_from_ = to + 1;
  late_fillers_pending_.erase(late_fillers_pending_.begin(), late_fillers_pending_.upper_bound(to));
  // Every place up to late_to_ holds something now: no dropped write can
  // land any more (it would find its place taken).
  if (late_to_ > 0 && (to >= late_to_ || late_from_ > late_to_)) {
    late_from_ = late_to_ = late_nats_gen_ = 0;
    late_unwatched_ = false;
  }
}

void Follower::stop_leader(const std::string& reason) {
  link::Stop stop;
  stop.stream = cfg_.name;
  stop.reason = reason;
  std::vector<uint8_t> f;
  encode(stop, f);
  ctx_.links->send(cfg_.leader, std::move(f));
  ctx_.request_flush();
}

void Follower::diverge(const std::string& why, uint64_t from_seq, bool marked) {
  if (phase_ == Phase::kDiverged || rebuild_ == Rebuild::kRequested || retired_) return;
  ++gen_;
  drop_held();
  purge_pending_ = false;
  phase_ = Phase::kDiverged;
  detail_ = why;
  forget_late_writes();
  phase_since_mono_ns_ = loop::mono_ns();
  if (rebuild_ == Rebuild::kSyncing) {
    rebuild_ = Rebuild::kNone;
    progress_.stop();
  }
  // The watch has done its job; keep_foreign() finds what else arrives (and
  // a flood of foreign writes does not pile up in this daemon).
  watch_subs_.clear();
  write_watch_.reset();
  watched_subjects_.clear();
  foreign_from_ = from_seq;
  foreign_walk_next_ = 0;
  foreign_scanned_to_ = 0;
  foreign_found_ = 0;
  foreign_kept_ = 0;
  foreign_error_.clear();
  spdlog::error("stream {}: DIVERGED, replication stopped: {}", cfg_.name, why);
  stop_leader("diverged: " + why);
  if (!marked) mark_diverged(from_seq);
  keep_foreign();
}

// Marks the replica, so that a restart knows it diverged and from where.
void Follower::mark_diverged(uint64_t from_seq) {
  std::string stream = cfg_.name;
  int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Status>(
      [stream, from_seq, tmo](natsConnection* nc) {
        auto si = nats::stream_info(nc, stream, tmo);
        if (!si) return si.status();
        return write_marker(nc, (*si)["config"], {Marker::Kind::kDiverged, from_seq}, false, tmo);
      },
      [stream](Status st) {
        if (!st) spdlog::warn("stream {}: could not mark the replica diverged: {}", stream, st.message());
      });
}

void Follower::keep_foreign() {
  if (foreign_busy_ || !ctx_.conn || phase_ != Phase::kDiverged) return;
  foreign_busy_ = true;
  uint64_t g = gen_;
  KeepAsideArgs a;
  a.stream = cfg_.name;
  a.leader = cfg_.leader;
  a.storage = storage_;
  a.replicas = ctx_.cfg->nats.replicas;
  a.from_seq = std::max(foreign_from_, foreign_scanned_to_ + 1);
  a.max_scan = kKeepAsideChunk;
  a.timeout_ms = ctx_.timeout_ms();
  bool need_start = foreign_from_ == 0;
  const uint64_t walk_top = foreign_walk_next_;
  struct Out {
    KeepAsideResult k;
    uint64_t from = 0;
    uint64_t walk_next = 0;  // the walk for the tail's start goes on from here (next tick)
  };
  ctx_.async<Out>(
      [a, need_start, walk_top](natsConnection* nc) mutable {
        Out o;
        auto si = nats::stream_info(nc, a.stream, a.timeout_ms);
        if (!si) {
          o.k.st = si.status();
          return o;
        }
        uint64_t first = (*si)["state"].value("first_seq", uint64_t{0});
        a.to_seq = (*si)["state"].value("last_seq", uint64_t{0});
        if (need_start) {
          // In parts (a long stream none of whose messages Isthmus wrote,
          // e.g. one this region led, must not hold the other streams'
          // requests for long): kKeepAsideChunk sequences per job.
          auto w = foreign_tail_walk(nc, a.stream, a.leader, first,
                                     walk_top > 0 ? std::min(walk_top, a.to_seq) : a.to_seq, kKeepAsideChunk,
                                     a.timeout_ms);
          if (!w) {
            o.k.st = w.status();
            return o;
          }
          if (!w->done) {
            o.walk_next = w->next;
            return o;
          }
          a.from_seq = w->start;
        }
        a.from_seq = std::max(a.from_seq, first);
        o.from = a.from_seq;
        if (a.from_seq > a.to_seq) {
          o.k.scanned_to = a.to_seq;
          return o;
        }
        o.k = keep_aside(nc, a);
        return o;
      },
      [this, g, need_start](Out o) {
        foreign_busy_ = false;
        if (g != gen_ || phase_ != Phase::kDiverged) return;
        if (o.walk_next > 0) {
          foreign_walk_next_ = o.walk_next;
          return;
        }
        if (need_start && o.from > 0) {
          foreign_from_ = o.from;
          mark_diverged(o.from);  // (a restart, or a rebuild, need not walk again)
        }
        foreign_found_ += o.k.found;
        foreign_kept_ += o.k.kept;
        foreign_scanned_to_ = std::max(foreign_scanned_to_, o.k.scanned_to);
        if (o.k.found > 0) {
          spdlog::error("stream {}: {} foreign message(s) found in the replica (sequences {}..{}), {} kept aside in "
                        "{}; {} found, {} kept aside since the divergence",
                        cfg_.name, o.k.found, o.k.first_found, o.k.last_found, o.k.kept,
                        side_stream_name(cfg_.name), foreign_found_, foreign_kept_);
        }
        if (!o.k.st) {
          if (foreign_error_ != o.k.st.message()) {
            spdlog::warn("stream {}: keeping foreign messages aside: {}", cfg_.name, o.k.st.message());
          }
          foreign_error_ = o.k.st.message();
        } else {
          foreign_error_.clear();
        }
      });
}

Status Follower::request_rebuild() {
  if (conflict_) return Status(Code::kConflict, detail_);
  // Already under way (requested, or syncing the new replica): a second
  // request changes nothing. (A rebuild's sync that diverges is no longer
  // under way: diverge() ends it, and a request starts another.)
  if (rebuild_ != Rebuild::kNone) return Status::ok();
  uint64_t known_from = 0;
  if (phase_ == Phase::kDiverged) {
    known_from = foreign_from_;
  } else if (pipeline_verified_) {
    known_from = applied_ + 1;
  }
  bool was_subscribed = phase_ == Phase::kReplicating || phase_ == Phase::kPreparing;
  ++gen_;
  drop_held();
  purge_pending_ = false;
  check_pending_ = false;
  pipeline_verified_ = false;
  if (was_subscribed && ctx_.links->is_up(cfg_.leader)) stop_leader("rebuild requested");
  rebuild_ = Rebuild::kRequested;
  rebuild_known_from_ = known_from;
  rebuild_resume_from_ = 0;
  rebuild_walk_next_ = 0;
  rebuild_found_ = rebuild_kept_ = 0;
  rebuild_started_mono_ns_ = loop::mono_ns();
  to_delete_.clear();  // about the replica being dropped; the new one syncs without them
  progress_.stop();
  detail_.clear();
  spdlog::warn("stream {}: rebuild requested: the replica's foreign messages go aside into {}, then it is deleted "
               "and synced again from {}",
               cfg_.name, side_stream_name(cfg_.name), cfg_.leader);
  phase_ = Phase::kIdle;
  phase_since_mono_ns_ = loop::mono_ns();
  maybe_start();
  return Status::ok();
}

void Follower::check_synced() {
  // Caught up: the replica holds the leader's last sequence as of the
  // latest STATE frame (at most about a second old). Not "nothing queued":
  // under steady traffic there always is.
  if (rebuild_ != Rebuild::kSyncing || phase_ != Phase::kReplicating || marker_clearing_ || !state_seen_ ||
      purge_pending_ || applied_ < state_last_seq_) {
    return;
  }
  // The rebuild's sync has caught up (for good: the API says so from now on,
  // while the mark is cleared).
  progress_.caught_up(loop::mono_ns());
  marker_clearing_ = true;
  uint64_t g = gen_;
  std::string stream = cfg_.name;
  int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Status>(
      [stream, tmo](natsConnection* nc) {
        auto si = nats::stream_info(nc, stream, tmo);
        if (!si) return si.status();
        return write_marker(nc, (*si)["config"], {}, false, tmo);
      },
      [this, g](Status st) {
        marker_clearing_ = false;
        if (g != gen_ || rebuild_ != Rebuild::kSyncing) return;
        if (!st) {
          spdlog::warn("stream {}: rebuild: could not clear the replica's mark: {}", cfg_.name, st.message());
          return;
        }
        rebuild_ = Rebuild::kNone;
        double secs = static_cast<double>(loop::mono_ns() - rebuild_started_mono_ns_) / 1e9;
        rebuild_started_mono_ns_ = 0;
        progress_.stop();
        spdlog::info("stream {}: rebuild done: the replica matches {} up to sequence {} ({:.1f} s in this run)",
                     cfg_.name, cfg_.leader, applied_, secs);
      });
}

Status Follower::on_stream_info(const link::StreamInfo& info) {
  if (retired_) return Status::ok();
  if (info.error.rfind(link::kNotLeaderPrefix, 0) == 0) {
    // The leader no longer leads the stream (removed from its configuration
    // by reload): stop, in error, and ask again every 2 s as after any
    // error (it may come back). Only while replicating: a replica being
    // prepared goes on (its SUBSCRIBE is answered the same way), diverged
    // stays diverged, and a request's own answer comes without the prefix
    // (one with it meanwhile answered a report sent before the request: the
    // stream may be back by now).
    if (phase_ == Phase::kReplicating) {
      fail("leader " + cfg_.leader + ": " + info.error.substr(link::kNotLeaderPrefix.size()));
    }
    return Status::ok();
  }
  if (info.error.rfind(link::kReplacedPrefix, 0) == 0) {
    // The leader says the replica no longer matches its stream (deleted and
    // created again): unasked while we replicate or prepare (the start in
    // progress could not tell), or in answer to our request after this
    // daemon or the link was away (before anything touches the replica).
    // (A rebuild's own request goes on as after any error answer.)
    const bool asked = phase_ == Phase::kAwaitInfo && rebuild_ == Rebuild::kNone;
    if (asked || phase_ == Phase::kReplicating || phase_ == Phase::kPreparing) {
      diverge("leader " + cfg_.leader + ": " + info.error.substr(link::kReplacedPrefix.size()) +
                  ". A rebuild copies the new stream; it deletes this replica's messages, the old stream's, so "
                  "keep a copy first if they are wanted",
              asked ? 0 : applied_ + 1);
      return Status::ok();
    }
    if (phase_ != Phase::kAwaitInfo) return Status::ok();
  }
  if (phase_ != Phase::kAwaitInfo) return Status::ok();
  if (!info.error.empty()) {
    phase_ = Phase::kError;
    detail_ = "leader " + cfg_.leader + ": " + info.error;
    phase_since_mono_ns_ = loop::mono_ns();
    warn_error(detail_);
    return Status::ok();
  }
  leader_first_seq_ = info.first_seq;
  leader_last_seq_ = std::max(leader_last_seq_, info.last_seq);
  Json leader_cfg = Json::parse(info.config_json, nullptr, false);
  if (leader_cfg.is_discarded()) return Status(Code::kInvalid, "stream_info: unparsable configuration");
  auto wanted = derive_replica_config(leader_cfg, ctx_.cfg->nats.replicas);
  if (!wanted) {
    phase_ = Phase::kError;
    detail_ = wanted.status().message();
    phase_since_mono_ns_ = loop::mono_ns();
    warn_error(detail_);
    return Status::ok();
  }
  replica_subjects_.clear();
  last_matched_subject_.clear();
  config_last_seq_ = info.last_seq;
  if (wanted->contains("subjects") && (*wanted)["subjects"].is_array()) {
    for (const auto& sj : (*wanted)["subjects"]) {
      if (sj.is_string()) replica_subjects_.push_back(sj.get<std::string>());
    }
  }
  bool rebuild = rebuild_ == Rebuild::kRequested;
  phase_ = rebuild ? Phase::kRebuilding : Phase::kPreparing;
  leader_heard_mono_ns_ = loop::mono_ns();
  // Fresh from the leader: never trim by a first sequence of an earlier session.
  leader_first_ = info.first_seq;
  uint64_t g = gen_;
  std::string stream = cfg_.name;
  std::string leader = cfg_.leader;
  int64_t tmo = ctx_.timeout_ms();
  int replicas = ctx_.cfg->nats.replicas;
  uint64_t known_from = rebuild_known_from_;
  uint64_t resume_from = rebuild_resume_from_;
  uint64_t walk_top = rebuild_walk_next_;
  uint64_t verify_from = check_from();
  std::vector<uint64_t> late_fillers(late_fillers_pending_.begin(), late_fillers_pending_.end());
  Json want = *wanted;
  std::function<PrepResult(natsConnection*)> prepare =
      [stream, leader, tmo, want, rebuild, known_from, resume_from, walk_top, replicas, verify_from,
       late_fillers](natsConnection* nc) {
        PrepResult r;
        auto sinfo = nats::stream_info(nc, stream, tmo);
        if (!sinfo && sinfo.status().code() != Code::kNotFound) {
          r.st = sinfo.status();
          return r;
        }
        Marker mk;
        if (sinfo) {
          mk = parse_marker((*sinfo)["config"].value("description", std::string()));
          r.storage = (*sinfo)["config"].value("storage", std::string("file"));
        }
        if (rebuild || mk.kind == Marker::Kind::kRebuildRequested) {
          rebuild_replica(nc, stream, leader, want, sinfo ? &*sinfo : nullptr, known_from, resume_from, walk_top,
                          replicas, tmo, r);
          return r;
        }
        if (!sinfo) {
          sinfo = nats::stream_create(nc, want, tmo);
          if (sinfo) spdlog::info("stream {}: created replica", stream);
        }
        if (!sinfo) {
          r.st = sinfo.status();
          return r;
        }
        // A replica Isthmus created follows the leader's subjects (a stream
        // update at the leader added or removed one); any other stream with
        // other subjects is not ours to change.
        Json have = (*sinfo)["config"];
        std::string subject_change;
        if (is_isthmus_replica(have, stream)) {
          subject_change = replica_subject_change(have, want);
          if (!subject_change.empty()) have["subjects"] = want["subjects"];
        }
        std::string conflict = replica_conflict(have, want);
        if (!conflict.empty()) {
          // A replica Isthmus created (the leader's stream was created
          // again with other settings): a rebuild recreates it. Any other
          // stream is not ours to delete (409 to a rebuild).
          const bool ours = is_isthmus_replica(have, stream);
          r.conflict = !ours;
          r.st = Status(Code::kConflict, "existing stream conflicts with the leader's: " + conflict +
                                             (ours ? "; rebuild the replica (POST /v1/streams/" + stream +
                                                         "/rebuild) to recreate it with the leader's settings"
                                                   : ""));
          return r;
        }
        auto changes = replica_limit_changes(have, want);
        if (!changes.empty() || !subject_change.empty()) {
          // The replica removes messages only in step with the leader: its
          // own limits must never expire, discard or refuse anything.
          std::string list;
          for (const auto& c : changes) list += (list.empty() ? "" : ", ") + c;
          auto upd = nats::stream_update(nc, with_neutral_limits(have, want), tmo);
          if (!upd) {
            r.st = Status(upd.status().code(),
                          (subject_change.empty() ? "" : "cannot give the replica the leader's subjects (" +
                                                             subject_change + ")" + (list.empty() ? "" : " and "))
                              + (list.empty() ? "" : "cannot give the replica neutral limits (" + list + ")") + ": " +
                              upd.status().message());
            return r;
          }
          if (!subject_change.empty()) {
            spdlog::info("stream {}: the leader's subjects changed; the replica's follow: {}", stream, subject_change);
          }
          if (!list.empty()) {
            spdlog::warn("stream {}: replica had limits of its own; updated to neutral ones ({})", stream, list);
          }
          sinfo = std::move(upd);
        }
        if (needs_retention_anchor(want)) {
          // Before anything is published: an interest replica with no
          // consumer would drop every message at once.
          auto ci = nats::consumer_info(nc, stream, kRetentionAnchor, tmo);
          if (!ci && ci.status().code() == Code::kNotFound) {
            ci = nats::durable_create(nc, stream, retention_anchor_config(), tmo);
            if (ci) spdlog::info("stream {}: created retention anchor consumer {}", stream, kRetentionAnchor);
          }
          if (!ci) {
            r.st = Status(ci.status().code(), std::string("cannot ensure the retention anchor consumer ") +
                                                  kRetentionAnchor + ": " + ci.status().message());
            return r;
          }
        }
        r.anchored = true;
        const Json& state = (*sinfo)["state"];
        r.created_ns = created_ns_of(*sinfo);
        r.last_seq = state.value("last_seq", uint64_t{0});
        r.first_seq = state.value("first_seq", uint64_t{0});
        r.messages = state.value("messages", uint64_t{0});
        if (mk.kind == Marker::Kind::kDiverged) {
          r.diverged = "the replica was marked diverged" +
                       (mk.seq > 0 ? " from sequence " + std::to_string(mk.seq) : std::string()) +
                       " (before this start); realign it with a rebuild";
          r.foreign_from = mk.seq;
          r.marked = true;
          return r;
        }
        r.syncing = mk.kind == Marker::Kind::kRebuildSyncing;
        if (r.messages > 0 && r.last_seq > 0) {
          // The replica's last message; past a deleted tail (fillers, the
          // leader's deletes, writes nats-server dropped while it shut
          // down), the last one it holds: found by halving, "is anything
          // held at or above s" (a message at or above first_seq is; none
          // at or above last_seq is), about log2(last - first) requests.
          uint64_t at = r.last_seq;
          auto m = nats::msg_get(nc, stream, at, tmo);
          if (!m && m.status().code() == Code::kNotFound && r.first_seq < r.last_seq) {
            uint64_t lo = r.first_seq, hi = r.last_seq;
            m = nats::msg_get(nc, stream, lo, tmo);
            while (m && hi - lo > 1) {
              const uint64_t mid = lo + (hi - lo) / 2;
              auto n = nats::msg_get_next(nc, stream, mid, tmo);
              if (n) {
                const uint64_t q = (*n).value("seq", uint64_t{0});
                if (q < mid || q >= hi) {
                  // A write landed above meanwhile (not Isthmus's: its
                  // pipeline is stopped): no tail to go by.
                  m = Status(Code::kNotFound, "the replica's end moved while it was read");
                  break;
                }
                lo = q;
                m = std::move(n);
              } else if (n.status().code() == Code::kNotFound) {
                hi = mid;
              } else {
                m = std::move(n);  // the error
              }
            }
            at = lo;
          }
          if (m) {
            Origin o;
            const std::string which = at == r.last_seq ? "the replica's last message (sequence " + std::to_string(at)
                                                       : "the replica's last message held (sequence " +
                                                             std::to_string(at) + ", below deleted ones";
            if (!message_origin(*m, o)) {
              // Stored here by a client: this region led the stream before
              // (the leader was changed), or a foreign write. The leader's
              // message at this sequence tells (a copy keeps its origin
              // store time: Leader::on_msg()).
              auto t = util::parse_rfc3339_ns((*m).value("time", std::string()));
              if (t && *t > 0) {
                r.unverified = which + ") was not written by Isthmus";
                r.last_origin_ns = *t;
                r.known_seq = at;
              } else {
                r.diverged = which + ") was not written by Isthmus";
              }
            } else if (o.seq != at) {
              r.diverged = which + ") carries leader sequence " + std::to_string(o.seq);
            } else if (o.region != leader && o.time_ns > 0) {
              // Copied from an earlier leader of the stream: the same test.
              r.unverified = which + ") came from region " + o.region + ", not " + leader;
              r.last_origin_ns = o.time_ns;
              r.known_seq = at;
            } else if (o.region != leader) {
              r.diverged = which + ") came from region " + o.region + ", not " + leader;
            } else {
              r.last_origin_ns = o.time_ns;
              r.known_seq = at;
            }
            // (A divergence found here: where its foreign messages begin
            // is found by keep_foreign()'s walk, in parts.)
          } else if (m.status().code() != Code::kNotFound) {
            r.st = m.status();
          }
        }
        const uint64_t from = std::max(verify_from, r.first_seq);
        uint64_t checked_to = 0;  // the check below examined [from, checked_to]
        if (r.st && r.diverged.empty() && verify_from > 0 && r.messages > 0 && from <= r.last_seq) {
          // Places a dropped pipeline wrote to, maybe stored after it
          // restarted: each must be Isthmus's write of its own sequence.
          // kKeepAsideChunk per job (other streams' requests run between).
          if (r.last_seq - verify_from >= kMaxLateWritesCheck) {
            r.diverged = "the replica holds sequences up to " + std::to_string(r.last_seq) + ", more than " +
                         std::to_string(kMaxLateWritesCheck) + " places past " + std::to_string(verify_from - 1) +
                         " to check for late writes";
            r.foreign_from = verify_from;
            return r;
          }
          const uint64_t to = std::min(r.last_seq, from + kKeepAsideChunk - 1);
          checked_to = to;
          auto c = check_own_writes(nc, stream, leader, from, to, tmo);
          if (!c.st) {
            r.st = c.st;
          } else if (c.foreign_at > 0) {
            r.diverged = "the replica's sequence " + std::to_string(c.foreign_at) + " was not written there by Isthmus (" +
                         c.why + ")";
            r.foreign_from = c.foreign_at;
          } else {
            r.late_checked = c.checked;
            r.late_fillers = c.fillers_deleted;
            if (to < r.last_seq) r.verify_next = to + 1;
          }
        }
        if (r.st && r.diverged.empty() && r.verify_next == 0) {
          // Fillers dropped in flight that were stored after all: delete
          // them, as a confirmed filler is (each checked to be one).
          for (uint64_t fs : late_fillers) {
            if (fs > r.last_seq || fs < r.first_seq || (fs >= from && fs <= checked_to)) continue;  // (checked above)
            auto c = check_own_writes(nc, stream, leader, fs, fs, tmo);
            if (!c.st) {
              r.st = c.st;
              break;
            }
            r.late_fillers += c.fillers_deleted;
          }
        }
        return r;
      };
  ctx_.async<PrepResult>(
      [prepare = std::move(prepare), tmo](natsConnection* nc) {
        PrepResult r = prepare(nc);
        r.unanswered_alone = !r.st && r.st.code() == Code::kTimeout && nats::answers_ping(nc, tmo);
        return r;
      },
      [this, g, verify_from, leader_last = info.last_seq](PrepResult r) {
        if (g != gen_ || (phase_ != Phase::kPreparing && phase_ != Phase::kRebuilding)) return;
        if (r.anchored) replica_ready_ = true;
        const int64_t pause = prepare_pace_.note(r.unanswered_alone, loop::mono_ns());
        conflict_ = r.conflict;
        if (!r.storage.empty()) storage_ = r.storage;
        if (r.st && r.created_ns > 0) replica_created_ns_ = r.created_ns;
        if (r.scanned) {
          // Counts of the scan (a part of it when it goes in parts); a
          // scan that starts over counts over.
          if (r.scan_fresh) rebuild_found_ = rebuild_kept_ = 0;
          rebuild_found_ += r.found;
          rebuild_kept_ += r.kept;
        }
        if (r.rebuild_walk_next > 0 && r.st) {
          // One part of the rebuild's walk done: the next is another job.
          rebuild_walk_next_ = r.rebuild_walk_next;
          next_rebuild_part();
          return;
        }
        if (r.scanned || r.rebuilt) rebuild_walk_next_ = 0;  // (the walk is over: its start is in the marker)
        if (r.rebuild_next > 0 && r.st) {
          // One part of the rebuild's scan done: the next is another job.
          // (Also when the rebuild was found under way after a restart.)
          rebuild_resume_from_ = r.rebuild_next;
          next_rebuild_part();
          return;
        }
        // A retry goes on with a scan that failed part-way (the replica is
        // still sealed; the failed part counted nothing), scans again after
        // a scan that ended (the counts start over), and forgets what was
        // known of the tail's start once the replica is gone (before that it
        // may be the only record of it: the mark is written when sealing).
        if (r.rebuilt && (r.scan_done || r.deleted)) rebuild_resume_from_ = 0;
        if (r.rebuilt && r.deleted) rebuild_known_from_ = 0;
        if (r.rebuilt && r.st) {
          // A new replica: nothing written into it yet, nothing dropped,
          // nothing missing.
          written_high_ = 0;
          forget_missing();
          forget_late_writes();
          dropped_seq_ = 0;
          dropped_origin_ns_ = 0;
          rebuild_ = Rebuild::kSyncing;
          rebuild_known_from_ = 0;
          if (rebuild_started_mono_ns_ == 0) rebuild_started_mono_ns_ = loop::mono_ns();  // redone after a restart
          foreign_found_ = rebuild_found_;
          foreign_kept_ = rebuild_kept_;
          rebuild_found_ = rebuild_kept_ = 0;
          spdlog::info("stream {}: rebuild: {} foreign message(s) found, {} kept aside in {}; the replica is "
                       "recreated and syncs from {} at its first sequence {}",
                       cfg_.name, foreign_found_, foreign_kept_, side_stream_name(cfg_.name), cfg_.leader,
                       std::max<uint64_t>(leader_first_seq_, 1));
          prepared(0, 0, 0);
          return;
        }
        if (!r.diverged.empty() && r.st) {
          diverge(r.diverged, r.foreign_from, r.marked);
          return;
        }
        if (!r.st) {
          phase_ = Phase::kError;
          detail_ = r.st.message() +
                    (pause > 0 ? " (asked again in " + std::to_string(pause / 1'000'000'000) + " s)" : "");
          phase_since_mono_ns_ = loop::mono_ns();
          // Retried every 2 s (later while the replica's requests go
          // unanswered: prepare_pace_): a persistent cause (e.g. a
          // conflicting replica) is logged like any error the stream stops on.
          warn_error("cannot prepare replica: " + detail_);
          return;
        }
        // Compared once with this leader already (by an earlier pipeline of
        // this daemon's): it need not still hold that sequence.
        if (!r.unverified.empty() && r.known_seq == verified_seq_ && r.last_origin_ns == verified_time_ns_) {
          r.unverified.clear();
        }
        if (!r.unverified.empty() && (r.known_seq > leader_last || r.known_seq < leader_first_)) {
          // Not the leader's by its headers, and the leader does not hold
          // that sequence to show otherwise.
          diverge(r.unverified + ", and " + cfg_.leader + "'s stream " +
                      (r.known_seq > leader_last ? "ends at " + std::to_string(leader_last)
                                                 : "begins at " + std::to_string(leader_first_)),
                  0);
          return;
        }
        if (r.known_seq > leader_last && r.last_origin_ns > 0) {
          // The replica's last message is this leader's, at a sequence its
          // stream has not reached: that stream is not the one the replica
          // copied (deleted and created again, or replaced).
          diverge(replaced_detail(r.known_seq, "the leader's stream ends at " + std::to_string(leader_last)),
                  r.known_seq + 1);
          return;
        }
        if (r.last_origin_ns > last_applied_origin_ns_) last_applied_origin_ns_ = r.last_origin_ns;
        // The replica's last message, which the leader sends again first
        // (prepared()); its store time must be the one the replica holds.
        known_seq_ = r.last_origin_ns > 0 ? r.known_seq : 0;
        known_time_ns_ = r.last_origin_ns;
        unverified_ = r.unverified;
        if (r.verify_next > 0) {
          // One chunk of the late-write check done: the next is another start.
          late_checked_ += r.late_checked;
          late_fillers_ += r.late_fillers;
          if (verify_from_ > 0) verify_from_ = std::max(verify_from_, r.verify_next);
          if (late_from_ > 0) late_from_ = std::max(late_from_, r.verify_next);
          phase_ = Phase::kIdle;
          phase_since_mono_ns_ = loop::mono_ns();
          maybe_start();
          return;
        }
        if (verify_from == 0 && check_from() > 0 && r.last_seq >= check_from()) {
          // The data connection went (or changed) while this start ran: the
          // watch may have missed something. Start again, with the check.
          phase_ = Phase::kIdle;
          phase_since_mono_ns_ = loop::mono_ns();
          maybe_start();
          return;
        }
        {
          const uint64_t checked = r.late_checked + late_checked_, fillers = r.late_fillers + late_fillers_;
          late_checked_ = late_fillers_ = 0;
          const bool landed = late_from_ > 0 && r.last_seq >= late_from_;
          if (checked > 0) {
            spdlog::info("stream {}: the replica holds writes of an earlier pipeline stored after it restarted: {} "
                         "message(s) up to sequence {} checked, each Isthmus's write of its own sequence{}",
                         cfg_.name, checked, r.last_seq,
                         fillers > 0 ? " (" + std::to_string(fillers) + " filler(s) deleted)" : "");
          } else if (landed) {
            spdlog::info("stream {}: the replica holds writes of an earlier pipeline stored after it restarted "
                         "(sequences {}..{}; the watch for foreign writes was up throughout){}",
                         cfg_.name, late_from_, std::min(r.last_seq, late_to_),
                         fillers > 0 ? " (" + std::to_string(fillers) + " filler(s) deleted)" : "");
          }
          late_writes_checked_to(r.last_seq);
          // The new pipeline writes above the replica's last: no place at
          // or below an earlier pipeline's acknowledged one.
          if (r.last_seq >= late_acked_to_) late_acked_to_ = 0;
          // Dropped writes the replica stored after all are applied: now,
          // at the latest (their time lag is taken with this start's time).
          if (!late_held_.empty()) {
            const ApplyClock clock = apply_clock();
            uint64_t recorded = 0;
            for (auto it = late_held_.upper_bound(applied_); it != late_held_.end() && it->first <= r.last_seq;
                 ++it) {
              record_apply(it->first, it->second, clock);
              ++recorded;
            }
            late_held_.erase(late_held_.begin(), late_held_.upper_bound(r.last_seq));
            if (recorded > 0) spdlog::debug("stream {}: {} late write(s) recorded as applied", cfg_.name, recorded);
          }
        }
        if (r.syncing && rebuild_ == Rebuild::kNone) {
          rebuild_ = Rebuild::kSyncing;
          rebuild_started_mono_ns_ = loop::mono_ns();  // (started before this daemon did)
          spdlog::info("stream {}: a rebuild's sync was under way; finishing it", cfg_.name);
        }
        prepared(r.last_seq, r.messages, r.first_seq);
      });
  return Status::ok();
}

// A part of a rebuild (its walk or its scan) is done: the next part is
// another start of the pipeline, another job.
void Follower::next_rebuild_part() {
  rebuild_ = Rebuild::kRequested;
  if (rebuild_started_mono_ns_ == 0) rebuild_started_mono_ns_ = loop::mono_ns();
  phase_ = Phase::kIdle;
  phase_since_mono_ns_ = loop::mono_ns();
  maybe_start();
}

void Follower::prepared(uint64_t last_seq, uint64_t messages, uint64_t first_seq) {
  prepared_once_ = true;
  front_suspect_ = false;
  if (!ctx_.conn || !ctx_.data) {
    reset("local NATS connection lost");
    return;
  }
  if (!ack_sub_ || ack_sub_nats_gen_ != ctx_.nats_gen) {
    ack_sub_.reset();
    ack_prefix_ = nats::new_inbox() + ".ack";
    auto sub = nats::DataSub::create(
        ctx_.data, ack_prefix_ + ".>", [this](const nats::wire::ServerOp& m) { on_ack(m); },
        [this](const std::string& e) { fail("the server refused the subscription for acknowledgements: " + e); });
    if (!sub) {
      reset(sub.status().message());
      return;
    }
    ack_sub_ = std::move(*sub);
    ack_sub_nats_gen_ = ctx_.nats_gen;
  }
  if (!watch_foreign()) return;
  since_checkpoint_ = 0;
  since_checkpoint_bytes_ = 0;
  // Requests of an earlier generation may still be running; their results
  // are dropped (generation check) without clearing these.
  purge_pending_ = false;
  check_pending_ = false;
  delete_pending_ = false;
  // A stream that never held a message counts from 0 (just created, or
  // recreated by a rebuild): no offset. Otherwise keep the last one known;
  // probation checks it before anything is pipelined.
  if (last_seq == 0) guard_offset_ = 0;
  probation_ = true;
  // A replica that holds less than was applied before (recreated: a
  // rebuild, deleted outside Isthmus) was not current as of then.
  if (last_seq < applied_) {
    current_as_of_wall_ns_ = 0;
    hold_marks_.clear();
  }
  // A replica that ends below what it was missing was created again (by
  // hand: a rebuild clears it earlier): none of it is missing any more.
  if (missing_ > 0 && last_seq < missing_first_) forget_missing();
  applied_ = last_seq;
  // Deletes of sequences not applied yet: the leader's reconcile on this
  // SUBSCRIBE names again those that still hold (and a gap met while
  // reading is filled anyway); kept, they could be another stream's (the
  // leader's created again) and fill where it has messages.
  to_delete_.erase(to_delete_.upper_bound(last_seq), to_delete_.end());
  forget_dropped_if_applied();
  next_ = last_seq + 1;
  replica_empty_ = messages == 0;
  pipeline_verified_ = true;
  state_seen_ = false;
  replica_first_ = messages == 0 ? last_seq + 1 : first_seq;
  // A replica that already lacks messages the leader holds at its front
  // (purged by hand while the daemon was away, or between two pipelines):
  // not a baseline to accept; check_front() confirms and diverges.
  if (leader_first_ > 0 && leader_first_ <= last_seq && replica_first_ > leader_first_) {
    replica_first_ = leader_first_;
  }
  detail_.clear();
  if (rebuild_ == Rebuild::kSyncing && !progress_.active()) {
    progress_.start(leader_first_seq_ > 0 ? leader_first_seq_ - 1 : 0, applied_, loop::mono_ns());
  }
  sub_id_ = gen_;
  link::Subscribe s;
  s.stream = cfg_.name;
  // From the replica's last message (its last sequence, or the last it
  // holds below a deleted tail) when Isthmus wrote it: the leader sends it
  // again (skipped, only compared: on_data()), which proves the leader's
  // stream is still the one the replica copies.
  if (known_seq_ == 0 || known_seq_ > last_seq || last_seq + 1 != next_) known_seq_ = known_time_ns_ = 0;
  if (known_seq_ == 0) unverified_.clear();  // (an empty replica: a rebuild's)
  s.from_seq = known_seq_ > 0 ? known_seq_ : next_;
  received_high_ = s.from_seq - 1;
  awaiting_overlap_ = known_seq_ > 0 && leader_first_ <= known_seq_;
  if (!unverified_.empty() && !awaiting_overlap_) {
    diverge(unverified_ + ", and " + cfg_.leader + " no longer holds that sequence to compare", 0);
    return;
  }
  deleted_tail_above_ = known_seq_ > 0 && known_seq_ + 1 < next_ ? known_seq_ : 0;
  s.sub_id = sub_id_;
  std::vector<uint8_t> f;
  encode(s, f);
  if (!ctx_.links->send(cfg_.leader, std::move(f))) {
    reset("link to leader down");
    return;
  }
  phase_ = Phase::kReplicating;
  phase_since_mono_ns_ = loop::mono_ns();
  if (s.from_seq + 1 == next_) {
    // Subscribed from the replica's last message (sent again, compared):
    // say at once that it is stored, or the leader counts it missing (its
    // view "syncing", its age in the oldest-unreplicated figure).
    ack_dirty_ = true;
    flush();
  }
  leader_last_seq_ = std::max(leader_last_seq_, applied_);
  backlog_to_ = leader_last_seq_;
  if (!sync_.started()) {
    // The initial sync of this daemon's life: from what the replica holds
    // (an empty replica starts at the leader's first sequence) to the
    // leader's last sequence as STREAM_INFO told it.
    uint64_t from = applied_;
    if (replica_empty_ && leader_first_seq_ > 0) from = std::max(from, leader_first_seq_ - 1);
    sync_.start(loop::mono_ns(), from, leader_last_seq_);
  }
  // After an error that has not cleared (no write acknowledged since), this
  // is a retry: logged once after each warning of the error, not every 2 s.
  // (The leader logs the subscription's first sequence: the replica's
  // last message when it is asked for again, to compare.)
  const std::string overlap =
      s.from_seq + 1 == next_
          ? " (subscribed from " + std::to_string(s.from_seq) + ": the replica's last message, read again to compare)"
          : "";
  if (warned_error_.empty()) {
    spdlog::info("stream {}: replicating from {} at sequence {}{}", cfg_.name, cfg_.leader, next_, overlap);
  } else if (!retry_announced_) {
    spdlog::info("stream {}: retrying: replicating from {} at sequence {} (every 2 s while the error lasts)",
                 cfg_.name, cfg_.leader, next_);
    retry_announced_ = true;
  } else {
    spdlog::debug("stream {}: retrying from {} at sequence {}", cfg_.name, cfg_.leader, next_);
  }
  // The leader's view of this follower changes now (a sync, maybe a
  // rebuild's, begins): tell it at once rather than at the next tick.
  send_lag_report();
  ctx_.request_flush();
  trim();
}

// One subscription per replica subject, on the data connection that also
// writes the replica. It is no_echo, so only other clients' publishes
// arrive: any of them is a foreign write. With them, a watch for writes the
// server refuses on those subjects (permissions).
bool Follower::watch_foreign() {
  if (watch_nats_gen_ == ctx_.nats_gen && watched_subjects_ == replica_subjects_) return true;
  watch_subs_.clear();
  write_watch_.reset();
  watched_subjects_.clear();
  if (!replica_subjects_.empty()) {
    auto w = nats::RefusedPublishWatch::create(
        ctx_.data, replica_subjects_,
        [this](const std::string& subject, const std::string& e) { on_write_refused(subject, e); });
    if (!w) {
      reset("cannot watch the replica's writes: " + w.status().message());
      return false;
    }
    write_watch_ = std::move(*w);
  }
  for (const auto& subject : replica_subjects_) {
    auto sub = nats::DataSub::create(
        ctx_.data, subject, [this](const nats::wire::ServerOp& m) { on_foreign_publish(m); },
        [this](const std::string& e) {
          // Without the watch a foreign write would go unseen until the
          // next check: stop, and retry every 2 s.
          fail("the server refused the watch for foreign writes: " + e);
        });
    if (!sub) {
      watch_subs_.clear();
      write_watch_.reset();
      reset("cannot watch the replica's subjects for foreign writes: " + sub.status().message());
      return false;
    }
    watch_subs_.push_back(std::move(*sub));
  }
  watched_subjects_ = replica_subjects_;
  watch_nats_gen_ = ctx_.nats_gen;
  return true;
}

// The server refused a write into the replica: this daemon's NATS user may
// not publish to its subject. No write to it can succeed (nor, through the
// expected-last-sequence chain, any write pipelined behind it), and none
// would be acknowledged: stop with an error that names the subject and what
// to grant, retried every 2 s like any error (once the permission is granted
// and the server reloaded, the retry goes through).
void Follower::on_write_refused(const std::string& subject, const std::string& error) {
  // After the first refusal the stream has stopped: the refusals of the
  // writes pipelined behind it say nothing new.
  if (phase_ != Phase::kReplicating) return;
  ++apply_errors_;
  std::string subjects;
  for (const auto& s : replica_subjects_) subjects += (subjects.empty() ? "" : ", ") + s;
  std::string what = error;
  size_t to = what.find(" to \"");
  if (to != std::string::npos) what.resize(to);  // the server's words without the subject again
  write_refused_ = "the daemon's NATS user may not publish to \"" + subject + "\" (" + what +
                   "), so the replica cannot be written: grant it publish permission on the replica's subjects (" +
                   subjects + ") and reload nats-server";
  write_refused_mono_ns_ = loop::mono_ns();
  fail(write_refused_);
}

// A refused write stays the stream's error through the retries (each one
// briefly restarts the stream, and the refused message is written again):
// until a write is acknowledged, or kWriteRefusedHoldNs without a refusal
// (a retry with nothing left to write).
bool Follower::write_refused_now() const {
  return !write_refused_.empty() && loop::mono_ns() - write_refused_mono_ns_ < kWriteRefusedHoldNs;
}

void Follower::on_foreign_publish(const nats::wire::ServerOp& msg) {
  std::string subject(msg.subject);
  ++foreign_publishes_seen_;
  // In any phase: between a pipeline restart and the next start (preparing,
  // retrying an error) a stalled server may deliver a foreign publish it
  // stores among the dropped writes, where the start's checks need not look.
  // (diverge() ignores it while diverged or while a rebuild recreates the
  // replica, which is sealed.)
  diverge("another client published into the replica (subject " + subject + ")", applied_ + 1);
}

Status Follower::on_data(link::Data&& d) {
  if (phase_ != Phase::kReplicating || d.sub_id != sub_id_) return Status::ok();
  leader_last_seq_ = std::max(leader_last_seq_, d.leader_last_seq);
  // (Not "heard from the leader": a DATA frame may have waited seconds
  // behind others on a congested link, and its last sequence with it; only
  // a STATE, sent ahead of data about once a second, says the leader's
  // last sequence is recent enough to call a follower that holds it
  // caught up.)
  struct {
    uint64_t first = 0, last = 0, count = 0;
  } lost;
  for (auto& m : d.msgs) {
    received_high_ = std::max(received_high_, m.seq);
    if (awaiting_overlap_ && m.seq > known_seq_ && !unverified_.empty()) {
      // Gone at the leader before it could be compared.
      diverge(unverified_ + ", and " + cfg_.leader + " no longer holds that sequence to compare", 0);
      return Status::ok();
    }
    if (awaiting_overlap_ && m.seq >= known_seq_) awaiting_overlap_ = false;  // compared below, or gone
    // The replica's last confirmed message, sent again (at a SUBSCRIBE, or
    // by a leader that found its stream created again): the same message,
    // or the leader's stream is another one.
    if (m.seq == known_seq_ && known_time_ns_ > 0 && m.seq < next_ && m.time_ns != known_time_ns_ &&
        !unverified_.empty()) {
      // (From 0: what else differs is not known, so keep_foreign() walks
      // down to the last message Isthmus wrote and keeps all above it
      // aside: nothing the leader lacks is lost to a rebuild.)
      diverge(unverified_ + ", and " + cfg_.leader + "'s message at that sequence was first stored at " +
                  util::format_rfc3339_ns(m.time_ns) + ", the replica's at " + util::format_rfc3339_ns(known_time_ns_),
              0);
      return Status::ok();
    }
    if (m.seq == known_seq_ && known_time_ns_ > 0 && m.seq < next_ && !unverified_.empty()) {
      // The leader's own message (the same origin store time): the
      // replica was copied from, or led by, the region it came from.
      spdlog::info("stream {}: the replica's last message (sequence {}) is {}'s message at that sequence: "
                   "replicating on",
                   cfg_.name, m.seq, cfg_.leader);
      unverified_.clear();
      verified_seq_ = known_seq_;
      verified_time_ns_ = known_time_ns_;
    }
    if (m.seq == known_seq_ && known_time_ns_ > 0 && m.seq < next_ && m.time_ns != known_time_ns_) {
      diverge(replaced_detail(m.seq, "the leader's message at that sequence was stored at " +
                                         std::to_string(m.time_ns) + " ns (Unix), the replica's copy at " +
                                         std::to_string(known_time_ns_)),
              m.seq + 1);
      return Status::ok();
    }
    if (m.seq < next_) {
      // (Counted once: a pipeline started again over the same tail, with
      // nothing written above it yet, is sent the same messages again.)
      if (deleted_tail_above_ > 0 && m.seq > deleted_tail_above_ && lost_.size() < kMaxMissingTracked &&
          !std::binary_search(holes_.begin(), holes_.end(), m.seq) && lost_.insert(m.seq).second) {
        lost.first = lost.first == 0 ? m.seq : lost.first;
        lost.last = m.seq;
        ++lost.count;
      }
      continue;
    }
    deleted_tail_above_ = 0;  // past the tail: later resends are not about it
    if (!queue_.empty() && m.seq <= queue_.back().seq) {
      return Status(Code::kInvalid, "data: sequences out of order");
    }
    leader_last_seq_ = std::max(leader_last_seq_, m.seq);
    queue_bytes_ += m.wire_size();
    queue_.push_back(std::move(m));
  }
  if (lost.count > 0) {
    update_missing();
    spdlog::warn("stream {}: the replica lacks {} message(s) the leader holds, sequences {}..{} (deleted at the "
                 "replica's end: nats-server 2.9 drops what is written into an interest stream while it shuts "
                 "down, acknowledging it, or they were deleted by hand); a sequence cannot be written again: "
                 "rebuild the replica to repair (isthmusctl rebuild {})",
                 cfg_.name, lost.count, lost.first, lost.last, cfg_.name);
  }
  pump();
  return Status::ok();
}

void Follower::note_leader_holds(uint64_t last_seq, int64_t as_of_wall_ns) {
  // A stream that ends below an earlier mark is not the one it was (created
  // again): its marks say nothing of this one.
  if (!hold_marks_.empty() && last_seq < hold_marks_.back().first) hold_marks_.clear();
  while (!hold_marks_.empty() && hold_marks_.front().first <= applied_) hold_marks_.pop_front();
  constexpr size_t kMaxHoldMarks = 64;
  if (last_seq > applied_ && (hold_marks_.empty() || last_seq > hold_marks_.back().first) &&
      hold_marks_.size() < kMaxHoldMarks) {
    hold_marks_.emplace_back(last_seq, as_of_wall_ns);
  }
}

void Follower::on_state(const link::State& st) {
  if (phase_ == Phase::kReplicating) {
    state_seen_ = true;
    state_last_seq_ = st.last_seq;
  }
  ++states_seen_;
  if (awaiting_overlap_ && st.first_seq > known_seq_) {
    if (!unverified_.empty()) {
      diverge(unverified_ + ", and " + cfg_.leader + " no longer holds that sequence to compare", 0);
      return;
    }
    awaiting_overlap_ = false;  // gone at the leader
  }
  if (phase_ == Phase::kReplicating && known_time_ns_ > 0 && st.last_seq < known_seq_) {
    // The leader's stream ends below a message the replica holds from it:
    // not the stream the replica copied (STATE goes ahead of data, so it
    // is never behind what was sent).
    diverge(replaced_detail(known_seq_, "the leader's stream ends at " + std::to_string(st.last_seq)),
            known_seq_ + 1);
    return;
  }
  leader_first_seq_ = st.first_seq;
  leader_last_seq_ = st.last_seq;
  leader_last_time_ns_ = st.last_time_ns;
  leader_heard_mono_ns_ = loop::mono_ns();
  // When the leader held what this STATE says (about when it left: it
  // travels ahead of data), on our clock.
  const int64_t as_of = loop::wall_ns() - std::max<int64_t>(0, ctx_.links->inbound_delay_ns(cfg_.leader));
  if (phase_ == Phase::kReplicating) {
    state_wall_ns_ = as_of;
    note_current();
  }
  note_leader_holds(st.last_seq, as_of);
  leader_first_ = std::max(leader_first_, st.first_seq);
  trim();
  if (phase_ == Phase::kReplicating && !warned_error_.empty() &&
      warned_error_.find(" does not lead stream ") != std::string::npos) {
    // The error was that the region did not lead the stream (yet: the
    // regions reloaded a switchover one after the other): a STATE for our
    // subscription says it does now. Not kept 10 s like an error that may
    // come back.
    spdlog::info("stream {}: replicating again after: {}", cfg_.name, warned_error_);
    warned_error_.clear();
    send_lag_report();
  }
}

void Follower::on_deleted(link::Deleted&& d) {
  leader_first_ = std::max(leader_first_, d.first_seq);
  // (Only from a leader that ends its passes: one built before that never
  // would, and the list would only grow.)
  if (pass_ends_seen_ > 0 && !pass_overflow_) {
    if (pass_deleted_.size() + d.seqs.size() > hole_check_cap()) {
      pass_overflow_ = true;
      std::vector<uint64_t>().swap(pass_deleted_);
    } else {
      pass_deleted_.insert(pass_deleted_.end(), d.seqs.begin(), d.seqs.end());
    }
  }
  for (uint64_t s : d.seqs) {
    if (s < replica_first_ || s < leader_first_) continue;  // gone anyway (trim)
    if (to_delete_.size() >= kMaxPendingDeletes) break;       // the next pass brings the rest
    to_delete_.insert(s);
  }
  trim();
  apply_deletes();
  fill_deleted_tail();
  if (d.seqs.empty()) on_pass_end(d.first_seq);
}

size_t Follower::hole_check_cap() const {
  return static_cast<size_t>(ctx_.cfg->nats.reconcile_max_deleted) + kHoleCheckMargin;
}

void Follower::note_self_deleted(uint64_t seq) {
  if (pass_ends_seen_ == 0) return;
  if (self_deleted_.size() >= hole_check_cap()) {
    // Too many to keep: the checks that would need these are skipped.
    std::deque<std::pair<uint64_t, uint64_t>>().swap(self_deleted_);
    self_deleted_valid_from_ = pass_ends_seen_ + 1;
    return;
  }
  self_deleted_.emplace_back(pass_ends_seen_, seq);
}

void Follower::prune_self_deleted() {
  uint64_t needed = pass_ends_seen_;
  if (deferred_pass_) needed = std::min(needed, deferred_pass_->end - 1);
  if (hole_check_pending_) needed = std::min(needed, hole_check_end_ - 1);
  while (!self_deleted_.empty() && self_deleted_.front().first < needed) self_deleted_.pop_front();
}

void Follower::on_pass_end(uint64_t leader_first) {
  const bool first_end = pass_ends_seen_++ == 0;  // the list before it was not kept
  HolePass p;
  p.end = pass_ends_seen_;
  p.listed.swap(pass_deleted_);
  const bool complete = !pass_overflow_ && !first_end;
  pass_overflow_ = false;
  if (!complete || phase_ != Phase::kReplicating || rebuild_ != Rebuild::kNone) return;
  // Up to what this subscription received: the pass lists the leader's
  // deletes up to what it sent (a deleted tail beyond that only when short),
  // and a replica filled beyond what it received (a long deleted tail)
  // is not compared. Fixed now: a check run later compares with this pass.
  p.from = std::max({leader_first, leader_first_, replica_first_, uint64_t{1}});
  p.upto = std::min(applied_, received_high_);
  p.gen = gen_;
  if (p.upto < p.from) {
    hole_candidates_.clear();
    deferred_pass_.reset();
    return;
  }
  std::sort(p.listed.begin(), p.listed.end());
  // One check at a time, at most one every kHoleCheckEveryNs: a pass that
  // comes sooner waits (tick()), replaced by any newer one.
  deferred_pass_ = std::move(p);
  prune_self_deleted();  // (keeps what this pass's check needs: from the end before it)
  start_hole_check();
}

void Follower::start_hole_check() {
  const int64_t now = loop::mono_ns();
  if (!deferred_pass_ || hole_check_pending_ || now < next_hole_check_mono_ns_) return;
  HolePass p = std::move(*deferred_pass_);
  deferred_pass_.reset();
  if (p.gen != gen_ || phase_ != Phase::kReplicating || rebuild_ != Rebuild::kNone || draining_ || !ctx_.conn) {
    return;
  }
  next_hole_check_mono_ns_ = now + kHoleCheckEveryNs;
  // This daemon's deletes since the end before this pass's are excluded,
  // through the replica's read below; when some of them were not kept, no
  // check.
  if (p.end - 1 < self_deleted_valid_from_) {
    hole_candidates_.clear();
    prune_self_deleted();
    return;
  }
  hole_check_end_ = p.end;
  const uint64_t from = p.from;
  const uint64_t upto = p.upto;
  std::vector<uint64_t> listed = std::move(p.listed);
  hole_check_pending_ = true;
  uint64_t g = gen_;
  const uint64_t limit = static_cast<uint64_t>(ctx_.cfg->nats.reconcile_max_deleted);
  auto skipped = [this](const std::string& why) {
    hole_check_pending_ = false;
    spdlog::debug("stream {}: hole check skipped: {}", cfg_.name, why);
  };
  // The count first, with the other streams' states: the list only when
  // there is one, and not a huge one.
  ctx_.infos->read(cfg_.name, [this, g, from, upto, limit, skipped, listed = std::move(listed)](
                                  Result<Json> brief) mutable {
    if (g != gen_) {
      hole_check_pending_ = false;
      return;
    }
    if (!brief) return skipped(brief.status().message());
    const uint64_t n = (*brief)["state"].value("num_deleted", uint64_t{0});
    if (n == 0) return finish_hole_check(from, upto, listed, {});
    if (n > limit) return skipped("the replica's deleted list is over nats.reconcile_max_deleted");
    std::string stream = cfg_.name;
    int64_t tmo = ctx_.timeout_ms();
    ctx_.async<Result<std::vector<uint64_t>>>(
        [stream, tmo](natsConnection* nc) -> Result<std::vector<uint64_t>> {
          auto full = nats::stream_info(nc, stream, true, tmo);
          if (!full) return full.status();
          std::vector<uint64_t> deleted;
          const Json& state = (*full)["state"];
          if (state.contains("deleted") && state["deleted"].is_array()) {
            deleted.reserve(state["deleted"].size());
            for (const auto& x : state["deleted"]) {
              if (x.is_number_unsigned()) deleted.push_back(x.get<uint64_t>());
            }
          }
          std::sort(deleted.begin(), deleted.end());
          return deleted;
        },
        [this, g, from, upto, skipped, listed = std::move(listed)](Result<std::vector<uint64_t>> r) {
          if (g != gen_) {
            hole_check_pending_ = false;
            return;
          }
          if (!r) return skipped(r.status().message());
          finish_hole_check(from, upto, listed, std::move(*r));
        });
  });
}

void Follower::finish_hole_check(uint64_t from, uint64_t upto, const std::vector<uint64_t>& listed,
                                 std::vector<uint64_t> replica_deleted) {
  hole_check_pending_ = false;
  if (phase_ != Phase::kReplicating || rebuild_ != Rebuild::kNone) return;
  const uint64_t end = hole_check_end_;
  // (Whole only if nothing was dropped since that end.)
  if (end - 1 < self_deleted_valid_from_) {
    prune_self_deleted();
    return;
  }
  ++hole_checks_;
  hole_checked_to_ = upto;
  std::vector<uint64_t> mine;
  for (const auto& [e, seq] : self_deleted_) {
    if (e + 1 >= end) mine.push_back(seq);
  }
  prune_self_deleted();
  std::sort(mine.begin(), mine.end());
  auto has = [](const std::vector<uint64_t>& v, uint64_t x) { return std::binary_search(v.begin(), v.end(), x); };
  // (The leader may have trimmed past some of it meanwhile.)
  const uint64_t lowest = std::max({from, leader_first_, replica_first_});
  std::vector<uint64_t> candidates;
  for (uint64_t s : replica_deleted) {
    if (s < lowest || s > upto) continue;
    if (has(listed, s) || has(mine, s) || to_delete_.count(s) > 0) continue;
    candidates.push_back(s);
  }
  // Lost tail sequences the leader has since deleted too: the replica
  // matches it there again.
  for (auto it = lost_.begin(); it != lost_.end();) {
    it = has(listed, *it) ? lost_.erase(it) : std::next(it);
  }
  std::vector<uint64_t> confirmed;
  std::set_intersection(candidates.begin(), candidates.end(), hole_candidates_.begin(), hole_candidates_.end(),
                        std::back_inserter(confirmed));
  hole_candidate_seqs_ += candidates.size();
  hole_candidates_ = std::move(candidates);
  if (confirmed != holes_) {
    std::vector<uint64_t> added;
    std::set_difference(confirmed.begin(), confirmed.end(), holes_.begin(), holes_.end(), std::back_inserter(added));
    holes_ = std::move(confirmed);
    if (!added.empty()) {
      spdlog::warn("stream {}: the replica lacks {} message(s) the leader holds, between sequences {} and {} "
                   "(deleted in the replica but not at the leader: by hand, or by nats-server; see "
                   "docs/operations.md, \"A replica lacks messages\"); a sequence cannot be written again: "
                   "rebuild the replica to repair (isthmusctl rebuild {})",
                   cfg_.name, added.size(), added.front(), added.back(), cfg_.name);
    }
  }
  update_missing();
}

void Follower::update_missing() {
  const uint64_t before = missing_;
  missing_ = missing_first_ = missing_last_ = 0;
  auto a = lost_.begin();
  auto b = holes_.begin();
  while (a != lost_.end() || b != holes_.end()) {
    uint64_t s;
    if (b == holes_.end() || (a != lost_.end() && *a < *b)) {
      s = *a++;
    } else if (a == lost_.end() || *b < *a) {
      s = *b++;
    } else {
      s = *a++;
      ++b;
    }
    if (missing_first_ == 0) missing_first_ = s;
    missing_last_ = s;
    ++missing_;
  }
  if (before > 0 && missing_ == 0) {
    spdlog::info("stream {}: the replica no longer lacks messages the leader holds", cfg_.name);
  }
}

void Follower::forget_missing() {
  lost_.clear();
  holes_.clear();
  hole_candidates_.clear();
  update_missing();
}

void Follower::forget_missing_below(uint64_t seq) {
  if (missing_ == 0 || seq <= missing_first_) return;
  lost_.erase(lost_.begin(), lost_.lower_bound(seq));
  holes_.erase(holes_.begin(), std::lower_bound(holes_.begin(), holes_.end(), seq));
  hole_candidates_.erase(hole_candidates_.begin(),
                         std::lower_bound(hole_candidates_.begin(), hole_candidates_.end(), seq));
  update_missing();
}

// Purges the replica below the leader's first sequence, never above what is
// applied + 1 (messages in flight are at or above it). Such a purge leaves
// the replica's last sequence alone, and with it nats-server's
// expected-last-sequence check (checked on 2.9.10).
// At most a line a minute (a leader deleting one message at a time would
// otherwise log one line each); deletes_applied in /v1/lag counts them all.
void Follower::log_deletes() {
  constexpr int64_t kEveryNs = 60'000'000'000;
  const int64_t now = loop::mono_ns();
  if (deletes_unlogged_ == 0 || (deletes_logged_mono_ns_ > 0 && now - deletes_logged_mono_ns_ < kEveryNs)) return;
  spdlog::info("stream {}: deleted {} message(s) deleted at the leader{}", cfg_.name, deletes_unlogged_,
               deletes_logged_mono_ns_ > 0 ? " (in about the last minute)" : "");
  deletes_unlogged_ = 0;
  deletes_logged_mono_ns_ = now;
}

void Follower::trim() {
  if (phase_ != Phase::kReplicating || purge_pending_ || draining_) return;
  // Not before the message subscribed from has been compared (the leader's
  // stream may be another one: its first sequence says nothing of ours).
  if (awaiting_overlap_) return;
  uint64_t target = std::min(leader_first_, applied_ + 1);
  if (target <= replica_first_) return;
  purge_replica_below(target, [this, target](Status st) {
    if (retired_) return;
    if (!st) {
      spdlog::warn("stream {}: cannot trim the replica below {}: {}", cfg_.name, target, st.message());
      return;  // retried on the next STATE
    }
    ++trims_;
    replica_first_ = target;
    // The leader no longer holds what was missing: the replica matches it
    // again there.
    forget_missing_below(target);
    to_delete_.erase(to_delete_.begin(), to_delete_.lower_bound(target));
    spdlog::debug("stream {}: replica trimmed below {} in step with the leader", cfg_.name, target);
    pump();
    trim();
  });
}

void Follower::purge_replica_below(uint64_t to, std::function<void(Status)> done) {
  purge_pending_ = true;
  uint64_t g = gen_;
  std::string stream = cfg_.name;
  int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Status>(
      [stream, to, tmo](natsConnection* nc) {
        auto r = nats::stream_purge_to(nc, stream, to, tmo);
        return r ? Status::ok() : r.status();
      },
      [this, g, done = std::move(done)](Status st) {
        if (g != gen_) return;
        purge_pending_ = false;
        done(std::move(st));
      });
}

// Deletes from the replica what the leader deleted, among the sequences
// applied here; sequences not applied yet wait (a gap met while reading
// becomes a deleted filler anyway).
void Follower::apply_deletes() {
  if (phase_ != Phase::kReplicating || delete_pending_ || to_delete_.empty()) return;
  // Not before the leader's resend of an unverified last message has shown
  // that this leader's stream is the one the replica holds (tick() and the
  // next batch of data try again).
  if (awaiting_overlap_ && !unverified_.empty()) return;
  std::vector<uint64_t> now;
  for (auto it = to_delete_.begin(); it != to_delete_.end() && *it <= applied_;) {
    now.push_back(*it);
    it = to_delete_.erase(it);
  }
  if (now.empty()) return;
  delete_pending_ = true;
  uint64_t g = gen_;
  std::string stream = cfg_.name;
  int64_t tmo = ctx_.timeout_ms();
  struct Out {
    Status st;
    uint64_t deleted = 0;
    std::vector<uint64_t> deleted_seqs;  // (for the hole check: this daemon's deletes, maybe)
    std::vector<uint64_t> failed;  // to try again
  };
  ctx_.async<Out>(
      [stream, now, tmo](natsConnection* nc) {
        Out out;
        // A few sequences (deletes seen live at the leader): delete each; one
        // the replica no longer holds answers "not found". Many (a
        // reconcile, mostly deleted here long ago): skip what the replica's
        // own deleted list already has, one request instead of many.
        uint64_t first = 0;
        uint64_t last = UINT64_MAX;
        std::vector<uint64_t> have_deleted;  // sorted
        if (now.size() > kDirectDeletes) {
          auto info = nats::stream_info(nc, stream, true, tmo);
          if (!info) {
            out.st = info.status();
            return out;
          }
          const Json& state = (*info)["state"];
          first = state.value("first_seq", uint64_t{0});
          last = state.value("last_seq", uint64_t{0});
          if (state.contains("deleted") && state["deleted"].is_array()) {
            have_deleted.reserve(state["deleted"].size());
            for (const auto& x : state["deleted"]) {
              if (x.is_number_unsigned()) have_deleted.push_back(x.get<uint64_t>());
            }
          }
          std::sort(have_deleted.begin(), have_deleted.end());
        }
        for (uint64_t s : now) {
          if (s < first || s > last || std::binary_search(have_deleted.begin(), have_deleted.end(), s)) continue;
          auto r = nats::msg_delete(nc, stream, s, tmo);
          if (r) {
            ++out.deleted;
            out.deleted_seqs.push_back(s);
          } else if (r.status().code() != Code::kNotFound) {  // not found: not held, done
            out.st = r.status();
            out.failed.push_back(s);
            out.deleted_seqs.push_back(s);  // (a timeout may still delete it)
          } else {
            out.deleted_seqs.push_back(s);  // (a timed-out earlier try may have)
          }
        }
        if (!out.st && out.failed.empty()) out.failed = now;  // the list could not be read
        return out;
      },
      [this, g, now](Out out) {
        if (retired_) return;
        // Recorded here, on the loop: the NATS worker runs jobs in order, so
        // a hole check's read made after these deletes is answered after
        // this runs.
        for (uint64_t s : out.deleted_seqs) note_self_deleted(s);
        if (g != gen_) {
          // The pipeline was reset meanwhile (its own pass may be running
          // now): these are still the leader's deletes, queued again.
          for (uint64_t s : now) {
            if (to_delete_.size() < kMaxPendingDeletes) to_delete_.insert(s);
          }
          return;
        }
        delete_pending_ = false;
        deletes_applied_ += out.deleted;
        deletes_unlogged_ += out.deleted;
        log_deletes();
        if (!out.st) {
          spdlog::warn("stream {}: cannot apply {} delete(s): {}", cfg_.name, out.failed.size(), out.st.message());
          for (uint64_t s : out.failed) {
            if (to_delete_.size() < kMaxPendingDeletes) to_delete_.insert(s);
          }
          return;  // retried on the next tick
        }
        apply_deletes();
      });
}

// Purges the replica below `to` so that its next message lands at `to`:
// everything below it is gone at the leader (nothing in flight).
void Follower::position_at(uint64_t to) {
  purge_replica_below(to, [this, to](Status st) {
    if (retired_) return;
    if (!st) {
      reset("positioning purge failed: " + st.message());
      return;
    }
    // The replica held messages, and the leader removed the ones after them
    // before this region stored them (its limits while this follower was
    // away or behind, a purge): not replicated here. (Those it was told were
    // deleted are not counted.)
    const uint64_t n = applied_ > 0 && to > next_
                           ? to - next_ - static_cast<uint64_t>(std::distance(to_delete_.lower_bound(next_),
                                                                              to_delete_.lower_bound(to)))
                           : 0;
    if (n > 0) {
      skipped_ += n;
      const int64_t now = loop::mono_ns();
      if (skipped_logged_mono_ns_ == 0 || now - skipped_logged_mono_ns_ >= 60'000'000'000) {
        skipped_logged_mono_ns_ = now;
        spdlog::warn("stream {}: the leader no longer holds sequences {}..{} ({} message(s) at most: its limits or a "
                     "purge removed them before this region stored them); the replica goes on from {} ({} skipped "
                     "so far; logged at most once a minute)",
                     cfg_.name, next_, to - 1, n, to, skipped_);
      }
    } else {
      spdlog::info("stream {}: replica positioned at sequence {}", cfg_.name, to);
    }
    replica_first_ = std::max(replica_first_, to);
    // nats-server 2.9 keeps its count for the expected-last-sequence check
    // where it was before such a purge (until it restarts): compensate.
    // Should a server count otherwise, the probation write is refused and
    // the offset learned (refused()).
    guard_offset_ = static_cast<int64_t>(next_ - 1) + guard_offset_ - static_cast<int64_t>(to - 1);
    probation_ = true;
    next_ = to;
    applied_ = to - 1;
    ack_dirty_ = true;
    sync_.update(loop::mono_ns(), applied_, leader_last_seq_);
    note_caught_up();
    ctx_.request_flush();
    pump();
  });
}

void Follower::pump() {
  while (phase_ == Phase::kReplicating && !draining_ && !purge_pending_ && !queue_.empty() &&
         inflight_.size() < kMaxInflight && !(probation_ && !inflight_.empty())) {
    const link::Message& m = queue_.front();
    if (m.seq < next_) {
      queue_bytes_ -= m.wire_size();
      queue_.pop_front();
      continue;
    }
    // The shared write budget spent: wait for the checkpoint in flight, or
    // make this publish one (every burst ends with a checkpoint).
    const bool over_budget = ctx_.data && ctx_.data->pending_bytes() >= kWriteBudgetBytes;
    if (over_budget && !inflight_.empty() && last_publish_checkpoint_) return;
    if (m.seq > next_) {
      // Everything below m.seq is gone at the leader: position rather than
      // fill (the expected-last-sequence check goes stale, see below).
      bool below_leader_first = leader_first_ >= m.seq && m.seq - next_ >= kPositionGapMin;
      if ((replica_empty_ || below_leader_first) && inflight_.empty()) {
        // Position the empty replica so the next message lands at m.seq.
        position_at(m.seq);
        return;
      }
      // A gap at the leader (deleted or expired messages): keep alignment
      // with a filler, deleted once stored.
      link::Message filler;
      filler.seq = next_;
      filler.subject = m.subject;
      filler.time_ns = m.time_ns;
      // The loop goes on after a filler unless the window is full.
      if (!publish(filler, true, inflight_.size() + 1 >= kMaxInflight || over_budget)) return;
      if (over_budget) return;
      continue;
    }
    // The last publish of a burst is always a checkpoint: the loop stops
    // after it when the queue is empty, the window full or the write budget
    // spent (a message behind it is at or above next_, so it would be
    // published or filled).
    bool last = queue_.size() == 1 || inflight_.size() + 1 >= kMaxInflight || over_budget;
    if (!publish(m, false, last)) return;
    queue_bytes_ -= m.wire_size();
    queue_.pop_front();
    if (over_budget) return;
  }
}

void Follower::fill_deleted_tail() {
  if (phase_ != Phase::kReplicating || !state_seen_ || leader_last_seq_ < next_ || replica_empty_ ||
      !queue_.empty() || !inflight_.empty() || purge_pending_ || draining_ || awaiting_overlap_ ||
      late_from_ != 0 || !late_held_.empty() || verify_from_ != 0 || leader_last_seq_ - next_ >= kMaxInflight) {
    return;
  }
  // Every sequence of the tail must be known deleted at the leader (a
  // DELETED list is read after the deletes it names: such a sequence is
  // never delivered); otherwise a message of it is on its way and fills
  // the gap before it as usual.
  auto it = to_delete_.find(next_);
  for (uint64_t s = next_; s <= leader_last_seq_; ++s, ++it) {
    if (it == to_delete_.end() || *it != s) return;
  }
  // A subject of the replica's that no application uses: its first
  // subject with every wildcard token named so (a filler is deleted once
  // stored, but a consumer of the replica may see it meanwhile).
  std::string subject;
  if (!replica_subjects_.empty()) {
    std::string_view p = replica_subjects_.front();
    while (!p.empty()) {
      size_t dot = p.find('.');
      std::string_view tok = p.substr(0, dot);
      subject += (tok == "*" || tok == ">") ? std::string_view("isthmus-filler") : tok;
      if (dot == std::string_view::npos) break;
      subject += '.';
      p.remove_prefix(dot + 1);
    }
  } else {
    subject = last_matched_subject_;
  }
  if (subject.empty()) return;
  const uint64_t from = next_, to = leader_last_seq_;
  while (next_ <= to) {
    link::Message filler;
    filler.seq = next_;
    filler.subject = subject;
    filler.time_ns = leader_last_time_ns_;
    // The shared write budget spent: this one a checkpoint, the rest after
    // its acknowledgement (which calls this again).
    const bool over_budget = ctx_.data && ctx_.data->pending_bytes() >= kWriteBudgetBytes;
    if (!publish(filler, true, next_ == to || over_budget)) return;
    // On probation (a start) the first write is checked alone: the rest
    // follow its acknowledgement (confirm_through()).
    if (probation_ || over_budget) return;
  }
  spdlog::debug("stream {}: the leader's last message(s) {}..{} are deleted: filled", cfg_.name, from, to);
}

bool Follower::publish(const link::Message& m, bool filler, bool checkpoint) {
  // Without the expected-last-sequence chain, or while a refusal is being
  // named, every message asks for its own acknowledgement.
  since_checkpoint_bytes_ += m.payload.size();
  if (probation_ || !use_expected_last_ || m.seq <= ack_all_until_ || ++since_checkpoint_ >= kCheckpointEvery ||
      since_checkpoint_bytes_ >= kCheckpointBytes) {
    checkpoint = true;
  }
  std::string reply;
  if (checkpoint) {
    reply = ack_prefix_ + "." + std::to_string(gen_) + "." + std::to_string(m.seq);
    since_checkpoint_ = 0;
    since_checkpoint_bytes_ = 0;
  }
  Origin o;
  o.region = cfg_.leader;
  o.seq = m.seq;
  o.time_ns = m.time_ns;
  o.epoch = 0;
  // A peer's subject must be one of the replica's: whatever else it names
  // ($JS.API..., another stream's subjects) is not written. Such a message
  // (a leader stream with sources or a subject transform, or one that still
  // holds messages on a subject it no longer lists) stops the stream with
  // an error, retried every 2 s, not a reset loop. (Consecutive messages
  // mostly share a subject: the last one that matched is remembered.)
  if (!replica_subjects_.empty() && (m.subject != last_matched_subject_ || m.subject.empty()) &&
      std::none_of(replica_subjects_.begin(), replica_subjects_.end(),
                   [&m](const std::string& p) { return nats::wire::subject_matches(p, m.subject); })) {
    // (A filler borrows the subject of the message after the gap: that
    // message's sequence is the one to compare.)
    const uint64_t seq = filler && !queue_.empty() ? queue_.front().seq : m.seq;
    if (seq > config_last_seq_) {
      // Stored after the leader's configuration was read: a stream update
      // at the leader may have added the subject. Read it again (at most
      // once per message: the new reading's last sequence covers it).
      reset("sequence " + std::to_string(m.seq) + " has subject '" + m.subject +
            "', not one of the replica's subjects: reading the leader's configuration again");
      return false;
    }
    ++apply_errors_;
    fail("sequence " + std::to_string(m.seq) + " has subject '" + m.subject +
         "', which is not one of the replica's subjects (the leader stream's sources, a subject transform, or "
         "a subject it no longer lists are not replicated)");
    return false;
  }
  if (m.subject != last_matched_subject_) last_matched_subject_ = m.subject;
  hdrs_.clear();
  size_t unwritable = 0;
  for_each_replica_header(m.headers, o, [this, &unwritable](const char* k, const char* v) {
    if (!nats::wire::valid_header_key(k) || !nats::wire::valid_header_value(v)) {
      ++unwritable;  // a control character or ':' the protocol cannot carry
      return true;
    }
    hdrs_.add(k, v);
    return true;
  });
  if (unwritable > 0 && unwritable_headers_++ == 0) {
    spdlog::warn("stream {}: sequence {} has {} header(s) the NATS protocol cannot carry (CR/LF in a value; "
                 "a space, colon, control or non-ASCII byte in a key); stored without them (logged once)",
                 cfg_.name, m.seq, unwritable);
  }
  if (filler) hdrs_.add(kHdrFiller, "1");
  // JetStream itself refuses a write that would land anywhere but m.seq, so
  // a foreign write cannot shift the messages pipelined behind it (and a
  // refused write refuses everything behind it: the chain checkpoints rely on).
  if (use_expected_last_) {
    char guard[24];
    auto r = std::to_chars(guard, guard + sizeof(guard), static_cast<int64_t>(m.seq - 1) + guard_offset_);
    hdrs_.add("Nats-Expected-Last-Sequence", std::string_view(guard, static_cast<size_t>(r.ptr - guard)));
  }
  Status st = ctx_.data ? ctx_.data->publish(m.subject, reply, hdrs_, m.payload)
                        : Status(Code::kUnavailable, "NATS data connection down");
  if (!st) {
    ++apply_errors_;
    if (st.code() == Code::kTooLarge) {
      // With its origin headers the message exceeds this region's
      // max_payload: it cannot be stored here until the limit is raised.
      fail("sequence " + std::to_string(m.seq) + " cannot be written: " + st.message() +
           " (raise max_payload on this region's nats-server)");
    } else {
      reset("publish to replica failed: " + st.message());
    }
    return false;
  }
  ctx_.request_flush();
  Inflight in;
  in.sent_mono_ns = loop::mono_ns();
  in.origin_time_ns = m.time_ns;
  in.bytes = m.payload.size();
  in.filler = filler;
  inflight_.push_back(in);
  last_publish_checkpoint_ = checkpoint;
  next_ = m.seq + 1;
  written_high_ = std::max(written_high_, m.seq);
  replica_empty_ = false;
  return true;
}

void Follower::on_ack(const nats::wire::ServerOp& msg) {
  // <prefix>.<gen>.<seq>
  std::string_view sv(msg.subject);
  size_t p2 = sv.rfind('.');
  size_t p1 = p2 == std::string_view::npos || p2 == 0 ? std::string_view::npos : sv.rfind('.', p2 - 1);
  uint64_t g = 0, seq = 0;
  if (p1 == std::string_view::npos || !parse_u64(sv.substr(p1 + 1, p2 - p1 - 1), g) ||
      !parse_u64(sv.substr(p2 + 1), seq)) {
    return;
  }
  if (g != gen_) {
    on_late_ack(seq, msg);
    return;
  }
  if (phase_ != Phase::kReplicating || seq >= next_ || seq + inflight_.size() < next_) return;
  bool no_responders = false;
  if (!msg.headers.empty() && msg.payload.empty()) {
    auto hv = nats::wire::parse_headers(msg.headers, [](std::string_view, std::string_view) {});
    no_responders = hv && hv->status == "503";
  }
  if (no_responders) {
    // Either the replica is gone (deleted outside Isthmus: the next start
    // creates it again, and says so) or nats-server is shutting down (its
    // streams stop before its connections close): the start that follows
    // tells which, so this is not counted as an apply error.
    reset("no stream took the write of sequence " + std::to_string(seq) +
          " (nats-server shutting down, or the replica deleted outside Isthmus: the next start checks, and creates "
          "it again if it is gone)");
    return;
  }
  auto ack = nats::parse_pub_ack(msg.payload);
  if (!ack) {
    ++apply_errors_;
    reset(ack.status().message());
    return;
  }
  if (ack->refused()) {
    refused(seq, *ack);
    return;
  }
  if (ack->stream != cfg_.name || ack->seq != seq || ack->duplicate) {
    diverge("leader sequence " + std::to_string(seq) + " was stored at replica sequence " +
                std::to_string(ack->seq) + (ack->duplicate ? " (as a duplicate)" : "") +
                (ack->stream != cfg_.name ? " in stream " + ack->stream : ""),
            applied_ + 1);
    return;
  }
  confirm_through(seq);
}

// A checkpoint of an earlier pipeline, acknowledged after it restarted (a
// link or connection loss with writes in flight, a stall): if stored in
// place, so is every write before it (the chain), and the dropped messages
// up to it are applied now; recorded at once rather than at the next start.
void Follower::on_late_ack(uint64_t seq, const nats::wire::ServerOp& msg) {
  if (late_held_.empty() || late_held_.begin()->first > seq || msg.payload.empty()) return;
  auto ack = nats::parse_pub_ack(msg.payload);
  if (!ack || ack->refused() || ack->stream != cfg_.name || ack->seq != seq || ack->duplicate) return;
  const ApplyClock clock = apply_clock();
  auto end = late_held_.upper_bound(seq);
  for (auto it = late_held_.begin(); it != end; ++it) record_apply(it->first, it->second, clock);
  late_held_.erase(late_held_.begin(), end);
  late_acked_to_ = std::max(late_acked_to_, seq);
  // The oldest dropped message is applied now: the current time lag goes
  // on with the next dropped one still held, if any.
  if (dropped_seq_ > 0 && dropped_seq_ <= seq) {
    if (!late_held_.empty()) {
      dropped_seq_ = late_held_.begin()->first;
      dropped_origin_ns_ = late_held_.begin()->second.origin_time_ns;
    } else {
      dropped_seq_ = 0;
      dropped_origin_ns_ = 0;
    }
  }
}

// A checkpoint acknowledged at its own sequence: every write before it is
// stored in place (the chain), and none of them was displaced by a foreign
// write (the watch subscription delivers those before this acknowledgement:
// one connection, one delivery thread, in order).
void Follower::confirm_through(uint64_t seq) {
  // The expected-last-sequence header of this write matched nats-server's
  // count: the offset is right, pipelining is safe.
  probation_ = false;
  if (!write_refused_.empty() && write_refused_ == warned_error_) {
    spdlog::info("stream {}: replica writes are accepted again", cfg_.name);
  } else if (!warned_error_.empty()) {
    spdlog::info("stream {}: replicating again (writes acknowledged) after: {}", cfg_.name, warned_error_);
  }
  write_refused_.clear();
  warned_error_.clear();
  const ApplyClock clock = apply_clock();
  uint64_t s = next_ - inflight_.size();
  for (; s <= seq && !inflight_.empty(); ++s) {
    Inflight in = inflight_.front();
    inflight_.pop_front();
    if (in.filler) {
      ++fillers_;
      note_self_deleted(s);
      std::string sname = cfg_.name;
      int64_t tmo = ctx_.timeout_ms();
      uint64_t fs = s;
      ctx_.async<Status>(
          [sname, fs, tmo](natsConnection* nc) {
            auto r = nats::msg_delete(nc, sname, fs, tmo);
            return r ? Status::ok() : r.status();
          },
          [sname, fs](Status st) {
            if (!st) spdlog::warn("stream {}: could not delete filler at {}: {}", sname, fs, st.message());
          });
    } else {
      record_apply(s, in, clock);
      known_seq_ = s;
      known_time_ns_ = in.origin_time_ns;
    }
  }
  advance_applied();
  sync_.update(loop::mono_ns(), applied_, leader_last_seq_);
  note_caught_up();
  ack_dirty_ = true;
  ctx_.request_flush();
  pump();
  if (!to_delete_.empty()) apply_deletes();
  if (leader_first_ > replica_first_) trim();
  fill_deleted_tail();
}

void Follower::fail(const std::string& why) {
  if (retired_) return;
  phase_ = Phase::kError;
  detail_ = why;
  phase_since_mono_ns_ = loop::mono_ns();
  ++gen_;
  drop_held();
  warn_error(detail_);
}

void Follower::warn_error(const std::string& why) {
  constexpr int64_t kRewarnNs = 60'000'000'000;
  const int64_t now = loop::mono_ns();
  if (why == warned_error_ && now - warned_error_mono_ns_ < kRewarnNs) {
    ++unwarned_retries_;
    unwarned_mono_ns_ = now;
    spdlog::debug("stream {}: {} (again)", cfg_.name, why);
    return;
  }
  // "still" only if the error was seen within the last 10 s (a retry is
  // every 2 s): not for the same error coming back after a quiet spell.
  if (why == warned_error_ && unwarned_retries_ > 0 && now - unwarned_mono_ns_ < 10'000'000'000) {
    spdlog::warn("stream {}: {} (still; {} retries since the last warning)", cfg_.name, why, unwarned_retries_);
  } else {
    spdlog::warn("stream {}: {}", cfg_.name, why);
  }
  warned_error_ = why;
  warned_error_mono_ns_ = now;
  unwarned_retries_ = 0;
  retry_announced_ = false;
}

// A checkpoint was refused: some write in (applied_, seq] failed, and every
// write after it with it. The replica's real last sequence says which, and
// why: a foreign write (diverge), nats-server's stale expected-last-sequence
// count (learn the offset and resume), or the message itself (name the
// refusal: resume with an acknowledgement for every message).
void Follower::refused(uint64_t seq, const nats::PubAck& ack) {
  const uint64_t first_open = next_ - inflight_.size();  // first unconfirmed sequence
  const uint64_t wrote_to = next_ - 1;
  uint64_t g = ++gen_;
  drop_held();
  phase_ = Phase::kPreparing;
  phase_since_mono_ns_ = loop::mono_ns();
  std::string stream = cfg_.name;
  int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Result<Json>>(
      [stream, tmo](natsConnection* nc) { return nats::stream_info(nc, stream, tmo); },
      [this, g, seq, ack, first_open, wrote_to](Result<Json> r) {
        if (g != gen_) return;
        if (!r) {
          ++apply_errors_;
          reset("cannot read replica state: " + r.status().message());
          return;
        }
        const uint64_t last = (*r)["state"].value("last_seq", uint64_t{0});
        auto resume = [this]() {
          phase_ = Phase::kIdle;
          phase_since_mono_ns_ = loop::mono_ns();
          maybe_start();
        };
        if (last + 1 >= first_open && last >= seq && late_writes_suspected(last, first_open)) {
          // The place is taken, but no higher than this daemon wrote: an
          // earlier pipeline's writes, stored after it restarted? The start
          // checks each message from the first unconfirmed one.
          spdlog::info("stream {}: leader sequence {} was refused ({}): the replica's last sequence is {}; "
                       "checking whether sequences {}..{} are writes of an earlier pipeline stored late",
                       cfg_.name, seq, ack.error, last, first_open, last);
          suspect_late_writes(first_open);
          resume();
          return;
        }
        if (last + 1 < first_open || last >= seq) {
          // Confirmed writes went missing, or the refused place is taken.
          ++apply_errors_;
          phase_ = Phase::kReplicating;
          diverge("leader sequence " + std::to_string(seq) + " was refused (" + ack.error +
                      "): the replica's last sequence is " + std::to_string(last) + ", Isthmus wrote up to " +
                      std::to_string(wrote_to) + " (a foreign write?)",
                  std::min(first_open, last + 1));
          return;
        }
        // Writes up to `last` are stored; the one at last + 1 was refused.
        uint64_t counted = 0;
        if (ack.err_code == kErrWrongLastSequence && nats::wrong_last_sequence_of(ack.error, counted)) {
          int64_t offset = static_cast<int64_t>(counted) - static_cast<int64_t>(last);
          if (offset != guard_offset_) {
            spdlog::info("stream {}: nats-server counts the replica's last sequence as {} where it is {}; "
                         "expected-last-sequence headers now follow its count (offset {}; nats-server 2.9 keeps "
                         "an old count after a positioning purge until it restarts)",
                         cfg_.name, counted, last, offset);
            guard_offset_ = offset;
            resume();
            return;
          }
          if (last + 1 == seq) {
            // Refused in place with an accurate count: something else was
            // stored there and is gone again. Treat as a foreign write.
            ++apply_errors_;
            phase_ = Phase::kReplicating;
            diverge("leader sequence " + std::to_string(seq) + " was refused (" + ack.error +
                        ") although the replica's last sequence is " + std::to_string(last) + " (a foreign write?)",
                    last + 1);
            return;
          }
        } else if (ack.err_code == kErrWrongLastSequence) {
          ++apply_errors_;
          spdlog::warn("stream {}: unreadable expected-last-sequence refusal ({}); placing writes by acknowledged "
                       "sequence only",
                       cfg_.name, ack.error);
          use_expected_last_ = false;
          resume();
          return;
        } else if (last + 1 == seq) {
          ++apply_errors_;
          // JetStream's 10023: the region's JetStream storage is full.
          const bool no_room = ack.err_code == 10023 || ack.error.find("insufficient resources") != std::string::npos;
          fail("replica refused sequence " + std::to_string(seq) + ": " + ack.error +
               (no_room ? " (this region's JetStream storage is full: the server's max_file_store or "
                          "max_memory_store, or the account's limits; a replica needs what the leader's stream "
                          "holds plus about 150 bytes of origin headers per message)"
                        : ""));
          return;
        }
        // Refused somewhere before the checkpoint: redo that stretch with an
        // acknowledgement for every message, which names the refusal.
        ++apply_errors_;
        spdlog::warn("stream {}: the write of sequence {} was refused, and with it those after it up to "
                     "checkpoint {} ({}); retrying from {} with an acknowledgement for every message",
                     cfg_.name, last + 1, seq, ack.error, last + 1);
        ack_all_until_ = std::max(ack_all_until_, wrote_to);
        resume();
      });
}

Follower::ApplyClock Follower::apply_clock() const {
  ApplyClock c;
  c.wall_ns = loop::wall_ns();
  c.mono_ns = loop::mono_ns();
  c.offset_known = ctx_.links->clock_offset(cfg_.leader, c.offset_ns, c.offset_error_ns);
  return c;
}

bool Follower::leader_fresh(int64_t now_mono) const {
  // And not over a path whose queues hold frames from the leader for long
  // (a congested link): its last STATE, however recently it arrived, would
  // name a last sequence that old, and a follower that holds it may be
  // seconds behind. Unknown (no heartbeat exchanged yet since this daemon
  // started, about a heartbeat interval): not trusted either.
  const int64_t delay = ctx_.links->inbound_delay_ns(cfg_.leader);
  return phase_ == Phase::kReplicating && ctx_.links->is_up(cfg_.leader) &&
         now_mono - leader_heard_mono_ns_ < kLeaderFreshNs && delay >= 0 && delay < kCongestedPathNs;
}

bool Follower::leader_in_sight(int64_t now_mono) const {
  // STATEs come only while subscribed: a stream diverged, in error or
  // preparing hears none and reads its figures as last heard, with the
  // link up (its state says it is not applying).
  return ctx_.links->is_up(cfg_.leader) && leader_heard_mono_ns_ > 0 &&
         (phase_ != Phase::kReplicating || now_mono - leader_heard_mono_ns_ < kLeaderFreshNs);
}

bool Follower::caught_up_now() const {
  return applied_ >= leader_last_seq_ && queue_.empty() && inflight_.empty();
}

void Follower::note_caught_up() {
  if (last_apply_backlog_ && caught_up_now()) caught_up_after_backlog_ = true;
  note_current();
}

void Follower::note_current() {
  if (state_wall_ns_ > 0 && applied_ >= state_last_seq_ && phase_ == Phase::kReplicating) {
    current_as_of_wall_ns_ = std::max(current_as_of_wall_ns_, state_wall_ns_);
  }
}

void Follower::record_apply(uint64_t seq, const Inflight& in, const ApplyClock& c) {
  ++applied_msgs_;
  applied_bytes_ += in.bytes;
  last_applied_origin_ns_ = std::max(last_applied_origin_ns_, in.origin_time_ns);
  last_apply_wall_ns_ = c.wall_ns;
  last_apply_backlog_ = seq <= backlog_to_;
  last_apply_mono_ns_ = c.mono_ns;
  caught_up_after_backlog_ = false;
  // apply time (our clock) - origin store time (the leader's clock), plus
  // (leader's clock - ours): both ends on the leader's clock.
  time_lag_uncorrected_ns_ = c.wall_ns - in.origin_time_ns;
  // History: stored at the leader before this replica was created (an
  // initial sync into a new replica, a rebuild's copy). Its difference is
  // its age, not a replication delay: it stays out of the window and the
  // histogram, which would otherwise show that history's age for a minute
  // after the replica is current (and fire a time-lag alert on it).
  // Without an offset estimate the decision waits with the sample (the
  // replica's host may be ahead: see is_history()).
  if (!c.offset_known) {
    if (deferred_lag_uncorrected_.size() < kMaxDeferredLagSamples) {
      deferred_lag_uncorrected_.push_back({time_lag_uncorrected_ns_, in.origin_time_ns});
    } else {
      ++lag_samples_unrecorded_;
    }
    return;
  }
  record_deferred_lag(c);
  record_lag(time_lag_uncorrected_ns_, in.origin_time_ns, c);
}

bool Follower::is_history(int64_t origin_ns, const ApplyClock& c) const {
  // The replica's creation time is its nats-server's clock, the origin
  // time the leader's: compared as they are, and also corrected by the
  // daemons' offset estimate when that is good to 100 ms (hosts whose
  // clocks differ: a replica host X ahead read the messages of the X after
  // its creation as history by the first comparison alone); both must say
  // "before" (a message near the boundary counts as lag).
  const bool offset_good = c.offset_known && c.offset_error_ns >= 0 && c.offset_error_ns <= 100'000'000;
  return replica_created_ns_ > 0 && origin_ns > 0 && origin_ns < replica_created_ns_ &&
         (!offset_good || origin_ns < replica_created_ns_ + c.offset_ns);
}

void Follower::record_lag(int64_t uncorrected_ns, int64_t origin_ns, const ApplyClock& c) {
  if (is_history(origin_ns, c)) {
    ++history_applied_;
    return;
  }
  // Never negative: a message cannot be applied before it was stored; a
  // negative value is the offset estimate's error (at most err) showing.
  lag_hist_.record_ns(c.mono_ns, std::max<int64_t>(0, uncorrected_ns + c.offset_ns));
}

void Follower::record_deferred_lag(const ApplyClock& c) {
  if (deferred_lag_uncorrected_.empty() || !c.offset_known) return;
  // Recorded now (a second or so after they were applied: the same window).
  for (const DeferredLag& d : deferred_lag_uncorrected_) record_lag(d.uncorrected_ns, d.origin_ns, c);
  deferred_lag_uncorrected_.clear();
  deferred_lag_uncorrected_.shrink_to_fit();
}

Follower::LagFigures Follower::figures() const {
  LagFigures f;
  f.offset_known = ctx_.links->clock_offset(cfg_.leader, f.offset_ns, f.offset_error_ns);
  int64_t now_mono = loop::mono_ns();
  f.window = lag_hist_.window_quantiles(now_mono);
  // A rebuild's sync, while it runs, in place of the initial sync's (the
  // same shape: the API, the metrics and the leader's view show either).
  f.sync = rebuild_ == Rebuild::kSyncing && progress_.active()
               ? progress_.snapshot(applied_, std::max(leader_last_seq_, applied_), now_mono)
               : sync_.snapshot();
  if (f.sync.started) {
    // To go as of now, like seq_lag (the progress itself is fed at each
    // checkpoint and tick; the leader's last sequence moves in between).
    f.sync.set_to_go(std::max(leader_last_seq_, applied_) - applied_);
    // Not replicating (the link or the leader away, an error): nothing
    // moves, so no estimate (the smoothed rate only decays meanwhile).
    if (phase_ != Phase::kReplicating && f.sync.to_go > 0) f.sync.eta_s = -1;
    // Nor with the leader out of sight: to go is unknown then (it read 0,
    // "caught up in 0 s", through a partition).
    if (!leader_in_sight(now_mono)) f.sync.eta_s = -1;
  }
  f.leader_in_sight = leader_in_sight(now_mono);
  // Newest-applied age. Caught up with a leader heard from in the last few
  // seconds: 0 (an idle leader has nothing newer). Otherwise the time since
  // the newest applied message's origin store time, on the leader's clock
  // when the offset is known; it keeps rising while the link is down.
  bool fresh = leader_fresh(now_mono);
  // The current time lag: the last applied message's, corrected with the
  // offset as estimated now (so a message applied before the first estimate
  // gets one as soon as it exists). But 0 while the follower is caught up
  // (everything the leader is known to hold applied, nothing queued or in
  // flight) after that message with nothing newer, if the message was
  // backlog (the leader held it when this pipeline started: an initial
  // sync, a rebuild, a catch-up after an outage: its "lag" is its age) or
  // nothing has been applied for kIdleLagZeroNs with a fresh leader: nothing
  // is behind, and the last message's lag would otherwise stand for as long
  // as the stream stays idle. Decided here, at each reading, so that it
  // ends as soon as the follower falls behind or loses sight of the leader.
  if (last_apply_wall_ns_ > 0 && f.offset_known) {
    int64_t corrected = time_lag_uncorrected_ns_ + f.offset_ns;
    f.last_time_lag_ns = std::max<int64_t>(0, corrected);
    f.time_lag_clamped = corrected < 0;
    f.time_lag_ns = f.last_time_lag_ns;
    const bool idle = fresh && now_mono - last_apply_mono_ns_ >= kIdleLagZeroNs;
    if (caught_up_now() && ((last_apply_backlog_ && caught_up_after_backlog_) || idle)) {
      f.time_lag_ns = 0;
      f.time_lag_clamped = false;
    }
    // With the leader out of sight (the link down, no STATE for 3 s) the
    // last applied message's lag says nothing of now: unknown (it read a
    // millisecond or so through a partition), unless a message held or
    // dropped unapplied gives a lower bound (below).
    if (!f.leader_in_sight) {
      f.time_lag_ns = -1;
      f.time_lag_clamped = false;
    }
  }
  // And while messages the follower holds wait to be applied (written and
  // not yet acknowledged, or queued), at least the oldest one's age: a
  // replica that stops storing (its nats-server stalled) shows its lag
  // growing now, not once the stall is over.
  // So do messages a pipeline restart dropped (the acknowledgement timeout:
  // a replica stalled for longer), until applied or gone at the leader.
  const bool dropped = dropped_seq_ > applied_ && dropped_seq_ >= leader_first_ && dropped_origin_ns_ > 0;
  if (f.offset_known && (!inflight_.empty() || !queue_.empty() || dropped)) {
    int64_t oldest = !inflight_.empty() ? inflight_.front().origin_time_ns
                     : !queue_.empty()  ? queue_.front().time_ns
                                        : dropped_origin_ns_;
    if (dropped && (oldest <= 0 || dropped_origin_ns_ < oldest)) oldest = dropped_origin_ns_;
    const int64_t waiting = loop::wall_ns() - oldest + f.offset_ns;
    if (oldest > 0 && waiting > std::max<int64_t>(f.time_lag_ns, 0)) {
      f.time_lag_ns = waiting;
      f.time_lag_clamped = false;
    }
  }
  // Not applying (its NATS down, an error, diverged, between pipelines)
  // with the leader in sight: the first message it lacks was stored no
  // later than the leader was first known to hold it (hold_marks_), and
  // will be applied at least that late. (Without it the last applied
  // message's lag stood, e.g. 1.4 ms through a 5 s outage of the
  // replica's nats-server; operator trial.) Not in a rebuild, which copies
  // history.
  if (f.leader_in_sight && phase_ != Phase::kReplicating && phase_ != Phase::kRebuilding) {
    // The first message it lacks that the leader still holds: the leader's
    // limits may have removed the older ones meanwhile (their age would
    // overstate how late the next apply is).
    const uint64_t lacks = std::max(applied_ + 1, leader_first_);
    for (const auto& [seq, as_of] : hold_marks_) {
      if (seq < lacks) continue;
      const int64_t waiting = loop::wall_ns() - as_of;
      if (waiting > std::max<int64_t>(f.time_lag_ns, 0)) {
        f.time_lag_ns = waiting;
        f.time_lag_clamped = false;
      }
      break;
    }
  }
  if (fresh && applied_ >= leader_last_seq_) {
    f.newest_applied_age_ns = 0;
  } else if (last_applied_origin_ns_ > 0) {
    // On the leader's clock: by the offset, or the last one known while a
    // new link has not confirmed it; with none at all (the first heartbeats
    // after a start), uncorrected.
    int64_t offset = f.offset_ns;
    if (!f.offset_known && !ctx_.links->clock_offset_unconfirmed(cfg_.leader, offset)) offset = 0;
    int64_t now_leader = loop::wall_ns() + offset;
    f.newest_applied_age_ns = std::max<int64_t>(0, now_leader - last_applied_origin_ns_);
    // Nor more than the time since the replica was last known to hold all
    // the leader held (a STATE whose last sequence it had applied): an
    // idle stream read the time since its last message, minutes, as soon
    // as the link blipped (operator trial). It rises from that moment.
    if (current_as_of_wall_ns_ > 0) {
      f.newest_applied_age_ns =
          std::min(f.newest_applied_age_ns, std::max<int64_t>(0, loop::wall_ns() - current_as_of_wall_ns_));
    }
  }
  return f;
}

void Follower::send_lag_report() {
  // While the local NATS is down the stream waits (idle) and applies
  // nothing: reported as such (the leader's row for this region read
  // "replicating" while the link stood). Otherwise an idle stream is
  // between two pipelines, or not started: nothing to report.
  const bool nats_down = !ctx_.data;
  if (!ctx_.links->is_up(cfg_.leader) ||
      ((phase_ == Phase::kIdle || phase_ == Phase::kAwaitInfo) && !nats_down)) {
    return;
  }
  LagFigures fg = figures();
  link::LagReport r;
  r.stream = cfg_.name;
  r.applied_seq = applied_;
  if (fg.offset_known) r.flags |= link::kLagFlagOffsetKnown;
  if (fg.sync.started) r.flags |= link::kLagFlagSyncStarted;
  if (fg.sync.syncing) r.flags |= link::kLagFlagSyncing;
  if (std::string_view(fg.sync.kind) == "rebuild") r.flags |= link::kLagFlagRebuild;
  // (The leader shows it in its row for us, with its own exact figure of
  // how old the first message we lack is.)
  // Also through the retries of an error until it clears (a prepare that
  // succeeds reports at once, and the error may come back at the first
  // write: the leader's row would flap).
  if (phase_ == Phase::kError || phase_ == Phase::kDiverged || write_refused_now() || !warned_error_.empty() ||
      nats_down) {
    r.flags |= link::kLagFlagNotApplying;
  }
  r.time_lag_ns = fg.time_lag_ns;
  r.p50_ns = fg.window.p50_ns;
  r.p95_ns = fg.window.p95_ns;
  r.p99_ns = fg.window.p99_ns;
  r.window_samples = fg.window.samples;
  r.newest_applied_origin_ns = last_applied_origin_ns_;
  r.newest_applied_age_ns = fg.newest_applied_age_ns;
  r.clock_offset_ns = fg.offset_ns;
  r.clock_offset_error_ns = fg.offset_known ? fg.offset_error_ns : -1;
  r.sync_done = fg.sync.done;
  r.sync_to_go = fg.sync.to_go;
  r.sync_rate_milli = static_cast<uint64_t>(std::max(0.0, fg.sync.rate_per_s) * 1000.0);
  r.sync_eta_ms = fg.sync.eta_s < 0 ? -1 : static_cast<int64_t>(fg.sync.eta_s * 1000.0);
  std::vector<uint8_t> f;
  encode(r, f);
  // Ahead of this region's own DATA backlog toward the leader (when it
  // leads streams too): the leader shows no report older than 3 s.
  ctx_.links->send_priority(cfg_.leader, std::move(f));
}

void Follower::advance_applied() {
  applied_ = next_ - 1 - inflight_.size();
  forget_dropped_if_applied();
}

void Follower::forget_dropped_if_applied() {
  // Applied by a later pipeline's own write (recorded then).
  if (!late_held_.empty()) late_held_.erase(late_held_.begin(), late_held_.upper_bound(applied_));
  // Confirmed in place up to applied_ (the chain): no dropped write can
  // land at or below it.
  if (late_to_ > 0 && applied_ >= late_to_) late_writes_checked_to(applied_);
  if (dropped_seq_ > 0 && applied_ >= dropped_seq_) {
    dropped_seq_ = 0;
    dropped_origin_ns_ = 0;
  }
}

void Follower::flush() {
  if (!ack_dirty_) return;
  if (phase_ != Phase::kReplicating) {
    ack_dirty_ = false;
    return;
  }
  link::Ack a;
  a.stream = cfg_.name;
  a.stored_seq = applied_;
  a.stored_time_ns = last_applied_origin_ns_;
  std::vector<uint8_t> f;
  encode(a, f);
  ctx_.links->send(cfg_.leader, std::move(f));
  ack_dirty_ = false;
}

void Follower::check_replica() {
  if (check_pending_ || purge_pending_) return;
  check_pending_ = true;
  uint64_t g = gen_;
  ctx_.infos->read(cfg_.name, [this, g](Result<Json> r) {
    if (g != gen_) return;
    check_pending_ = false;
    if (phase_ != Phase::kReplicating || purge_pending_) return;
    if (!r) {
      if (r.status().code() == Code::kNotFound) {
        reset("the replica is gone (deleted outside Isthmus?) and is created again from the "
              "leader's configuration");
      }
      return;
    }
    uint64_t last = (*r)["state"].value("last_seq", uint64_t{0});
    const uint64_t count = (*r)["state"].value("messages", uint64_t{0});
    const uint64_t first =
        count > 0 ? (*r)["state"].value("first_seq", uint64_t{0}) : last + 1;
    if (check_front(first)) return;
    // Everything at or below next_-1 is ours (published or
    // positioned); anything beyond came from elsewhere.
    if (last > next_ - 1 && late_writes_suspected(last, applied_ + 1)) {
      // No higher than this daemon wrote: an earlier
      // pipeline's writes stored late? The start checks them.
      suspect_late_writes(applied_ + 1);
      reset("the replica's last sequence is " + std::to_string(last) +
            ", beyond this pipeline's writes (up to " + std::to_string(next_ - 1) +
            "): checking for writes of an earlier pipeline stored late");
    } else if (last > next_ - 1) {
      diverge("a message was written into the replica from outside Isthmus "
              "(replica last sequence " + std::to_string(last) +
                  ", Isthmus wrote up to " + std::to_string(next_ - 1) + ")",
              applied_ + 1);
    }
  });
}

// The leader's first sequence is a message it holds; once applied, the
// replica must hold it too. A replica whose first message is above it lost
// messages to something outside Isthmus (a purge or delete by hand): the
// replica no longer matches, and only a rebuild brings them back. A removal
// at the leader reaches us as a delete before the STATE that moves its
// first sequence on, so the finding must hold again after a STATE that
// arrived since.
bool Follower::check_front(uint64_t replica_first) {
  const bool lacking = leader_first_ > 0 && leader_first_ <= applied_ && replica_first > leader_first_ &&
                       replica_first > replica_first_ && !draining_;
  if (!lacking) {
    front_suspect_ = false;
    return false;
  }
  if (!front_suspect_ || states_seen_ <= front_suspect_states_) {
    if (!front_suspect_) front_suspect_states_ = states_seen_;
    front_suspect_ = true;
    return false;
  }
  front_suspect_ = false;
  diverge("messages the leader holds are missing from the replica: sequences " + std::to_string(leader_first_) +
              " to " + std::to_string(replica_first - 1) +
              " (purged or deleted outside Isthmus); only a rebuild brings them back",
          applied_ + 1);
  return true;
}

std::string Follower::replaced_detail(uint64_t seq, const std::string& evidence) const {
  return "the leader's stream is not the one this replica copied (deleted and created again, or replaced): "
         "the replica holds its sequence " + std::to_string(seq) + " and " + evidence +
         ". A rebuild copies the new stream; it deletes this replica's messages, the old stream's, so keep a "
         "copy first if they are wanted";
}

void Follower::tick() {
  int64_t now = loop::mono_ns();
  if (!deferred_lag_uncorrected_.empty()) record_deferred_lag(apply_clock());
  start_hole_check();
  sync_.update(now, applied_, leader_last_seq_);
  note_caught_up();
  send_lag_report();
  switch (phase_) {
    case Phase::kIdle:
      maybe_start();
      break;
    case Phase::kAwaitInfo:
      if (now - phase_since_mono_ns_ > kInfoRetryNs) {
        phase_ = Phase::kIdle;
        maybe_start();
      }
      break;
    case Phase::kError:
      if (now - phase_since_mono_ns_ > kErrorRetryNs && !prepare_pace_.holding(now)) {
        phase_ = Phase::kIdle;
        maybe_start();
      }
      break;
    case Phase::kReplicating:
      // An error that cleared without a write to show it (an idle stream):
      // replicating for 10 s without it coming back.
      if (!warned_error_.empty() && now - phase_since_mono_ns_ > kErrorClearedNs) {
        spdlog::info("stream {}: replicating again after: {}", cfg_.name, warned_error_);
        warned_error_.clear();
      }
      if (!inflight_.empty() && now - inflight_.front().sent_mono_ns > kAckTimeoutNs) {
        ++apply_errors_;
        reset("no publish acknowledgement for 10 s");
        break;
      }
      check_replica();
      // The leader's stream is empty, its first sequence beyond ours (its
      // messages expired, were consumed or purged, or it was created again
      // and published to with nobody interested): nothing will arrive to
      // position the replica by, so position it now (a sync would
      // otherwise wait for the next message).
      // (Not while an earlier pipeline's writes may still land: the late-
      // write check comes first.)
      if (state_seen_ && leader_first_ > next_ && leader_last_seq_ + 1 == leader_first_ && queue_.empty() &&
          inflight_.empty() && !purge_pending_ && !draining_ && late_from_ == 0 && late_held_.empty() &&
          verify_from_ == 0) {
        position_at(leader_first_);
      }
      fill_deleted_tail();
      trim();
      apply_deletes();
      log_deletes();
      ack_dirty_ = true;  // refresh the leader's view even when idle
      if (progress_.active()) progress_.sample(applied_, now);
      check_synced();
      break;
    case Phase::kDiverged:
      keep_foreign();  // foreign writes may go on while diverged
      break;
    case Phase::kPreparing:
    case Phase::kRebuilding:
      break;
  }
}

nlohmann::json Follower::lag_json() const {
  Json f;
  f["region"] = ctx_.cfg->region.name;
  uint64_t leader_last = std::max(leader_last_seq_, applied_);
  // Unknown until the leader has been heard from since this daemon started.
  const bool leader_known = leader_heard_mono_ns_ > 0;
  f["leader_last_seq"] = leader_known ? Json(leader_last) : Json();
  f["applied_seq"] = applied_;
  // And while the leader is out of sight: its last sequence as last heard
  // is not its last sequence now (a partition read seq lag 0). Nor is it
  // while the follower does not replicate (starting: the replica being
  // prepared; error; diverged): no STATE comes then, and a replica being
  // created read "seq lag 0" against a leader taking in thousands
  // (operator trial, R3 replicas); the leader's row has it.
  f["seq_lag"] = leader_known && phase_ == Phase::kReplicating && leader_in_sight(loop::mono_ns())
                     ? Json(leader_last - applied_)
                     : Json();
  f["last_applied_origin_time_ns"] = last_applied_origin_ns_;
  f["last_apply_time_ns"] = last_apply_wall_ns_;
  LagFigures fg = figures();
  Json tl = lag_figures_json(fg.time_lag_ns, fg.window, fg.offset_known, fg.offset_ns, fg.offset_error_ns);
  tl["last_ms"] = fg.last_time_lag_ns < 0 ? Json(nullptr) : Json(ns_to_ms(fg.last_time_lag_ns));
  tl["uncorrected_ms"] = last_apply_wall_ns_ > 0 ? Json(ns_to_ms(time_lag_uncorrected_ns_)) : Json(nullptr);
  tl["clamped"] = fg.time_lag_clamped;
  tl["unrecorded_without_offset"] = lag_samples_unrecorded_ + deferred_lag_uncorrected_.size();
  tl["history_not_sampled"] = history_applied_;
  tl["histogram"] = histogram_json(lag_hist_.total());
  f["time_lag"] = tl;
  f["newest_applied_age_ms"] = fg.newest_applied_age_ns < 0 ? Json(nullptr) : Json(ns_to_ms(fg.newest_applied_age_ns));
  f["sync"] = sync_json(fg.sync);
  f["messages_applied"] = applied_msgs_;
  f["bytes_applied"] = applied_bytes_;
  f["apply_errors"] = apply_errors_;
  f["fillers"] = fillers_;
  f["skipped"] = skipped_;
  f["trims"] = trims_;
  f["deletes_applied"] = deletes_applied_;
  f["hole_checks"] = Json{{"count", hole_checks_}, {"to_seq", hole_checked_to_}, {"candidates", hole_candidate_seqs_}};
  f["pipeline_resets"] = resets_;
  f["queued"] = queue_.size();
  f["inflight"] = inflight_.size();
  if (missing_ > 0) {
    f["missing"] = Json{{"messages", missing_}, {"first_seq", missing_first_}, {"last_seq", missing_last_}};
  }
  if (phase_ == Phase::kDiverged || foreign_found_ > 0) {
    f["foreign_found"] = foreign_found_;
    f["foreign_kept"] = foreign_kept_;
    f["side_stream"] = side_stream_name(cfg_.name);
    if (!foreign_error_.empty()) f["foreign_error"] = foreign_error_;
  }
  Json s;
  s["stream"] = cfg_.name;
  s["leader"] = cfg_.leader;
  s["role"] = "follower";
  // Diverged, then in error (retried every 2 s), then rebuilding: the
  // first that holds is the state. An error during a rebuild is "error"
  // like any other (the rebuild goes on once it clears: "rebuild" says so).
  const bool refused_now = phase_ != Phase::kDiverged && phase_ != Phase::kError && write_refused_now();
  if (phase_ == Phase::kDiverged || phase_ == Phase::kError) {
    s["state"] = phase_name(phase_);
    if (!detail_.empty()) s["detail"] = detail_;
  } else if (refused_now) {
    s["state"] = "error";  // retrying: see write_refused_now()
    s["detail"] = write_refused_;
  } else if (rebuild_ != Rebuild::kNone) {
    s["state"] = "rebuilding";
    if (rebuild_ == Rebuild::kRequested) {
      s["detail"] = "keeping foreign messages aside, then deleting and recreating the replica";
    } else if (phase_ == Phase::kReplicating) {
      s["detail"] = "syncing from " + cfg_.leader;
    }
  } else {
    s["state"] = phase_ == Phase::kReplicating && sync_.syncing() ? "syncing" : phase_name(phase_);
    // Back from an error and not yet proven (the leader's row says `error`
    // meanwhile: our reports say we are not applying): say which.
    if (!warned_error_.empty()) {
      s["detail"] = "retrying after: " + warned_error_ + " (until a write is acknowledged, or 10 s without it)";
    }
  }
  if (rebuild_ != Rebuild::kNone && phase_ != Phase::kDiverged) {
    s["rebuild"] = rebuild_ == Rebuild::kRequested ? "requested" : "syncing";
  }
  s["followers"] = Json::array({f});
  return s;
}

std::string Follower::problem() const {
  if (phase_ == Phase::kDiverged) {
    return "stream " + cfg_.name + " diverged: " + detail_ + "; " + std::to_string(foreign_found_) +
           " foreign message(s) found, " + std::to_string(foreign_kept_) + " kept aside in " +
           side_stream_name(cfg_.name) + "; realign with POST /v1/streams/" + cfg_.name + "/rebuild";
  }
  if (phase_ == Phase::kError) return "stream " + cfg_.name + ": " + detail_;
  if (write_refused_now()) return "stream " + cfg_.name + ": " + write_refused_;
  if (missing_ > 0 && rebuild_ == Rebuild::kNone) {
    return "stream " + cfg_.name + ": the replica lacks " + std::to_string(missing_) +
           " message(s) the leader holds (sequences " + std::to_string(missing_first_) + ".." +
           std::to_string(missing_last_) + "); repair with POST /v1/streams/" + cfg_.name + "/rebuild";
  }
  if (rebuild_ != Rebuild::kNone) {
    uint64_t leader_last = std::max(leader_last_seq_, applied_);
    return "stream " + cfg_.name + " rebuilding" +
           (rebuild_ == Rebuild::kSyncing ? ": " + std::to_string(leader_last - applied_) + " message(s) to go"
                                          : ": keeping foreign messages aside and recreating the replica");
  }
  return "";
}

}  // namespace isthmus::replication
