#include "replication/replicator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <set>

#include "nats/jsapi.h"
#include "replication/replica_config.h"

namespace isthmus::replication {

using Json = nlohmann::json;

Replicator::Replicator(uv_loop_t* loop, const config::Config& cfg, loop::Mailbox* mailbox) : cfg_(cfg) {
  ctx_.loop = loop;
  ctx_.cfg = &cfg_;
  ctx_.mailbox = mailbox;
  ctx_.request_flush = [this] { schedule_flush(); };
  // Once per loop iteration at most, however many acknowledgements asked
  // (one per stream per flush): each round calls every stream's pull().
  ctx_.pump_in_turn = [this] {
    if (pump_soon_ || !pump_soon_timer_) return;
    pump_soon_ = true;
    pump_soon_timer_->start(0, 0, [this] {
      pump_soon_ = false;
      pump_round();
    });
  };
  infos_ = std::make_unique<StreamInfoReader>(ctx_);
  ctx_.infos = infos_.get();
  warnings_ = std::make_unique<LogLimiter>();
  ctx_.warnings = warnings_.get();
  server_watch_ = std::make_unique<ServerWatch>(ctx_);
  durables_ = std::make_unique<DurableCleanup>(
      ctx_, [this](const std::string& s) { return leaders_.count(s) > 0 || followers_.count(s) > 0; },
      [this](const std::string& s) { return leaders_.count(s) > 0; });
  std::vector<std::string> others;
  for (const auto& p : cfg_.peers) others.push_back(p.name);
  for (const auto& s : cfg_.streams) {
    if (s.leader == cfg_.region.name) {
      leaders_[s.name] = std::make_unique<Leader>(ctx_, s, others);
    } else {
      followers_[s.name] = std::make_unique<Follower>(ctx_, s);
      // Durables of readers this region made while it led the stream (a
      // switchover by restart, or one by reload the daemon did not finish)
      // are deleted once the replica is ready: tick().
      readers_to_drop_[s.name] = false;
    }
  }
}

Replicator::~Replicator() { stop(); }

void Replicator::attach(nats::Client* nats, link::Manager* links) {
  ctx_.nats = nats;
  ctx_.links = links;
}

void Replicator::start() {
  flush_timer_ = std::make_unique<loop::Timer>(ctx_.loop);
  tick_timer_ = std::make_unique<loop::Timer>(ctx_.loop);
  pump_timer_ = std::make_unique<loop::Timer>(ctx_.loop);
  pump_soon_timer_ = std::make_unique<loop::Timer>(ctx_.loop);
  state_timer_ = std::make_unique<loop::Timer>(ctx_.loop);
  tick_timer_->start(1000, 1000, [this] { tick(); });
  start_state_timer();
  // Re-check windows that were blocked on link backpressure.
  pump_timer_->start(20, 20, [this] { pump_round(); });
}

// Every stream's pull() in turn, round robin: on a full link the first to
// pull takes the room acknowledgements freed since the last round, so the
// next round starts after it (and with the same stream when none could
// pull: it is still first in line).
void Replicator::pump_round() {
  if (leaders_.empty()) return;
  pump_first_ %= leaders_.size();
  auto it = std::next(leaders_.begin(), static_cast<std::ptrdiff_t>(pump_first_));
  size_t next_first = pump_first_;
  bool served = false;
  for (size_t i = 0; i < leaders_.size(); ++i) {
    if (it->second->pump() && !served) {
      served = true;
      next_first = pump_first_ + i + 1;
    }
    if (++it == leaders_.end()) it = leaders_.begin();
  }
  pump_first_ = next_first % leaders_.size();
}

void Replicator::start_state_timer() {
  // Leaders send STATE (first/last sequence) at least once per heartbeat
  // interval (and at most once a second), so replicas trim in step.
  uint64_t state_ms = static_cast<uint64_t>(std::clamp<int64_t>(cfg_.link.heartbeat_interval.count(), 100, 1000));
  state_timer_->start(state_ms, state_ms, [this] {
    for (auto& [n, l] : leaders_) l->refresh_state();
  });
}

void Replicator::reconfigure(const config::Config& next) {
  const auto hb = cfg_.link.heartbeat_interval;
  std::vector<config::Stream> added;
  for (const auto& s : next.streams) {
    if (!leaders_.count(s.name) && !followers_.count(s.name)) added.push_back(s);
  }
  std::vector<std::string> removed;
  // Streams whose leader changed (a switchover): the object of the old role
  // is retired and one of the new role made, as for a removal and an
  // addition, with two differences: a region that stops leading deletes
  // its durable readers only once its replica is ready (the retention
  // anchor holds the interest stream's messages first: tick()), and every
  // follower retired tells the old leader why it stopped following.
  std::map<std::string, std::string> switched;  // stream -> its leader before
  for (const auto& s : cfg_.streams) {
    auto n = std::find_if(next.streams.begin(), next.streams.end(),
                          [&s](const config::Stream& x) { return x.name == s.name; });
    if (n == next.streams.end()) {
      removed.push_back(s.name);
    } else if (n->leader != s.leader) {
      switched[s.name] = s.leader;
      added.push_back(*n);
    }
  }
  std::vector<std::string> peers_removed, peers_added;
  for (const auto& p : cfg_.peers) {
    if (next.find_peer(p.name) == nullptr) peers_removed.push_back(p.name);
  }
  for (const auto& p : next.peers) {
    if (cfg_.find_peer(p.name) == nullptr) peers_added.push_back(p.name);
  }
  cfg_ = next;  // ctx_.cfg points here: the streams read the new values from now on
  if (state_timer_ && hb != cfg_.link.heartbeat_interval && !stopped_) start_state_timer();
  if (stopped_) return;
  for (const auto& name : removed) remove_stream(name);
  for (const auto& [name, before] : switched) {
    std::string now;
    for (const auto& x : cfg_.streams) {
      if (x.name == name) now = x.leader;
    }
    spdlog::warn("stream {}: leader changed by reload from {} to {}{}", name, before, now,
                 now == cfg_.region.name   ? ": led here from now on"
                 : before == cfg_.region.name ? ": followed here from now on"
                                              : ": followed from the new leader");
    if (now == cfg_.region.name) {
      spdlog::warn("stream {}: led here now, still set up as a replica (neutral limits; on an interest stream "
                   "isthmus_retention_anchor, which keeps every message): restore the limits it had when it was last "
                   "led (at {}, unless that was a replica too), create the applications' consumers, then delete the "
                   "anchor (docs/operations.md, \"Switchover\", step 4)",
                   name, before);
    }
    remove_stream(name,
                  now == cfg_.region.name ? "region " + cfg_.region.name + " leads stream " + name + " now"
                                          : "region " + cfg_.region.name + " follows stream " + name + " from " +
                                                now + " now",
                  /*switched=*/true);
  }
  // (A removed peer's link is down already: link::Manager::reconfigure.
  // The streams it led were removed with it: config validation.)
  for (const auto& peer : peers_removed) {
    spdlog::info("replication: region {} removed by reload: no longer followed by it", peer);
    for (auto& [n, l] : leaders_) l->remove_follower(peer);
    ctx_.peer_inflight_bytes.erase(peer);
    ctx_.peer_full_mono_ns.erase(peer);
  }
  for (const auto& peer : peers_added) {
    spdlog::info("replication: region {} added by reload: it follows the {} stream(s) led here once it asks",
                 peer, leaders_.size());
    for (auto& [n, l] : leaders_) l->add_follower(peer);
  }
  if (!peers_removed.empty()) schedule_flush();
  if (added.empty()) return;
  std::vector<std::string> others;
  for (const auto& p : cfg_.peers) others.push_back(p.name);
  for (const auto& s : added) {
    if (!switched.count(s.name)) {
      spdlog::info("stream {}: added by reload ({} leads it)", s.name,
                   s.leader == cfg_.region.name ? "this region" : s.leader);
    }
    if (s.leader == cfg_.region.name) {
      durables_->led_again(s.name);
      readers_to_drop_.erase(s.name);  // its durables are its own again
      auto& l = leaders_[s.name] = std::make_unique<Leader>(ctx_, s, others);
      // Its followers that removed it meanwhile stay `stopped`.
      for (auto it = retired_leaders_.rbegin(); it != retired_leaders_.rend(); ++it) {
        if ((*it)->name() == s.name) {
          l->inherit_removed(**it);
          break;
        }
      }
      if (ctx_.data) {
        if (!advisory_sub_) watch_advisories();
        l->on_nats_up();
      }
      for (const auto& p : cfg_.peers) {
        if (ctx_.links->is_up(p.name)) l->on_link_up(p.name);
      }
    } else {
      auto& f = followers_[s.name] = std::make_unique<Follower>(ctx_, s);
      if (ctx_.data) f->on_nats_up();
      if (ctx_.links->is_up(s.leader)) f->on_link_up();
    }
  }
  schedule_flush();
}

// Kept until the daemon exits (see Leader::retire, Follower::retire): the
// results of their jobs under way still arrive, and are dropped there.
void Replicator::remove_stream(const std::string& name, const std::string& why, bool switched) {
  if (auto it = leaders_.find(name); it != leaders_.end()) {
    if (!switched) {
      spdlog::info("stream {}: removed by reload (this region led it): its followers are told, its readers deleted",
                   name);
    }
    it->second->retire();
    retired_leaders_.push_back(std::move(it->second));
    leaders_.erase(it);
    if (switched) {
      // Followed from now on: the durables go once the replica is ready
      // (tick()); deleted first, nats-server would drop the interest
      // stream's messages only they held, before the anchor holds them.
      readers_to_drop_[name] = true;
    } else {
      durables_->removed(name);
    }
  } else if (auto fit = followers_.find(name); fit != followers_.end()) {
    if (!switched) {
      spdlog::info("stream {}: removed by reload ({} leads it): no longer followed", name, fit->second->leader());
    }
    fit->second->retire(why);
    retired_followers_.push_back(std::move(fit->second));
    followers_.erase(fit);
  }
  if (!switched && readers_to_drop_.erase(name) > 0) durables_->removed(name);  // no longer followed either
  schedule_flush();
}

void Replicator::stop() {
  stopped_ = true;
  // Answer what waits for a refresh now, with the state as it is (the
  // refreshes themselves are not coming: the mailbox closes at shutdown).
  if (refresh_timer_) refresh_timer_->stop();
  auto waits = std::move(refresh_waits_);
  refresh_waits_.clear();
  for (auto& w : waits) w.finish();
  if (tick_timer_) tick_timer_->stop();
  if (pump_timer_) pump_timer_->stop();
  if (pump_soon_timer_) pump_soon_timer_->stop();
  if (state_timer_) state_timer_->stop();
  infos_->stop();
  server_watch_->stop();
  advisory_sub_.reset();
  if (flush_timer_) flush_timer_->stop();
  if (data_retry_timer_) data_retry_timer_->stop();
  if (data_) {
    data_->flush();  // the last acknowledgements (most leave at once)
    data_->close();
  }
}

void Replicator::drain() {
  for (auto& [n, l] : leaders_) l->drain();
  for (auto& [n, f] : followers_) f->drain();
}

bool Replicator::drained() const {
  for (const auto& [n, f] : followers_) {
    if (!f->idle()) return false;
  }
  return true;
}

void Replicator::on_nats_up(nats::ConnPtr conn, uint64_t generation, const std::string& url) {
  cnats_ = std::move(conn);
  cnats_url_ = url;
  server_watch_->on_nats_up(generation);
  infos_->on_nats_up();
  data_backoff_ms_ = 0;
  open_data();
}

void Replicator::open_data() {
  if (!cnats_ || stopped_) return;
  if (data_) {
    data_->close();
    dead_data_ = std::move(data_);
  }
  // The server cnats reached, through the nats.urls entry it used (its
  // scheme, TLS requirement and user info): cnats is given one URL per
  // attempt and never reconnects elsewhere, so this is that server.
  std::string url = !cnats_url_.empty() ? cnats_url_
                    : cfg_.nats.urls.empty() ? std::string("nats://127.0.0.1:4222")
                                             : cfg_.nats.urls.front();
  nats::DataConn::Options o;
  o.url = url;
  o.credentials = cfg_.nats.credentials;
  o.connect_timeout_ms = std::max<int64_t>(cfg_.nats.request_timeout.count(), 2000);
  data_ = std::make_shared<nats::DataConn>(ctx_.loop, o, this);
  data_->open();
}

void Replicator::on_data_up() {
  ctx_.conn = cnats_;
  ctx_.data = data_;
  ctx_.nats_gen = ++gen_;
  data_backoff_ms_ = 0;
  if (data_failures_ > 0) {
    spdlog::info("replication: NATS data connection up (after {} failed attempt(s))", data_failures_);
  }
  data_failures_ = 0;
  data_error_.clear();
  advisory_sub_.reset();
  if (!leaders_.empty()) watch_advisories();
  durables_->on_nats_up();  // (its jobs ahead of the consumers the streams create)
  for (auto& [n, l] : leaders_) l->on_nats_up();
  for (auto& [n, f] : followers_) f->on_nats_up();
}

void Replicator::watch_advisories() {
  auto sub = nats::Subscription::create(
      ctx_.conn.get(), "$JS.EVENT.ADVISORY.API", ctx_.mailbox, [this](natsMsg* m) { on_api_advisory(m); },
      cfg_.nats.pending_bytes_limit);
  if (sub) {
    advisory_sub_ = std::move(*sub);
  } else {
    spdlog::warn("replication: cannot watch API advisories ({}); deletions reconcile every 30 s only",
                 sub.status().message());
  }
}

void Replicator::on_data_down(const std::string& reason) {
  const bool was_up = static_cast<bool>(ctx_.data);
  // A retry that fails as the one before it is not news (every 5 s while
  // the server is away): at debug; the connection coming back is said.
  const bool repeat = !was_up && data_failures_ > 0 && reason == data_error_;
  spdlog::log(repeat ? spdlog::level::debug : spdlog::level::warn, "replication: NATS data connection {} ({})",
              was_up ? "lost" : "failed", reason);
  if (!was_up) ++data_failures_;
  data_error_ = reason;
  if (was_up) streams_down();
  dead_data_ = std::move(data_);
  schedule_flush();  // frees it
  if (!cnats_ || stopped_) return;
  // Retry while cnats' connection stands: 250 ms doubling to 5 s (cnats'
  // own reconnect follows nats.reconnect_wait).
  data_backoff_ms_ = data_backoff_ms_ == 0 ? 250 : std::min<int64_t>(2 * data_backoff_ms_, 5000);
  if (!data_retry_timer_) data_retry_timer_ = std::make_unique<loop::Timer>(ctx_.loop);
  data_retry_timer_->start(static_cast<uint64_t>(data_backoff_ms_), 0, [this] { open_data(); });
}

void Replicator::streams_down() {
  // Gone before the streams hear of it (a follower that restarts its
  // pipeline must not start it again on them), alive until they have.
  auto conn = std::move(ctx_.conn);
  auto data = std::move(ctx_.data);
  ctx_.conn.reset();
  ctx_.data.reset();
  for (auto& [n, l] : leaders_) l->on_nats_down();
  for (auto& [n, f] : followers_) f->on_nats_down();
  advisory_sub_.reset();
}

void Replicator::on_nats_down(const std::string& reason) {
  spdlog::warn("replication: local NATS down ({})", reason);
  // The data connection's failures start afresh with the next connection
  // (its first refusal then is news again).
  data_failures_ = 0;
  cnats_.reset();
  if (data_retry_timer_) data_retry_timer_->stop();
  if (ctx_.conn || ctx_.data) streams_down();
  if (data_) {
    data_->close();
    dead_data_ = std::move(data_);
  }
}

void Replicator::on_link_up(const std::string& peer) {
  for (auto& [n, l] : leaders_) l->on_link_up(peer);
  // Streams removed here by reload: said again on every link up (the
  // leader's daemon may have restarted, or the link was down at removal).
  std::set<std::string> told;
  for (auto it = retired_followers_.rbegin(); it != retired_followers_.rend(); ++it) {
    Follower& f = **it;
    if (f.leader() != peer || followers_.count(f.name()) || leaders_.count(f.name()) || !told.insert(f.name()).second) {
      continue;
    }
    f.announce_removed();
  }
  for (auto& [n, f] : followers_) {
    if (f->leader() == peer) f->on_link_up();
  }
}

void Replicator::on_link_down(const std::string& peer) {
  for (auto& [n, l] : leaders_) l->on_link_down(peer);
  // Stopping (the links close last): nothing resumes, so no follower
  // resets (a leader still drops its readers, as before).
  if (stopped_) return;
  for (auto& [n, f] : followers_) {
    if (f->leader() == peer) f->on_link_down();
  }
}

Status Replicator::on_link_frame(const std::string& peer, link::FrameType type, std::span<const uint8_t> body) {
  using link::FrameType;
  auto leader_of = [&](const std::string& stream) -> Leader* {
    auto it = leaders_.find(stream);
    return it == leaders_.end() ? nullptr : it->second.get();
  };
  auto follower_of = [&](const std::string& stream) -> Follower* {
    auto it = followers_.find(stream);
    if (it == followers_.end() || it->second->leader() != peer) return nullptr;
    return it->second.get();
  };
  Status st;
  switch (type) {
    case FrameType::kStreamReq: {
      link::StreamReq f;
      if (!(st = decode(body, f))) return st;
      if (Leader* l = leader_of(f.stream)) return l->on_stream_req(peer, f);
      link::StreamInfo info;
      info.stream = f.stream;
      info.error = not_leader_error(cfg_.region.name, f.stream);
      std::vector<uint8_t> out;
      encode(info, out);
      ctx_.links->send(peer, std::move(out));
      schedule_flush();
      return Status::ok();
    }
    case FrameType::kSubscribe: {
      link::Subscribe f;
      if (!(st = decode(body, f))) return st;
      if (Leader* l = leader_of(f.stream)) return l->on_subscribe(peer, f);
      tell_not_leader(peer, f.stream);
      return Status::ok();
    }
    case FrameType::kAck: {
      link::Ack f;
      if (!(st = decode(body, f))) return st;
      if (Leader* l = leader_of(f.stream)) return l->on_ack(peer, f);
      return Status::ok();
    }
    case FrameType::kStop: {
      link::Stop f;
      if (!(st = decode(body, f))) return st;
      if (Leader* l = leader_of(f.stream)) return l->on_stop(peer, f);
      // Removed here first: the newest retired Leader keeps the row, for
      // the stream added back (Leader::inherit_removed).
      for (auto it = retired_leaders_.rbegin(); it != retired_leaders_.rend(); ++it) {
        if ((*it)->name() == f.stream) return (*it)->on_stop(peer, f);
      }
      return Status::ok();
    }
    case FrameType::kLagReport: {
      link::LagReport f;
      if (!(st = decode(body, f))) return st;
      if (Leader* l = leader_of(f.stream)) return l->on_lag_report(peer, f);
      tell_not_leader(peer, f.stream);  // (about once a second while it replicates)
      return Status::ok();
    }
    case FrameType::kStreamInfo: {
      link::StreamInfo f;
      if (!(st = decode(body, f))) return st;
      if (Follower* fo = follower_of(f.stream)) return fo->on_stream_info(f);
      return Status::ok();
    }
    case FrameType::kData: {
      link::Data f;
      if (!(st = decode(body, f))) return st;
      if (Follower* fo = follower_of(f.stream)) return fo->on_data(std::move(f));
      return Status::ok();
    }
    case FrameType::kDeleted: {
      link::Deleted f;
      if (!(st = decode(body, f))) return st;
      if (Follower* fo = follower_of(f.stream)) fo->on_deleted(std::move(f));
      return Status::ok();
    }
    case FrameType::kState: {
      link::State f;
      if (!(st = decode(body, f))) return st;
      if (Follower* fo = follower_of(f.stream)) fo->on_state(f);
      return Status::ok();
    }
    default:
      return Status(Code::kInvalid, std::string("unexpected frame ") + link::frame_type_name(type));
  }
}

// A follower that subscribes to, or reports on, a stream this region does
// not lead (it no longer does: removed by reload): it stops with that error.
void Replicator::tell_not_leader(const std::string& peer, const std::string& stream) {
  ctx_.links->send(peer, not_leader_frame(cfg_.region.name, stream));
  schedule_flush();
}

// An audit advisory ({"subject": "$JS.API.STREAM.PURGE.<stream>", ...}) for
// every JetStream API call on this server. Deletes and purges of a stream we
// lead are replicated promptly; the periodic reconcile covers advisories
// lost while the daemon was down.
void Replicator::on_api_advisory(natsMsg* msg) {
  std::string data(natsMsg_GetData(msg) != nullptr ? natsMsg_GetData(msg) : "",
                   static_cast<size_t>(natsMsg_GetDataLength(msg)));
  natsMsg_Destroy(msg);
  // Cheap filter before parsing: most advisories are other API calls.
  if (data.find("$JS.API.STREAM.MSG.DELETE.") == std::string::npos &&
      data.find("$JS.API.STREAM.PURGE.") == std::string::npos) {
    return;
  }
  Json j = Json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("subject") || !j["subject"].is_string()) return;
  std::string subj = j["subject"].get<std::string>();
  std::string stream;
  for (const char* prefix : {"$JS.API.STREAM.MSG.DELETE.", "$JS.API.STREAM.PURGE."}) {
    if (subj.rfind(prefix, 0) == 0) stream = subj.substr(std::char_traits<char>::length(prefix));
  }
  auto it = leaders_.find(stream);
  if (it == leaders_.end()) return;
  // A message delete names its sequence: sent on at once, whether or not the
  // stream's deletes are reconciled from its deleted list.
  if (subj.rfind("$JS.API.STREAM.MSG.DELETE.", 0) == 0 && j.contains("request") && j["request"].is_string() &&
      j.contains("response") && j["response"].is_string()) {
    Json req = Json::parse(j["request"].get<std::string>(), nullptr, false);
    Json resp = Json::parse(j["response"].get<std::string>(), nullptr, false);
    if (req.is_object() && req.contains("seq") && req["seq"].is_number_unsigned() && resp.is_object() &&
        resp.value("success", false)) {
      it->second->on_msg_deleted(req["seq"].get<uint64_t>());
    }
  }
  it->second->on_delete_or_purge();
}

