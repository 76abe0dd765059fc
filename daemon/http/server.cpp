#include "http/server.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <vector>

#include "http/connection.h"

namespace isthmus::http {

namespace {

constexpr int kBacklog = 128;

// Close callbacks for handles whose Server is gone (data == nullptr).
void delete_tcp(uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); }
void delete_timer(uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); }

}  // namespace

Server::Server(uv_loop_t* loop, Router& router, Limits limits)
    : loop_(loop), router_(router), limits_(std::move(limits)) {}

Server::~Server() {
  std::vector<Connection*> conns(conns_.begin(), conns_.end());
  conns_.clear();
  for (Connection* c : conns) {
    c->detach();
    c->close(CloseReason::kServerShutdown);
  }
  // A handle already closing frees itself in its pending callback, which
  // sees data == nullptr and leaves *this alone.
  if (listener_ != nullptr) {
    listener_->data = nullptr;
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(listener_))) {
      uv_close(reinterpret_cast<uv_handle_t*>(listener_), &delete_tcp);
    }
  }
  if (grace_ != nullptr) {
    grace_->data = nullptr;
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(grace_))) {
      uv_close(reinterpret_cast<uv_handle_t*>(grace_), &delete_timer);
    }
  }
}

Status Server::listen(const std::string& host, uint16_t port) {
  if (listener_ != nullptr || closing_) return Status(Code::kConflict, "http: already listening");
  sockaddr_storage addr{};
  std::string ip = host == "localhost" ? "127.0.0.1" : host;
  if (!ip.empty() && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  if (uv_ip4_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    return Status(Code::kInvalid, "http: listen address '" + host + "' is not an IP address");
  }
  auto* tcp = new uv_tcp_t{};
  int rc = uv_tcp_init(loop_, tcp);
  if (rc != 0) {
    delete tcp;
    return Status(Code::kIo, std::string("http: tcp init: ") + uv_strerror(rc));
  }
  tcp->data = this;
  listener_ = tcp;
  rc = uv_tcp_bind(tcp, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp), kBacklog, &Server::on_connection);
  if (rc != 0) {
    tcp->data = nullptr;
    listener_ = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp), &delete_tcp);
    return Status(Code::kIo, "http: listen on " + host + ":" + std::to_string(port) + ": " +
                                 uv_strerror(rc));
  }
  sockaddr_storage bound{};
  int len = sizeof(bound);
  if (uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
    port_ = bound.ss_family == AF_INET6
                ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  spdlog::info("http: listening on {}:{}", host, port_);
  return Status::ok();
}

void Server::on_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<Server*>(listener->data);
  if (self == nullptr) return;
  if (status != 0) {
    spdlog::warn("http: accept: {}", uv_strerror(status));
    return;
  }
  // Always accept, even over the limit, or libuv stops polling the listener.
  auto* c = new Connection(*self, self->next_id_++);
  self->conns_.insert(c);
  if (!c->accept(listener)) return;  // closing; forget() removes it
  if (self->closing_) {
    c->close(CloseReason::kServerShutdown);
  } else if (self->conns_.size() > self->limits_.max_connections) {
    c->close(CloseReason::kConnectionLimit);
  } else {
    c->start();
  }
}

void Server::forget(Connection* c) {
  conns_.erase(c);
  maybe_finish_close();
}

void Server::close(std::function<void()> done) {
  if (closing_) return;
  closing_ = true;
  done_ = std::move(done);
  if (listener_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(listener_), [](uv_handle_t* h) {
      auto* self = static_cast<Server*>(h->data);
      delete_tcp(h);
      if (self == nullptr) return;
      self->listener_ = nullptr;
      self->maybe_finish_close();
    });
  }
  std::vector<Connection*> conns(conns_.begin(), conns_.end());
  for (Connection* c : conns) c->drain();
  if (!conns_.empty()) {
    grace_ = new uv_timer_t{};
    uv_timer_init(loop_, grace_);
    grace_->data = this;
    uv_timer_start(grace_, &Server::on_grace_timer, limits_.shutdown_grace_ms, 0);
  }
  maybe_finish_close();
}

void Server::on_grace_timer(uv_timer_t* t) {
  auto* self = static_cast<Server*>(t->data);
  if (self == nullptr) return;
  std::vector<Connection*> conns(self->conns_.begin(), self->conns_.end());
  for (Connection* c : conns) c->close(CloseReason::kServerShutdown, "shutdown grace expired");
}

void Server::maybe_finish_close() {
  if (!closing_ || finishing_ || !conns_.empty() || listener_ != nullptr) return;
  finishing_ = true;
  if (grace_ == nullptr) {
    finish_close();
    return;
  }
  uv_timer_stop(grace_);
  uv_close(reinterpret_cast<uv_handle_t*>(grace_), [](uv_handle_t* h) {
    auto* self = static_cast<Server*>(h->data);
    delete_timer(h);
    if (self == nullptr) return;
    self->grace_ = nullptr;
    self->finish_close();
  });
}

void Server::finish_close() {
  std::function<void()> done = std::move(done_);
  done_ = nullptr;
  if (done) done();  // may destroy *this: nothing after this line
}

}  // namespace isthmus::http
