#include "proxy.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace faultproxy {

namespace {

constexpr size_t kReadBuffer = 64 * 1024;
constexpr size_t kMaxInflight = 256 * 1024;
constexpr size_t kMaxInflightWrites = 64;
// How long a cut waits for its last bytes to leave the kernel before the RST
// (an RST discards unsent data) when the peer does not read them.
constexpr uint64_t kCutDrainNs = 2'000'000'000;

struct WriteReq {
  uv_write_t req;
  std::vector<char> data;
  int dir;
};

void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(h->data);
  *buf = c != nullptr ? c->pipe_reading(reinterpret_cast<uv_stream_t*>(h)).alloc() : uv_buf_init(nullptr, 0);
}

void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(s->data);
  if (c != nullptr) c->pipe_reading(s).on_read(nread, buf);
}

void on_write(uv_write_t* req, int status) {
  std::unique_ptr<WriteReq> w(static_cast<WriteReq*>(req->data));
  Connection* c = owner_of<Connection>(req);
  if (c != nullptr) c->pipe(w->dir).on_write_done(w->data.size(), status);
}

void on_shutdown(uv_shutdown_t* req, int status) {
  std::unique_ptr<uv_shutdown_t> own(req);
  Connection* c = owner_of<Connection>(req);
  if (c != nullptr) c->pipe(static_cast<int>(reinterpret_cast<intptr_t>(req->data))).on_shutdown_done(status);
}

size_t unsent_bytes(uv_stream_t* s) {
  uv_os_fd_t fd;
  int n = 0;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(s), &fd) != 0) return 0;
  if (ioctl(fd, SIOCOUTQ, &n) != 0) return 0;
  return n > 0 ? static_cast<size_t>(n) : 0;
}

}  // namespace

std::string format_address(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    uv_ip6_name(in6, host, sizeof(host));
    // append(), not "[" + std::string(host): for that, GCC 12 at -O3 reports a false -Wrestrict.
    std::string out = "[";
    out.append(host).append("]:").append(std::to_string(ntohs(in6->sin6_port)));
    return out;
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
  uv_ip4_name(in4, host, sizeof(host));
  return std::string(host) + ":" + std::to_string(ntohs(in4->sin_port));
}

// ---------------------------------------------------------------- Pipe

Pipe::Pipe(Connection* conn, int dir) : conn_(conn), dir_(dir) {
  uv_timer_init(conn->proxy()->loop(), timer_.get());
  timer_.mark_initialized(this);
}

uv_stream_t* Pipe::src() const {
  return dir_ == kA2B ? conn_->client().stream() : conn_->target().stream();
}
uv_stream_t* Pipe::dst() const {
  return dir_ == kA2B ? conn_->target().stream() : conn_->client().stream();
}
bool Pipe::dst_ready() const { return dir_ == kB2A || conn_->target_connected(); }
const DirSettings& Pipe::settings() const { return conn_->proxy()->settings(dir_); }

void Pipe::start_reading() {
  started_ = true;
  if (reading_ || src_eof_ || conn_->closing()) return;
  int rc = uv_read_start(src(), &on_alloc, &faultproxy::on_read);
  if (rc != 0) {
    conn_->close(std::string("read start failed: ") + uv_strerror(rc), true);
    return;
  }
  reading_ = true;
}

uv_buf_t Pipe::alloc() {
  if (!scratch_) scratch_ = std::make_unique<char[]>(kReadBuffer);
  return uv_buf_init(scratch_.get(), kReadBuffer);
}

void Pipe::on_read(ssize_t nread, const uv_buf_t* buf) {
  if (nread > 0) {
    const DirSettings& s = settings();
    uint64_t now = uv_hrtime();
    int64_t offset = static_cast<int64_t>(s.delay_ms) * 1'000'000;
    if (s.jitter_ms != 0) offset += conn_->proxy()->jitter_ns(s.jitter_ms);
    uint64_t release = offset > 0 ? now + static_cast<uint64_t>(offset) : now;
    line_.push(release, buf->base, static_cast<size_t>(nread));
    if (line_.bytes() >= s.queue_bytes) {
      uv_read_stop(src());
      reading_ = false;
    }
    pump();
    return;
  }
  if (nread == 0) return;  // EAGAIN
  if (nread == UV_EOF) {
    uv_read_stop(src());
    reading_ = false;
    src_eof_ = true;
    pump();
    return;
  }
  const char* who = dir_ == kA2B ? "client" : "target";
  conn_->close(std::string(who) + " read error: " + uv_err_name(static_cast<int>(nread)), true);
}