void Replicator::schedule_flush() {
  // After stop() the link manager may be gone: a late timer of a stream
  // (a leader's hold) must not flush into it.
  if (flush_scheduled_ || !flush_timer_ || stopped_) return;
  flush_scheduled_ = true;
  // Zero-delay timer: runs after the current batch of events, so many acks
  // and messages coalesce into one frame and one write per link.
  flush_timer_->start(0, 0, [this] { flush_now(); });
}

void Replicator::flush_now() {
  flush_scheduled_ = false;
  for (auto& [n, f] : followers_) f->flush();
  for (auto& [n, l] : leaders_) l->flush();
  if (ctx_.data) ctx_.data->flush();
  dead_data_.reset();
  if (ctx_.links != nullptr) ctx_.links->flush_all();
}

void Replicator::tick() {
  server_watch_->tick();
  for (auto it = readers_to_drop_.begin(); it != readers_to_drop_.end();) {
    auto f = followers_.find(it->first);
    if (f == followers_.end() || !f->second->replica_ready()) {
      ++it;
      continue;
    }
    if (it->second) {
      spdlog::info("stream {}: the replica is ready; deleting the durable readers this region kept as its leader",
                   it->first);
    }
    durables_->removed(it->first);
    it = readers_to_drop_.erase(it);
  }
  durables_->tick();
  for (auto& [n, l] : leaders_) l->tick();
  for (auto& [n, f] : followers_) f->tick();
  warnings_->flush(loop::mono_ns());
  schedule_flush();
}

