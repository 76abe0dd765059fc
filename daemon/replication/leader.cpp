#include "replication/leader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "loop/timer.h"
#include "nats/jsapi.h"
#include "replication/headers.h"
#include "replication/info_reader.h"
#include "replication/lag_json.h"
#include "replication/log_limiter.h"
#include "replication/replica_config.h"
#include "util/rfc3339.h"

namespace isthmus::replication {

using Json = nlohmann::json;

namespace {
// A follower's LAG_REPORT older than this is not shown as its current time lag.
constexpr int64_t kReportStaleNs = 3'000'000'000;
}  // namespace

namespace {

constexpr uint64_t kMaxPullBatch = 4000;
// What a message costs in memory beyond its bytes (subject, headers,
// payload) until the follower has stored it: its place in the follower's
// queue and the allocations behind it (about 130 bytes), and only then its
// serialised write. Counted in the windows (window_bytes,
// peer_window_bytes) so that they bound memory for small messages too: a
// window of 128-byte messages held 1.7 times its size counted by bytes.
constexpr size_t kWindowMessageOverhead = 128;
// The longest run of deleted sequences at the end of a stream sent to
// followers that were not sent those sequences (send_deleted): what one
// follower fills at once.
constexpr size_t kMaxDeletedTail = 4096;
// One pull open at a time. nats-server hands messages to its waiting pull
// requests in turn (round robin), and a delivered message does not say which
// request it answers: with two open, the count per request is a guess, and a
// request counted complete while the server still holds it (or the reverse)
// stalls the reader. With one, every delivery belongs to it.
constexpr int kMaxOpenPulls = 1;
// While the stream is written as we read it, at most one no_wait pull per
// interval (counted from the previous answer): messages published meanwhile
// arrive together instead of one by one (measured at 20k msg/s: a pull every
// ~4 ms with the round trip and cnats' flusher, ~87 messages each), so both
// daemons pay their per-delivery costs (thread wakeups, a DATA frame, a TLS
// record, a checkpoint) once per burst.
constexpr int64_t kLivePullIntervalNs = 1'000'000;
constexpr int64_t kPullExpiresNs = 5'000'000'000;
// A no_wait pull's messages go out as one DATA frame once the pull is
// answered (its status, or the batch served in full), held at most this long
// after the first of them arrived. nats-server does not always answer a pull
// at once: with the stream being written, it often hands over the first
// messages one at a time as they are stored, and the rest together; without
// the hold each became its own frame (half the frames at 20k msg/s carried
// one message), and at the replica its own checkpoint.
constexpr int64_t kFrameHoldNs = 2'000'000;
// Every pull is answered: a no_wait pull at once, a waiting one by messages
// or by its expiry status. One still open kPullLostNs after that, with
// nothing at all from the consumer meanwhile, was lost or is held by the
// server (its code keeps a no_wait request that passed its pending check but
// reached the end of the stream with nothing delivered as a waiting request
// without expiry): the consumer is recreated, since the one open pull would
// otherwise hold the reader.
constexpr int64_t kPullLostNs = 2'000'000'000;
// A reader whose pull went unanswered is recreated once the server has
// answered a PING and this long has passed with the pull still open. (A
// server back from a stall answers the PING at once but a waiting pull
// that expired meanwhile only on its consumer's own schedule: after a 12 s
// SIGSTOP one such answer came more than 1 s after the PONG, and 0.5 s
// recreated that reader with a warning; mirror_test s, once in a CI run.)
constexpr int64_t kServerAnsweringNs = 3'000'000'000;
// After a pull request the server refused (permissions), the next one waits
// this long: the retry that finds the permission granted.
constexpr int64_t kPullRefusedRetryNs = 2'000'000'000;
// Refused acknowledgements of a durable reader: the latest is published
// again this often, and the refusal clears once one has gone this long
// without being refused (the server answers a refusal at once).
constexpr int64_t kAckRefusedRetryNs = 2'000'000'000;
// Bytes queued on a link above which we stop pulling for it.
constexpr size_t kLinkHighWater = 4 * 1024 * 1024;
// How long after a pull last found a peer's link full the room freed by an
// acknowledgement is shared out in turn (on_ack).
constexpr int64_t kLinkFullRecentNs = 100'000'000;
// A durable (interest) reader's unacknowledged deliveries are redelivered
// after this; the follower normally acknowledges within a round trip.
constexpr int64_t kDurableAckWaitNs = int64_t{30} * 60 * 1'000'000'000;
// Deletions are reconciled at least this often (and on SUBSCRIBE and on a
// delete/purge advisory).
constexpr int64_t kReconcileIntervalNs = 30'000'000'000;
// The least time between the starts of two passes that advisories ask for:
// a stream deleted from continuously (each delete an advisory) would
// otherwise run passes back to back, each sending the whole deleted list to
// every follower faster than a slow link carries it. Deletes seen live go
// out one by one anyway (on_msg_deleted).
constexpr int64_t kReconcileGapNs = 1'000'000'000;

struct ConsumerResult {
  Status st;
  std::string name;
  std::string retention;
  bool durable = false;
  bool reused = false;
  std::vector<std::string> removed;  // older durables of this follower, deleted
  std::string created;               // the stream's creation time (STREAM.INFO "created")
  bool unanswered_alone = false;     // timed out while the server answers (UnansweredPace)
};

template <typename T>
bool parse_num(std::string_view s, T& out) {
  return !s.empty() && std::from_chars(s.data(), s.data() + s.size(), out).ec == std::errc();
}

// Reads stream and consumer sequence, timestamp and pending count from a JetStream
// delivery's reply subject. Two forms exist:
//   $JS.ACK.<stream>.<consumer>.<dcount>.<sseq>.<dseq>.<ts>.<pending>
//   $JS.ACK.<domain>.<acchash>.<stream>.<consumer>.<dcount>.<sseq>.<dseq>.<ts>.<pending>[.<token>]
bool parse_ack_subject(std::string_view reply, uint64_t& sseq, uint64_t& dseq, int64_t& ts, uint64_t& pending) {
  // Split at '.' into the first 12 tokens, without allocating (one per
  // message); tokens after those (a later server may append some) are
  // ignored.
  std::string_view t[12];
  size_t n = 0;
  for (size_t start = 0; n < 12;) {
    size_t p = reply.find('.', start);
    t[n++] = reply.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start);
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  if (n < 9 || t[0] != "$JS" || t[1] != "ACK") return false;
  size_t base = n == 9 ? 5 : 7;
  if (n < base + 4) return false;
  return parse_num(t[base], sseq) && parse_num(t[base + 1], dseq) && parse_num(t[base + 2], ts) &&
         parse_num(t[base + 3], pending);
}

}  // namespace

Leader::Leader(Context& ctx, config::Stream cfg, std::vector<std::string> followers)
    : ctx_(ctx), cfg_(std::move(cfg)), followers_(std::move(followers)) {
  for (const auto& f : followers_) views_[f];
}

Leader::~Leader() {
  for (auto& [peer, s] : senders_) {
    uint64_t& inflight = ctx_.peer_inflight_bytes[peer];
    inflight -= std::min(inflight, s->accounted);
  }
}

void Leader::on_nats_up() {
  // Consumers of the old connection may be gone: recreate each from what was
  // already sent (the follower drops anything it already has).
  for (auto& [peer, s] : senders_) {
    s->creating = false;
    s->create_pace.reset();  // a new server may answer
    restart_consumer(*s, "");
  }
  info_req_pace_.reset();
  refresh_state();
  cleanup_stale_durables();
  reconcile();
}

// Recreates a Sender's consumer after a loss. An ephemeral reader resumes
// after what was already sent; a durable one after what the follower has
// stored, so the stream keeps interest in everything still in flight (what
// was already sent is skipped when read again).
void Leader::restart_consumer(Sender& s, const std::string& why, bool expected) {
  s.liveness_ping_mono_ns = 0;
  s.liveness_pong_mono_ns = 0;
  if (!why.empty()) {
    const bool warn = !expected && ctx_.warnings->allow("stream X: reader for R: ...; recreating", loop::mono_ns());
    spdlog::log(warn ? spdlog::level::warn : spdlog::level::debug, "stream {}: reader for {}: {}; recreating",
                cfg_.name, s.peer, why);
  }
  s.sub.reset();
  s.pull_watch.reset();
  forget_acks(s);
  s.consumer.clear();
  s.pulls.clear();
  s.outstanding = 0;
  s.mode = ReadMode::kBacklog;
  s.start_seq = s.durable ? views_[s.peer].acked_seq + 1 : std::max(s.sent_seq + 1, s.start_seq);
  create_consumer(s);
}

void Leader::on_nats_down() {
  for (auto& [peer, s] : senders_) {
    s->sub.reset();
    s->pull_watch.reset();
    forget_acks(*s);
    s->consumer.clear();
    s->creating = false;
    s->pulls.clear();
    s->outstanding = 0;
    s->mode = ReadMode::kBacklog;
    s->liveness_ping_mono_ns = 0;
    s->liveness_pong_mono_ns = 0;
  }
  error_ = "local NATS connection lost";
}

// The reader's acknowledgements go with it: its watch (on this connection,
// for this consumer) and the latest ack subject, which a new consumer would
// not accept. A refusal stays shown (what the old durable held is released
// only by the new one's first acknowledgement), neither retried nor
// cleared until the new reader acknowledges something.
void Leader::forget_acks(Sender& s) {
  s.ack_watch.reset();
  s.last_ack_reply.clear();
  if (auto vit = views_.find(s.peer); vit != views_.end()) vit->second.ack_sent_mono_ns = 0;
}

bool Leader::note_created(const std::string& created) {
  if (created.empty()) return false;
  const bool again = !created_.empty() && created != created_;
  created_ = created;
  return again;
}

// The stream was deleted and created again under the same name (or
// replaced, e.g. restored): what the followers hold is the old stream's.
// Each follower's reader starts again at the last sequence it stored, so
// that it receives that message again and compares it with its replica's
// (a different one, or a STATE ending below it, makes it diverge: only a
// rebuild can realign it).
void Leader::on_recreated() {
  spdlog::warn("stream {}: the stream was deleted and created again (created {}); the followers' replicas hold the "
               "old stream's messages and are checked against the new one",
               cfg_.name, created_);
  first_seq_ = 0;
  last_seq_ = 0;
  delivered_seq_ = 0;
  last_time_ns_ = 0;
  last_time_seq_ = 0;
  live_deletes_.clear();
  // Followers away now (link down, daemon stopped) are told when they ask
  // for the stream again (on_stream_req(), or on_subscribe()): they may
  // not be able to tell themselves, e.g. when the new stream no longer
  // holds their last sequence.
  for (auto& [peer, v] : views_) {
    if (v.acked_seq > 0) v.replaced = true;
  }
  std::vector<std::pair<std::string, uint64_t>> subs;
  for (const auto& [peer, snd] : senders_) subs.emplace_back(peer, snd->sub_id);
  for (const auto& [peer, sub_id] : subs) {
    auto& v = views_[peer];
    recheck_oldest(v);
    tell_replaced(peer, v);
    start_sender(peer, sub_id, std::max<uint64_t>(1, v.acked_seq));
  }
  ctx_.request_flush();
  refresh_state();
}

// A follower that stored messages of the stream this one replaced: say so
// (a STREAM_INFO with a "replaced: " error, unasked, ahead of data; a
// follower built before this ignores it, and finds it by comparing the
// message it subscribed from, if the new stream holds that sequence).
void Leader::tell_replaced(const std::string& peer, FollowerView& v) {
  if (!v.replaced) return;
  v.replaced = false;
  link::StreamInfo info;
  info.stream = cfg_.name;
  info.error = std::string(link::kReplacedPrefix) + "the stream was deleted and created again at " +
               ctx_.cfg->region.name + " (created " + created_ +
               "): this replica holds the old stream's messages, up to sequence " + std::to_string(v.acked_seq);
  std::vector<uint8_t> f;
  encode(info, f);
  ctx_.links->send_priority(peer, std::move(f));
}

void Leader::on_link_up(const std::string& peer) {
  auto it = views_.find(peer);
  if (it == views_.end()) return;
  it->second.link_up_mono_ns = loop::mono_ns();
  it->second.asked = false;
}

void Leader::on_link_down(const std::string& peer) {
  drop_sender(peer);
  auto it = views_.find(peer);
  if (it != views_.end()) {
    it->second.subscribed = false;
    if (!it->second.removed) it->second.state = "waiting";  // (removed: stays stopped)
    it->second.link_up_mono_ns = 0;
  }
}

std::string Leader::not_asked(const std::string& peer, const FollowerView& v, int64_t now_mono) const {
  // A follower asks within a second of its link coming up (and every 2-5 s
  // while it cannot prepare the replica, up to a minute apart while its
  // replica's requests go unanswered), unless its own NATS is down.
  constexpr int64_t kNotAskedNs = 15'000'000'000;
  if (v.asked || v.removed || v.link_up_mono_ns == 0 || now_mono - v.link_up_mono_ns < kNotAskedNs) return "";
  const int64_t s = (now_mono - v.link_up_mono_ns) / 1'000'000'000;
  return "region " + peer + " has not asked for this stream in the " + std::to_string(s) +
         " s since its link came up (or this stream was added by reload): the stream is missing from its configuration (a [[streams]] entry for " +
         cfg_.name + " with leader " + ctx_.cfg->region.name +
         "), or it names another leader for it (two regions configured to lead it), or its local NATS is down "
         "(its /healthz says which)";
}

Status Leader::on_stream_req(const std::string& peer, const link::StreamReq&) {
  if (auto it = views_.find(peer); it != views_.end()) {
    it->second.asked = true;
    if (it->second.removed) {  // added back there
      it->second.removed = false;
      if (!it->second.subscribed) it->second.state = "waiting";
      it->second.detail.clear();
    }
    if (it->second.replaced) {
      // Before it prepares (and trims) its replica: it holds the old
      // stream's messages.
      tell_replaced(peer, it->second);
      ctx_.request_flush();
      return Status::ok();
    }
  }
  // Asked for each request (a follower asks again every 2 s while it cannot
  // prepare), except while this stream's requests go unanswered with the
  // server answering otherwise: then, from the fourth such request in a
  // row (a stream leader's election is waited out), answered with the last
  // error until the pause ends (UnansweredPace).
  const int64_t now = loop::mono_ns();
  if (info_req_pace_.holding(now)) {
    link::StreamInfo info;
    info.stream = cfg_.name;
    info.error = info_req_error_;
    std::vector<uint8_t> f;
    encode(info, f);
    ctx_.links->send(peer, std::move(f));
    ctx_.request_flush();
    return Status::ok();
  }
  struct Answer {
    Result<Json> r = Status(Code::kUnavailable, "not read");
    bool unanswered_alone = false;
  };
  std::string stream = cfg_.name;
  int64_t tmo = ctx_.timeout_ms();
  const uint64_t deliveries_then = deliveries_;
  ctx_.async<Answer>(
      [stream, tmo](natsConnection* nc) {
        Answer a;
        a.r = nats::stream_info(nc, stream, tmo);
        a.unanswered_alone = !a.r && a.r.status().code() == Code::kTimeout && nats::answers_ping(nc, tmo);
        return a;
      },
      [this, peer, deliveries_then](Answer a) {
        Result<Json>& r = a.r;
        link::StreamInfo info;
        info.stream = cfg_.name;
        const int64_t pause = retired_ ? 0 : info_req_pace_.note(a.unanswered_alone, loop::mono_ns());
        if (retired_) {
          // Asked just before the stream was removed: the answer it gets
          // for any STREAM_REQ now (the Replicator's).
          info.error = not_leader_error(ctx_.cfg->region.name, cfg_.name);
        } else if (!r) {
          info.error = "cannot read stream " + cfg_.name + " at the leader: " + r.status().message();
          if (pause > 0) {
            info_req_error_ = info.error + " (asked again in " + std::to_string(pause / 1'000'000'000) + " s)";
            info.error = info_req_error_;
          }
        } else if ((*r)["config"].value("retention", std::string()) == "workqueue") {
          info.error = "stream " + cfg_.name +
                       " has work-queue retention, which Isthmus does not replicate "
                       "(a reader would take messages from the application's consumers)";
        } else {
          if (note_created(r->value("created", std::string()))) on_recreated();
          retention_ = (*r)["config"].value("retention", std::string("limits"));
          info.config_json = (*r)["config"].dump();
          info.first_seq = (*r)["state"].value("first_seq", uint64_t{0});
          // Never below what was delivered (the follower takes a last
          // sequence below its replica's for a stream created again);
          // an estimate from a pending count may be lowered (above).
          note_last_seq((*r)["state"].value("last_seq", uint64_t{0}), deliveries_then);
          info.last_seq = last_seq_;
          first_seq_ = info.first_seq;
        }
        std::vector<uint8_t> f;
        encode(info, f);
        ctx_.links->send(peer, std::move(f));
        ctx_.request_flush();
      });
  return Status::ok();
}

Status Leader::on_subscribe(const std::string& peer, const link::Subscribe& sub) {
  if (views_.find(peer) == views_.end()) {
    return Status(Code::kInvalid, "subscribe from " + peer + ", which is not a follower of " + cfg_.name);
  }
  // The old sender goes first: what it had in flight belongs to the old
  // acknowledged position (drop_sender remembers the oldest of it).
  drop_sender(peer);
  auto& v = views_[peer];
  // The first subscription since the stream was created again, from a
  // follower that stored from the old one: it holds the old stream's
  // messages unless it was rebuilt meanwhile (then it asks from 1).
  if (v.replaced && sub.from_seq > 1) tell_replaced(peer, v);
  v.replaced = false;
  v.subscribed = true;
  v.asked = true;
  v.removed = false;
  v.seen = true;
  v.detail.clear();
  v.acked_seq = sub.from_seq > 0 ? sub.from_seq - 1 : 0;
  // Syncing until it holds what the stream held now; then replicating,
  // however far a busy stream keeps it behind, until it subscribes again.
  v.sync_target = last_seq_;
  v.state = v.acked_seq >= v.sync_target ? "replicating" : "syncing";
  spdlog::info("stream {}: follower {} subscribed from sequence {}", cfg_.name, peer, sub.from_seq);
  start_sender(peer, sub.sub_id, sub.from_seq);
  // Deletes and purges done while the follower was away reach it now.
  reconcile();
  return Status::ok();
}

Status Leader::on_ack(const std::string& peer, const link::Ack& ack) {
  auto vit = views_.find(peer);
  if (vit == views_.end()) return Status::ok();
  auto& v = vit->second;
  if (ack.stored_seq > v.acked_seq) v.acked_seq = ack.stored_seq;
  if (ack.stored_time_ns > v.acked_time_ns) v.acked_time_ns = ack.stored_time_ns;
  // Syncing until first caught up after subscribing, then replicating: a
  // follower a few messages behind under steady traffic is not syncing.
  if (v.subscribed && v.state == "syncing" && v.acked_seq >= v.sync_target) v.state = "replicating";
  auto it = senders_.find(peer);
  if (it != senders_.end()) {
    Sender& s = *it->second;
    std::string ack_reply;
    while (!s.unacked.empty() && s.unacked.front().seq <= v.acked_seq) {
      s.unacked_bytes -= s.unacked.front().bytes;
      if (!s.unacked.front().reply.empty()) ack_reply = std::move(s.unacked.front().reply);
      s.unacked.pop_front();
    }
    account(s);
    if (!ack_reply.empty() && ctx_.data) {
      // Ack policy all: one acknowledgement covers every delivery up to the
      // highest sequence the follower has stored.
      (void)ctx_.data->publish(ack_reply, "", "+ACK");
      ctx_.request_flush();
      s.last_ack_reply = std::move(ack_reply);
      v.ack_sent_mono_ns = loop::mono_ns();
    }
    // On a link that was full a moment ago, the room this acknowledgement
    // frees goes round the streams, a different one first each time, so
    // this stream does not take it all again at once.
    auto full = ctx_.peer_full_mono_ns.find(peer);
    if (full != ctx_.peer_full_mono_ns.end() && loop::mono_ns() - full->second <= kLinkFullRecentNs &&
        ctx_.pump_in_turn) {
      ctx_.pump_in_turn();
    } else {
      pull(s);
    }
  }
  return Status::ok();
}

Status Leader::on_stop(const std::string& peer, const link::Stop& stop) {
  const bool removed = stop.reason.rfind(link::kStopRemovedPrefix, 0) == 0;
  const std::string reason = removed ? stop.reason.substr(link::kStopRemovedPrefix.size()) : stop.reason;
  auto it = views_.find(peer);
  // (A follower that removed the stream says so at every link up.)
  const bool again = removed && it != views_.end() && it->second.removed && it->second.detail == reason;
  spdlog::log(again ? spdlog::level::debug : spdlog::level::warn, "stream {}: follower {} stopped: {}", cfg_.name,
              peer, reason);
  drop_sender(peer);
  if (it != views_.end()) {
    it->second.subscribed = false;
    it->second.state = "stopped";
    it->second.detail = reason;
    it->second.removed = removed;
  }
  return Status::ok();
}

void Leader::start_sender(const std::string& peer, uint64_t sub_id, uint64_t from) {
  drop_sender(peer);
  auto s = std::make_unique<Sender>();
  s->peer = peer;
  s->id = next_sender_id_++;
  s->sub_id = sub_id;
  s->start_seq = from == 0 ? 1 : from;
  s->sent_seq = s->start_seq - 1;
  s->batch.stream = cfg_.name;
  s->batch.sub_id = sub_id;
  s->last_activity_mono_ns = loop::mono_ns();
  Sender& ref = *s;
  senders_[peer] = std::move(s);
  if (ctx_.conn) create_consumer(ref);
}

void Leader::create_consumer(Sender& s) {
  if (s.creating || !ctx_.conn || s.create_pace.holding(loop::mono_ns())) return;  // tick() retries
  s.creating = true;
  uint64_t id = s.id;
  std::string stream = cfg_.name;
  std::string peer = s.peer;
  uint64_t start = s.start_seq;
  int64_t tmo = ctx_.timeout_ms();
  Json cc;
  cc["deliver_policy"] = "by_start_sequence";
  cc["opt_start_seq"] = start;
  cc["ack_policy"] = "none";
  cc["replay_policy"] = "instant";
  cc["inactive_threshold"] = int64_t{60} * 1000000000;
  cc["mem_storage"] = true;
  cc["num_replicas"] = 1;
  cc["max_waiting"] = 16;
  cc["description"] = "isthmus: " + ctx_.cfg->region.name + " -> " + s.peer;
  // The durable reader of an interest stream: ack policy all (one ack per
  // ACK frame), max_ack_pending sized for the follower's window.
  Json dc;
  dc["deliver_policy"] = "by_start_sequence";
  dc["opt_start_seq"] = start;
  dc["ack_policy"] = "all";
  dc["ack_wait"] = kDurableAckWaitNs;
  dc["max_deliver"] = -1;
  dc["max_ack_pending"] = static_cast<int64_t>(ctx_.cfg->link.window_messages + 2 * kMaxPullBatch);
  dc["replay_policy"] = "instant";
  dc["max_waiting"] = 16;
  dc["description"] = "isthmus: keeps " + cfg_.name + " messages until region " + s.peer +
                      " has stored them (" + ctx_.cfg->region.name + " -> " + s.peer + ")";
  std::function<ConsumerResult(natsConnection*)> create =
      [stream, peer, start, cc, dc, tmo](natsConnection* nc) {
        ConsumerResult out;
        auto si = nats::stream_info(nc, stream, tmo);
        if (!si) {
          out.st = si.status();
          return out;
        }
        out.created = si->value("created", std::string());
        out.retention = (*si)["config"].value("retention", std::string("limits"));
        if (out.retention == "workqueue") {
          out.st = Status(Code::kUnsupported, "work-queue retention is not replicated");
          return out;
        }
        if (out.retention != "interest") {
          auto r = nats::consumer_create(nc, stream, cc, tmo);
          if (!r) {
            out.st = r.status();
            return out;
          }
          out.name = r->value("name", std::string());
          return out;
        }
        out.durable = true;
        auto names = nats::consumer_names(nc, stream, tmo);
        if (!names) {
          out.st = names.status();
          return out;
        }
        std::vector<std::string> mine;
        for (const auto& n : *names) {
          if (durable_region(n) == peer) mine.push_back(n);
        }
        // Reuse the one existing durable when it has nothing outstanding and
        // has not delivered beyond what the follower asks for: it then
        // delivers from where it stands (what the follower has is skipped).
        if (mine.size() == 1) {
          auto ci = nats::consumer_info(nc, stream, mine[0], tmo);
          if (ci && (*ci)["config"].value("ack_policy", std::string()) == "all" &&
              (*ci)["config"].value("max_ack_pending", int64_t{0}) == dc.value("max_ack_pending", int64_t{0}) &&
              ci->value("num_ack_pending", int64_t{1}) == 0 &&
              (*ci)["delivered"].value("stream_seq", uint64_t{0}) + 1 <= start) {
            out.name = mine[0];
            out.reused = true;
            return out;
          }
        }
        // Otherwise a new durable at `start`, created before the old ones
        // are deleted: the stream never lacks interest in what the follower
        // has not stored.
        uint64_t n = static_cast<uint64_t>(loop::wall_ns() / 1'000'000);
        std::string name;
        do {
          name = durable_name(peer, n++);
        } while (std::find(mine.begin(), mine.end(), name) != mine.end());
        Json c = dc;
        c["durable_name"] = name;
        auto r = nats::durable_create(nc, stream, c, tmo);
        if (!r) {
          out.st = r.status();
          return out;
        }
        out.name = name;
        for (const auto& old : mine) {
          if (nats::consumer_delete(nc, stream, old, tmo)) out.removed.push_back(old);
        }
        return out;
      };
  ctx_.async<ConsumerResult>(
      [create = std::move(create), tmo](natsConnection* nc) {
        ConsumerResult out = create(nc);
        out.unanswered_alone = !out.st && out.st.code() == Code::kTimeout && nats::answers_ping(nc, tmo);
        return out;
      },
      [this, id](ConsumerResult r) {
        Sender* sp = find_sender(id);
        if (sp == nullptr) {
          // The sender went away meanwhile; an ephemeral consumer expires by
          // itself, a durable one stays (it keeps the follower's interest).
          return;
        }
        sp->creating = false;
        if (note_created(r.created)) {
          // Read from a stream created again since (its consumer was lost
          // with the old one): not from where the old one left off.
          sp->consumer = r.name;
          sp->durable = r.durable;
          on_recreated();
          return;
        }
        if (!r.retention.empty()) retention_ = r.retention;
        if (!r.st) {
          auto& v = views_[sp->peer];
          const int64_t pause = sp->create_pace.note(r.unanswered_alone, loop::mono_ns());
          v.detail = "cannot create consumer: " + r.st.message() +
                     (pause > 0 ? " (asked again in " + std::to_string(pause / 1'000'000'000) + " s)" : "");
          // With the NATS connection closing (its server restarting) every
          // reader of every stream fails alike, and the connection's loss is
          // logged once: not a warning per stream and follower (a burst of
          // hundreds at 250 streams: operator trial).
          const bool conn_closed =
              r.st.message().find("Connection Closed") != std::string::npos || !ctx_.conn;
          const bool warn =
              !conn_closed && ctx_.warnings->allow("stream X: follower R: cannot create consumer", loop::mono_ns());
          spdlog::log(warn ? spdlog::level::warn : spdlog::level::debug, "stream {}: follower {}: {}", cfg_.name,
                      sp->peer, v.detail);
          sp->last_activity_mono_ns = loop::mono_ns();  // retried by tick()
          return;
        }
        views_[sp->peer].detail.clear();
        sp->create_pace.reset();
        sp->durable = r.durable;
        if (r.durable) {
          spdlog::info("stream {}: follower {} reads through durable {} ({}{})", cfg_.name, sp->peer, r.name,
                       r.reused ? "reused" : "new, from sequence " + std::to_string(sp->start_seq),
                       r.removed.empty() ? "" : "; removed " + std::to_string(r.removed.size()) + " older");
        }
        sp->consumer = r.name;
        sp->inbox = nats::new_inbox();
        // A fresh reader: nothing open, nothing delivered yet. (Two creations
        // can overlap across a reconnect; the later one's consumer wins, and a
        // pull of the earlier one must not hold the single open slot.)
        sp->pulls.clear();
        sp->outstanding = 0;
        sp->mode = ReadMode::kBacklog;
        sp->last_dseq = 0;
        auto sub = nats::DataSub::create(
            ctx_.data, sp->inbox + ".*", [this, id](const nats::wire::ServerOp& m) { on_msg(id, m); },
            [this, id](const std::string& e) {
              // Pulls will go unanswered; the stall check recreates the reader.
              if (Sender* snd = find_sender(id)) {
                views_[snd->peer].detail = "the server refused the reader's inbox: " + e;
                spdlog::warn("stream {}: follower {}: {}", cfg_.name, snd->peer, views_[snd->peer].detail);
              }
            });
        if (!sub) {
          sp->consumer.clear();
          views_[sp->peer].detail = sub.status().message();
          return;
        }
        sp->sub = std::move(*sub);
        // A pull the server refuses is never answered: hear of it instead.
        auto watch = nats::RefusedPublishWatch::create(
            ctx_.data, {"$JS.API.CONSUMER.MSG.NEXT." + cfg_.name + "." + sp->consumer},
            [this, id](const std::string& subject, const std::string& e) { on_pull_refused(id, subject, e); });
        if (watch) sp->pull_watch = std::move(*watch);
        if (sp->durable) {
          // Its acknowledgements (both subject forms, nats/... ack parsing
          // above): a refused one would leave the interest stream holding.
          auto acks = nats::RefusedPublishWatch::create(
              ctx_.data,
              {"$JS.ACK." + cfg_.name + "." + sp->consumer + ".>",
               "$JS.ACK.*.*." + cfg_.name + "." + sp->consumer + ".>"},
              [this, id](const std::string& subject, const std::string& e) { on_ack_refused(id, subject, e); });
          if (acks) sp->ack_watch = std::move(*acks);
        }
        sp->last_activity_mono_ns = loop::mono_ns();
        pull(*sp);
      });
}

void Leader::drop_sender(const std::string& peer) {
  auto it = senders_.find(peer);
  if (it == senders_.end()) return;
  std::unique_ptr<Sender> s = std::move(it->second);
  senders_.erase(it);
  // The oldest message the follower lacks was in flight: keep its store
  // time, so that its age goes on rising from now, not from the first
  // lookup (oldest_unreplicated_time) a tick later.
  auto vit = views_.find(peer);
  if (vit != views_.end() && !s->unacked.empty() && s->unacked.front().seq > vit->second.acked_seq) {
    vit->second.lookup_for = vit->second.acked_seq;
    vit->second.lookup_time_ns = s->unacked.front().time_ns;
    vit->second.lookup_seq = s->unacked.front().seq;
    // It may have been deleted while in flight (an advisory then marks only
    // the held time): confirm it.
    recheck_oldest(vit->second);
  }
  uint64_t& inflight = ctx_.peer_inflight_bytes[peer];
  inflight -= std::min(inflight, s->accounted);
  s->sub.reset();
  s->pull_watch.reset();
  s->ack_watch.reset();
  // Its acknowledgements can be neither retried nor seen refused any more:
  // a new reader's first refused one shows it again.
  if (vit != views_.end()) vit->second.ack_refused.clear();
  // A durable reader stays: it keeps the stream's interest in what the
  // follower has not stored while the follower is away.
  if (!s->consumer.empty() && !s->durable && ctx_.conn) {
    std::string stream = cfg_.name, consumer = s->consumer;
    int64_t tmo = ctx_.timeout_ms();
    ctx_.nats->run([stream, consumer, tmo](natsConnection* nc) {
      (void)nats::consumer_delete(nc, stream, consumer, tmo);
    });
  }
}

Leader::Sender* Leader::find_sender(uint64_t id) {
  for (auto& [peer, s] : senders_) {
    if (s->id == id) return s.get();
  }
  return nullptr;
}

void Leader::pull(Sender& s) {
  if (draining_ || s.consumer.empty() || !s.sub || !ctx_.data) return;
  if (!s.pull_refused.empty() && loop::mono_ns() - s.pull_refused_mono_ns < kPullRefusedRetryNs) return;
  if (!ctx_.links->is_up(s.peer)) return;
  if (ctx_.links->pending_bytes(s.peer) > kLinkHighWater) {
    ctx_.peer_full_mono_ns[s.peer] = loop::mono_ns();
    return;
  }
  const auto& lc = ctx_.cfg->link;
  account(s);
  if (static_cast<int>(s.pulls.size()) >= kMaxOpenPulls) return;
  // A kLive pull waits its turn.
  if (s.mode == ReadMode::kLive && loop::mono_ns() < s.next_pull_mono_ns) {
    arm_pull_timer(s.next_pull_mono_ns);
    return;
  }
  uint64_t in_window = s.unacked.size() + s.outstanding + s.batch.msgs.size();
  if (in_window >= lc.window_messages) return;
  // Byte windows: this (stream, follower)'s and the link's, shared by every
  // stream sent to the peer. A pull asks for no more messages than fit in
  // the smaller room at the recent message size.
  const uint64_t mine = inflight_bytes(s);
  const uint64_t link_used = ctx_.peer_inflight_bytes[s.peer];
  if (mine >= lc.window_bytes) return;
  if (link_used >= lc.peer_window_bytes) {
    ctx_.peer_full_mono_ns[s.peer] = loop::mono_ns();
    return;
  }
  const uint64_t room = std::min(lc.window_bytes - mine, lc.peer_window_bytes - link_used);
  // Message sizes are estimated (the larger of the recent average and the
  // latest size), and pull sizes start small and double with each pull
  // served in full, so a stream whose messages suddenly grow overshoots
  // the room by at most one pull's misestimate.
  uint64_t fit = s.avg_msg_bytes > 0 ? static_cast<uint64_t>(static_cast<double>(room) / msg_estimate(s)) : 16;
  uint64_t n = std::min<uint64_t>(
      {kMaxPullBatch, lc.window_messages - in_window, s.pull_cap, std::max<uint64_t>(fit, 1)});
  // Idle: wait for one message; its arrival starts the bursts.
  const bool no_wait = s.mode != ReadMode::kIdle;
  if (!no_wait) n = 1;
  uint64_t rid = s.next_pull_id++;
  Json body = no_wait ? Json{{"batch", n}, {"no_wait", true}} : Json{{"batch", n}, {"expires", kPullExpiresNs}};
  std::string b = body.dump();
  std::string subj = "$JS.API.CONSUMER.MSG.NEXT." + cfg_.name + "." + s.consumer;
  std::string reply = s.inbox + "." + std::to_string(rid);
  if (!ctx_.data->publish(subj, reply, b)) return;
  ctx_.request_flush();
  Pull p;
  p.requested = n;
  p.sent_mono_ns = loop::mono_ns();
  p.no_wait = no_wait;
  s.pulls[rid] = p;
  s.outstanding += n;
  account(s);
}

// A pull ended: served in full, or answered with a status (a no_wait pull's
// 404 when the stream held nothing for it, its 408 after part of the batch; a
// waiting pull's 408 at expiry). Chooses how to read next.
void Leader::pull_completed(Sender& s, const Pull& p, bool in_full) {
  if (p.no_wait && in_full) {
    s.mode = ReadMode::kBacklog;  // there may be more: read on at once
  } else if (p.no_wait && p.delivered == 0) {
    s.mode = ReadMode::kIdle;
  } else if (p.delivered > 0) {
    // Caught up with a stream still being written: let the next messages
    // gather for an interval.
    s.mode = ReadMode::kLive;
    s.next_pull_mono_ns = loop::mono_ns() + kLivePullIntervalNs;
  }
  // A waiting pull that expired empty: stay idle.
}

const char* Leader::mode_name(ReadMode m) {
  switch (m) {
    case ReadMode::kBacklog:
      return "backlog";
    case ReadMode::kLive:
      return "live";
    case ReadMode::kIdle:
      return "idle";
  }
  return "?";
}

void Leader::arm_pull_timer(int64_t at_mono_ns) {
  if (ctx_.loop == nullptr) return;
  if (pull_timer_at_ns_ != 0 && pull_timer_at_ns_ <= at_mono_ns) return;
  if (!pull_timer_) pull_timer_ = std::make_unique<loop::Timer>(ctx_.loop);
  const int64_t now = loop::mono_ns();
  const uint64_t ms = at_mono_ns > now ? static_cast<uint64_t>((at_mono_ns - now + 999'999) / 1'000'000) : 0;
  pull_timer_at_ns_ = at_mono_ns;
  pull_timer_->start(ms, 0, [this] {
    pull_timer_at_ns_ = 0;
    if (retired_) return;
    for (auto& [peer, s] : senders_) {
      if (s->mode == ReadMode::kLive) pull(*s);
    }
  });
}

double Leader::msg_estimate(const Sender& s) {
  return std::max(s.avg_msg_bytes, static_cast<double>(s.last_msg_bytes));
}

uint64_t Leader::inflight_bytes(const Sender& s) const {
  // Outstanding pulls count for what they can still deliver: at most the
  // messages the stream holds beyond what was sent (a pull waiting on an
  // idle stream reserves nothing), at the recent message size.
  const uint64_t available = last_seq_ > s.sent_seq ? last_seq_ - s.sent_seq : 0;
  const double est = s.avg_msg_bytes > 0 ? msg_estimate(s) : 4096.0;
  return s.unacked_bytes + static_cast<uint64_t>(static_cast<double>(std::min(s.outstanding, available)) * est);
}

void Leader::account(Sender& s) {
  uint64_t now = inflight_bytes(s);
  uint64_t& total = ctx_.peer_inflight_bytes[s.peer];
  total -= std::min(total, s.accounted);
  total += now;
  s.accounted = now;
}

// The server refused a pull request: this daemon's NATS user may not
// publish to the consumer's MSG.NEXT subject. The pull is not answered, and
// none will be: the follower gets nothing. Say so (/healthz, /v1/lag, the
// log) and retry every kPullRefusedRetryNs; the first answer clears it.
void Leader::on_pull_refused(uint64_t sender_id, const std::string& subject, const std::string& error) {
  Sender* s = find_sender(sender_id);
  if (s == nullptr) return;
  const bool first = s->pull_refused.empty();
  std::string what = error;
  size_t to = what.find(" to \"");
  if (to != std::string::npos) what.resize(to);  // the server's words without the subject again
  s->pull_refused = "the daemon's NATS user may not publish to \"" + subject + "\" (" + what +
                    "), so the stream cannot be read for " + s->peer +
                    ": grant it publish permission on $JS.API.CONSUMER.MSG.NEXT.> and reload nats-server";
  s->pull_refused_mono_ns = loop::mono_ns();
  // Nothing is open any more: the next pull, after the pause, is the retry.
  s->pulls.clear();
  s->outstanding = 0;
  s->mode = ReadMode::kBacklog;
  account(*s);
  if (first) spdlog::warn("stream {}: follower {}: {}; retried every 2 s", cfg_.name, s->peer, s->pull_refused);
}

// The server refused an acknowledgement of a durable (interest) reader:
// this daemon's NATS user may not publish to $JS.ACK.... The interest stream
// keeps what the follower has stored, and the consumer stops delivering
// once max_ack_pending deliveries are unacknowledged. Say so (/healthz,
// /v1/lag, the log); check_ack_refused() publishes the latest
// acknowledgement again every kAckRefusedRetryNs and clears it once one
// goes through.
void Leader::on_ack_refused(uint64_t sender_id, const std::string& subject, const std::string& error) {
  Sender* s = find_sender(sender_id);
  if (s == nullptr) return;
  FollowerView& v = views_[s->peer];
  const bool first = v.ack_refused.empty();
  std::string what = error;
  size_t to = what.find(" to \"");
  if (to != std::string::npos) what.resize(to);  // the server's words without the subject again
  // The subject up to the consumer's name: the rest differs per message.
  std::string shown = subject;
  size_t at = shown.find("." + s->consumer + ".");
  if (at != std::string::npos) shown = shown.substr(0, at + s->consumer.size() + 1) + ".>";
  v.ack_refused = "the daemon's NATS user may not publish to \"" + shown + "\" (" + what + "), so " + cfg_.name +
                  " (interest retention) keeps every message " + s->peer +
                  " has stored, and stops sending it more once too many are unacknowledged: grant it publish "
                  "permission on $JS.ACK.> and reload nats-server";
  v.ack_refused_mono_ns = loop::mono_ns();
  if (first) spdlog::warn("stream {}: follower {}: {}; retried every 2 s", cfg_.name, s->peer, v.ack_refused);
}

void Leader::check_ack_refused(Sender& s, int64_t now) {
  // Only with a reader whose refusals are watched (a recreated one waits
  // for its own first acknowledgement: forget_acks).
  if (s.consumer.empty() || !s.ack_watch) return;
  auto vit = views_.find(s.peer);
  if (vit == views_.end() || vit->second.ack_refused.empty()) return;
  FollowerView& v = vit->second;
  if (v.ack_sent_mono_ns > v.ack_refused_mono_ns) {
    if (now - v.ack_sent_mono_ns < kAckRefusedRetryNs) return;  // its refusal may be on its way
    spdlog::info("stream {}: follower {}: acknowledgements are accepted again", cfg_.name, s.peer);
    v.ack_refused.clear();
    return;
  }
  if (now - v.ack_refused_mono_ns < kAckRefusedRetryNs || s.last_ack_reply.empty() || !ctx_.data) return;
  (void)ctx_.data->publish(s.last_ack_reply, "", "+ACK");
  ctx_.request_flush();
  v.ack_sent_mono_ns = now;
}

void Leader::on_msg(uint64_t sender_id, const nats::wire::ServerOp& msg) {
  Sender* s = find_sender(sender_id);
  if (s == nullptr) return;
  if (!s->pull_refused.empty()) {
    // A pull was answered: the permission is there (again).
    spdlog::info("stream {}: follower {}: pull requests are accepted again", cfg_.name, s->peer);
    s->pull_refused.clear();
  }
  // Pulled messages arrive with their original subject (the subscription is
  // matched by sid); status messages arrive on <inbox>.<pull id>.
  const std::string_view reply = msg.reply;
  if (reply.rfind("$JS.ACK.", 0) != 0) {
    // A status message: 408 (request expired), 404 (no messages), 409
    // (consumer deleted, max waiting exceeded...), 100 (heartbeat), 503.
    std::string code, description;
    if (!msg.headers.empty()) {
      auto hv = nats::wire::parse_headers(msg.headers, [](std::string_view, std::string_view) {});
      if (hv) {
        code = std::string(hv->status);
        description = std::string(hv->description);
      }
    }
    if (code == "503") {
      // No responders: nothing subscribes to the consumer's request subject,
      // so the consumer is gone (nats-server 2.9 says nothing then, because
      // its JetStream API import takes the request; later versions answer
      // 503 at once). Treated like 2.9's silence: the pull stays open and
      // counts as no activity, so tick() finds it unanswered and recreates
      // the reader a few seconds later, paced, instead of pulling again
      // into the same 503 at once.
      return;
    }
    s->last_activity_mono_ns = loop::mono_ns();
    uint64_t rid = 0;
    size_t dot = msg.subject.rfind('.');
    if (dot != std::string_view::npos) parse_num(msg.subject.substr(dot + 1), rid);
    auto pit = s->pulls.find(rid);
    if (pit != s->pulls.end()) {
      s->outstanding -= pit->second.requested - pit->second.delivered;
      Pull done = pit->second;
      s->pulls.erase(pit);
      pull_completed(*s, done, false);
      // The answer is complete: a batch held for it leaves now.
      ctx_.request_flush();
    }
    if (code == "409" && description.find("Exceeded") == std::string::npos) {
      // The consumer is gone: recreate it. Every reader hears "Server
      // Shutdown" when the local nats-server stops: the lost connection is
      // logged once (a warning per stream was noise: 197 lines at 200
      // streams).
      restart_consumer(*s, "consumer lost (" + description + ")", description == "Server Shutdown");
      return;
    }
    pull(*s);
    return;
  }

  s->last_activity_mono_ns = loop::mono_ns();
  uint64_t sseq = 0, dseq = 0, pending = 0;
  int64_t ts = 0;
  if (!parse_ack_subject(reply, sseq, dseq, ts, pending)) return;
  // Each delivery of a consumer takes the next consumer sequence. A jump
  // means deliveries were lost on the way to us (the server dropped
  // messages for a slow connection), not deleted at the stream: the stream
  // sequence gap that follows must not reach the follower as a deletion.
  // Re-read from what was sent.
  if (s->last_dseq != 0 && dseq != s->last_dseq + 1 && dseq > s->last_dseq) {
    restart_consumer(*s, "deliveries lost before they were read (consumer sequence " + std::to_string(dseq) +
                             " after " + std::to_string(s->last_dseq) + ")");
    return;
  }
  s->last_dseq = std::max(s->last_dseq, dseq);
  // The open pull (kMaxOpenPulls).
  auto pit = s->pulls.begin();
  if (pit != s->pulls.end()) {
    pit->second.delivered++;
    s->outstanding--;
    if (pit->second.delivered >= pit->second.requested) {
      s->pull_cap = std::min<uint64_t>(kMaxPullBatch, std::max(s->pull_cap, 2 * pit->second.requested));
      Pull done = pit->second;
      s->pulls.erase(pit);
      pull_completed(*s, done, true);
    }
  }
  delivered_seq_ = std::max(delivered_seq_, sseq);
  ++deliveries_;
  if (sseq + pending > last_seq_) {
    // An estimate until the next state read (refresh_state()): the count
    // may be a few too high.
    last_seq_ = sseq + pending;
    // A follower that is away just fell (further) behind: learn the store
    // time of the oldest message it lacks now, not at the next tick (one
    // lookup per acknowledged position: lookup_oldest returns at once
    // after the first).
    for (auto& [peer, v] : views_) {
      if (!v.subscribed) lookup_oldest(peer, v);
    }
  }
  if (sseq <= s->sent_seq) {  // already sent (consumer recreated)
    auto vit = views_.find(s->peer);
    if (s->durable && ctx_.data && vit != views_.end() && sseq <= vit->second.acked_seq) {
      // The follower has stored it already (its acknowledgement came
      // before this delivery, e.g. a redelivery after a NATS reconnect lost
      // our +ACK): acknowledge it now. Nothing later may come to cover it,
      // and an interest stream would hold it, redelivered every ack wait.
      // (last_ack_reply stays the highest: what a refused acknowledgement's
      // retry sends.)
      (void)ctx_.data->publish(reply, "", "+ACK");
      ctx_.request_flush();
      return;
    }
    if (s->durable) {
      // The follower's acknowledgement of it must go to this consumer: the
      // durable that delivered it first is gone, and an ack sent there would
      // leave this one's floor behind (and the interest stream holding).
      auto it = std::lower_bound(s->unacked.begin(), s->unacked.end(), sseq,
                                 [](const Sender::Unacked& u, uint64_t q) { return u.seq < q; });
      if (it != s->unacked.end() && it->seq == sseq) it->reply = std::string(reply);
    }
    return;
  }
  // A gap: messages removed before they were read. Tell followers the new
  // first sequence soon, so that replicas trim in step.
  if (sseq > s->sent_seq + 1 && sseq > first_seq_) refresh_state();
  std::string ack_reply = s->durable ? std::string(reply) : std::string();
  link::Message m;
  m.seq = sseq;
  m.time_ns = ts;
  m.subject = std::string(msg.subject);
  if (!msg.headers.empty()) {
    // nats-server stores whatever header block a client wrote. What cannot
    // be read as "Key: value" lines does not stop the stream: the message
    // goes with the headers that can (the log says so, once per stream).
    auto hv = nats::wire::parse_headers(
        msg.headers, [&m](std::string_view k, std::string_view v) { m.headers.emplace_back(k, v); });
    if (!hv || hv->malformed > 0) {
      ++malformed_headers_;
      if (malformed_headers_ == 1) {
        spdlog::warn("stream {}: message {} has a malformed header block ({}); replicated with the headers "
                     "that could be read (logged once per stream)",
                     cfg_.name, sseq, hv ? std::to_string(hv->malformed) + " lines skipped" : hv.status().message());
      }
      if (!hv) m.headers.clear();
    }
    // A copy of an earlier leader's message (this region followed the
    // stream before its leader was changed) keeps the store time it was
    // first stored with: a replica that copied it from that leader
    // compares the same time (Follower, "unverified").
    Origin o;
    if (copied_origin(m.headers, sseq, o)) ts = m.time_ns = o.time_ns;
  }
  m.payload.assign(msg.payload);

  const size_t sz = m.wire_size();
  const size_t cost = sz + kWindowMessageOverhead;  // what the windows count
  s->sent_seq = sseq;
  s->unacked.push_back(Sender::Unacked{sseq, cost, std::move(ack_reply), ts});
  s->unacked_bytes += cost;
  s->last_msg_bytes = cost;
  s->avg_msg_bytes = s->avg_msg_bytes > 0 ? 0.9 * s->avg_msg_bytes + 0.1 * static_cast<double>(cost)
                                          : static_cast<double>(cost);
  s->batch_bytes += sz;
  if (s->batch.msgs.empty()) s->batch_started_mono_ns = loop::mono_ns();
  s->batch.msgs.push_back(std::move(m));
  auto& v = views_[s->peer];
  v.msgs_sent++;
  v.bytes_sent += sz;
  // DATA frames no bigger than the link's group limit: on a slow link a
  // heartbeat must not wait behind one big frame (link/connection.h). A full
  // frame goes to the socket at once (send pacing still applies) rather than
  // after every message the mailbox holds has been read; a partial one at the
  // end of this loop iteration (request_flush), or, while its no_wait pull is
  // still being answered, when the answer ends (at most kFrameHoldNs later).
  account(*s);
  if (s->batch_bytes >= ctx_.links->frame_limit(s->peer, ctx_.cfg->link.batch_bytes)) {
    send_batch(*s);
    ctx_.links->flush(s->peer);
  }
  ctx_.request_flush();
}

void Leader::send_batch(Sender& s) {
  if (s.batch.msgs.empty()) return;
  s.batch.leader_last_seq = last_seq_;
  std::vector<uint8_t> f;
  f.reserve(s.batch_bytes + s.batch.stream.size() + 64);  // wire_size() over-estimates
  encode(s.batch, f);
  ctx_.links->send(s.peer, std::move(f));
  s.batch.msgs.clear();
  s.batch_bytes = 0;
  pull(s);
}

bool Leader::holds(const Sender& s, int64_t now) const {
  // Released once less than a millisecond of the hold is left: libuv's timer
  // counts whole milliseconds from its cached loop time and may fire a little
  // before the deadline.
  return !draining_ && !s.batch.msgs.empty() && !s.pulls.empty() && s.pulls.begin()->second.no_wait &&
         now - s.batch_started_mono_ns < kFrameHoldNs - 1'000'000;
}

std::string not_leader_error(const std::string& region, const std::string& stream) {
  return "region " + region + " does not lead stream " + stream;
}

std::vector<uint8_t> not_leader_frame(const std::string& region, const std::string& stream) {
  link::StreamInfo info;
  info.stream = stream;
  info.error = std::string(link::kNotLeaderPrefix) + not_leader_error(region, stream);
  std::vector<uint8_t> f;
  encode(info, f);
  return f;
}

void Leader::retire() {
  if (retired_) return;
  retired_ = true;
  draining_ = true;
  if (pull_timer_) pull_timer_->stop();
  pull_timer_at_ns_ = 0;
  if (hold_timer_) hold_timer_->stop();
  hold_timer_at_ns_ = 0;
  // After what is queued for them already (a follower drops it then).
  for (const auto& [peer, v] : views_) {
    if (ctx_.links->is_up(peer)) ctx_.links->send(peer, not_leader_frame(ctx_.cfg->region.name, cfg_.name));
  }
  std::vector<std::string> peers;
  for (const auto& [peer, s] : senders_) peers.push_back(peer);
  for (const auto& peer : peers) drop_sender(peer);
  auto waiters = std::move(refresh_waiters_);
  refresh_waiters_.clear();
  for (auto& w : waiters) w();
  ctx_.request_flush();
  spdlog::info("stream {}: no longer led by this region; its followers are told", cfg_.name);
}

void Leader::inherit_removed(const Leader& retired) {
  for (const auto& [peer, old] : retired.views_) {
    auto it = views_.find(peer);
    if (!old.removed || it == views_.end()) continue;
    it->second.removed = true;
    it->second.state = "stopped";
    it->second.detail = old.detail;
  }
}

void Leader::drain() {
  draining_ = true;
  if (hold_timer_) hold_timer_->stop();
  hold_timer_at_ns_ = 0;
  ctx_.request_flush();
}

void Leader::flush() {
  const int64_t now = loop::mono_ns();
  int64_t release = 0;
  for (auto& [peer, s] : senders_) {
    if (holds(*s, now)) {
      const int64_t at = s->batch_started_mono_ns + kFrameHoldNs;
      release = release == 0 ? at : std::min(release, at);
      continue;
    }
    send_batch(*s);
  }
  if (release == 0 || ctx_.loop == nullptr) return;
  if (hold_timer_at_ns_ != 0 && hold_timer_at_ns_ <= release) return;
  if (!hold_timer_) hold_timer_ = std::make_unique<loop::Timer>(ctx_.loop);
  hold_timer_at_ns_ = release;
  const uint64_t ms = release > now ? static_cast<uint64_t>((release - now + 999'999) / 1'000'000) : 0;
  hold_timer_->start(ms, 0, [this] {
    hold_timer_at_ns_ = 0;
    if (retired_) return;
    ctx_.request_flush();
  });
}

bool Leader::pump() {
  bool pulled = false;
  for (auto& [peer, s] : senders_) {
    const uint64_t before = s->next_pull_id;
    pull(*s);
    pulled = pulled || s->next_pull_id != before;
  }
  return pulled;
}

void Leader::refresh_state(std::function<void()> done) {
  if (!ctx_.conn) {
    if (done) done();
    return;
  }
  if (done) refresh_waiters_.push_back(std::move(done));
  if (refresh_pending_) return;
  refresh_pending_ = true;
  const uint64_t deliveries_then = deliveries_;
  ctx_.infos->read(cfg_.name, [this, deliveries_then](Result<Json> r) {
    refresh_pending_ = false;
    if (retired_) return;  // (its waiters ran at retire())
    auto waiters = std::move(refresh_waiters_);
    refresh_waiters_.clear();
    struct RunAtEnd {
      std::vector<std::function<void()>>& w;
      ~RunAtEnd() {
        for (auto& f : w) f();
      }
    } run_at_end{waiters};
    if (!r) {
      const std::string was = error_;
      const bool was_timeout = read_error_timeout_;
      error_ = "cannot read local stream: " + r.status().message();
      read_error_timeout_ = r.status().code() == Code::kTimeout;
      // Once per cause (read every second); /healthz has it throughout
      // (the latest text). Every timeout is one cause, whichever request
      // of the round went unanswered (the text changed 2-3 times within
      // one stall, a warning each). Every stream at once when the server
      // is stalled: a few lines, then a count (log_limiter.h).
      if (error_ != was && !(read_error_timeout_ && was_timeout && was.rfind("cannot read local stream", 0) == 0)) {
        const bool warn = ctx_.warnings->allow("stream X: cannot read local stream", loop::mono_ns());
        spdlog::log(warn ? spdlog::level::warn : spdlog::level::debug, "stream {}: {}", cfg_.name, error_);
      }
      return;
    }
    if (error_.rfind("cannot read local stream", 0) == 0) {
      spdlog::info("stream {}: the local stream can be read again", cfg_.name);
    }
    read_error_timeout_ = false;
    error_.clear();
    if (note_created(r->value("created", std::string()))) on_recreated();
    const Json& st = (*r)["state"];
    first_seq_ = st.value("first_seq", uint64_t{0});
    // Never below what was already delivered (this reading may
    // have been taken before it was stored): a follower takes
    // a STATE ending below its replica's last message for a
    // stream created again. But below an estimate from a
    // delivery's pending count, which nats-server 2.9 may
    // overstate by a few (a reader started below the stream's
    // first sequence): a last sequence nothing will ever reach
    // read as a lag that never cleared on an idle stream.
    note_last_seq(st.value("last_seq", uint64_t{0}), deliveries_then);
    num_deleted_ = st.value("num_deleted", uint64_t{0});
    // Across the limit either way: reconcile, which decides (not
    // more often than every 10 s, e.g. when reading the list fails).
    // Back under it, what waited is reconciled; over it, the state
    // says so without waiting for the 30 s reconcile.
    const bool crossed =
        deletes_over_limit_
            ? num_deleted_ <= under_limit()
            : num_deleted_ > static_cast<uint64_t>(ctx_.cfg->nats.reconcile_max_deleted);
    if (crossed && !reconcile_pending_ &&
        loop::mono_ns() - last_reconcile_mono_ns_ >= 10'000'000'000) {
      reconcile();
    }
    while (!live_deletes_.empty() && live_deletes_.front() < first_seq_) {
      live_deletes_.pop_front();
    }
    // (A stream recreated, emptied of its last message's time, or
    // without one: no time known for its last sequence.)
    last_time_ns_ = 0;
    last_time_seq_ = 0;
    if (last_seq_ > 0) {
      if (auto lt = util::parse_rfc3339_ns(st.value("last_ts", std::string()))) {
        last_time_ns_ = *lt;
        last_time_seq_ = last_seq_;
      }
    }
    link::State s;
    s.stream = cfg_.name;
    s.first_seq = first_seq_;
    s.last_seq = last_seq_;
    s.last_time_ns = last_time_ns_;
    for (auto& [peer, v] : views_) {
      if (!v.subscribed) continue;
      std::vector<uint8_t> f;
      encode(s, f);
      // Ahead of data: on a congested link a STATE behind the
      // backlog left the follower believing it was caught up
      // (newest-applied age 0). Safe out of order: the follower
      // trims no higher than it applied, takes DATA's last
      // sequence as a maximum, and a rebuild waits for this one.
      ctx_.links->send_priority(peer, std::move(f));
      if (v.state == "syncing" && v.acked_seq >= v.sync_target) v.state = "replicating";
    }
    ctx_.request_flush();
    // The stream's limits may have removed the message whose time
    // a view holds; followers that are away may have been passed.
    for (auto& [peer, v] : views_) {
      if (v.lookup_time_ns >= 0 && v.lookup_seq < first_seq_) recheck_oldest(v);
      if (!v.subscribed) lookup_oldest(peer, v);
    }
  });
}

Status Leader::on_lag_report(const std::string& peer, const link::LagReport& r) {
  auto it = views_.find(peer);
  if (it == views_.end()) return Status::ok();
  it->second.report = r;
  it->second.report_mono_ns = loop::mono_ns();
  it->second.asked = true;
  return Status::ok();
}

void Leader::note_last_seq(uint64_t read, uint64_t deliveries_then) {
  if (deliveries_ != deliveries_then) {
    // Deliveries came in while the reading was on its way (over another
    // connection): their pending counts may know of later messages than
    // the reading, which then only raises the last sequence.
    last_seq_ = std::max(last_seq_, read);
    return;
  }
  // Nothing delivered meanwhile: the reading is the stream's last sequence,
  // also below an estimate from an earlier pending count (never below what
  // was delivered).
  const uint64_t was = last_seq_;
  last_seq_ = std::max(delivered_seq_, read);
  if (last_seq_ >= was) return;
  for (auto& [name, v] : views_) {
    v.sync_target = std::min(v.sync_target, last_seq_);
    // "Nothing stored above" was asked against the higher figure.
    if (v.lookup_last_seq > last_seq_) recheck_oldest(v);
  }
}

int64_t Leader::oldest_unreplicated_time(const std::string& peer, const FollowerView& v) const {
  // (A follower whose acknowledgements are of a stream since deleted and
  // created again: what it lacks of this one is not known from them.)
  if (!v.seen || v.replaced) return -1;
  if (v.acked_seq >= last_seq_) return 0;
  auto it = senders_.find(peer);
  if (it != senders_.end() && !it->second->unacked.empty() && it->second->unacked.front().seq > v.acked_seq) {
    // Sent in order from acked_seq + 1: the first in flight is the oldest
    // stored message the follower lacks.
    return it->second->unacked.front().time_ns;
  }
  if (it != senders_.end() && it->second->unacked.empty() && !it->second->batch.msgs.empty() &&
      it->second->batch.msgs.front().seq > v.acked_seq) {
    // Nothing in flight, but read and about to leave (a held batch): the
    // first of it is the oldest the follower lacks.
    return it->second->batch.msgs.front().time_ns;
  }
  if (v.lookup_for == v.acked_seq) {
    if (v.lookup_time_ns >= 0) return v.lookup_time_ns;
    // "Nothing stored above" held when asked; the stream has grown since.
    if (last_seq_ <= v.lookup_last_seq) return 0;
  }
  // Not known until the lookup answers (up to a tick at steady load: the
  // follower stored all that was sent, and more is stored). Meanwhile a
  // lower bound: the message it lacks is no younger than the stream's last
  // message as last read, when that one is at or after it.
  const bool nothing_above =
      v.lookup_for == v.acked_seq && v.lookup_time_ns < 0 && last_time_seq_ <= v.lookup_last_seq;
  if (last_time_ns_ > 0 && last_time_seq_ > v.acked_seq && last_time_seq_ >= first_seq_ && !nothing_above) {
    return last_time_ns_;
  }
  return -1;
}

void Leader::lookup_oldest(const std::string& peer, FollowerView& v) {
  if (!v.seen || v.lookup_pending || !ctx_.conn || v.acked_seq >= last_seq_) return;
  auto it = senders_.find(peer);
  if (it != senders_.end() && !it->second->unacked.empty() && it->second->unacked.front().seq > v.acked_seq) {
    return;  // in flight: known without asking
  }
  if (v.lookup_for == v.acked_seq && !v.lookup_recheck &&
      (v.lookup_time_ns >= 0 || last_seq_ <= v.lookup_last_seq)) {
    return;
  }
  v.lookup_pending = true;
  const uint64_t asked_at_last = last_seq_;
  const uint32_t asked_gen = v.recheck_gen;
  uint64_t from = v.acked_seq + 1;
  std::string stream = cfg_.name;
  int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Result<Json>>(
      [stream, from, tmo](natsConnection* nc) { return nats::msg_get_next(nc, stream, from, tmo); },
      [this, peer, from, asked_at_last, asked_gen](Result<Json> r) {
        if (retired_) return;
        auto vit = views_.find(peer);
        if (vit == views_.end()) return;
        FollowerView& fv = vit->second;
        fv.lookup_pending = false;
        if (from - 1 != fv.acked_seq) return;  // the follower moved on meanwhile: ask again
        if (!r) {
          // Only "no message found" (10037) says nothing is stored above:
          // a stream not found (10059: its server restarting, the stream
          // being created again) says nothing of the kind, and was read as
          // "nothing missing": an oldest-unreplicated age of 0 with
          // thousands of messages to go (operator trial).
          if (r.status().code() == Code::kNotFound &&
              r.status().message().find("(err_code 10037)") != std::string::npos) {
            fv.lookup_for = from - 1;
            fv.lookup_time_ns = -1;  // nothing stored above: nothing missing
            fv.lookup_last_seq = asked_at_last;
            if (fv.recheck_gen == asked_gen) fv.lookup_recheck = false;
          }
          return;
        }
        auto t = util::parse_rfc3339_ns(r->value("time", std::string()));
        if (!t) return;
        fv.lookup_for = from - 1;
        fv.lookup_time_ns = *t;
        fv.lookup_seq = std::max(r->value("seq", uint64_t{0}), from);
        if (fv.recheck_gen == asked_gen) fv.lookup_recheck = false;
      });
}

void Leader::on_delete_or_purge() {
  // The message whose time a view holds may be the one removed.
  for (auto& [peer, v] : views_) {
    if (v.lookup_time_ns >= 0) recheck_oldest(v);
  }
  refresh_state();
  reconcile(/*paced=*/true);
}

void Leader::recheck_oldest(FollowerView& v) {
  v.lookup_recheck = true;
  ++v.recheck_gen;
}

void Leader::reconcile(bool paced, bool owed_only) {
  if (!ctx_.conn) return;
  if (reconcile_pending_ || (paced && loop::mono_ns() - last_reconcile_mono_ns_ < kReconcileGapNs)) {
    if (!owed_only) reconcile_again_ = true;  // tick() or the pending pass's end runs it
    return;
  }
  reconcile_pending_ = true;
  pass_owed_only_ = owed_only;
  last_reconcile_mono_ns_ = loop::mono_ns();
  const uint64_t limit = static_cast<uint64_t>(ctx_.cfg->nats.reconcile_max_deleted);
  // Hysteresis: once over the limit, back only at 90% of it.
  const uint64_t threshold = deletes_over_limit_ ? under_limit() : limit;
  // The count first (read with the other streams' states): the list is a
  // JSON number per delete, which the server builds and both daemons parse
  // on every reconcile; with no interior delete there is none to read.
  ctx_.infos->read(cfg_.name, [this, threshold, limit](Result<Json> brief) {
    if (retired_) return;
    if (!brief) {
      on_reconcile_read(brief.status(), limit);
      return;
    }
    ReconcileRead out;
    out.num_deleted = (*brief)["state"].value("num_deleted", uint64_t{0});
    out.created = brief->value("created", std::string());
    if (out.num_deleted > threshold) {
      out.over_limit = true;
      on_reconcile_read(std::move(out), limit);
      return;
    }
    if (out.num_deleted == 0) {
      out.state = std::move((*brief)["state"]);
      on_reconcile_read(std::move(out), limit);
      return;
    }
    std::string stream = cfg_.name;
    int64_t tmo = ctx_.timeout_ms();
    ctx_.async<Result<Json>>(
        [stream, tmo](natsConnection* nc) { return nats::stream_info(nc, stream, true, tmo); },
        [this, out = std::move(out), limit](Result<Json> full) mutable {
          if (retired_) return;
          if (!full) {
            on_reconcile_read(full.status(), limit);
            return;
          }
          // The list belongs to the stream this reply describes.
          out.created = full->value("created", std::string());
          out.state = std::move((*full)["state"]);
          on_reconcile_read(std::move(out), limit);
        });
  });
}

void Leader::on_reconcile_read(Result<ReconcileRead> r, uint64_t limit) {
  reconcile_pending_ = false;
  if (!r) {
    // (A missing stream is the stream's error, from refresh_state().)
    if (r.status().code() != Code::kNotFound) {
      const bool warn = ctx_.warnings->allow("stream X: cannot read deleted sequences", loop::mono_ns());
      spdlog::log(warn ? spdlog::level::warn : spdlog::level::debug, "stream {}: cannot read deleted sequences: {}",
                  cfg_.name, r.status().message());
    }
  } else if (r->over_limit) {
    num_deleted_ = r->num_deleted;
    if (!deletes_over_limit_) {
      spdlog::warn("stream {}: {} interior deletes exceed nats.reconcile_max_deleted ({}): deletes are not "
                   "reconciled until {} remain; removals from the front and API deletes seen live still replicate",
                   cfg_.name, r->num_deleted, limit, under_limit());
    }
    deletes_over_limit_ = true;
    // Followers that subscribed since: the live deletes they missed.
    std::vector<uint64_t> live(live_deletes_.begin(), live_deletes_.end());
    std::sort(live.begin(), live.end());
    for (auto& [peer, sp] : senders_) {
      if (sp->live_deletes_sent) continue;
      sp->live_deletes_sent = true;
      send_seqs(*sp, live, first_seq_);
    }
    ctx_.request_flush();
  } else if (!created_.empty() && r->created != created_) {
    // Another stream than the one the followers are told of (created
    // again meanwhile): its deletes are not theirs. The next state
    // read notices it (on_recreated); the followers' next SUBSCRIBE,
    // or the next pass (30 s), reconciles the new one.
  } else {
    if (deletes_over_limit_) {
      spdlog::info("stream {}: {} interior deletes, back under nats.reconcile_max_deleted: reconciling", cfg_.name,
                   r->num_deleted);
    }
    deletes_over_limit_ = false;
    num_deleted_ = r->num_deleted;
    send_deleted(r->state);
  }
  if (reconcile_again_ && loop::mono_ns() - last_reconcile_mono_ns_ >= kReconcileGapNs) {
    reconcile_again_ = false;
    reconcile();
  }
}

// Sends the stream state's deleted sequences to every follower, up to what
// was sent to each (only what it may hold).
void Leader::send_deleted(const Json& st) {
  uint64_t first = st.value("first_seq", uint64_t{0});
  std::vector<uint64_t> deleted;
  if (st.contains("deleted") && st["deleted"].is_array()) {
    deleted.reserve(st["deleted"].size());
    for (const auto& x : st["deleted"]) {
      if (x.is_number_unsigned()) deleted.push_back(x.get<uint64_t>());
    }
  }
  std::sort(deleted.begin(), deleted.end());
  deleted.erase(std::unique(deleted.begin(), deleted.end()), deleted.end());
  // Removals no advisory announces (max_msgs_per_subject, rollups,
  // interest consumption out of order) are found here.
  for (auto& [peer, v] : views_) {
    if (v.lookup_time_ns >= 0 && std::binary_search(deleted.begin(), deleted.end(), v.lookup_seq)) {
      recheck_oldest(v);
    }
  }
  // The stream's last messages deleted: no message comes after them to
  // show a follower the gap, so the run of deleted sequences that ends at
  // the last sequence goes to every follower (which fills it once it holds
  // all before it: Follower::fill_deleted_tail). A long run is left to the
  // next message.
  const uint64_t last = st.value("last_seq", uint64_t{0});
  size_t run = 0;  // deleted[n - run, n) are last - run + 1 .. last
  while (run < deleted.size() && run <= kMaxDeletedTail && deleted[deleted.size() - 1 - run] == last - run) ++run;
  const size_t tail = run <= kMaxDeletedTail ? deleted.size() - run : deleted.size();
  const int64_t now = loop::mono_ns();
  for (auto& [peer, sp] : senders_) {
    if (pass_owed_only_ && !sp->pass_owed) continue;
    // A link with a full send queue gets a pass once it drains (tick();
    // or at once when its last pass is a full interval old): the lists
    // must not pile up in front of the data on a link slower than the
    // passes come.
    if (ctx_.links->pending_bytes(sp->peer) > kLinkHighWater && now - sp->last_pass_mono_ns < kReconcileIntervalNs) {
      sp->pass_owed = true;
      continue;
    }
    sp->pass_owed = false;
    sp->last_pass_mono_ns = now;
    // Otherwise only what the follower may hold: up to what was sent to it.
    auto end = std::upper_bound(deleted.begin(), deleted.end(), sp->sent_seq);
    std::vector<uint64_t> seqs(deleted.begin(), end);
    const auto tail_from = deleted.begin() + static_cast<std::ptrdiff_t>(tail);
    if (end < tail_from) end = tail_from;
    seqs.insert(seqs.end(), end, deleted.end());
    send_seqs(*sp, seqs, first);
    // The end of a complete pass (an empty DELETED): what the follower's
    // hole check compares its replica with (Follower::on_pass_end). A
    // follower built before it applies an empty list: nothing.
    send_seqs_end(*sp, first);
  }
  ctx_.request_flush();
}

void Leader::send_seqs_end(Sender& s, uint64_t first) {
  link::Deleted d;
  d.stream = cfg_.name;
  d.first_seq = first;
  std::vector<uint8_t> f;
  encode(d, f);
  ctx_.links->send(s.peer, std::move(f));
}

void Leader::send_seqs(Sender& s, const std::vector<uint64_t>& seqs, uint64_t first) {
  for (size_t i = 0; i < seqs.size(); i += link::kMaxDeletedPerFrame) {
    link::Deleted d;
    d.stream = cfg_.name;
    d.first_seq = first;
    size_t stop = std::min(seqs.size(), i + link::kMaxDeletedPerFrame);
    d.seqs.assign(seqs.begin() + static_cast<std::ptrdiff_t>(i), seqs.begin() + static_cast<std::ptrdiff_t>(stop));
    std::vector<uint8_t> f;
    encode(d, f);
    ctx_.links->send(s.peer, std::move(f));
  }
}

uint64_t Leader::under_limit() const {
  const uint64_t limit = static_cast<uint64_t>(ctx_.cfg->nats.reconcile_max_deleted);
  // 90% of it, rounded down (limit / 10 rounded up): a small limit keeps a
  // band too (5: back at 4).
  return limit - (limit + 9) / 10;
}

void Leader::on_msg_deleted(uint64_t seq) {
  // Remembered whatever the count (it may pass the limit before a follower
  // that is away now subscribes again), as many as the limit.
  live_deletes_.push_back(seq);
  while (live_deletes_.size() > static_cast<uint64_t>(ctx_.cfg->nats.reconcile_max_deleted)) {
    live_deletes_.pop_front();
  }
  // To every follower subscribed now, whatever was read for it: one that
  // has not applied it yet keeps it until it has (or fills the gap).
  for (auto& [peer, sp] : senders_) send_seqs(*sp, {seq}, first_seq_);
  ctx_.request_flush();
}

void Leader::add_follower(const std::string& peer) {
  if (retired_ || views_.count(peer)) return;
  followers_.push_back(peer);
  views_[peer];
  if (ctx_.links->is_up(peer)) on_link_up(peer);
}

void Leader::remove_follower(const std::string& peer) {
  if (retired_ || !views_.count(peer)) return;
  drop_sender(peer);
  views_.erase(peer);
  followers_.erase(std::remove(followers_.begin(), followers_.end(), peer), followers_.end());
  // Its durable is stale now: deleted here, or at the next NATS up; after
  // a job under way (it still counts the region as a follower).
  stale_redo_ = true;
  cleaned_nats_gen_ = 0;
  cleanup_stale_durables();
}

void Leader::cleanup_stale_durables() {
  if (!ctx_.conn || cleaned_nats_gen_ == ctx_.nats_gen || stale_cleaning_) return;
  cleaned_nats_gen_ = ctx_.nats_gen;
  stale_cleaning_ = true;
  stale_redo_ = false;
  stale_tried_mono_ns_ = loop::mono_ns();
  std::string stream = cfg_.name;
  std::vector<std::string> followers = followers_;
  int64_t tmo = ctx_.timeout_ms();
  struct Outcome {
    bool done = true;           // every stale durable gone (or none), or no connection: nothing owed
    bool timed_out = false;     // the server did not answer
    std::string failed_delete;  // a stale durable that could not be deleted, and why
    std::string why;            // otherwise, why not done (a listing that failed)
  };
  ctx_.async<Outcome>(
      [stream, followers, tmo](natsConnection* nc) {
        Outcome o;
        if (nc == nullptr) return o;  // (the next connection runs it again)
        auto names = nats::consumer_names(nc, stream, tmo);
        if (!names) {
          // (The stream itself missing: no durable to keep anything.)
          if (names.status().code() == Code::kNotFound) return o;
          o.done = false;
          o.timed_out = names.status().code() == Code::kTimeout;
          o.why = "cannot list its consumers: " + names.status().message();
          return o;
        }
        for (const auto& n : *names) {
          std::string peer = durable_region(n);
          if (peer.empty() || std::find(followers.begin(), followers.end(), peer) != followers.end()) continue;
          Status st = nats::consumer_delete(nc, stream, n, tmo);
          if (st) {
            spdlog::warn("stream {}: deleted durable {} of region {}, which is no longer a peer", stream, n, peer);
          } else if (st.code() != Code::kNotFound) {
            o.done = false;
            o.failed_delete = "cannot delete durable " + n + " of region " + peer + ", which is no longer a peer: " +
                              st.message() + " (it keeps every message that region has not stored)";
            if (st.code() == Code::kTimeout) {
              o.timed_out = true;
              break;  // (the rest at the retry)
            }
          }
        }
        return o;
      },
      [this](Outcome o) {
        stale_cleaning_ = false;
        stale_owed_ = !o.done;
        if (retired_) return;
        if ((stale_redo_ || cleaned_nats_gen_ != ctx_.nats_gen)) {  // (a peer removed, or NATS back, meanwhile)
          cleaned_nats_gen_ = 0;
          cleanup_stale_durables();
          return;
        }
        if (o.done) {
          stale_retry_ns_ = kStaleRetryNs;
          stale_warned_mono_ns_ = 0;  // (a later failure is news)
          return;
        }
        // Tried again in 30 s, less often while the server does not answer
        // (each try holds the NATS worker for a timeout).
        stale_retry_ns_ = o.timed_out ? std::min(stale_retry_ns_ * 2, kStaleRetryMaxNs) : kStaleRetryNs;
        if (o.failed_delete.empty()) {
          // A listing that failed: there may be nothing stale at all.
          spdlog::debug("stream {}: looking for durables of regions that are no longer peers: {}", cfg_.name, o.why);
          return;
        }
        const int64_t now = loop::mono_ns();
        if (stale_warned_mono_ns_ == 0 || now - stale_warned_mono_ns_ > kStaleRewarnNs) {
          stale_warned_mono_ns_ = now;
          spdlog::warn("stream {}: {}; tried again", cfg_.name, o.failed_delete);
        }
      });
}

void Leader::tick() {
  if (stale_owed_ && !stale_cleaning_ && loop::mono_ns() - stale_tried_mono_ns_ > stale_retry_ns_) {
    cleaned_nats_gen_ = 0;
    cleanup_stale_durables();
  }
  for (auto& [peer, v] : views_) lookup_oldest(peer, v);
  int64_t now = loop::mono_ns();
  if (ctx_.conn && !reconcile_pending_) {
    // A follower a pass skipped for its full link, now drained (or owed
    // for a full interval): that pass, to it alone.
    bool owed_ready = false;
    for (const auto& [peer, s] : senders_) {
      if (s->pass_owed && (ctx_.links->pending_bytes(peer) <= kLinkHighWater ||
                           now - s->last_pass_mono_ns >= kReconcileIntervalNs)) {
        owed_ready = true;
      }
    }
    if (now - last_reconcile_mono_ns_ > kReconcileIntervalNs ||
        (reconcile_again_ && now - last_reconcile_mono_ns_ >= kReconcileGapNs)) {
      reconcile_again_ = false;
      reconcile();
    } else if (owed_ready && now - last_reconcile_mono_ns_ >= kReconcileGapNs) {
      reconcile(false, /*owed_only=*/true);
    }
  }
  for (auto& [peer, s] : senders_) {
    check_ack_refused(*s, now);
    if (s->consumer.empty() && !s->creating && ctx_.conn) {
      if (now - s->last_activity_mono_ns > 2'000'000'000) create_consumer(*s);
      continue;
    }
    // Pulls that never completed: the consumer vanished without telling us.
    bool lost = false;
    for (auto& [rid, p] : s->pulls) {
      // A no_wait pull is answered at once; a waiting one within its expiry.
      const int64_t limit = (p.no_wait ? 0 : kPullExpiresNs) + kPullLostNs;
      if (now - p.sent_mono_ns > limit && now - s->last_activity_mono_ns > limit) lost = true;
    }
    if (!lost) {
      s->liveness_ping_mono_ns = 0;
      s->liveness_pong_mono_ns = 0;
    } else if (s->liveness_pong_mono_ns == 0 || now - s->liveness_pong_mono_ns < kServerAnsweringNs) {
      // Is the server answering at all? (A nats-server stopped or starved
      // answers neither the pull nor a PING: every reader would be
      // recreated, with a warning each, and the recreations time out.)
      if (s->liveness_ping_mono_ns == 0 && ctx_.data) {
        const uint64_t id = s->id;
        if (ctx_.data->ping([this, id] {
              if (Sender* sp = find_sender(id); sp != nullptr && sp->liveness_ping_mono_ns != 0) {
                sp->liveness_pong_mono_ns = loop::mono_ns();
              }
            })) {
          s->liveness_ping_mono_ns = now;
        }
      }
      lost = false;
    }
    if (lost) {
      std::string open;
      for (const auto& [rid, p] : s->pulls) {
        open += " #" + std::to_string(rid) + (p.no_wait ? " no_wait " : " waiting ") + std::to_string(p.delivered) +
                "/" + std::to_string(p.requested) + " " + std::to_string((now - p.sent_mono_ns) / 1'000'000) + " ms;";
      }
      restart_consumer(*s, "a pull went unanswered (read through " + std::to_string(s->sent_seq) +
                               ", stream last " + std::to_string(last_seq_) + ", reading " +
                               std::string(mode_name(s->mode)) + ", open:" + open + ")");
      continue;
    }
    pull(*s);
  }
}

nlohmann::json Leader::lag_json() const {
  Json s;
  s["stream"] = cfg_.name;
  s["leader"] = cfg_.leader;
  s["role"] = "leader";
  s["state"] = error_.empty() ? "replicating" : "error";
  if (!error_.empty()) s["detail"] = error_;
  s["first_seq"] = first_seq_;
  if (!retention_.empty()) s["retention"] = retention_;
  s["last_seq"] = last_seq_;
  // Interior deletes, and whether they are reconciled from the deleted list
  // (nats.reconcile_max_deleted).
  s["deletes"] = Json{{"interior", num_deleted_},
                      {"reconciled", !deletes_over_limit_},
                      {"limit", ctx_.cfg->nats.reconcile_max_deleted}};
  Json fs = Json::array();
  for (const auto& [peer, v] : views_) {
    Json f;
    f["region"] = peer;
    f["state"] = v.state;
    if (!v.detail.empty()) f["detail"] = v.detail;
    auto sit = senders_.find(peer);
    // Its reader cannot pull (an error until a pull is answered), or its
    // acknowledgements are refused (until one is not).
    std::string refused = sit != senders_.end() ? sit->second->pull_refused : std::string();
    if (!v.ack_refused.empty()) refused += (refused.empty() ? "" : "; ") + v.ack_refused;
    if (!refused.empty()) {
      f["state"] = "error";
      f["detail"] = refused;
    } else if (std::string why = not_asked(peer, v, loop::mono_ns()); !why.empty()) {
      f["state"] = "error";
      f["detail"] = why;
    } else if (v.state != "stopped" && v.report_mono_ns > 0 &&
               loop::mono_ns() - v.report_mono_ns < kReportStaleNs &&
               (v.report.flags & link::kLagFlagNotApplying) != 0) {
      // Its own error (a replica it cannot write, a stream it cannot
      // prepare): said in its reports, the detail is in its /v1/lag and log.
      f["state"] = "error";
      f["detail"] = "region " + peer + " reports that it cannot apply this stream now (its /v1/lag and log say why)";
    }
    f["leader_last_seq"] = std::max(last_seq_, v.acked_seq);
    // Not known until the follower subscribes after this daemon started
    // (its position comes with the subscription): null, not 0 (a leader
    // restarted while a follower was away read the whole stream as its
    // lag: operator trial). The ages are null then too.
    // So while its position is of a stream since deleted and created again
    // (it was away then): not a position in this one (review).
    const bool position_known = v.seen && !v.replaced;
    f["applied_seq"] = position_known ? Json(v.acked_seq) : Json(nullptr);
    f["seq_lag"] = !position_known ? Json(nullptr) : Json(last_seq_ > v.acked_seq ? last_seq_ - v.acked_seq : 0);
    f["messages_sent"] = v.msgs_sent;
    f["bytes_sent"] = v.bytes_sent;
    int64_t now_wall = loop::wall_ns();
    int64_t now_mono = loop::mono_ns();
    int64_t oldest = oldest_unreplicated_time(peer, v);
    f["oldest_unreplicated_age_ms"] =
        oldest < 0 ? Json(nullptr) : Json(oldest == 0 ? 0.0 : ns_to_ms(std::max<int64_t>(0, now_wall - oldest)));
    // Newest applied, on our own clock: the follower acknowledges the origin
    // time of what it stored. Caught up: 0, also while the link is down (it
    // holds everything this stream holds: nothing is missing however long
    // the link stays down; an idle stream read the time since its last
    // message at every link blip, an alert's worth: operator trial).
    if (position_known && v.acked_seq >= last_seq_) {
      f["newest_applied_age_ms"] = 0.0;
    } else if (v.acked_time_ns > 0) {
      f["newest_applied_age_ms"] = ns_to_ms(std::max<int64_t>(0, now_wall - v.acked_time_ns));
    } else {
      f["newest_applied_age_ms"] = nullptr;
    }
    // The follower's own figures, from its last LAG_REPORT.
    if (v.report_mono_ns > 0) {
      const link::LagReport& r = v.report;
      LagQuantiles q;
      q.p50_ns = r.p50_ns;
      q.p95_ns = r.p95_ns;
      q.p99_ns = r.p99_ns;
      q.samples = r.window_samples;
      bool known = (r.flags & link::kLagFlagOffsetKnown) != 0;
      // Offsets as the follower sees them: the leader's clock minus its own.
      // Not subscribed: nothing is being applied, so there is no current
      // time lag (the ages above say how far behind it falls); the
      // window's quantiles stand for what was applied.
      // Nor while its reports have stopped (they come about once a second;
      // a follower that lost its local NATS sends none): the last one's
      // value would read as now.
      const bool fresh = now_mono - v.report_mono_ns < kReportStaleNs;
      int64_t current = v.subscribed && fresh ? r.time_lag_ns : -1;
      // A follower that reports its stream in error (or diverged) applies
      // nothing: the next message it applies will be at least as late as
      // the first one it lacks is old, which only we know exactly (it used
      // to show the last applied message's lag, near 0, however long the
      // error lasted).
      const bool not_applying = fresh && (r.flags & link::kLagFlagNotApplying) != 0;
      if (not_applying && oldest > 0) current = std::max(current, std::max<int64_t>(0, now_wall - oldest));
      Json tl = lag_figures_json(current, q, known, r.clock_offset_ns, r.clock_offset_error_ns);
      tl["report_age_ms"] = ns_to_ms(now_mono - v.report_mono_ns);
      tl["reported_applied_seq"] = r.applied_seq;
      f["time_lag"] = tl;
      SyncSnapshot ss;
      ss.elapsed_ns = -1;  // not reported
      ss.kind = (r.flags & link::kLagFlagRebuild) != 0 ? "rebuild" : "initial";
      ss.started = (r.flags & link::kLagFlagSyncStarted) != 0;
      ss.syncing = (r.flags & link::kLagFlagSyncing) != 0;
      ss.done = r.sync_done;
      ss.to_go = r.sync_to_go;
      ss.rate_per_s = static_cast<double>(r.sync_rate_milli) / 1000.0;
      ss.eta_s = r.sync_eta_ms < 0 ? -1 : static_cast<double>(r.sync_eta_ms) / 1000.0;
      // The report is up to a second old; what the follower has stored
      // since (its acknowledgements) moves the progress on. Holding all the
      // stream holds ends the sync, as its next report will say.
      if (ss.syncing && v.acked_seq > r.applied_seq) {
        const uint64_t more = v.acked_seq - r.applied_seq;
        ss.done += more;
        if (v.acked_seq >= last_seq_) {
          ss.syncing = false;
          ss.set_to_go(0);
        } else {
          ss.set_to_go(std::max(ss.to_go, more) - more);
        }
      }
      // Not subscribed (link down, daemon stopped): its sync state is not
      // known now; the last report's would read as current.
      if (v.subscribed) f["sync"] = sync_json(ss);
    }
    auto it = senders_.find(peer);
    if (it != senders_.end()) {
      f["unacked"] = it->second->unacked.size();
      f["unacked_bytes"] = it->second->unacked_bytes;
      // The link's in-flight bytes over all streams (link.peer_window_bytes).
      f["link_inflight_bytes"] = ctx_.peer_inflight_bytes[peer];
    }
    fs.push_back(f);
  }
  s["followers"] = fs;
  return s;
}

std::vector<std::string> Leader::problems() const {
  std::vector<std::string> out;
  if (!error_.empty()) out.push_back("stream " + cfg_.name + ": " + error_);
  for (const auto& [peer, s] : senders_) {
    if (!s->pull_refused.empty()) out.push_back("stream " + cfg_.name + ": follower " + peer + ": " + s->pull_refused);
  }
  const int64_t now = loop::mono_ns();
  for (const auto& [peer, v] : views_) {
    if (!v.ack_refused.empty()) out.push_back("stream " + cfg_.name + ": follower " + peer + ": " + v.ack_refused);
    if (std::string why = not_asked(peer, v, now); !why.empty()) {
      out.push_back("stream " + cfg_.name + ": follower " + peer + ": " + why);
    }
  }
  return out;
}

}  // namespace isthmus::replication
