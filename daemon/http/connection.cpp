#include "http/connection.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <utility>

#include "http/router.h"
#include "http/server.h"

namespace isthmus::http {

namespace {

// All connections read on the loop thread and the parser copies what it
// keeps, so one buffer per thread serves every connection.
constexpr size_t kReadBufferSize = 64 * 1024;
thread_local char read_buffer[kReadBufferSize];

PeerAddress peer_of(const uv_tcp_t* tcp) {
  PeerAddress p;
  sockaddr_storage ss{};
  int len = sizeof(ss);
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return p;
  char ip[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    uv_ip4_name(a, ip, sizeof(ip));
    p.port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    uv_ip6_name(a, ip, sizeof(ip));
    p.port = ntohs(a->sin6_port);
  }
  p.ip = ip;
  return p;
}

}  // namespace

const char* close_reason_name(CloseReason r) {
  switch (r) {
    case CloseReason::kClientClosed: return "client closed";
    case CloseReason::kReadError: return "read error";
    case CloseReason::kWriteError: return "write error";
    case CloseReason::kAcceptError: return "accept error";
    case CloseReason::kIdleTimeout: return "idle timeout";
    case CloseReason::kHeaderTimeout: return "header timeout";
    case CloseReason::kRequestTimeout: return "request timeout";
    case CloseReason::kResponseTimeout: return "response timeout";
    case CloseReason::kBadRequest: return "bad request";
    case CloseReason::kDone: return "connection: close";
    case CloseReason::kConnectionLimit: return "connection limit";
    case CloseReason::kServerShutdown: return "server shutdown";
  }
  return "unknown";
}

struct Connection::Pending {
  Connection* conn;  // nulled when the connection closes
  bool answered = false;
};

struct Connection::WriteReq {
  uv_write_t req{};
  std::string data;
  Connection* conn = nullptr;
};

Connection::Connection(Server& server, uint64_t id)
    : server_(&server),
      router_(server.router_),
      loop_(server.loop_),
      id_(id),
      parser_(server.limits_.request) {
  uv_tcp_init(loop_, &tcp_);
  uv_timer_init(loop_, &timer_);
  tcp_.data = this;
  timer_.data = this;
  open_handles_ = 2;
}

Connection::~Connection() = default;

const Limits& Connection::limits() const {
  // Only consulted while attached: a detached connection is already closing.
  static const Limits kDefaults;
  return server_ ? server_->limits_ : kDefaults;
}

bool Connection::server_closing() const { return server_ == nullptr || server_->closing_; }

uint64_t Connection::now() const { return uv_now(loop_); }

bool Connection::accept(uv_stream_t* listener) {
  int rc = uv_accept(listener, reinterpret_cast<uv_stream_t*>(&tcp_));
  if (rc != 0) {
    close(CloseReason::kAcceptError, uv_strerror(rc));
    return false;
  }
  uv_tcp_nodelay(&tcp_, 1);
  peer_ = peer_of(&tcp_);
  return true;
}

void Connection::start() {
  spdlog::debug("http: connection {} from {} opened", id_, peer_.to_string());
  update_reading();
  arm_timer();
}

void Connection::close(CloseReason reason, const std::string& detail) {
  if (closing_) return;
  closing_ = true;
  if (pending_) pending_->conn = nullptr;
  pending_.reset();
  if (detail.empty()) {
    spdlog::debug("http: connection {} from {} closed: {}", id_, peer_.to_string(),
                  close_reason_name(reason));
  } else {
    spdlog::debug("http: connection {} from {} closed: {} ({})", id_, peer_.to_string(),
                  close_reason_name(reason), detail);
  }
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Connection::on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &Connection::on_closed);
}

void Connection::on_closed(uv_handle_t* h) {
  auto* c = static_cast<Connection*>(h->data);
  if (--c->open_handles_ > 0) return;
  if (c->server_) c->server_->forget(c);
  delete c;
}

void Connection::drain() {
  if (closing_) return;
  if (!in_flight_ && writes_pending_ == 0 && !parser_.has_request()) {
    close(CloseReason::kServerShutdown);
    return;
  }
  draining_ = true;
  update_reading();
}

// --- reading -----------------------------------------------------------------

void Connection::on_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(read_buffer, kReadBufferSize);
}

