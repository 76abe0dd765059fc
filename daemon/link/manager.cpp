#include "link/manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "link/s2_layer.h"
#include "tls/tls_layer.h"

namespace isthmus::link {

namespace {

// An IP address literal, without asking a resolver.
bool parse_literal(const config::HostPort& hp, sockaddr_storage& out) {
  std::memset(&out, 0, sizeof(out));
  if (uv_ip4_addr(hp.host.c_str(), hp.port, reinterpret_cast<sockaddr_in*>(&out)) == 0) return true;
  return uv_ip6_addr(hp.host.c_str(), hp.port, reinterpret_cast<sockaddr_in6*>(&out)) == 0;
}

// The listen address, once at start-up (a host name is resolved in place:
// nothing runs yet that a slow resolver could stall).
Status resolve_listen(const config::HostPort& hp, sockaddr_storage& out) {
  if (parse_literal(hp, out)) return Status::ok();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(hp.host.c_str(), std::to_string(hp.port).c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) return Status(Code::kIo, "cannot resolve " + hp.host);
  std::memcpy(&out, res->ai_addr, std::min<size_t>(res->ai_addrlen, sizeof(out)));
  freeaddrinfo(res);
  return Status::ok();
}

uint64_t jitter(uint64_t ms) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<uint64_t> d(ms / 2, ms);
  return d(rng);
}

}  // namespace

Manager::Manager(uv_loop_t* loop, const config::Config& cfg, LinkListener* listener)
    : loop_(loop), cfg_(cfg), listener_(listener) {
  for (const auto& pc : cfg_.peers) add_peer(pc);
}

Manager::Peer& Manager::add_peer(const config::Peer& pc) {
  Peer p;
  p.cfg = pc;
  p.dialer = cfg_.region.name < pc.name;
  p.st.name = pc.name;
  p.st.address = pc.address.to_string();
  p.st.dialer = p.dialer;
  p.st.state = p.dialer ? "connecting" : "waiting";
  p.st.since_ns = loop::wall_ns();
  p.backoff_ms = static_cast<uint64_t>(cfg_.link.backoff_min.count());
  return peers_.insert_or_assign(pc.name, std::move(p)).first->second;
}

void Manager::remove_peer(const std::string& name) {
  auto it = peers_.find(name);
  if (it == peers_.end()) return;
  Peer& p = it->second;
  spdlog::info("links: peer {} removed by reload{}", name, p.up ? ": its link closes" : "");
  const bool was_up = p.up;
  if (p.dial_timer) p.dial_timer->stop();
  abandon_resolve(p);
  p.addrs.clear();
  if (p.conn) {
    // (close() detaches it from its socket's callbacks: nothing of it
    // reaches us again, even if a peer of that name is added back.)
    p.conn->close(CloseReason::kPeerRemoved, "removed from " + cfg_.region.name + "'s configuration", true);
    bury(std::move(p.conn));
  }
  peers_.erase(it);
  if (was_up) listener_->on_link_down(name);
}

Manager::~Manager() { shutdown(); }

void Manager::start_tick() {
  auto hb = static_cast<uint64_t>(cfg_.link.heartbeat_interval.count());
  uint64_t period = std::max<uint64_t>(50, std::min<uint64_t>(hb, 250));
  if (period == tick_period_ms_) return;
  tick_period_ms_ = period;
  tick_->start(period, period, [this] { tick(); });
}

void Manager::reconfigure(const config::Config& next) {
  // Everything of [link] but what needs a restart (listen, max_frame_bytes,
  // compression, tls).
  config::Link link = next.link;
  link.listen = cfg_.link.listen;
  link.max_frame_bytes = cfg_.link.max_frame_bytes;
  link.compression = cfg_.link.compression;
  link.tls = cfg_.link.tls;
  const bool backoff_changed =
      link.backoff_min != cfg_.link.backoff_min || link.backoff_max != cfg_.link.backoff_max;
  cfg_.link = link;
  if (backoff_changed && !shutting_down_) {
    // Every dialer starts over from the new backoff_min: a link that is up
    // at its next loss, one waiting out a backoff of the old settings (up
    // to the old backoff_max) from now.
    for (auto& [name, p] : peers_) {
      if (!p.dialer) continue;
      p.backoff_ms = static_cast<uint64_t>(cfg_.link.backoff_min.count());
      if (!p.up && !p.conn && p.dial_timer) schedule_dial(p);
    }
  }
  // Peers removed: the link closes (peer_removed, said to the peer in the
  // GOODBYE) and the peer is forgotten. Peers added: dialed, or waited
  // for, like those configured at the start.
  std::vector<std::string> removed;
  for (const auto& [name, p] : peers_) {
    if (next.find_peer(name) == nullptr) removed.push_back(name);
  }
  for (const auto& name : removed) remove_peer(name);
  for (const auto& pc : next.peers) {
    if (find(pc.name) != nullptr) continue;
    Peer& p = add_peer(pc);
    spdlog::info("links: peer {} at {} added by reload ({})", pc.name, pc.address.to_string(),
                 p.dialer ? "this region dials it" : "it dials this region");
    if (tick_ && !shutting_down_ && p.dialer) dial(p);
  }
  cfg_.peers = next.peers;
  for (const auto& pc : next.peers) {
    Peer* p = find(pc.name);
    if (p == nullptr || p->cfg.address.to_string() == pc.address.to_string()) continue;
    spdlog::info("links: peer {} is now at {} (was {}){}", pc.name, pc.address.to_string(),
                 p->cfg.address.to_string(), p->up ? ": used from the next dial" : "");
    p->cfg.address = pc.address;
    p->st.address = pc.address.to_string();
    // A dialer waiting out a backoff, or still trying the old address (a
    // black hole holds a connection attempt until handshake_timeout),
    // dials the new one now.
    p->backoff_ms = static_cast<uint64_t>(cfg_.link.backoff_min.count());
    if (p->dialer && !p->up && !shutting_down_) {
      if (p->conn) {
        p->conn->close(CloseReason::kReplaced, "address changed by reload", false);
        link_closed(*p, CloseReason::kReplaced, "address changed by reload");
      }
      if (p->dial_timer) p->dial_timer->stop();
      abandon_resolve(*p);  // the old name's answer is of no use now
      dial(*p);
    }
  }
  if (tick_ && !shutting_down_) start_tick();
}