void Pipe::cut(uint64_t n) {
  cut_left_ = static_cast<int64_t>(n);
  cut_total_ = n;
  cut_deadline_ns_ = 0;
  pump();
}

void Pipe::pump() {
  if (conn_->closing()) return;
  const DirSettings& s = settings();
  TokenBucket& bucket = conn_->proxy()->bucket(dir_);
  uint64_t now = uv_hrtime();
  uint64_t wake_ns = 0;
  while (!line_.empty() && !conn_->closing() && dst_ready() && !s.stall && cut_left_ != 0 &&
         inflight_ < kMaxInflight && inflight_writes_ < kMaxInflightWrites) {
    uint64_t release = line_.head_release_ns();
    if (release > now) {
      wake_ns = release - now;
      break;
    }
    size_t n = line_.head_bytes();
    if (s.slice != 0) n = std::min<size_t>(n, s.slice);
    if (cut_left_ > 0) n = static_cast<size_t>(std::min<uint64_t>(n, static_cast<uint64_t>(cut_left_)));
    if (bucket.limited()) {
      n = std::min(n, bucket.burst());
      uint64_t wait = bucket.wait_ns(n, now);
      if (wait != 0) {
        wake_ns = wait;
        break;
      }
      bucket.take(n);
    }
    write(line_.take(n));
    if (cut_left_ > 0) cut_left_ -= static_cast<int64_t>(n);
  }
  if (conn_->closing()) return;
  if (wake_ns != 0) {
    arm_timer(wake_ns);
  } else {
    uv_timer_stop(timer_.get());
  }
  after_pump();
}

void Pipe::after_pump() {
  const DirSettings& s = settings();
  if (started_ && !reading_ && !src_eof_ && line_.bytes() < s.queue_bytes / 2 && dst_ready()) {
    start_reading();
  }
  if (conn_->closing()) return;

  if (cut_left_ == 0) {
    // Reset once the last allowed bytes have left this host (or the peer
    // has not read them for kCutDrainNs).
    uint64_t now = uv_hrtime();
    if (cut_deadline_ns_ == 0) cut_deadline_ns_ = now + kCutDrainNs;
    bool drained = inflight_ == 0 && (!dst_ready() || unsent_bytes(dst()) == 0);
    if (drained || now >= cut_deadline_ns_) {
      conn_->close(std::string("cut ") + dir_name(dir_) + " after " + std::to_string(cut_total_) +
                       " bytes" + (drained ? "" : " (undelivered bytes dropped)"),
                   true);
    } else {
      arm_timer(1'000'000);
    }
    return;
  }

  if (src_eof_ && line_.empty() && inflight_ == 0 && !shutdown_sent_ && dst_ready()) {
    shutdown_sent_ = true;
    auto* req = new uv_shutdown_t{};
    req->data = reinterpret_cast<void*>(static_cast<intptr_t>(dir_));
    int rc = uv_shutdown(req, dst(), &on_shutdown);
    if (rc != 0) {
      delete req;
      conn_->close(std::string("shutdown failed: ") + uv_err_name(rc), true);
    }
  }
}

void Pipe::arm_timer(uint64_t ns) {
  uint64_t ms = (ns + 999'999) / 1'000'000;
  uv_update_time(conn_->proxy()->loop());
  uv_timer_start(timer_.get(), [](uv_timer_t* t) {
    auto* p = static_cast<Pipe*>(t->data);
    if (p != nullptr) p->pump();
  }, std::max<uint64_t>(ms, 1), 0);
}

void Pipe::write(std::vector<char> data) {
  auto* w = new WriteReq{};
  w->data = std::move(data);
  w->dir = dir_;
  w->req.data = w;
  size_t n = w->data.size();
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(n));
  int rc = uv_write(&w->req, dst(), &buf, 1, &on_write);
  if (rc != 0) {
    delete w;
    conn_->close(std::string("write failed: ") + uv_err_name(rc), true);
    return;
  }
  inflight_ += n;
  ++inflight_writes_;
}

void Pipe::on_write_done(size_t n, int status) {
  inflight_ -= n;
  --inflight_writes_;
  if (status != 0) {
    const char* who = dir_ == kA2B ? "target" : "client";
    conn_->close(std::string("write to ") + who + " failed: " + uv_err_name(status), true);
    return;
  }
  forwarded_ += n;
  conn_->proxy()->count_forwarded(dir_, n);
  pump();
}

