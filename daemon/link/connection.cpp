#include "link/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include <algorithm>

#include "loop/timer.h"

namespace isthmus::link {

const char* close_reason_name(CloseReason r) {
  switch (r) {
    case CloseReason::kNone: return "none";
    case CloseReason::kPeerClosed: return "peer_closed";
    case CloseReason::kPeerGoAway: return "peer_goaway";
    case CloseReason::kShutdown: return "shutdown";
    case CloseReason::kIoError: return "io_error";
    case CloseReason::kConnectFailed: return "connect_failed";
    case CloseReason::kHandshakeTimeout: return "handshake_timeout";
    case CloseReason::kProtocolError: return "protocol_error";
    case CloseReason::kFrameTooLarge: return "frame_too_large";
    case CloseReason::kVersionMismatch: return "version_mismatch";
    case CloseReason::kUnknownPeer: return "unknown_peer";
    case CloseReason::kWrongDirection: return "wrong_direction";
    case CloseReason::kDuplicate: return "duplicate";
    case CloseReason::kStale: return "stale";
    case CloseReason::kReplaced: return "replaced";
    case CloseReason::kTlsHandshakeFailed: return "tls_handshake_failed";
    case CloseReason::kCertRejected: return "certificate_rejected";
    case CloseReason::kNameMismatch: return "name_mismatch";
    case CloseReason::kPinMismatch: return "pin_mismatch";
    case CloseReason::kCompressionMismatch: return "compression_mismatch";
    case CloseReason::kSendStalled: return "send_stalled";
    case CloseReason::kPeerRemoved: return "peer_removed";
  }
  return "unknown";
}

namespace {

struct WriteReq {
  uv_write_t req;
  std::vector<uint8_t> buf;
};

// Bytes requested per read; the kernel hands us at most this much at once.
constexpr size_t kReadChunk = 256 * 1024;

}  // namespace

Connection::Connection(uv_loop_t* loop, ConnectionHandler* handler, uint32_t max_frame_bytes)
    : handler_(handler), tcp_(new uv_tcp_t), reader_(max_frame_bytes) {
  uv_tcp_init(loop, tcp_);
  uv_tcp_nodelay(tcp_, 1);
  tcp_->data = this;
  created_mono_ns = loop::mono_ns();
  last_recv_ns_ = created_mono_ns;
}

Connection::~Connection() {
  if (!closed_) {
    closed_ = true;
    tcp_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  }
}

Status Connection::connect(const sockaddr* addr) {
  dialed = true;
  auto* req = new uv_connect_t;
  int rc = uv_tcp_connect(req, tcp_, addr, &Connection::on_connect);
  if (rc != 0) {
    delete req;
    return Status(Code::kIo, uv_strerror(rc));
  }
  return Status::ok();
}

void Connection::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<Connection*>(req->handle->data);
  delete req;
  if (self == nullptr) return;  // closed meanwhile
  if (status != 0) {
    self->fail(CloseReason::kConnectFailed, uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(self->tcp_, 1);
  self->handler_->on_connected(*self);
}

Status Connection::start() {
  // Keep little unsent data in the kernel, so control frames queued behind
  // it wait at most a few milliseconds on a slow link (see flush()).
  set_budget(budget_);
  int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(tcp_), &Connection::on_alloc,
                         &Connection::on_read);
  if (rc != 0) return Status(Code::kIo, uv_strerror(rc));
  return Status::ok();
}

void Connection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<Connection*>(h->data);
  if (self == nullptr) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  self->read_buf_.resize(kReadChunk);
  *buf = uv_buf_init(self->read_buf_.data(), static_cast<unsigned>(self->read_buf_.size()));
}

void Connection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<Connection*>(s->data);
  if (self == nullptr || nread == 0) return;
  if (nread < 0) {
    if (nread == UV_EOF) {
      self->fail(CloseReason::kPeerClosed, "end of stream");
    } else {
      self->fail(CloseReason::kIoError, uv_strerror(static_cast<int>(nread)));
    }
    return;
  }
  self->handle_bytes(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread)));
}