Status Manager::start() {
  const config::Tls& t = cfg_.link.tls;
  if (!t.ca.empty() && !t.cert.empty() && !t.key.empty()) {
    tls::TlsContext::Options o;
    o.ca_file = t.ca;
    o.cert_file = t.cert;
    o.key_file = t.key;
    auto ctx = tls::TlsContext::create(o);
    if (!ctx) return ctx.status();
    tls_ = std::move(ctx.value());
  } else if (!cfg_.peers.empty()) {
    return Status(Code::kInvalid, "links need [link.tls] ca, cert and key");
  }
  for (const auto& pc : cfg_.peers) {
    if (!pc.pin_sha256.empty() && !tls::parse_pin(pc.pin_sha256)) {
      return Status(Code::kInvalid, "peers." + pc.name + ".pin_sha256: not a SHA-256");
    }
  }
  sockaddr_storage addr{};
  Status st = resolve_listen(cfg_.link.listen, addr);
  if (!st) return st;
  server_ = new uv_tcp_t;
  uv_tcp_init(loop_, server_);
  server_->data = this;
  int rc = uv_tcp_bind(server_, reinterpret_cast<sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(server_), 64, &Manager::on_accept);
  if (rc != 0) {
    return Status(Code::kIo, "link listen on " + cfg_.link.listen.to_string() + ": " + uv_strerror(rc));
  }
  tick_ = std::make_unique<loop::Timer>(loop_);
  reap_ = std::make_unique<loop::Timer>(loop_);
  start_tick();
  for (auto& [name, p] : peers_) {
    if (p.dialer) dial(p);
  }
  spdlog::info("links: listening on {}", cfg_.link.listen.to_string());
  return Status::ok();
}

uint16_t Manager::listen_port() const {
  if (server_ == nullptr) return 0;
  sockaddr_storage ss{};
  int len = sizeof(ss);
  uv_tcp_getsockname(server_, reinterpret_cast<sockaddr*>(&ss), &len);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

void Manager::shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  if (tick_) tick_->stop();
  for (auto& [name, p] : peers_) {
    if (p.dial_timer) p.dial_timer->stop();
    abandon_resolve(p);
    p.addrs.clear();
    if (p.conn) {
      bool was_up = p.up;
      p.conn->close(CloseReason::kShutdown, "", true);
      bury(std::move(p.conn));
      p.up = false;
      p.st.last_close_reason = close_reason_name(CloseReason::kShutdown);
      p.st.last_close_detail.clear();
      p.st.last_close_ns = loop::wall_ns();
      if (was_up) {
        p.st.last_drop_reason = p.st.last_close_reason;
        p.st.last_drop_detail.clear();
        p.st.last_drop_ns = p.st.last_close_ns;
      }
      set_state(p, "down");
      if (was_up) listener_->on_link_down(name);
    }
  }
  for (auto& c : pending_) c->close(CloseReason::kShutdown, "", true);
  pending_.clear();
  // The listener too: the loop can end while this object lives on.
  if (server_ != nullptr) {
    server_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(server_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    server_ = nullptr;
  }
}

void Manager::bury(std::unique_ptr<Connection> c) {
  if (!c) return;
  graveyard_.push_back(std::move(c));
  if (reap_ && !reap_->active()) reap_->start(0, 0, [this] { graveyard_.clear(); });
}

Manager::Peer* Manager::find(const std::string& name) {
  auto it = peers_.find(name);
  return it == peers_.end() ? nullptr : &it->second;
}

const Manager::Peer* Manager::find(const std::string& name) const {
  auto it = peers_.find(name);
  return it == peers_.end() ? nullptr : &it->second;
}

void Manager::set_state(Peer& p, const char* state) {
  if (p.st.state != state) {
    p.st.state = state;
    p.st.since_ns = loop::wall_ns();
  }
}

void Manager::on_accept(uv_stream_t* server, int status) {
  auto* self = static_cast<Manager*>(server->data);
  if (self == nullptr || status != 0) return;
  self->accept_one();
}

void Manager::accept_one() {
  auto c = std::make_unique<Connection>(loop_, this, cfg_.link.max_frame_bytes);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(server_), reinterpret_cast<uv_stream_t*>(c->handle())) != 0) {
    return;
  }
  if (shutting_down_) {
    c->close(CloseReason::kShutdown, "", false);
    return;
  }
  Status st = c->start();
  if (!st) {
    c->close(CloseReason::kIoError, st.message(), false);
    return;
  }
  c->remote_address = c->peer_address();
  spdlog::debug("links: accepted connection from {}", c->remote_address);
  if (!tls_) {
    c->close(CloseReason::kTlsHandshakeFailed, "no TLS configuration", false);
    return;
  }
  auto layer = make_tls(false, "");
  c->tls = static_cast<tls::TlsLayer*>(layer.get());
  c->push_bottom(std::move(layer));
  // The listener answers the dialer's HELLO (handle_hello).
  pending_.push_back(std::move(c));
}

