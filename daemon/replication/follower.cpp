#include "replication/follower.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "loop/timer.h"
#include "nats/jsapi.h"
#include "replication/headers.h"
#include "replication/lag_json.h"
#include "replication/replica_config.h"

namespace isthmus::replication {

using Json = nlohmann::json;

namespace {

// Publishes awaiting acknowledgement, per stream. Bounds what one stream can
// have outstanding at its local nats-server.
constexpr size_t kMaxInflight = 4096;
constexpr int64_t kAckTimeoutNs = 10'000'000'000;
constexpr int64_t kInfoRetryNs = 5'000'000'000;
constexpr int64_t kErrorRetryNs = 2'000'000'000;
// JetStream's error code for a failed Nats-Expected-Last-Sequence check.
constexpr int kErrWrongLastSequence = 10071;
// A gap at least this long, entirely below the leader's first sequence, is
// crossed with one positioning purge rather than a filler per sequence.
constexpr uint64_t kPositionGapMin = 16;
// Deletions remembered for sequences not yet applied here.
constexpr size_t kMaxPendingDeletes = 1'000'000;

struct PrepResult {
  Status st;
  std::string diverged;  // non-empty: the replica does not match
  uint64_t last_seq = 0;
  uint64_t first_seq = 0;
  uint64_t messages = 0;
  int64_t last_origin_ns = 0;  // origin store time of the replica's last message
};

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
  }
  return "unknown";
}

Follower::Follower(Context& ctx, config::Stream cfg) : ctx_(ctx), cfg_(std::move(cfg)) {
  phase_since_mono_ns_ = loop::mono_ns();
}

Follower::~Follower() = default;