void Connection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(s->data);
  if (c->closing_ || nread == 0) return;
  if (nread > 0) {
    c->handle_bytes(buf->base, static_cast<size_t>(nread));
  } else if (nread == UV_EOF) {
    c->handle_eof();
  } else {
    c->close(CloseReason::kReadError, uv_strerror(static_cast<int>(nread)));
  }
}

void Connection::handle_bytes(const char* data, size_t n) {
  if (lingering_ || final_sent_ || draining_) return;  // discarded
  bool was_in_progress = parser_.in_progress();
  size_t pending_before = parser_.pending();
  parser_.feed(std::string_view(data, n));
  if (parser_.in_progress() && (!was_in_progress || parser_.pending() > pending_before)) {
    request_start_ = now();
  }
  // Only when nothing is queued ahead of it: a 100 may not overtake a response.
  if (parser_.take_expect_continue() && !in_flight_ && writes_pending_ == 0 &&
      !parser_.has_request()) {
    write("HTTP/1.1 100 Continue\r\n\r\n");
  }
  pump();
}

void Connection::handle_eof() {
  if (lingering_) {
    close(final_reason_, final_detail_);
    return;
  }
  peer_eof_ = true;
  reading_ = false;  // libuv stops reading at EOF
  parser_.finish();
  pump();
}

void Connection::update_reading() {
  if (closing_) return;
  bool want;
  if (lingering_) {
    want = !peer_eof_;
  } else {
    want = !peer_eof_ && !final_sent_ && !draining_ && !parser_.failed() && !parser_.closed() &&
           parser_.pending() < limits().max_pending_requests &&
           write_bytes_ < limits().max_write_buffer;
  }
  if (want == reading_) return;
  if (want) {
    int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &Connection::on_alloc,
                           &Connection::on_read);
    if (rc != 0) {
      close(CloseReason::kReadError, uv_strerror(rc));
      return;
    }
  } else {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  }
  reading_ = want;
}

// --- requests ------------------------------------------------------------------

void Connection::pump() {
  if (pumping_ || closing_) return;
  pumping_ = true;
  while (!closing_ && !in_flight_ && !final_sent_) {
    std::optional<Request> req = parser_.next();
    if (!req) break;
    begin_request(std::move(*req));
  }
  if (!closing_ && !in_flight_ && !final_sent_ && !parser_.has_request()) {
    if (parser_.failed()) {
      const ParseError& e = parser_.error();
      send_final(Response::error(e.status, e.reason), CloseReason::kBadRequest,
                 std::to_string(e.status) + " " + e.reason);
    } else if (draining_) {
      if (writes_pending_ == 0) close(CloseReason::kServerShutdown);
    } else if (peer_eof_ || parser_.closed()) {
      if (writes_pending_ == 0) {
        close(peer_eof_ ? CloseReason::kClientClosed : CloseReason::kDone);
      } else {
        final_sent_ = true;
        final_reason_ = peer_eof_ ? CloseReason::kClientClosed : CloseReason::kDone;
      }
    }
  }
  pumping_ = false;
  update_reading();
  arm_timer();
}

void Connection::begin_request(Request req) {
  req.peer = peer_;
  in_flight_ = true;
  cur_keep_alive_ = req.keep_alive;
  cur_http10_ = req.http_minor == 0;
  cur_head_ = req.method == "HEAD";
  auto pending = std::make_shared<Pending>();
  pending->conn = this;
  pending_ = pending;
  Responder respond = [pending](Response resp) {
    if (pending->answered || pending->conn == nullptr) return;
    pending->answered = true;
    pending->conn->finish_request(std::move(resp));
  };
  router_.dispatch(req, std::move(respond));
}

void Connection::finish_request(Response resp) {
  in_flight_ = false;
  pending_.reset();
  bool keep = cur_keep_alive_ && !resp.close && !server_closing() && !peer_eof_ && !draining_;
  write(serialize(resp, keep, cur_http10_, cur_head_));
  if (!keep && !closing_) {
    final_sent_ = true;
    final_reason_ = draining_ || server_closing() ? CloseReason::kServerShutdown
                    : peer_eof_                    ? CloseReason::kClientClosed
                                                   : CloseReason::kDone;
  }
  if (!pumping_) pump();
}