// A peer's address that is a host name is resolved on libuv's thread pool
// (a slow resolver must not stall the loop: links, replication and the
// HTTP API all run on it); each address it gives is then tried in turn
// ("localhost" may give ::1 first while the peer listens on 127.0.0.1).
struct Manager::Resolving {
  uv_getaddrinfo_t req{};
  Manager* self = nullptr;  // null: abandoned (shutdown, address changed)
  std::string peer;
};

void Manager::dial(Peer& p) {
  if (shutting_down_ || p.conn || p.resolving != nullptr) return;
  p.addrs.clear();
  sockaddr_storage addr{};
  if (parse_literal(p.cfg.address, addr)) {
    p.addrs.push_back(addr);
    connect_next(p);
    return;
  }
  auto* r = new Resolving;
  r->req.data = r;
  r->self = this;
  r->peer = p.cfg.name;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(loop_, &r->req, &Manager::on_resolved, p.cfg.address.host.c_str(),
                          std::to_string(p.cfg.address.port).c_str(), &hints);
  if (rc != 0) {
    delete r;
    dial_failed(p, "cannot resolve " + p.cfg.address.host + ": " + uv_strerror(rc));
    return;
  }
  p.resolving = r;
  set_state(p, "connecting");
}

void Manager::on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* r = static_cast<Resolving*>(req->data);
  Manager* self = r->self;
  std::string name = std::move(r->peer);
  delete r;
  Peer* p = self != nullptr ? self->find(name) : nullptr;
  if (p == nullptr) {
    uv_freeaddrinfo(res);
    return;
  }
  p->resolving = nullptr;
  if (status != 0 || res == nullptr) {
    uv_freeaddrinfo(res);
    self->dial_failed(*p, "cannot resolve " + p->cfg.address.host + ": " + uv_strerror(status));
    return;
  }
  p->addrs.clear();
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
    sockaddr_storage ss{};
    std::memcpy(&ss, a->ai_addr, a->ai_addrlen);
    p->addrs.push_back(ss);
  }
  uv_freeaddrinfo(res);
  if (self->shutting_down_) return;
  self->connect_next(*p);
}

void Manager::abandon_resolve(Peer& p) {
  if (p.resolving == nullptr) return;
  p.resolving->self = nullptr;  // on_resolved frees it
  uv_cancel(reinterpret_cast<uv_req_t*>(&p.resolving->req));
  p.resolving = nullptr;
}

void Manager::dial_failed(Peer& p, const std::string& detail) {
  p.st.last_close_reason = close_reason_name(CloseReason::kConnectFailed);
  p.st.last_close_detail = detail;
  p.st.last_close_ns = loop::wall_ns();
  p.st.closes[close_reason_name(CloseReason::kConnectFailed)]++;
  spdlog::debug("links: connection to {} failed: {}", p.cfg.name, detail);
  schedule_dial(p);
}

void Manager::connect_next(Peer& p) {
  std::string last_error = "no address";
  while (!p.addrs.empty()) {
    sockaddr_storage addr = p.addrs.front();
    p.addrs.erase(p.addrs.begin());
    p.conn = std::make_unique<Connection>(loop_, this, cfg_.link.max_frame_bytes);
    p.conn->peer_name = p.cfg.name;
    p.conn->remote_address = p.cfg.address.to_string();
    if (tls_) {
      auto layer = make_tls(true, p.cfg.name);
      p.conn->tls = static_cast<tls::TlsLayer*>(layer.get());
      p.conn->push_bottom(std::move(layer));
    }
    Status st = p.conn->connect(reinterpret_cast<sockaddr*>(&addr));
    if (st) {
      set_state(p, "connecting");
      return;
    }
    last_error = st.message();
    p.conn->close(CloseReason::kConnectFailed, st.message(), false);
    bury(std::move(p.conn));
  }
  dial_failed(p, last_error);
}