void Pipe::on_shutdown_done(int status) {
  if (status != 0) {
    conn_->close(std::string("shutdown failed: ") + uv_err_name(status), true);
    return;
  }
  shutdown_done_ = true;
  conn_->maybe_finished();
}

// ---------------------------------------------------------------- Connection

Connection::Connection(Proxy* proxy, uint64_t id)
    : proxy_(proxy), id_(id), a2b_(this, kA2B), b2a_(this, kB2A) {}

Connection::~Connection() = default;  // handles close themselves (see UvHandle)

bool Connection::accept(uv_stream_t* server) {
  uv_tcp_init(proxy_->loop(), client_.get());
  client_.mark_initialized(this);
  return uv_accept(server, client_.stream()) == 0;
}

void Connection::start(const sockaddr* target) {
  uv_tcp_nodelay(client_.get(), 1);
  uv_tcp_init_ex(proxy_->loop(), target_.get(), target->sa_family);  // socket now, for its buffers
  target_.mark_initialized(this);
  proxy_->apply_socket_buffer(target_.get());
  auto* req = new uv_connect_t{};
  int rc = uv_tcp_connect(req, target_.get(), target, [](uv_connect_t* r, int status) {
    std::unique_ptr<uv_connect_t> own(r);
    Connection* c = owner_of<Connection>(r);
    if (c != nullptr) c->on_connected(status);
  });
  if (rc != 0) {
    delete req;
    close(std::string("connect to target failed: ") + uv_err_name(rc), true);
    return;
  }
  a2b_.start_reading();
}

void Connection::on_connected(int status) {
  if (closing_) return;
  if (status != 0) {
    close(std::string("connect to target failed: ") + uv_err_name(status), true);
    return;
  }
  uv_tcp_nodelay(target_.get(), 1);
  target_connected_ = true;
  b2a_.start_reading();
  a2b_.pump();
}

void Connection::maybe_finished() {
  if (a2b_.done() && b2a_.done()) close("closed by both peers", false);
}

void Connection::close(const std::string& reason, bool reset) {
  if (closing_) return;
  closing_ = true;
  a2b_.close_timer();
  b2a_.close_timer();
  if (reset) {
    client_.close_reset();
    target_.close_reset();
  } else {
    client_.close();
    target_.close();
  }
  std::fprintf(stderr, "faultproxy: conn %" PRIu64 " closed%s: %s (a2b=%" PRIu64 " b2a=%" PRIu64 ")\n",
               id_, reset ? " with reset" : "", reason.c_str(), a2b_.forwarded(), b2a_.forwarded());
  proxy_->on_closed(this);
}

// ---------------------------------------------------------------- Proxy

Proxy::Proxy(uv_loop_t* loop, Reaper* reaper, const sockaddr_storage& target, uint64_t seed)
    : loop_(loop), reaper_(reaper), target_(target), rng_(seed) {}

Proxy::~Proxy() { shutdown(); }

std::string Proxy::listen(const sockaddr* addr) {
  uv_tcp_init(loop_, listener_.get());
  listener_.mark_initialized(this);
  int rc = uv_tcp_bind(listener_.get(), addr, 0);
  if (rc == 0) apply_socket_buffer(listener_.get());  // inherited by accepted sockets
  if (rc == 0) {
    rc = uv_listen(listener_.stream(), 128, [](uv_stream_t* s, int status) {
      auto* p = static_cast<Proxy*>(s->data);
      if (p != nullptr) p->on_accept(status);
    });
  }
  if (rc != 0) return std::string("listen on ") + format_address(addr) + ": " + uv_strerror(rc);
  return {};
}

void Proxy::apply_socket_buffer(uv_tcp_t* h) const {
  if (sockbuf_ <= 0) return;
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(h), &fd) != 0) return;
  int v = sockbuf_;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

std::string Proxy::local_address() const {
  sockaddr_storage ss{};
  int len = sizeof(ss);
  uv_tcp_getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  return format_address(reinterpret_cast<sockaddr*>(&ss));
}

void Proxy::on_accept(int status) {
  if (status != 0) {
    std::fprintf(stderr, "faultproxy: accept failed: %s\n", uv_err_name(status));
    return;
  }
  auto conn = std::make_unique<Connection>(this, next_id_++);
  Connection* c = conn.get();
  if (!c->accept(listener_.stream())) return;  // handles close themselves
  conns_.emplace(c->id(), std::move(conn));
  ++stats_.active;
  if (down_) {
    ++stats_.refused;
    c->close("proxy is down", true);
    return;
  }
  ++stats_.accepted;
  for (int d = 0; d < kDirCount; ++d) {
    if (settings_[d].cut_after != 0) c->pipe(d).cut(settings_[d].cut_after);
  }
  c->start(reinterpret_cast<const sockaddr*>(&target_));
}

