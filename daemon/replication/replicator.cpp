#include "replication/replicator.h"

#include <spdlog/spdlog.h>

namespace isthmus::replication {

using Json = nlohmann::json;

Replicator::Replicator(uv_loop_t* loop, const config::Config& cfg, loop::Mailbox* mailbox) : cfg_(cfg) {
  ctx_.loop = loop;
  ctx_.cfg = &cfg_;
  ctx_.mailbox = mailbox;
  ctx_.request_flush = [this] { schedule_flush(); };
  std::vector<std::string> others;
  for (const auto& p : cfg_.peers) others.push_back(p.name);
  for (const auto& s : cfg_.streams) {
    if (s.leader == cfg_.region.name) {
      leaders_[s.name] = std::make_unique<Leader>(ctx_, s, others);
    } else {
      followers_[s.name] = std::make_unique<Follower>(ctx_, s);
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
  tick_timer_->start(1000, 1000, [this] { tick(); });
  // Re-check windows that were blocked on link backpressure.
  pump_timer_->start(20, 20, [this] {
    for (auto& [n, l] : leaders_) l->pump();
  });
}

void Replicator::stop() {
  if (tick_timer_) tick_timer_->stop();
  if (pump_timer_) pump_timer_->stop();
  if (flush_timer_) flush_timer_->stop();
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

void Replicator::on_nats_up(nats::ConnPtr conn, uint64_t generation) {
  ctx_.conn = std::move(conn);
  ctx_.nats_gen = generation;
  for (auto& [n, l] : leaders_) l->on_nats_up();
  for (auto& [n, f] : followers_) f->on_nats_up();
}

void Replicator::on_nats_down(const std::string& reason) {
  spdlog::warn("replication: local NATS down ({})", reason);
  for (auto& [n, l] : leaders_) l->on_nats_down();
  for (auto& [n, f] : followers_) f->on_nats_down();
  ctx_.conn.reset();
}

void Replicator::on_link_up(const std::string& peer) {
  for (auto& [n, l] : leaders_) l->on_link_up(peer);
  for (auto& [n, f] : followers_) {
    if (f->leader() == peer) f->on_link_up();
  }
}

void Replicator::on_link_down(const std::string& peer) {
  for (auto& [n, l] : leaders_) l->on_link_down(peer);
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
      info.error = "region " + cfg_.region.name + " does not lead stream " + f.stream;
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
      return Status::ok();
    }
    case FrameType::kLagReport: {
      link::LagReport f;
      if (!(st = decode(body, f))) return st;
      if (Leader* l = leader_of(f.stream)) return l->on_lag_report(peer, f);
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

void Replicator::schedule_flush() {
  if (flush_scheduled_ || !flush_timer_) return;
  flush_scheduled_ = true;
  // Zero-delay timer: runs after the current batch of events, so many acks
  // and messages coalesce into one frame and one write per link.
  flush_timer_->start(0, 0, [this] { flush_now(); });
}

void Replicator::flush_now() {
  flush_scheduled_ = false;
  for (auto& [n, f] : followers_) f->flush();
  for (auto& [n, l] : leaders_) l->flush();
  if (ctx_.links != nullptr) ctx_.links->flush_all();
}

void Replicator::tick() {
  for (auto& [n, l] : leaders_) l->tick();
  for (auto& [n, f] : followers_) f->tick();
  schedule_flush();
}

void Replicator::refresh(std::function<void()> done) {
  if (leaders_.empty()) {
    done();
    return;
  }
  auto remaining = std::make_shared<size_t>(leaders_.size());
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  for (auto& [n, l] : leaders_) {
    l->refresh_state([remaining, shared_done] {
      if (--*remaining == 0) (*shared_done)();
    });
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

std::vector<std::string> Replicator::problems() const {
  std::vector<std::string> out;
  for (const auto& [n, l] : leaders_) {
    auto p = l->problem();
    if (!p.empty()) out.push_back(p);
  }
  for (const auto& [n, f] : followers_) {
    auto p = f->problem();
    if (!p.empty()) out.push_back(p);
  }
  return out;
}

}  // namespace isthmus::replication