void Manager::schedule_dial(Peer& p) {
  if (shutting_down_ || !p.dialer) return;
  if (!p.dial_timer) p.dial_timer = std::make_unique<loop::Timer>(loop_);
  uint64_t wait = jitter(p.backoff_ms);
  p.backoff_ms = std::min<uint64_t>(p.backoff_ms * 2, static_cast<uint64_t>(cfg_.link.backoff_max.count()));
  std::string name = p.cfg.name;
  p.dial_timer->start(wait, 0, [this, name] {
    if (Peer* q = find(name)) dial(*q);
  });
}

std::unique_ptr<Layer> Manager::make_tls(bool client, const std::string& peer) {
  tls::TlsLayer::Peer who;
  for (const auto& [name, p] : peers_) {
    if (client && name != peer) continue;
    who.names.push_back(name);
    if (auto pin = tls::parse_pin(p.cfg.pin_sha256)) who.pins[name] = *pin;
  }
  return std::make_unique<tls::TlsLayer>(
      tls_, client ? tls::TlsLayer::Role::kClient : tls::TlsLayer::Role::kServer, std::move(who));
}

void Manager::send_hello(Connection& c, bool compress) {
  Hello h;
  h.region = cfg_.region.name;
  h.flags = compress ? kHelloFlagS2 : 0;
  std::vector<uint8_t> f;
  encode(h, f);
  c.queue_priority(std::move(f));
  c.flush();
}

void Manager::on_connected(Connection& c) {
  Status st = c.start();
  if (!st) {
    Peer* p = find(c.peer_name);
    c.close(CloseReason::kIoError, st.message(), false);
    if (p) link_closed(*p, CloseReason::kIoError, st.message());
    return;
  }
  const Peer* p = find(c.peer_name);
  // The dialer speaks first; TLS holds the HELLO until the handshake is done.
  send_hello(c, p != nullptr && cfg_.compress_link(p->cfg));
}

void Manager::refuse(Connection& c, CloseReason reason, const std::string& detail) {
  c.close(reason, detail, true);
  if (!c.dialed) {
    on_closed(c, reason, detail);  // logs, counts and drops the pending connection
    return;
  }
  Peer* p = find(c.peer_name);
  if (p != nullptr && p->conn.get() == &c) link_closed(*p, reason, detail);
}

// Both HELLOs carry the sender's compression choice; they must agree.
Status Manager::check_compression(Connection& c, const Hello& h, bool compress) {
  bool theirs = (h.flags & kHelloFlagS2) != 0;
  if (theirs == compress) return Status::ok();
  std::string detail = std::string("we ") + (compress ? "compress (s2)" : "do not compress") + ", " + h.region +
                       (theirs ? " compresses (s2)" : " does not");
  refuse(c, CloseReason::kCompressionMismatch, detail);
  return Status(Code::kConflict, "compression mismatch");
}

Status Manager::handle_hello(Connection& c, std::span<const uint8_t> body) {
  Hello h;
  Status st = decode(body, h);
  if (!st) return st;
  if (h.version != kProtocolVersion) {
    refuse(c, CloseReason::kVersionMismatch, "peer speaks version " + std::to_string(h.version));
    return Status(Code::kUnsupported, "version mismatch");
  }
  Peer* p = find(h.region);
  if (p == nullptr) {
    refuse(c, CloseReason::kUnknownPeer, h.region);
    return Status(Code::kNotFound, "unknown peer");
  }
  // The certificate named the peer; the HELLO must name the same region.
  const std::string cert_name = c.tls != nullptr ? c.tls->peer_name() : h.region;
  if (c.dialed) {
    if (c.peer_name != h.region) {
      refuse(c, CloseReason::kNameMismatch, "expected " + c.peer_name + ", hello says " + h.region);
      return Status(Code::kConflict, "wrong peer");
    }
  } else if (cert_name != h.region) {
    refuse(c, CloseReason::kNameMismatch, "certificate names " + cert_name + ", hello says " + h.region);
    return Status(Code::kConflict, "name mismatch");
  }
  const bool compress = cfg_.compress_link(p->cfg);
  if (!c.dialed) {
    if (p->dialer) {
      refuse(c, CloseReason::kWrongDirection, "");
      return Status(Code::kConflict, "wrong direction");
    }
    // Answer with our HELLO (uncompressed) so the dialer sees our choice
    // even when they differ.
    send_hello(c, compress);
  }
  st = check_compression(c, h, compress);
  if (!st) return st;
  if (compress) {
    // Everything after the HELLO exchange, both ways, is an S2 stream.
    c.push_top(std::make_unique<S2Layer>(kS2LinkBlockSize, s2_chunk_limit(cfg_.link.max_frame_bytes)));
    c.compressed = true;
  }
  if (!c.dialed) {
    // Accepted connection: move it from pending_ to the peer slot.
    auto it = std::find_if(pending_.begin(), pending_.end(), [&](auto& u) { return u.get() == &c; });
    if (it == pending_.end()) return Status(Code::kInternal, "connection not pending");
    std::unique_ptr<Connection> owned = std::move(*it);
    pending_.erase(it);
    if (p->conn) {
      // The peer reconnected while we still hold an older link (e.g. a
      // half-open one): the newer one wins.
      bool was_up = p->up;
      p->conn->close(CloseReason::kReplaced, "", true);
      bury(std::move(p->conn));
      p->up = false;
      if (was_up) listener_->on_link_down(p->cfg.name);
    }
    owned->peer_name = h.region;
    p->conn = std::move(owned);
  }
  c.hello_received = true;
  p->up = true;
  if (p->established++ > 0) p->st.reconnects++;
  // A heartbeat on this link echoes only what was received on it: the
  // peer's last heartbeat on an earlier link may be a process that has
  // since restarted with another clock (an echo of it read as a 15 s
  // offset sample, and every message's lag with it; operator trial).
  p->peer_hb_send_ns = 0;
  p->peer_hb_recv_ns = 0;
  p->link_up_wall_ns = loop::wall_ns();
  p->samples_before_link = p->samples.size();
  p->inbound_delay_ns = -1;  // of this link's heartbeats, from its first one
  p->link_sampled = false;
  p->quick_heartbeats = 0;
  p->peer_hb_sent_local_ns = 0;
  p->backoff_ms = static_cast<uint64_t>(cfg_.link.backoff_min.count());
  set_state(*p, "up");
  spdlog::info("links: link to {} up ({}, tls 1.3, {})", p->cfg.name, c.remote_address,
               compress ? "s2" : "uncompressed");
  // The clock offset is unused until this link's first sample (a
  // heartbeat of ours echoed back): a heartbeat now, and (on_frame) one in
  // answer to each of the peer's while this link has no sample, so both
  // ends have one within a round trip or two of the link coming up, not a
  // heartbeat interval or two later (the current time lag is unknown
  // meanwhile).
  listener_->on_link_up(p->cfg.name);
  // (After on_link_up: a write that fails at once closes the link, which
  // must not then be reported up. Ahead of whatever on_link_up queued.)
  if (p->up && p->conn.get() == &c) send_heartbeat(*p, loop::wall_ns());
  return Status::ok();
}