void Connection::handle_bytes(std::span<const uint8_t> bytes) {
  stats_.bytes_in += bytes.size();
  last_recv_ns_ = loop::mono_ns();
  std::vector<uint8_t> app, back;
  Status st = layers_.read(bytes, app, back);
  if (!back.empty()) write_raw(std::move(back));
  if (!st) {
    fail(layers_.failure_reason(), st.message());
    return;
  }
  auto on_frame = [this](FrameType t, std::span<const uint8_t> body) -> Status {
    if (closed_) return Status(Code::kConflict, "closed");
    stats_.frames_in++;
    return handler_->on_frame(*this, t, body);
  };
  stats_.frame_bytes_in += app.size();
  st = reader_.feed(app, on_frame);
  // A layer pushed on top by a frame handler (S2 after the HELLO): what
  // followed that frame was encoded by the peer's new layer.
  while (st && !closed_ && pushed_top_) {
    pushed_top_ = false;
    std::vector<uint8_t> rest = reader_.take_buffered();
    std::vector<uint8_t> up;
    st = layers_.read_top(rest, up);
    if (!st) {
      fail(layers_.failure_reason(), st.message());
      return;
    }
    stats_.frame_bytes_in += up.size() - rest.size();
    st = reader_.feed(up, on_frame);
  }
  if (!st && !closed_) {
    fail(st.code() == Code::kTooLarge ? CloseReason::kFrameTooLarge : CloseReason::kProtocolError,
         st.message());
  }
}

void Connection::push_top(std::unique_ptr<Layer> layer) {
  if (closed_) return;
  // Everything queued so far was encoded for the old stack: write it all.
  flush();
  while (!closed_ && !data_.empty()) {
    std::vector<uint8_t> f = std::move(data_.front());
    data_.pop_front();
    data_bytes_ -= f.size();
    write_frames(f);
  }
  layers_.push_top(std::move(layer));
  pushed_top_ = true;
  reader_.pause();
}

void Connection::queue(std::vector<uint8_t>&& frame_bytes) {
  if (closed_ || frame_bytes.empty()) return;
  stats_.frames_out++;
  data_bytes_ += frame_bytes.size();
  data_.push_back(std::move(frame_bytes));
}

void Connection::queue_copy(std::span<const uint8_t> frame_bytes) {
  queue(std::vector<uint8_t>(frame_bytes.begin(), frame_bytes.end()));
}

void Connection::queue_priority(std::vector<uint8_t>&& frame_bytes) {
  if (closed_) return;
  stats_.frames_out++;
  prio_.insert(prio_.end(), frame_bytes.begin(), frame_bytes.end());
}

void Connection::write_frames(std::span<const uint8_t> frames) {
  stats_.frame_bytes_out += frames.size();
  std::vector<uint8_t> net;
  Status st = layers_.write(frames, true, net);
  if (!st) {
    fail(layers_.failure_reason(), st.message());
    return;
  }
  write_raw(std::move(net));
}

void Connection::flush() {
  if (closed_) return;
  if (!prio_.empty()) {
    std::vector<uint8_t> p;
    p.swap(prio_);
    write_frames(p);
  }
  // Whole frames only, grouped into chunks of at most group_limit() bytes
  // (one S2 chunk, one TLS write each), while the socket's queue has room.
  const size_t limit = group_limit();
  while (!closed_ && !data_.empty() && queued_in_uv_ < budget_) {
    std::vector<uint8_t> group = std::move(data_.front());
    data_.pop_front();
    while (!data_.empty() && group.size() + data_.front().size() <= limit) {
      group.insert(group.end(), data_.front().begin(), data_.front().end());
      data_.pop_front();
    }
    data_bytes_ -= group.size();
    uint64_t before = stats_.bytes_out;
    write_frames(group);
    if (!group.empty()) {
      double r = static_cast<double>(stats_.bytes_out - before) / static_cast<double>(group.size());
      wire_ratio_ = 0.75 * wire_ratio_ + 0.25 * r;
    }
  }
}

size_t Connection::group_limit() const {
  double raw = static_cast<double>(budget_) / std::max(wire_ratio_, 0.05);
  return std::clamp(static_cast<size_t>(raw), kMinBudget, kMaxBudget);
}

void Connection::note_drained(size_t n) {
  int64_t now = loop::mono_ns();
  drain_busy_ns_ += now - drain_mark_ns_;
  drain_mark_ns_ = now;
  drain_bytes_ += n;
  // A sample per 20 ms of waiting or per MiB drained (a fast link takes a
  // MiB in a millisecond or two: its budget goes straight to the maximum).
  constexpr int64_t kSampleNs = 20'000'000;
  constexpr uint64_t kSampleBytes = 1 << 20;
  if (drain_busy_ns_ < kSampleNs && drain_bytes_ < kSampleBytes) return;
  double r = static_cast<double>(drain_bytes_) * 1e9 / static_cast<double>(std::max<int64_t>(drain_busy_ns_, 1000));
  rate_ = rate_ == 0 ? r : 0.5 * rate_ + 0.5 * r;
  drain_busy_ns_ = 0;
  drain_bytes_ = 0;
  set_budget(static_cast<size_t>(rate_ * static_cast<double>(kDrainTargetNs) / 1e9));
}