void Connection::send_final(const Response& resp, CloseReason reason, const std::string& detail) {
  if (final_sent_ || closing_) return;
  write(serialize(resp, false, false, false));
  final_sent_ = true;
  final_reason_ = reason;
  final_detail_ = detail;
}

// --- writing -----------------------------------------------------------------

void Connection::write(std::string data) {
  if (closing_ || data.empty()) return;
  auto* w = new WriteReq;
  w->data = std::move(data);
  w->conn = this;
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
                    &Connection::on_write);
  if (rc != 0) {
    delete w;
    close(CloseReason::kWriteError, uv_strerror(rc));
    return;
  }
  write_bytes_ += buf.len;
  ++writes_pending_;
}

void Connection::on_write(uv_write_t* req, int status) {
  auto* w = static_cast<WriteReq*>(req->data);
  Connection* c = w->conn;
  size_t n = w->data.size();
  delete w;
  // Still alive: libuv cancels pending writes before the close callbacks.
  c->write_bytes_ -= n;
  --c->writes_pending_;
  if (c->closing_) return;
  if (status != 0) {
    c->close(CloseReason::kWriteError, uv_strerror(status));
    return;
  }
  if (c->writes_pending_ == 0 && c->final_sent_) {
    c->after_final_write();
    return;
  }
  c->pump();  // may resume reading and re-arms the timer
}

void Connection::after_final_write() {
  // The client may still be sending (e.g. the rest of a refused body): closing
  // with unread data would reset the connection and could destroy the
  // response before the client reads it. So half-close and wait for its EOF.
  if (peer_eof_ || final_reason_ == CloseReason::kServerShutdown || server_closing()) {
    close(final_reason_, final_detail_);
    return;
  }
  int rc = uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_),
                       &Connection::on_shutdown);
  if (rc != 0) {
    close(final_reason_, final_detail_);
    return;
  }
  lingering_ = true;
  update_reading();
  timer_kind_ = TimerKind::kLinger;
  uv_timer_start(&timer_, &Connection::on_timer, limits().linger_ms, 0);
}

void Connection::on_shutdown(uv_shutdown_t* req, int status) {
  auto* c = static_cast<Connection*>(req->handle->data);
  if (status != 0 && !c->closing_) c->close(c->final_reason_, c->final_detail_);
}

// --- timers ------------------------------------------------------------------

void Connection::arm_timer() {
  if (closing_ || lingering_) return;
  uint64_t t = now();
  uint64_t due;
  if (in_flight_ || writes_pending_ > 0) {
    timer_kind_ = TimerKind::kResponse;
    due = t + limits().idle_timeout_ms;
  } else if (parser_.in_progress() && !final_sent_) {
    bool body = parser_.headers_complete();
    timer_kind_ = body ? TimerKind::kRequest : TimerKind::kHeader;
    due = request_start_ + (body ? limits().request_timeout_ms : limits().header_timeout_ms);
  } else {
    timer_kind_ = TimerKind::kIdle;
    due = t + limits().idle_timeout_ms;
  }
  uv_timer_start(&timer_, &Connection::on_timer, due > t ? due - t : 0, 0);
}

void Connection::on_timer(uv_timer_t* t) {
  auto* c = static_cast<Connection*>(t->data);
  if (c->closing_) return;
  switch (c->timer_kind_) {
    case TimerKind::kHeader:
    case TimerKind::kRequest: {
      CloseReason why = c->timer_kind_ == TimerKind::kHeader ? CloseReason::kHeaderTimeout
                                                              : CloseReason::kRequestTimeout;
      c->send_final(Response::error(408, "request timeout"), why, {});
      c->update_reading();
      // Bound the wait for the 408 to drain.
      c->timer_kind_ = TimerKind::kResponse;
      uv_timer_start(&c->timer_, &Connection::on_timer, c->limits().idle_timeout_ms, 0);
      break;
    }
    case TimerKind::kIdle:
      c->close(CloseReason::kIdleTimeout);
      break;
    case TimerKind::kResponse:
      c->close(CloseReason::kResponseTimeout);
      break;
    case TimerKind::kLinger:
      c->close(c->final_reason_, c->final_detail_);
      break;
    case TimerKind::kNone:
      break;
  }
}

}  // namespace isthmus::http