Status Manager::on_frame(Connection& c, FrameType type, std::span<const uint8_t> body) {
  if (!c.hello_received) {
    if (type == FrameType::kGoAway) {
      // Refused by the peer before its HELLO (e.g. it does not know us).
      GoAway g;
      (void)decode(body, g);
      Peer* p = c.dialed ? find(c.peer_name) : nullptr;
      c.close(CloseReason::kPeerGoAway, g.reason, false);
      if (p != nullptr && p->conn.get() == &c) {
        link_closed(*p, CloseReason::kPeerGoAway, g.reason);
      } else {
        on_closed(c, CloseReason::kPeerGoAway, g.reason);
      }
      return Status::ok();
    }
    if (type != FrameType::kHello) return Status(Code::kInvalid, "expected hello first");
    return handle_hello(c, body);
  }
  switch (type) {
    case FrameType::kHello:
      return Status(Code::kInvalid, "second hello");
    case FrameType::kHeartbeat: {
      Heartbeat hb;
      Status st = decode(body, hb);
      if (!st) return st;
      Peer* p = find(c.peer_name);
      if (p != nullptr) {
        int64_t now = loop::wall_ns();
        // The peer's interval, as its regular heartbeats are spaced (not
        // its quick answers at a link's start, a round trip apart). Kept
        // across links: a peer's interval changes only with its
        // configuration, and then within four heartbeats here.
        const int64_t ours = static_cast<int64_t>(cfg_.link.heartbeat_interval.count()) * 1000000;
        if (p->peer_hb_send_ns != 0 && hb.send_ns - p->peer_hb_send_ns >= ours / 2) {
          p->peer_hb_spacing_ns[p->peer_hb_spacing_next++ % p->peer_hb_spacing_ns.size()] =
              hb.send_ns - p->peer_hb_send_ns;
        }
        p->peer_hb_send_ns = hb.send_ns;
        p->peer_hb_recv_ns = now;
        // Only an echo of a heartbeat we sent on this link (its time on our
        // clock, since the link came up) makes a sample.
        if (hb.echo_send_ns != 0 && hb.echo_send_ns >= p->link_up_wall_ns && hb.echo_send_ns <= now) {
          // NTP-style, t1 = our send, t2 = peer's receive, t3 = peer's send,
          // t4 = our receive: rtt = (t4 - t1) - (t3 - t2),
          // offset (peer - us) = ((t2 - t1) + (t3 - t4)) / 2, error <= rtt / 2.
          int64_t t1 = hb.echo_send_ns, t2 = hb.echo_recv_ns, t3 = hb.send_ns, t4 = now;
          int64_t rtt = (t4 - t1) - (t3 - t2);
          if (rtt >= 0) {
            p->st.rtt_ns = rtt;
            const int64_t offset = ((t2 - t1) + (t3 - t4)) / 2;
            if (p->samples_before_link > 0) {
              // The first sample of a new link: the estimate outlives link
              // drops (clocks do not jump when a link does), but not a peer
              // whose clock did (a restart after an NTP step): samples that
              // disagree with it beyond both error bounds go.
              const int64_t old_offset = p->st.clock_offset_ns, old_err = p->st.clock_offset_error_ns;
              if (old_err >= 0 && std::llabs(offset - old_offset) > old_err + rtt / 2 + 1'000'000) {
                spdlog::info("links: the clock offset to {} moved from {:.3f} ms to {:.3f} ms since the last link: "
                             "earlier estimates dropped",
                             p->cfg.name, old_offset / 1e6, offset / 1e6);
                p->samples.clear();
              }
              p->samples_before_link = 0;
            }
            p->link_sampled = true;
            p->samples.push_back({rtt, offset});
            constexpr size_t kClockSamples = 8;
            if (p->samples.size() > kClockSamples) p->samples.erase(p->samples.begin());
            const auto* best = &p->samples.front();
            for (const auto& smp : p->samples) {
              if (smp.rtt_ns < best->rtt_ns) best = &smp;
            }
            // The offset lies within rtt/2 of the estimate, which splits
            // the round trip evenly; a path slower one way than the other
            // (a congested direction, a queue) moves the estimate by half
            // the difference. When 0 lies within that bound too the clocks
            // may well agree (hosts kept by NTP): 0 is used, with a bound
            // that still holds every offset the estimate allows. A 200 ms
            // delay in one direction otherwise read as a 100 ms offset, and
            // every time lag 100 ms short (operator trial).
            const int64_t half_rtt = best->rtt_ns / 2;
            if (std::llabs(best->offset_ns) <= half_rtt) {
              p->st.clock_offset_ns = 0;
              p->st.clock_offset_error_ns = std::llabs(best->offset_ns) + half_rtt;
            } else {
              p->st.clock_offset_ns = best->offset_ns;
              p->st.clock_offset_error_ns = half_rtt;
            }
          }
        }
        if (p->st.clock_offset_error_ns >= 0 && p->samples_before_link == 0) {
          // Its send time on our clock is t3 - offset (offset = peer - us).
          p->inbound_delay_ns = std::max<int64_t>(0, now - (hb.send_ns - p->st.clock_offset_ns));
          p->peer_hb_sent_local_ns = hb.send_ns - p->st.clock_offset_ns;
        } else {
          p->inbound_delay_ns = -1;  // unknown until this link's first sample
        }
        // Answered at once while this link has no sample of ours: the
        // answer echoes this heartbeat, so the peer's next one (its own
        // answer, or its regular one) gives us ours. Bounded, in case a
        // peer's answers never make one (a clock read going backwards).
        if (!p->link_sampled && p->quick_heartbeats < 4 && p->conn.get() == &c) {
          ++p->quick_heartbeats;
          send_heartbeat(*p, now);
        }
      }
      return Status::ok();
    }
    case FrameType::kGoAway: {
      GoAway g;
      (void)decode(body, g);
      Peer* p = find(c.peer_name);
      c.close(CloseReason::kPeerGoAway, g.reason, false);
      if (p != nullptr) link_closed(*p, CloseReason::kPeerGoAway, g.reason);
      return Status::ok();
    }
    default:
      return listener_->on_link_frame(c.peer_name, type, body);
  }
}