void Follower::maybe_start() {
  if (phase_ != Phase::kIdle) return;
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

void Follower::on_nats_up() { maybe_start(); }

void Follower::on_nats_down() {
  ack_sub_.reset();
  ack_sub_nats_gen_ = 0;
  reset("local NATS connection lost");
}

void Follower::on_link_up() { maybe_start(); }

void Follower::on_link_down() { reset("link to leader " + cfg_.leader + " down"); }

void Follower::reset(const std::string& why) {
  if (phase_ == Phase::kDiverged) return;
  bool was_active = phase_ == Phase::kReplicating || !inflight_.empty();
  ++gen_;
  queue_.clear();
  queue_bytes_ = 0;
  inflight_.clear();
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

void Follower::diverge(const std::string& why) {
  if (phase_ == Phase::kDiverged) return;
  ++gen_;
  queue_.clear();
  queue_bytes_ = 0;
  inflight_.clear();
  purge_pending_ = false;
  phase_ = Phase::kDiverged;
  detail_ = why;
  phase_since_mono_ns_ = loop::mono_ns();
  spdlog::error("stream {}: DIVERGED, replication stopped: {}", cfg_.name, why);
  link::Stop stop;
  stop.stream = cfg_.name;
  stop.reason = "diverged: " + why;
  std::vector<uint8_t> f;
  encode(stop, f);
  ctx_.links->send(cfg_.leader, std::move(f));
  ctx_.request_flush();
}

Status Follower::on_stream_info(const link::StreamInfo& info) {
  if (phase_ != Phase::kAwaitInfo) return Status::ok();
  if (!info.error.empty()) {
    phase_ = Phase::kError;
    detail_ = "leader " + cfg_.leader + ": " + info.error;
    phase_since_mono_ns_ = loop::mono_ns();
    spdlog::warn("stream {}: {}", cfg_.name, detail_);
    return Status::ok();
  }
  Json leader_cfg = Json::parse(info.config_json, nullptr, false);
  if (leader_cfg.is_discarded()) return Status(Code::kInvalid, "stream_info: unparsable configuration");
  auto wanted = derive_replica_config(leader_cfg, ctx_.cfg->nats.replicas);
  if (!wanted) {
    phase_ = Phase::kError;
    detail_ = wanted.status().message();
    phase_since_mono_ns_ = loop::mono_ns();
    return Status::ok();
  }
  phase_ = Phase::kPreparing;
  leader_last_seq_ = std::max(leader_last_seq_, info.last_seq);
  leader_first_seq_ = info.first_seq;
  leader_heard_mono_ns_ = loop::mono_ns();
  // Fresh from the leader: never trim by a first sequence of an earlier session.
  leader_first_ = info.first_seq;
  uint64_t g = gen_;
  std::string stream = cfg_.name;
  std::string leader = cfg_.leader;
  int64_t tmo = ctx_.timeout_ms();
  Json want = *wanted;
  ctx_.async<PrepResult>(
      [stream, leader, tmo, want](natsConnection* nc) {
        PrepResult r;
        auto sinfo = nats::stream_info(nc, stream, tmo);
        if (!sinfo && sinfo.status().code() == Code::kNotFound) {
          sinfo = nats::stream_create(nc, want, tmo);
          if (sinfo) spdlog::info("stream {}: created replica", stream);
        }
        if (!sinfo) {
          r.st = sinfo.status();
          return r;
        }
        std::string conflict = replica_conflict((*sinfo)["config"], want);
        if (!conflict.empty()) {
          r.st = Status(Code::kConflict, "existing stream conflicts with the leader's: " + conflict);
          return r;
        }
        auto changes = replica_limit_changes((*sinfo)["config"], want);
        if (!changes.empty()) {
          // The replica removes messages only in step with the leader: its
          // own limits must never expire, discard or refuse anything.
          std::string list;
          for (const auto& c : changes) list += (list.empty() ? "" : ", ") + c;
          auto upd = nats::stream_update(nc, with_neutral_limits((*sinfo)["config"], want), tmo);
          if (!upd) {
            r.st = Status(upd.status().code(),
                          "cannot give the replica neutral limits (" + list + "): " + upd.status().message());
            return r;
          }
          spdlog::warn("stream {}: replica had limits of its own; updated to neutral ones ({})", stream, list);
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
        const Json& state = (*sinfo)["state"];
        r.last_seq = state.value("last_seq", uint64_t{0});
        r.first_seq = state.value("first_seq", uint64_t{0});
        r.messages = state.value("messages", uint64_t{0});
        if (r.messages > 0 && r.last_seq > 0) {
          auto m = nats::msg_get(nc, stream, r.last_seq, tmo);
          if (m) {
            std::string hdrs, block;
            std::vector<std::pair<std::string, std::string>> hv;
            Origin o;
            bool ok = m->contains("hdrs") && nats::base64_decode((*m)["hdrs"].get<std::string>(), block) &&
                      nats::parse_header_block(block, hv) && parse_origin(hv, o);
            if (!ok) {
              r.diverged = "the replica's last message (sequence " + std::to_string(r.last_seq) +
                           ") was not written by Isthmus";
            } else if (o.seq != r.last_seq) {
              r.diverged = "the replica's last message (sequence " + std::to_string(r.last_seq) +
                           ") carries leader sequence " + std::to_string(o.seq);
            } else if (o.region != leader) {
              r.diverged = "the replica's last message came from region " + o.region + ", not " + leader;
            } else {
              r.last_origin_ns = o.time_ns;
            }
          } else if (m.status().code() != Code::kNotFound) {
            r.st = m.status();
          }
        }
        return r;
      },
      [this, g](PrepResult r) {
        if (g != gen_ || phase_ != Phase::kPreparing) return;
        if (!r.diverged.empty()) {
          diverge(r.diverged);
          return;
        }
        if (!r.st) {
          phase_ = Phase::kError;
          detail_ = r.st.message();
          phase_since_mono_ns_ = loop::mono_ns();
          // Retried every 2 s: log a persistent cause (e.g. a conflicting
          // replica) once, not on every retry.
          if (detail_ != last_prepare_error_) {
            spdlog::warn("stream {}: cannot prepare replica: {}", cfg_.name, detail_);
            last_prepare_error_ = detail_;
          }
          return;
        }
        if (r.last_origin_ns > last_applied_origin_ns_) last_applied_origin_ns_ = r.last_origin_ns;
        last_prepare_error_.clear();
        prepared(r.last_seq, r.messages, r.first_seq);
      });
  return Status::ok();
}

void Follower::prepared(uint64_t last_seq, uint64_t messages, uint64_t first_seq) {
  if (!ctx_.conn) {
    reset("local NATS connection lost");
    return;
  }
  if (!ack_sub_ || ack_sub_nats_gen_ != ctx_.nats_gen) {
    ack_sub_.reset();
    ack_prefix_ = nats::new_inbox() + ".ack";
    auto sub = nats::Subscription::create(
        ctx_.conn.get(), ack_prefix_ + ".>", ctx_.mailbox, [this](natsMsg* m) { on_ack(m); },
        ctx_.cfg->nats.pending_bytes_limit);
    if (!sub) {
      reset(sub.status().message());
      return;
    }
    ack_sub_ = std::move(*sub);
    ack_sub_nats_gen_ = ctx_.nats_gen;
  }
  applied_ = last_seq;
  next_ = last_seq + 1;
  replica_empty_ = messages == 0;
  replica_first_ = messages == 0 ? last_seq + 1 : first_seq;
  detail_.clear();
  sub_id_ = gen_;
  link::Subscribe s;
  s.stream = cfg_.name;
  s.from_seq = next_;
  s.sub_id = sub_id_;
  std::vector<uint8_t> f;
  encode(s, f);
  if (!ctx_.links->send(cfg_.leader, std::move(f))) {
    reset("link to leader down");
    return;
  }
  phase_ = Phase::kReplicating;
  phase_since_mono_ns_ = loop::mono_ns();
  leader_last_seq_ = std::max(leader_last_seq_, applied_);
  if (!sync_.started()) {
    // The initial sync of this daemon's life: from what the replica holds
    // (an empty replica starts at the leader's first sequence) to the
    // leader's last sequence as STREAM_INFO told it.
    uint64_t from = applied_;
    if (replica_empty_ && leader_first_seq_ > 0) from = std::max(from, leader_first_seq_ - 1);
    sync_.start(loop::mono_ns(), from, leader_last_seq_);
  }
  spdlog::info("stream {}: replicating from {} at sequence {}", cfg_.name, cfg_.leader, next_);
  ctx_.request_flush();
  trim();
}

Status Follower::on_data(link::Data&& d) {
  if (phase_ != Phase::kReplicating || d.sub_id != sub_id_) return Status::ok();
  leader_last_seq_ = std::max(leader_last_seq_, d.leader_last_seq);
  leader_heard_mono_ns_ = loop::mono_ns();
  for (auto& m : d.msgs) {
    if (m.seq < next_) continue;
    if (!queue_.empty() && m.seq <= queue_.back().seq) {
      return Status(Code::kInvalid, "data: sequences out of order");
    }
    leader_last_seq_ = std::max(leader_last_seq_, m.seq);
    queue_bytes_ += m.wire_size();
    queue_.push_back(std::move(m));
  }
  pump();
  return Status::ok();
}

void Follower::on_state(const link::State& st) {
  leader_last_seq_ = st.last_seq;
  leader_last_time_ns_ = st.last_time_ns;
  leader_heard_mono_ns_ = loop::mono_ns();
  leader_first_ = std::max(leader_first_, st.first_seq);
  trim();
}

void Follower::on_deleted(link::Deleted&& d) {
  leader_first_ = std::max(leader_first_, d.first_seq);
  for (uint64_t s : d.seqs) {
    if (s < replica_first_ || s < leader_first_) continue;  // gone anyway (trim)
    if (to_delete_.size() >= kMaxPendingDeletes) break;       // the next pass brings the rest
    to_delete_.insert(s);
  }
  trim();
  apply_deletes();
}

// Purges the replica below the leader's first sequence, never above what is
// applied + 1 (messages in flight are at or above it). Such a purge leaves
// the replica's last sequence alone, and with it nats-server's
// expected-last-sequence check (checked on 2.9.10).
void Follower::trim() {
  if (phase_ != Phase::kReplicating || purge_pending_ || draining_) return;
  uint64_t target = std::min(leader_first_, applied_ + 1);
  if (target <= replica_first_) return;
  purge_pending_ = true;
  uint64_t g = gen_;
  std::string stream = cfg_.name;
  int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Status>(
      [stream, target, tmo](natsConnection* nc) {
        auto r = nats::stream_purge_to(nc, stream, target, tmo);
        return r ? Status::ok() : r.status();
      },
      [this, g, target](Status st) {
        if (g != gen_) return;
        purge_pending_ = false;
        if (!st) {
          spdlog::warn("stream {}: cannot trim the replica below {}: {}", cfg_.name, target, st.message());
          return;  // retried on the next STATE
        }
        ++trims_;
        replica_first_ = target;
        to_delete_.erase(to_delete_.begin(), to_delete_.lower_bound(target));
        spdlog::debug("stream {}: replica trimmed below {} in step with the leader", cfg_.name, target);
        pump();
        trim();
      });
}

// Deletes from the replica what the leader deleted, among the sequences
// applied here; sequences not applied yet wait (a gap met while reading
// becomes a deleted filler anyway).
void Follower::apply_deletes() {
  if (phase_ != Phase::kReplicating || delete_pending_ || to_delete_.empty()) return;
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
  };
  ctx_.async<Out>(
      [stream, now, tmo](natsConnection* nc) {
        Out out;
        auto info = nats::stream_info(nc, stream, true, tmo);
        if (!info) {
          out.st = info.status();
          return out;
        }
        const Json& state = (*info)["state"];
        uint64_t first = state.value("first_seq", uint64_t{0});
        uint64_t last = state.value("last_seq", uint64_t{0});
        std::set<uint64_t> have_deleted;
        if (state.contains("deleted") && state["deleted"].is_array()) {
          for (const auto& x : state["deleted"]) {
            if (x.is_number_unsigned()) have_deleted.insert(x.get<uint64_t>());
          }
        }
        for (uint64_t s : now) {
          if (s < first || s > last || have_deleted.count(s) != 0) continue;
          auto r = nats::msg_delete(nc, stream, s, tmo);
          if (r) {
            ++out.deleted;
          } else if (r.status().code() != Code::kNotFound) {
            out.st = r.status();
          }
        }
        return out;
      },
      [this, g, now](Out out) {
        if (g != gen_) return;
        delete_pending_ = false;
        deletes_applied_ += out.deleted;
        if (out.deleted > 0) {
          spdlog::info("stream {}: deleted {} message(s) deleted at the leader", cfg_.name, out.deleted);
        }
        if (!out.st) {
          spdlog::warn("stream {}: cannot apply deletes: {}", cfg_.name, out.st.message());
          for (uint64_t s : now) {
            if (to_delete_.size() < kMaxPendingDeletes) to_delete_.insert(s);
          }
          return;  // retried on the next tick
        }
        apply_deletes();
      });
}

void Follower::pump() {
  while (phase_ == Phase::kReplicating && !draining_ && !purge_pending_ && !queue_.empty() &&
         inflight_.size() < kMaxInflight) {
    const link::Message& m = queue_.front();
    if (m.seq < next_) {
      queue_bytes_ -= m.wire_size();
      queue_.pop_front();
      continue;
    }
    if (m.seq > next_) {
      // Everything below m.seq is gone at the leader: position rather than
      // fill (the expected-last-sequence check goes stale, see below).
      bool below_leader_first = leader_first_ >= m.seq && m.seq - next_ >= kPositionGapMin;
      if ((replica_empty_ || below_leader_first) && inflight_.empty()) {
        // Position the empty replica so the next message lands at m.seq.
        purge_pending_ = true;
        uint64_t g = gen_, to = m.seq;
        std::string stream = cfg_.name;
        int64_t tmo = ctx_.timeout_ms();
        ctx_.async<Status>(
            [stream, to, tmo](natsConnection* nc) {
              auto r = nats::stream_purge_to(nc, stream, to, tmo);
              return r ? Status::ok() : r.status();
            },
            [this, g, to](Status st) {
              if (g != gen_) return;
              purge_pending_ = false;
              if (!st) {
                reset("positioning purge failed: " + st.message());
                return;
              }
              spdlog::info("stream {}: replica positioned at sequence {}", cfg_.name, to);
              replica_first_ = std::max(replica_first_, to);
              // nats-server 2.9 keeps a stale count for the expected-last-
              // sequence check after such a purge (until it restarts).
              use_expected_last_ = false;
              next_ = to;
              applied_ = to - 1;
              ack_dirty_ = true;
              ctx_.request_flush();
              pump();
            });
        return;
      }
      // A gap at the leader (deleted or expired messages): keep alignment
      // with a filler, deleted once stored.
      link::Message filler;
      filler.seq = next_;
      filler.subject = m.subject;
      filler.time_ns = m.time_ns;
      if (!publish(filler, true)) return;
      continue;
    }
    if (!publish(m, false)) return;
    queue_bytes_ -= m.wire_size();
    queue_.pop_front();
  }
}

bool Follower::publish(const link::Message& m, bool filler) {
  natsMsg* msg = nullptr;
  std::string reply = ack_prefix_ + "." + std::to_string(gen_) + "." + std::to_string(m.seq);
  natsStatus s = natsMsg_Create(&msg, m.subject.c_str(), reply.c_str(), m.payload.data(),
                                static_cast<int>(m.payload.size()));
  Origin o;
  o.region = cfg_.leader;
  o.seq = m.seq;
  o.time_ns = m.time_ns;
  o.epoch = 0;
  Headers hs = replica_headers(m.headers, o);
  if (filler) hs.emplace_back(std::string(kHdrFiller), "1");
  // JetStream itself refuses a write that would land anywhere but m.seq, so
  // a foreign write cannot shift the messages pipelined behind it.
  if (use_expected_last_) hs.emplace_back("Nats-Expected-Last-Sequence", std::to_string(m.seq - 1));
  for (size_t i = 0; s == NATS_OK && i < hs.size(); ++i) {
    s = natsMsgHeader_Add(msg, hs[i].first.c_str(), hs[i].second.c_str());
  }
  if (s == NATS_OK) s = natsConnection_PublishMsg(ctx_.conn.get(), msg);
  natsMsg_Destroy(msg);
  if (s != NATS_OK) {
    ++apply_errors_;
    reset(std::string("publish to replica failed: ") + natsStatus_GetText(s));
    return false;
  }
  Inflight in;
  in.sent_mono_ns = loop::mono_ns();
  in.origin_time_ns = m.time_ns;
  in.bytes = m.payload.size();
  in.filler = filler;
  inflight_.emplace(m.seq, in);
  next_ = m.seq + 1;
  replica_empty_ = false;
  return true;
}

void Follower::on_ack(natsMsg* msg) {
  // Copy before destroying the message: views into it die with it.
  std::string subj = natsMsg_GetSubject(msg);
  std::string data(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
  bool no_responders = natsMsg_IsNoResponders(msg);
  natsMsg_Destroy(msg);
  // <prefix>.<gen>.<seq>
  std::string_view sv(subj);
  size_t p2 = sv.rfind('.');
  size_t p1 = p2 == std::string_view::npos || p2 == 0 ? std::string_view::npos : sv.rfind('.', p2 - 1);
  uint64_t g = 0, seq = 0;
  if (p1 == std::string_view::npos || !parse_u64(sv.substr(p1 + 1, p2 - p1 - 1), g) ||
      !parse_u64(sv.substr(p2 + 1), seq)) {
    return;
  }
  if (g != gen_ || phase_ != Phase::kReplicating) return;
  auto it = inflight_.find(seq);
  if (it == inflight_.end()) return;
  if (no_responders) {
    ++apply_errors_;
    reset("no stream holds subject for sequence " + std::to_string(seq));
    return;
  }
  Json j = Json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    ++apply_errors_;
    reset("unparsable publish acknowledgement");
    return;
  }
  if (j.contains("error")) {
    ++apply_errors_;
    std::string desc = j["error"].value("description", std::string("error"));
    if (j["error"].value("err_code", 0) == kErrWrongLastSequence) {
      wrong_last_sequence(seq, desc);
      return;
    }
    phase_ = Phase::kError;
    detail_ = "replica refused sequence " + std::to_string(seq) + ": " + desc;
    phase_since_mono_ns_ = loop::mono_ns();
    ++gen_;
    queue_.clear();
    queue_bytes_ = 0;
    inflight_.clear();
    spdlog::warn("stream {}: {}", cfg_.name, detail_);
    return;
  }
  uint64_t stored = j.value("seq", uint64_t{0});
  std::string stream = j.value("stream", std::string());
  if (stream != cfg_.name || stored != seq || j.value("duplicate", false)) {
    diverge("leader sequence " + std::to_string(seq) + " was stored at replica sequence " +
            std::to_string(stored) + (j.value("duplicate", false) ? " (as a duplicate)" : "") +
            (stream != cfg_.name ? " in stream " + stream : ""));
    return;
  }
  Inflight in = it->second;
  inflight_.erase(it);
  if (in.filler) {
    ++fillers_;
    std::string sname = cfg_.name;
    int64_t tmo = ctx_.timeout_ms();
    ctx_.async<Status>(
        [sname, seq, tmo](natsConnection* nc) {
          auto r = nats::msg_delete(nc, sname, seq, tmo);
          return r ? Status::ok() : r.status();
        },
        [sname, seq](Status st) {
          if (!st) spdlog::warn("stream {}: could not delete filler at {}: {}", sname, seq, st.message());
        });
  } else {
    record_apply(in);
  }
  advance_applied();
  sync_.update(loop::mono_ns(), applied_, leader_last_seq_);
  ack_dirty_ = true;
  ctx_.request_flush();
  pump();
  if (!to_delete_.empty()) apply_deletes();
  if (leader_first_ > replica_first_) trim();
}

void Follower::record_apply(const Inflight& in) {
  ++applied_msgs_;
  applied_bytes_ += in.bytes;
  last_applied_origin_ns_ = std::max(last_applied_origin_ns_, in.origin_time_ns);
  int64_t now_wall = loop::wall_ns();
  last_apply_wall_ns_ = now_wall;
  // apply time (our clock) - origin store time (the leader's clock), plus
  // (leader's clock - ours): both ends on the leader's clock.
  time_lag_uncorrected_ns_ = now_wall - in.origin_time_ns;
  int64_t off = 0, err = -1;
  if (!ctx_.links->clock_offset(cfg_.leader, off, err)) {
    ++lag_samples_unrecorded_;
    return;
  }
  // Never negative: a message cannot be applied before it was stored; a
  // negative value is the offset estimate's error (at most err) showing.
  lag_hist_.record_ns(loop::mono_ns(), std::max<int64_t>(0, time_lag_uncorrected_ns_ + off));
}

Follower::LagFigures Follower::figures() const {
  LagFigures f;
  f.offset_known = ctx_.links->clock_offset(cfg_.leader, f.offset_ns, f.offset_error_ns);
  int64_t now_mono = loop::mono_ns();
  f.window = lag_hist_.window_quantiles(now_mono);
  f.sync = sync_.snapshot();
  // The current time lag: the last applied message's, corrected with the
  // offset as estimated now (so a message applied before the first estimate
  // gets one as soon as it exists).
  if (last_apply_wall_ns_ > 0 && f.offset_known) {
    int64_t corrected = time_lag_uncorrected_ns_ + f.offset_ns;
    f.time_lag_clamped = corrected < 0;
    f.time_lag_ns = std::max<int64_t>(0, corrected);
  }
  // Newest-applied age. Caught up with a leader heard from in the last few
  // seconds: 0 (an idle leader has nothing newer). Otherwise the time since
  // the newest applied message's origin store time, on the leader's clock
  // when the offset is known; it keeps rising while the link is down.
  constexpr int64_t kFreshNs = 3'000'000'000;
  bool fresh = phase_ == Phase::kReplicating && ctx_.links->is_up(cfg_.leader) &&
               now_mono - leader_heard_mono_ns_ < kFreshNs;
  if (fresh && applied_ >= leader_last_seq_) {
    f.newest_applied_age_ns = 0;
  } else if (last_applied_origin_ns_ > 0) {
    int64_t now_leader = loop::wall_ns() + (f.offset_known ? f.offset_ns : 0);
    f.newest_applied_age_ns = std::max<int64_t>(0, now_leader - last_applied_origin_ns_);
  }
  return f;
}

void Follower::send_lag_report() {
  if (!ctx_.links->is_up(cfg_.leader) || phase_ == Phase::kIdle || phase_ == Phase::kAwaitInfo) return;
  LagFigures fg = figures();
  link::LagReport r;
  r.stream = cfg_.name;
  r.applied_seq = applied_;
  if (fg.offset_known) r.flags |= link::kLagFlagOffsetKnown;
  if (fg.sync.started) r.flags |= link::kLagFlagSyncStarted;
  if (fg.sync.syncing) r.flags |= link::kLagFlagSyncing;
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
  ctx_.links->send(cfg_.leader, std::move(f));
}

void Follower::wrong_last_sequence(uint64_t seq, const std::string& desc) {
  // Either a foreign write took the place of `seq`, or nats-server's check
  // is stale (after a positioning purge, until the server restarts). The
  // replica's real last sequence tells them apart.
  uint64_t g = ++gen_;
  queue_.clear();
  queue_bytes_ = 0;
  inflight_.clear();
  phase_ = Phase::kPreparing;
  phase_since_mono_ns_ = loop::mono_ns();
  std::string stream = cfg_.name;
  int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Result<Json>>([stream, tmo](natsConnection* nc) { return nats::stream_info(nc, stream, tmo); },
                           [this, g, seq, desc](Result<Json> r) {
                             if (g != gen_) return;
                             if (!r) {
                               reset("cannot read replica state: " + r.status().message());
                               return;
                             }
                             uint64_t last = (*r)["state"].value("last_seq", uint64_t{0});
                             if (last + 1 == seq) {
                               spdlog::warn("stream {}: nats-server's expected-last-sequence check is stale "
                                            "({}); placing writes by acknowledged sequence only",
                                            cfg_.name, desc);
                               use_expected_last_ = false;
                               phase_ = Phase::kIdle;
                               maybe_start();
                               return;
                             }
                             phase_ = Phase::kReplicating;
                             diverge("leader sequence " + std::to_string(seq) +
                                     " was refused: the replica's last sequence is " + std::to_string(last) +
                                     ", not " + std::to_string(seq - 1) + " (a foreign write?)");
                           });
}

void Follower::advance_applied() {
  applied_ = inflight_.empty() ? next_ - 1 : inflight_.begin()->first - 1;
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
  std::string stream = cfg_.name;
  int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Result<Json>>([stream, tmo](natsConnection* nc) { return nats::stream_info(nc, stream, tmo); },
                           [this, g](Result<Json> r) {
                             if (g != gen_) return;
                             check_pending_ = false;
                             if (phase_ != Phase::kReplicating || purge_pending_) return;
                             if (!r) {
                               if (r.status().code() == Code::kNotFound) reset("replica stream disappeared");
                               return;
                             }
                             uint64_t last = (*r)["state"].value("last_seq", uint64_t{0});
                             // Everything at or below next_-1 is ours (published or
                             // positioned); anything beyond came from elsewhere.
                             if (last > next_ - 1) {
                               diverge("a message was written into the replica from outside Isthmus "
                                       "(replica last sequence " + std::to_string(last) +
                                       ", Isthmus wrote up to " + std::to_string(next_ - 1) + ")");
                             }
                           });
}

void Follower::tick() {
  int64_t now = loop::mono_ns();
  sync_.update(now, applied_, leader_last_seq_);
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
      if (now - phase_since_mono_ns_ > kErrorRetryNs) {
        phase_ = Phase::kIdle;
        maybe_start();
      }
      break;
    case Phase::kReplicating:
      if (!inflight_.empty() && now - inflight_.begin()->second.sent_mono_ns > kAckTimeoutNs) {
        ++apply_errors_;
        reset("no publish acknowledgement for 10 s");
        break;
      }
      check_replica();
      trim();
      apply_deletes();
      ack_dirty_ = true;  // refresh the leader's view even when idle
      break;
    case Phase::kPreparing:
    case Phase::kDiverged:
      break;
  }
}

nlohmann::json Follower::lag_json() const {
  Json f;
  f["region"] = ctx_.cfg->region.name;
  uint64_t leader_last = std::max(leader_last_seq_, applied_);
  f["leader_last_seq"] = leader_last;
  f["applied_seq"] = applied_;
  f["seq_lag"] = leader_last - applied_;
  f["last_applied_origin_time_ns"] = last_applied_origin_ns_;
  f["last_apply_time_ns"] = last_apply_wall_ns_;
  LagFigures fg = figures();
  Json tl = lag_figures_json(fg.time_lag_ns, fg.window, fg.offset_known, fg.offset_ns, fg.offset_error_ns);
  tl["uncorrected_ms"] = last_apply_wall_ns_ > 0 ? Json(ns_to_ms(time_lag_uncorrected_ns_)) : Json(nullptr);
  tl["clamped"] = fg.time_lag_clamped;
  tl["unrecorded_without_offset"] = lag_samples_unrecorded_;
  tl["histogram"] = histogram_json(lag_hist_.total());
  f["time_lag"] = tl;
  f["newest_applied_age_ms"] = fg.newest_applied_age_ns < 0 ? Json(nullptr) : Json(ns_to_ms(fg.newest_applied_age_ns));
  f["sync"] = sync_json(fg.sync);
  f["messages_applied"] = applied_msgs_;
  f["bytes_applied"] = applied_bytes_;
  f["apply_errors"] = apply_errors_;
  f["fillers"] = fillers_;
  f["trims"] = trims_;
  f["deletes_applied"] = deletes_applied_;
  f["pipeline_resets"] = resets_;
  f["queued"] = queue_.size();
  f["inflight"] = inflight_.size();
  Json s;
  s["stream"] = cfg_.name;
  s["leader"] = cfg_.leader;
  s["role"] = "follower";
  s["state"] = phase_ == Phase::kReplicating && sync_.syncing() ? "syncing" : phase_name(phase_);
  if (!detail_.empty() && (phase_ == Phase::kDiverged || phase_ == Phase::kError)) s["detail"] = detail_;
  s["followers"] = Json::array({f});
  return s;
}

std::string Follower::problem() const {
  if (phase_ == Phase::kDiverged) return "stream " + cfg_.name + " diverged: " + detail_;
  if (phase_ == Phase::kError) return "stream " + cfg_.name + ": " + detail_;
  return "";
}

}  // namespace isthmus::replication