void Replicator::refresh(std::function<void()> done) {
  if (leaders_.empty() || stopped_) {
    done();
    return;
  }
  struct Wait {
    size_t remaining = 0;
    std::function<void()> done;  // empty once run
  };
  auto w = std::make_shared<Wait>();
  w->remaining = leaders_.size();
  w->done = std::move(done);
  auto finish = [w] {
    if (!w->done) return;
    auto d = std::move(w->done);
    w->done = nullptr;
    d();
  };
  refresh_waits_.push_back({loop::mono_ns() + static_cast<int64_t>(kRefreshWaitMs) * 1'000'000, finish});
  if (!refresh_timer_) refresh_timer_ = std::make_unique<loop::Timer>(ctx_.loop);
  if (!refresh_timer_->active()) refresh_timer_->start(kRefreshWaitMs, 0, [this] { refresh_deadlines(); });
  for (auto& [n, l] : leaders_) {
    l->refresh_state([w, finish] {
      if (--w->remaining == 0) finish();
    });
  }
}

void Replicator::refresh_deadlines() {
  const int64_t now = loop::mono_ns();
  while (!refresh_waits_.empty() && refresh_waits_.front().deadline_mono_ns <= now + 1'000'000) {
    auto finish = std::move(refresh_waits_.front().finish);
    refresh_waits_.pop_front();
    finish();  // (nothing if every stream answered in time)
  }
  if (!refresh_waits_.empty()) {
    const int64_t ms = (refresh_waits_.front().deadline_mono_ns - now) / 1'000'000 + 1;
    refresh_timer_->start(static_cast<uint64_t>(std::max<int64_t>(ms, 1)), 0, [this] { refresh_deadlines(); });
  }
}