void Manager::on_closed(Connection& c, CloseReason reason, const std::string& detail) {
  auto it = std::find_if(pending_.begin(), pending_.end(), [&](auto& u) { return u.get() == &c; });
  if (it != pending_.end()) {
    // Refused before it identified itself: log it once, and count it. A
    // certificate naming no peer, refused again within a minute (a region
    // removed from the configuration whose daemon still dials, every few
    // seconds), is logged at debug, and counted in the next warning.
    bool quiet = false;
    std::string more;
    if (reason == CloseReason::kNameMismatch) {
      const int64_t now = loop::mono_ns();
      if (repeated_refusals_.size() > 64) repeated_refusals_.clear();
      auto& r = repeated_refusals_[detail];
      if (r.warned_mono_ns != 0 && now - r.warned_mono_ns < kRepeatedRefusalNs) {
        quiet = true;
        ++r.since;
      } else {
        if (r.since > 0) more = " (" + std::to_string(r.since) + " more like it since the last warning, at debug)";
        r.warned_mono_ns = now;
        r.since = 0;
      }
    }
    if (quiet) {
      spdlog::debug("links: refused connection from {}: {}: {}", c.remote_address, close_reason_name(reason), detail);
    } else {
      spdlog::warn("links: refused connection from {}: {}{}{}{}", c.remote_address, close_reason_name(reason),
                   detail.empty() ? "" : ": ", detail, more);
    }
    note_refused(c, reason, detail);
    bury(std::move(*it));
    pending_.erase(it);
    return;
  }
  Peer* p = find(c.peer_name);
  if (p != nullptr && p->conn.get() == &c) link_closed(*p, reason, detail);
}

void Manager::note_refused(const Connection& c, CloseReason reason, const std::string& detail) {
  refused_[close_reason_name(reason)]++;
  last_refused_.reason = close_reason_name(reason);
  last_refused_.detail = detail;
  last_refused_.from = c.remote_address;
  last_refused_.wall_ns = loop::wall_ns();
}