void Connection::set_budget(size_t budget) {
  budget_ = std::clamp(budget, kMinBudget, kMaxBudget);
  // Unsent bytes the kernel keeps: half a budget, 4..16 KiB.
  int lowat = static_cast<int>(std::clamp<size_t>(budget_ / 2, 4 * 1024, 16 * 1024));
  if (lowat == lowat_ || closed_) return;
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(tcp_), &fd) != 0) return;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat)) == 0) lowat_ = lowat;
}

void Connection::write_raw(std::vector<uint8_t>&& bytes) {
  if (closed_ || bytes.empty()) return;
  auto* w = new WriteReq;
  w->buf = std::move(bytes);
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(w->buf.data()), static_cast<unsigned>(w->buf.size()));
  if (queued_in_uv_ == 0) {  // a busy stretch begins
    drain_mark_ns_ = loop::mono_ns();
    write_progress_ns_ = drain_mark_ns_;
  }
  queued_in_uv_ += w->buf.size();
  stats_.bytes_out += w->buf.size();
  w->req.data = w;
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(tcp_), &b, 1, &Connection::on_write);
  if (rc != 0) {
    queued_in_uv_ -= w->buf.size();
    delete w;
    fail(CloseReason::kIoError, uv_strerror(rc));
  }
}

void Connection::on_write(uv_write_t* req, int status) {
  auto* w = static_cast<WriteReq*>(req->data);
  auto* self = static_cast<Connection*>(req->handle->data);
  size_t n = w->buf.size();
  delete w;
  if (self == nullptr) return;
  self->queued_in_uv_ -= n;
  if (status != 0 && status != UV_ECANCELED) {
    self->fail(CloseReason::kIoError, uv_strerror(status));
    return;
  }
  self->write_progress_ns_ = loop::mono_ns();
  self->note_drained(n);
  // Room again: let more data frames follow.
  if (!self->data_.empty() && self->queued_in_uv_ < self->budget_) self->flush();
}

size_t Connection::pending_bytes() const { return data_bytes_ + prio_.size() + queued_in_uv_; }

void Connection::fail(CloseReason reason, const std::string& detail) {
  if (closed_) return;
  // A goodbye only where the layers below the frames still work.
  close(reason, detail, reason == CloseReason::kProtocolError || reason == CloseReason::kFrameTooLarge);
  handler_->on_closed(*this, reason, detail);
}

void Connection::close(CloseReason reason, const std::string& detail, bool goodbye) {
  if (closed_) return;
  if (goodbye) {
    // Best effort: if the socket takes the bytes at once (the usual case)
    // they reach the peer before the close; otherwise uv_close cancels them.
    GoAway g;
    g.reason = std::string(close_reason_name(reason)) + (detail.empty() ? "" : ": " + detail);
    std::vector<uint8_t> f;
    encode(g, f);
    // Data frames not yet on the socket are dropped; the byte stream is at a
    // frame boundary (only whole frames are written), so the GOAWAY parses.
    f.insert(f.begin(), prio_.begin(), prio_.end());
    prio_.clear();
    std::vector<uint8_t> net;
    if (layers_.write(f, true, net)) write_raw(std::move(net));
  }
  closed_ = true;
  tcp_->data = nullptr;
  // uv_close lets queued writes fail with ECANCELED; their callbacks see
  // data == nullptr and only free their own buffers.
  uv_close(reinterpret_cast<uv_handle_t*>(tcp_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
}

std::string Connection::peer_address() const {
  if (closed_) return "?";
  sockaddr_storage ss{};
  int len = sizeof(ss);
  if (uv_tcp_getpeername(tcp_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[64] = {0};
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    uv_ip4_name(a, host, sizeof(host));
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  uv_ip6_name(a6, host, sizeof(host));
  port = ntohs(a6->sin6_port);
  // append(), not "[" + std::string(host): for that, GCC 12 at -O3 reports a false -Wrestrict inside std::string.
  std::string out = "[";
  out.append(host).append("]:").append(std::to_string(port));
  return out;
}

}  // namespace isthmus::link