void Proxy::on_closed(Connection* c) {
  auto it = conns_.find(c->id());
  if (it == conns_.end()) return;
  --stats_.active;
  reaper_->bury(std::move(it->second));
  conns_.erase(it);
}

int64_t Proxy::jitter_ns(uint32_t ms) {
  int64_t j = static_cast<int64_t>(ms) * 1'000'000;
  return std::uniform_int_distribution<int64_t>(-j, j)(rng_);
}

size_t Proxy::reset_all(const std::string& reason) {
  size_t n = 0;
  while (!conns_.empty()) {
    conns_.begin()->second->close(reason, true);  // erases itself from conns_
    ++n;
  }
  return n;
}

void Proxy::pump_all() {
  // Pumping can close connections (a cut), which erases them: copy the ids.
  std::vector<uint64_t> ids;
  for (auto& [id, c] : conns_) ids.push_back(id);
  for (uint64_t id : ids) {
    for (int d = 0; d < kDirCount; ++d) {
      auto it = conns_.find(id);
      if (it != conns_.end()) it->second->pipe(d).pump();
    }
  }
}

std::string Proxy::stats_line() const {
  uint64_t queued[kDirCount] = {0, 0};
  for (auto& [id, c] : conns_) {
    for (int d = 0; d < kDirCount; ++d) queued[d] += c->pipe(d).queued();
  }
  return "ok a2b_bytes=" + std::to_string(stats_.bytes[kA2B]) +
         " b2a_bytes=" + std::to_string(stats_.bytes[kB2A]) +
         " accepted=" + std::to_string(stats_.accepted) + " active=" + std::to_string(stats_.active) +
         " refused=" + std::to_string(stats_.refused) + " a2b_queued=" + std::to_string(queued[kA2B]) +
         " b2a_queued=" + std::to_string(queued[kB2A]) + " a2b_writes=" + std::to_string(stats_.writes[kA2B]) +
         " b2a_writes=" + std::to_string(stats_.writes[kB2A]) + " down=" + (down_ ? "1" : "0");
}

std::string Proxy::execute(const Command& cmd) {
  uint64_t now = uv_hrtime();
  switch (cmd.verb) {
    case Verb::kSet:
      for (int d = 0; d < kDirCount; ++d) {
        if ((cmd.dirs & (1u << d)) == 0) continue;
        cmd.patch.apply(&settings_[d]);
        if (buckets_[d].rate() != settings_[d].rate_bps) buckets_[d].set_rate(settings_[d].rate_bps, now);
      }
      pump_all();
      return "ok";
    case Verb::kGet:
      return "ok " + settings_[(cmd.dirs & (1u << kA2B)) != 0 ? kA2B : kB2A].format();
    case Verb::kStall:
      for (int d = 0; d < kDirCount; ++d) {
        if ((cmd.dirs & (1u << d)) != 0) settings_[d].stall = cmd.on;
      }
      pump_all();
      return "ok";
    case Verb::kCut: {
      std::vector<uint64_t> ids;
      for (auto& [id, c] : conns_) ids.push_back(id);
      for (uint64_t id : ids) {
        for (int d = 0; d < kDirCount; ++d) {
          auto it = conns_.find(id);
          if (it != conns_.end() && (cmd.dirs & (1u << d)) != 0) it->second->pipe(d).cut(cmd.count);
        }
      }
      return "ok connections=" + std::to_string(ids.size());
    }
    case Verb::kReset:
      return "ok reset=" + std::to_string(reset_all("reset by control"));
    case Verb::kDown:
      down_ = true;
      return "ok reset=" + std::to_string(reset_all("proxy is down"));
    case Verb::kUp:
      down_ = false;
      return "ok";
    case Verb::kStats:
      return stats_line();
    case Verb::kClear:
      down_ = false;
      for (int d = 0; d < kDirCount; ++d) {
        settings_[d] = DirSettings{};
        buckets_[d].set_rate(0, now);
      }
      for (auto& [id, c] : conns_) {
        for (int d = 0; d < kDirCount; ++d) c->pipe(d).cancel_cut();
      }
      pump_all();
      return "ok";
    case Verb::kPing:
      return "ok pong";
  }
  return "err internal: unhandled command";
}

void Proxy::shutdown() {
  listener_.close();
  while (!conns_.empty()) conns_.begin()->second->close("proxy shutdown", false);
}

}  // namespace faultproxy
