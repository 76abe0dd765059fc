#include "control_server.h"

#include <cstdio>

#include "protocol.h"

namespace faultproxy {

namespace {

constexpr size_t kMaxLine = 4096;
// Stop reading commands while this many reply bytes wait to be sent.
constexpr size_t kMaxPendingReplies = 64 * 1024;

struct ReplyReq {
  uv_write_t req;
  std::string text;
};

}  // namespace

ControlSession::ControlSession(ControlServer* server, uint64_t id) : server_(server), id_(id) {}

bool ControlSession::accept(uv_stream_t* listener) {
  uv_tcp_init(server_->loop(), tcp_.get());
  tcp_.mark_initialized(this);
  if (uv_accept(listener, tcp_.stream()) != 0) return false;
  uv_tcp_nodelay(tcp_.get(), 1);
  return start_reading();
}

bool ControlSession::start_reading() {
  reading_ = uv_read_start(
                 tcp_.stream(),
                 [](uv_handle_t* h, size_t, uv_buf_t* b) {
                   auto* s = static_cast<ControlSession*>(h->data);
                   *b = s != nullptr ? s->alloc() : uv_buf_init(nullptr, 0);
                 },
                 [](uv_stream_t* h, ssize_t n, const uv_buf_t* b) {
                   auto* s = static_cast<ControlSession*>(h->data);
                   if (s != nullptr) s->on_read(n, b);
                 }) == 0;
  return reading_;
}

uv_buf_t ControlSession::alloc() { return uv_buf_init(buf_, sizeof(buf_)); }

void ControlSession::on_read(ssize_t nread, const uv_buf_t* buf) {
  if (nread < 0) {
    close(nread == UV_EOF ? nullptr : uv_err_name(static_cast<int>(nread)));
    return;
  }
  in_.append(buf->base, static_cast<size_t>(nread));
  size_t start = 0;
  for (;;) {
    size_t nl = in_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(in_.data() + start, nl - start);
    Command cmd;
    std::string err = parse_command(line, &cmd);
    reply(err.empty() ? server_->proxy()->execute(cmd) : "err " + err);
    start = nl + 1;
    if (closing_) return;
  }
  in_.erase(0, start);
  if (in_.size() > kMaxLine) {
    reply("err line too long");
    close("line too long");
    return;
  }
  if (uv_stream_get_write_queue_size(tcp_.stream()) > kMaxPendingReplies) {
    uv_read_stop(tcp_.stream());
    reading_ = false;
  }
}

void ControlSession::reply(std::string line) {
  auto* r = new ReplyReq{};
  r->text = std::move(line);
  r->text.push_back('\n');
  r->req.data = r;
  uv_buf_t b = uv_buf_init(r->text.data(), static_cast<unsigned>(r->text.size()));
  int rc = uv_write(&r->req, tcp_.stream(), &b, 1, [](uv_write_t* req, int status) {
    std::unique_ptr<ReplyReq> own(static_cast<ReplyReq*>(req->data));
    auto* s = owner_of<ControlSession>(req);
    if (s != nullptr) s->on_write_done(status);
  });
  if (rc != 0) {
    delete r;
    close(uv_err_name(rc));
  }
}

void ControlSession::on_write_done(int status) {
  if (status != 0) {
    close(uv_err_name(status));
    return;
  }
  if (!reading_ && uv_stream_get_write_queue_size(tcp_.stream()) <= kMaxPendingReplies / 2) {
    if (!start_reading()) close("read restart failed");
  }
}

void ControlSession::close(const char* why) {
  if (closing_) return;
  closing_ = true;
  tcp_.close();  // replies already in the kernel still go out
  if (why != nullptr) {  // a client hanging up is not worth a line
    std::fprintf(stderr, "faultproxy: control %llu closed: %s\n", static_cast<unsigned long long>(id_), why);
  }
  server_->on_closed(this);
}

ControlServer::ControlServer(uv_loop_t* loop, Reaper* reaper, Proxy* proxy)
    : loop_(loop), reaper_(reaper), proxy_(proxy) {}

ControlServer::~ControlServer() { shutdown(); }

std::string ControlServer::listen(const sockaddr* addr) {
  uv_tcp_init(loop_, listener_.get());
  listener_.mark_initialized(this);
  int rc = uv_tcp_bind(listener_.get(), addr, 0);
  if (rc == 0) {
    rc = uv_listen(listener_.stream(), 16, [](uv_stream_t* s, int status) {
      auto* c = static_cast<ControlServer*>(s->data);
      if (c != nullptr) c->on_accept(status);
    });
  }
  if (rc != 0) return std::string("control listen on ") + format_address(addr) + ": " + uv_strerror(rc);
  return {};
}

std::string ControlServer::local_address() const {
  sockaddr_storage ss{};
  int len = sizeof(ss);
  uv_tcp_getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  return format_address(reinterpret_cast<sockaddr*>(&ss));
}

void ControlServer::on_accept(int status) {
  if (status != 0) return;
  auto s = std::make_unique<ControlSession>(this, next_id_++);
  ControlSession* raw = s.get();
  if (!raw->accept(listener_.stream())) return;  // its handle closes itself
  sessions_.emplace(raw->id(), std::move(s));
}

void ControlServer::on_closed(ControlSession* s) {
  auto it = sessions_.find(s->id());
  if (it == sessions_.end()) return;
  reaper_->bury(std::move(it->second));
  sessions_.erase(it);
}

void ControlServer::shutdown() {
  listener_.close();
  while (!sessions_.empty()) sessions_.begin()->second->close(nullptr);
}

}  // namespace faultproxy