void Manager::link_closed(Peer& p, CloseReason reason, const std::string& detail) {
  bool was_up = p.up;
  p.up = false;
  p.st.last_close_reason = close_reason_name(reason);
  p.st.last_close_detail = detail;
  p.st.last_close_ns = loop::wall_ns();
  if (was_up) {
    p.st.last_drop_reason = p.st.last_close_reason;
    p.st.last_drop_detail = detail;
    p.st.last_drop_ns = p.st.last_close_ns;
  }
  p.st.closes[close_reason_name(reason)]++;
  if (p.conn) {
    const auto& s = p.conn->stats();
    p.st.bytes_in += s.bytes_in;
    p.st.bytes_out += s.bytes_out;
    p.st.frames_in += s.frames_in;
    p.st.frames_out += s.frames_out;
    p.st.frame_bytes_in += s.frame_bytes_in;
    p.st.frame_bytes_out += s.frame_bytes_out;
    bury(std::move(p.conn));
  }
  if (was_up) {
    spdlog::warn("links: link to {} closed: {}{}{}", p.cfg.name, close_reason_name(reason),
                 detail.empty() ? "" : ": ", detail);
  } else if (reason == CloseReason::kConnectFailed || reason == CloseReason::kPeerClosed ||
             reason == CloseReason::kIoError || reason == CloseReason::kShutdown ||
             reason == CloseReason::kReplaced) {
    spdlog::debug("links: connection to {} closed: {} {}", p.cfg.name, close_reason_name(reason), detail);
  } else {
    // Refused during the handshake (TLS, names, compression, ...).
    spdlog::warn("links: connection to {} refused: {}{}{}", p.cfg.name, close_reason_name(reason),
                 detail.empty() ? "" : ": ", detail);
  }
  set_state(p, p.dialer ? "connecting" : "waiting");
  if (was_up) listener_->on_link_down(p.cfg.name);
  // A connection that never came up at one of a host name's addresses
  // (refused, timed out, closed or refused in the handshake: another
  // service may hold that address): the next one now. A link that was up
  // waits out the backoff, and the next dial resolves the name again.
  if (!was_up && !shutting_down_ && !p.addrs.empty() && reason != CloseReason::kShutdown &&
      reason != CloseReason::kReplaced) {
    connect_next(p);
    return;
  }
  p.addrs.clear();
  schedule_dial(p);
}

