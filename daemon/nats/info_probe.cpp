#include "nats/info_probe.h"

#include <cstring>

namespace isthmus::nats {

InfoProbe::InfoProbe(uv_loop_t* loop, const sockaddr_storage& addr, uint64_t timeout_ms, Done done)
    : timer_(loop), done_(std::move(done)) {
  tcp_ = new uv_tcp_t;
  uv_tcp_init(loop, tcp_);
  tcp_->data = this;
  timer_.start(timeout_ms, 0, [this, timeout_ms] {
    finish(Status(Code::kTimeout, "no INFO within " + std::to_string(timeout_ms) + " ms"));
  });
  auto* req = new uv_connect_t;
  int rc = uv_tcp_connect(req, tcp_, reinterpret_cast<const sockaddr*>(&addr), &InfoProbe::on_connect);
  if (rc != 0) {
    delete req;
    // Reported from the loop, not from inside the constructor.
    timer_.start(0, 0, [this, rc] { finish(Status(Code::kIo, std::string("connect: ") + uv_strerror(rc))); });
  }
}

InfoProbe::~InfoProbe() {
  done_ = nullptr;
  close_tcp();
}

void InfoProbe::close_tcp() {
  if (tcp_ == nullptr) return;
  tcp_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  tcp_ = nullptr;
}

void InfoProbe::finish(Result<nlohmann::json> r) {
  timer_.stop();
  close_tcp();
  if (!done_) return;
  Done d = std::move(done_);
  done_ = nullptr;
  d(std::move(r));  // may destroy this object: nothing after
}

void InfoProbe::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<InfoProbe*>(req->handle->data);
  delete req;
  if (self == nullptr) return;
  if (status != 0) {
    self->finish(Status(Code::kIo, std::string("connect: ") + uv_strerror(status)));
    return;
  }
  int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(self->tcp_), &InfoProbe::on_alloc, &InfoProbe::on_read);
  if (rc != 0) self->finish(Status(Code::kIo, std::string("read: ") + uv_strerror(rc)));
}

void InfoProbe::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<InfoProbe*>(h->data);
  if (self == nullptr) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  *buf = uv_buf_init(self->buf_, sizeof(self->buf_));
}

void InfoProbe::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<InfoProbe*>(s->data);
  if (self == nullptr || nread == 0) return;
  if (nread < 0) {
    self->finish(Status(Code::kIo, nread == UV_EOF ? std::string("closed before INFO")
                                                   : std::string("read: ") + uv_strerror(static_cast<int>(nread))));
    return;
  }
  self->line_.append(buf->base, static_cast<size_t>(nread));
  size_t end = self->line_.find("\r\n");
  if (end == std::string::npos) {
    if (self->line_.size() > kMaxInfoLine) self->finish(Status(Code::kTooLarge, "INFO line too long"));
    return;
  }
  std::string_view line(self->line_.data(), end);
  if (line.size() < 5 || (line.substr(0, 5) != "INFO " && line.substr(0, 5) != "info ")) {
    self->finish(Status(Code::kInvalid, "not a NATS server (no INFO)"));
    return;
  }
  auto j = nlohmann::json::parse(line.substr(5), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    self->finish(Status(Code::kInvalid, "INFO is not a JSON object"));
    return;
  }
  self->finish(std::move(j));
}

}  // namespace isthmus::nats