Json Replicator::lag_json() const {
  Json out;
  out["region"] = cfg_.region.name;
  Json streams = Json::array();
  for (const auto& s : cfg_.streams) {
    auto li = leaders_.find(s.name);
    if (li != leaders_.end()) {
      streams.push_back(li->second->lag_json());
      continue;
    }
    auto fi = followers_.find(s.name);
    if (fi != followers_.end()) streams.push_back(fi->second->lag_json());
  }
  out["streams"] = streams;
  return out;
}

Status Replicator::request_rebuild(const std::string& stream) {
  if (leaders_.count(stream) != 0) {
    return Status(Code::kConflict, "region " + cfg_.region.name + " leads stream " + stream +
                                       ": only a replica can be rebuilt");
  }
  auto it = followers_.find(stream);
  if (it == followers_.end()) return Status(Code::kNotFound, "no replicated stream " + stream);
  return it->second->request_rebuild();
}

std::vector<std::string> Replicator::problems() const {
  std::vector<std::string> out;
  for (const auto& [n, l] : leaders_) {
    for (auto& p : l->problems()) out.push_back(std::move(p));
  }
  for (const auto& [n, f] : followers_) {
    auto p = f->problem();
    if (!p.empty()) out.push_back(p);
  }
  return out;
}

}  // namespace isthmus::replication