void Manager::tick() {
  int64_t now_mono = loop::mono_ns();
  int64_t now = loop::wall_ns();
  // This daemon itself did not run for a while (stopped, a paused VM, a
  // starved host): what its peers sent waits unread in the sockets, and
  // "nothing received" would blame them. One tick's grace: this loop
  // iteration reads what came (or the peer's close).
  // (Beyond the tick's own period: a late timer is not a stall.)
  const int64_t gap = last_tick_mono_ns_ > 0 ? now_mono - last_tick_mono_ns_ : 0;
  last_tick_mono_ns_ = now_mono;
  const bool self_stalled = gap - static_cast<int64_t>(tick_period_ms_) * 1000000 >
                            static_cast<int64_t>(cfg_.link.stale_after.count()) * 1000000 / 2;
  if (self_stalled) {
    spdlog::warn("links: this daemon did not run for {} ms (stopped or starved); link checks wait a tick",
                 gap / 1000000);
  }
  auto hb_ns = static_cast<int64_t>(cfg_.link.heartbeat_interval.count()) * 1000000;
  auto stale_ns = static_cast<int64_t>(cfg_.link.stale_after.count()) * 1000000;
  auto hs_ns = static_cast<int64_t>(cfg_.link.handshake_timeout.count()) * 1000000;
  for (auto& [name, p] : peers_) {
    if (!p.conn) continue;
    if (!p.up) {
      if (!self_stalled && now_mono - p.conn->created_mono_ns > hs_ns) {
        p.conn->close(CloseReason::kHandshakeTimeout, "", true);
        link_closed(p, CloseReason::kHandshakeTimeout, "");
      }
      continue;
    }
    if (!self_stalled && now_mono - p.conn->last_recv_mono_ns() > stale_ns) {
      p.conn->close(CloseReason::kStale, "", true);
      link_closed(p, CloseReason::kStale, "nothing received for " + std::to_string(stale_ns / 1000000) + " ms");
      continue;
    }
    // The other way round: bytes wait for the socket and none could be
    // written (the peer stopped reading). Without this a peer that sends
    // heartbeats but never reads would hold the link, and its queues, forever.
    if (int64_t since = p.conn->write_blocked_since_ns(); !self_stalled && since != 0 && now_mono - since > stale_ns) {
      std::string detail = "nothing could be written for " + std::to_string((now_mono - since) / 1000000) +
                           " ms (" + std::to_string(p.conn->pending_bytes()) + " bytes waiting)";
      p.conn->close(CloseReason::kSendStalled, detail, false);
      link_closed(p, CloseReason::kSendStalled, detail);
      continue;
    }
    if (now - p.last_hb_send_ns >= hb_ns) send_heartbeat(p, now);
  }
  // Unidentified accepted connections get the same handshake deadline.
  for (size_t i = 0; i < pending_.size();) {
    if (!self_stalled && now_mono - pending_[i]->created_mono_ns > hs_ns) {
      spdlog::warn("links: refused connection from {}: {}", pending_[i]->remote_address,
                   close_reason_name(CloseReason::kHandshakeTimeout));
      note_refused(*pending_[i], CloseReason::kHandshakeTimeout, "");
      pending_[i]->close(CloseReason::kHandshakeTimeout, "", false);
      bury(std::move(pending_[i]));
      pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

void Manager::send_heartbeat(Peer& p, int64_t now_wall_ns) {
  Heartbeat hb;
  hb.send_ns = now_wall_ns;
  hb.echo_send_ns = p.peer_hb_send_ns;
  hb.echo_recv_ns = p.peer_hb_recv_ns;
  std::vector<uint8_t> f;
  encode(hb, f);
  p.conn->queue_priority(std::move(f));
  p.conn->flush();
  p.last_hb_send_ns = now_wall_ns;
}

bool Manager::is_up(const std::string& peer) const {
  const Peer* p = find(peer);
  return p != nullptr && p->up;
}

bool Manager::send(const std::string& peer, std::vector<uint8_t>&& frame) {
  Peer* p = find(peer);
  if (p == nullptr || !p->up || !p->conn) return false;
  p->conn->queue(std::move(frame));
  return true;
}

bool Manager::send_priority(const std::string& peer, std::vector<uint8_t>&& frame) {
  Peer* p = find(peer);
  if (p == nullptr || !p->up || !p->conn) return false;
  p->conn->queue_priority(std::move(frame));
  return true;
}

void Manager::flush_all() {
  for (auto& [name, p] : peers_) {
    if (p.up && p.conn) p.conn->flush();
  }
}

void Manager::flush(const std::string& peer) {
  Peer* p = find(peer);
  if (p != nullptr && p->up && p->conn) p->conn->flush();
}

size_t Manager::pending_bytes(const std::string& peer) const {
  const Peer* p = find(peer);
  if (p == nullptr || !p->conn) return 0;
  return p->conn->pending_bytes();
}

bool Manager::clock_offset(const std::string& peer, int64_t& offset_ns, int64_t& error_ns) const {
  const Peer* p = find(peer);
  // Not until the current link's first sample has confirmed the standing
  // estimate (or replaced it): the peer may have restarted with its clock
  // stepped, and a lag measured meanwhile would carry the whole step.
  if (p == nullptr || p->st.clock_offset_error_ns < 0 || p->samples_before_link > 0) return false;
  offset_ns = p->st.clock_offset_ns;
  error_ns = p->st.clock_offset_error_ns;
  return true;
}

bool Manager::clock_offset_unconfirmed(const std::string& peer, int64_t& offset_ns) const {
  const Peer* p = find(peer);
  if (p == nullptr || p->st.clock_offset_error_ns < 0) return false;
  offset_ns = p->st.clock_offset_ns;
  return true;
}

int64_t Manager::inbound_delay_ns(const std::string& peer) const {
  const Peer* p = find(peer);
  if (p == nullptr || p->inbound_delay_ns < 0) return -1;
  // The peer's next heartbeat left about an interval after its last one
  // (its interval as its send times space them, at least ours: the quick
  // answers at a link's start are closer); if it has not arrived since,
  // it has waited at least the rest of the time. On a path whose queue
  // grows (traffic beyond a link's rate) every heartbeat waits longer than
  // the one before, and a frame arriving now waited about that long: the
  // last heartbeat's transit alone read as a fresh path while the queue
  // held seconds (a follower seconds behind read itself caught up).
  // (Before the first regular spacing since this daemon started, ours: a
  // peer configured with a longer one reads as a slow path until then.)
  // Slack: a timer a little late (the spacings seen already hold how late
  // its tick makes them).
  int64_t interval = static_cast<int64_t>(cfg_.link.heartbeat_interval.count()) * 1000000;
  for (int64_t s : p->peer_hb_spacing_ns) interval = std::max(interval, s);
  const int64_t slack = std::min<int64_t>(interval / 10, 100'000'000);
  const int64_t overdue = loop::wall_ns() - (p->peer_hb_sent_local_ns + interval + slack);
  return std::max(p->inbound_delay_ns, overdue);
}

size_t Manager::frame_limit(const std::string& peer, size_t fallback) const {
  const Peer* p = find(peer);
  if (p == nullptr || !p->up || !p->conn) return fallback;
  return std::min(fallback, p->conn->group_limit());
}

std::vector<PeerStatus> Manager::status() const {
  std::vector<PeerStatus> out;
  for (const auto& [name, p] : peers_) {
    PeerStatus s = p.st;
    if (p.conn) {
      const auto& cs = p.conn->stats();
      s.bytes_in += cs.bytes_in;
      s.bytes_out += cs.bytes_out;
      s.frames_in += cs.frames_in;
      s.frames_out += cs.frames_out;
      s.frame_bytes_in += cs.frame_bytes_in;
      s.frame_bytes_out += cs.frame_bytes_out;
      s.compressed = p.up && p.conn->compressed;
      s.drain_rate = p.conn->drain_rate();
      s.send_budget = p.conn->send_budget();
      s.group_limit = p.conn->group_limit();
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace isthmus::link
