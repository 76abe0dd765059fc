#include "nats/data_conn.h"

#include <nats/nats.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sstream>

#include "nats/permission_violation.h"
#include "tls/client_session.h"

namespace isthmus::nats {
namespace {

constexpr size_t kReadChunk = 256 * 1024;

struct WriteReq {
  uv_write_t req;
  std::string buf;
};

std::string base64url(const unsigned char* p, size_t n) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (n - i == 1) {
    uint32_t v = uint32_t{p[i]} << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
  } else if (n - i == 2) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

}  // namespace

Result<Credentials> read_credentials(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status(Code::kIo, "cannot read credentials file " + path + ": " + std::strerror(errno));
  Credentials c;
  std::string line;
  // The value is the first non-empty line after a "-----BEGIN ...-----"
  // marker of its kind.
  std::string* want = nullptr;
  while (std::getline(f, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    size_t b = 0;
    while (b < line.size() && (line[b] == ' ' || line[b] == '\t')) ++b;
    line.erase(0, b);
    if (line.empty()) continue;
    if (line.rfind("---", 0) == 0) {
      want = nullptr;
      if (line.find("BEGIN") != std::string::npos && line.find("JWT") != std::string::npos) want = &c.jwt;
      if (line.find("BEGIN") != std::string::npos && line.find("SEED") != std::string::npos) want = &c.seed;
      continue;
    }
    if (want != nullptr && want->empty()) *want = line;
    want = nullptr;
  }
  if (c.jwt.empty()) return Status(Code::kInvalid, "credentials file " + path + " holds no user JWT");
  if (c.seed.empty()) return Status(Code::kInvalid, "credentials file " + path + " holds no nkey seed");
  return c;
}

DataConn::DataConn(uv_loop_t* loop, Options opts, Listener* listener)
    : loop_(loop), opts_(std::move(opts)), listener_(listener) {
  reader_.set_max_message(kMaxReceive);
}

DataConn::~DataConn() { close(); }

void DataConn::open() {
  auto u = parse_nats_url(opts_.url);
  if (!u) {
    state_ = State::kConnecting;
    fail(u.status().message());
    return;
  }
  url_ = std::move(*u);
  tls_wanted_ = url_.tls;
  state_ = State::kConnecting;
  timer_ = std::make_unique<loop::Timer>(loop_);
  timer_->start(static_cast<uint64_t>(opts_.connect_timeout_ms), 0,
                [this] { fail("no connection to " + url_.host + ":" + std::to_string(url_.port) + " within " +
                              std::to_string(opts_.connect_timeout_ms) + " ms"); });
  // Resolved off the loop thread (a slow resolver must not stall the
  // links); each address is then tried in turn ("localhost" may give ::1
  // first).
  auto* req = new uv_getaddrinfo_t;
  req->data = this;
  gai_ = req;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(loop_, req, &DataConn::on_resolved, url_.host.c_str(), std::to_string(url_.port).c_str(),
                          &hints);
  if (rc != 0) {
    delete req;
    gai_ = nullptr;
    fail("cannot resolve " + url_.host + ": " + uv_strerror(rc));
  }
}

void DataConn::on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* self = static_cast<DataConn*>(req->data);
  delete req;
  if (self == nullptr) {  // closed meanwhile
    uv_freeaddrinfo(res);
    return;
  }
  self->gai_ = nullptr;
  if (status != 0 || res == nullptr) {
    uv_freeaddrinfo(res);
    self->fail("cannot resolve " + self->url_.host + ": " + uv_strerror(status));
    return;
  }
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, a->ai_addr, std::min<size_t>(a->ai_addrlen, sizeof(ss)));
    self->addrs_.push_back(ss);
  }
  uv_freeaddrinfo(res);
  self->connect_next("");
}

void DataConn::connect_next(const std::string& last_error) {
  if (tcp_ != nullptr) {
    tcp_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    tcp_ = nullptr;
  }
  if (addrs_.empty()) {
    fail("connect to " + url_.host + ":" + std::to_string(url_.port) + ": " + last_error);
    return;
  }
  sockaddr_storage ss = addrs_.front();
  addrs_.erase(addrs_.begin());
  tcp_ = new uv_tcp_t;
  uv_tcp_init(loop_, tcp_);
  tcp_->data = this;
  auto* req = new uv_connect_t;
  int rc = uv_tcp_connect(req, tcp_, reinterpret_cast<const sockaddr*>(&ss), &DataConn::on_connect);
  if (rc != 0) {
    delete req;
    connect_next(uv_strerror(rc));
  }
}

void DataConn::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<DataConn*>(req->handle->data);
  delete req;
  if (self == nullptr) return;
  if (status != 0) {
    self->connect_next(uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(self->tcp_, 1);
  int len = sizeof(self->peer_);
  self->peer_known_ =
      uv_tcp_getpeername(self->tcp_, reinterpret_cast<sockaddr*>(&self->peer_), &len) == 0;
  self->state_ = State::kHandshake;
  int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(self->tcp_), &DataConn::on_alloc, &DataConn::on_read);
  if (rc != 0) self->fail(std::string("read: ") + uv_strerror(rc));
}

void DataConn::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<DataConn*>(h->data);
  if (self == nullptr) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  self->read_buf_.resize(kReadChunk);
  *buf = uv_buf_init(self->read_buf_.data(), static_cast<unsigned>(self->read_buf_.size()));
}

void DataConn::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<DataConn*>(s->data);
  if (self == nullptr || nread == 0) return;
  if (nread < 0) {
    self->fail(nread == UV_EOF ? std::string("closed by the server")
                               : std::string("read: ") + uv_strerror(static_cast<int>(nread)));
    return;
  }
  self->handle_bytes(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread)));
}

void DataConn::handle_bytes(std::span<const uint8_t> net) {
  Status st;
  if (tls_) {
    std::string app, back;
    st = tls_->read(net, app, back);
    if (!back.empty()) write_net(back);
    if (st && tls_->done() && !connect_sent_) st = send_connect();
    if (st && !app.empty()) {
      st = reader_.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(app.data()), app.size()),
                        [this](const wire::ServerOp& op) { return handle_op(op); });
    }
  } else {
    st = reader_.feed(net, [this](const wire::ServerOp& op) { return handle_op(op); });
  }
  if (state_ == State::kClosed) return;
  if (!st) {
    fail(st.message());
    return;
  }
  // Answers to PINGs, and the handshake's CONNECT, go out now.
  flush();
}

Status DataConn::handle_op(const wire::ServerOp& op) {
  if (state_ == State::kClosed) return Status(Code::kUnavailable, "closed");
  switch (op.kind) {
    case wire::ServerOp::Kind::kMsg: {
      ++msgs_in_;
      auto it = subs_.find(op.sid);
      if (it != subs_.end()) {
        Handler h = it->second.handler;  // the handler may unsubscribe itself
        h(op);
      }
      return Status::ok();
    }
    case wire::ServerOp::Kind::kPing:
      wire::append_pong(out_);
      return Status::ok();
    case wire::ServerOp::Kind::kPong:
      if (!pong_waiters_.empty() && pong_waiters_.front()) {
        // The answer to a ping(): not the keep-alive's (pings_out_).
        auto cb = std::move(pong_waiters_.front());
        pong_waiters_.pop_front();
        cb();  // may close(): nothing of this connection is touched after
        return Status::ok();
      }
      if (!pong_waiters_.empty()) pong_waiters_.pop_front();
      if (pings_out_ > 0) --pings_out_;
      if (state_ == State::kHandshake) {
        state_ = State::kUp;
        timer_->start(static_cast<uint64_t>(kPingIntervalMs), static_cast<uint64_t>(kPingIntervalMs),
                      [this] { ping_tick(); });
        listener_->on_data_up();
      }
      return Status::ok();
    case wire::ServerOp::Kind::kOk:
      return Status::ok();
    case wire::ServerOp::Kind::kErr:
      // A permissions violation concerns one subject (a replica's, a
      // consumer's); the server keeps the connection, and so do we: the
      // owner of the subscription or of the refused publish hears of it
      // and stops what it concerns (its stream), the others go on. Every
      // other -ERR precedes the server's close.
      if (op.text.find("Permissions Violation") != std::string_view::npos) {
        ++permission_errors_;
        permission_violation(op.text);
        // At most one line per 10 s: a refused pull would repeat every few ms.
        const int64_t now = loop::mono_ns();
        if (last_permission_log_ns_ == 0 || now - last_permission_log_ns_ >= 10'000'000'000) {
          spdlog::warn("nats data connection: server: {} ({} permission errors so far)", op.text,
                       permission_errors_);
          last_permission_log_ns_ = now;
        }
        return Status::ok();
      }
      return Status(Code::kUnavailable, "server: " + std::string(op.text));
    case wire::ServerOp::Kind::kInfo:
      return on_info(op.text);
  }
  return Status::ok();
}

Status DataConn::on_info(std::string_view json) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status(Code::kInvalid, "NATS protocol: INFO is not a JSON object");
  // max_payload bounds what we publish. Not what we receive: a stream may
  // hold messages stored before the limit was lowered, or sourced from a
  // server with a higher one, and refusing one would stall its stream (the
  // consumer redelivers it). Received messages are bounded by nats-server's
  // own ceiling for max_payload instead (reader_, set in the constructor).
  if (j.contains("max_payload") && j["max_payload"].is_number_unsigned()) {
    max_payload_ = j["max_payload"].get<size_t>();
  }
  if (info_seen_) return Status::ok();  // an update (cluster topology): nothing to do
  info_seen_ = true;
  if (j.contains("headers") && j["headers"].is_boolean() && !j["headers"].get<bool>()) {
    return Status(Code::kUnsupported, "the server does not support headers");
  }
  if (j.contains("nonce") && j["nonce"].is_string()) nonce_ = j["nonce"].get<std::string>();
  const bool server_tls = j.contains("tls_required") && j["tls_required"].is_boolean() && j["tls_required"].get<bool>();
  if (tls_wanted_ && !server_tls && !(j.contains("tls_available") && j["tls_available"].is_boolean() &&
                                      j["tls_available"].get<bool>())) {
    return Status(Code::kUnsupported, "tls:// URL, but the server offers no TLS");
  }
  if (server_tls || tls_wanted_) {
    auto s = tls::ClientSession::create(url_.host);
    if (!s) return s.status();
    tls_ = std::move(*s);
    std::string hello;
    Status st = tls_->start(hello);
    if (!st) return st;
    write_net(hello);
    return Status::ok();  // CONNECT once the handshake is done
  }
  return send_connect();
}

Status DataConn::send_connect() {
  nlohmann::json c;
  c["verbose"] = false;
  c["pedantic"] = false;
  c["tls_required"] = tls_ != nullptr;
  c["name"] = opts_.name;
  c["lang"] = "isthmusd";
  c["version"] = "1";
  c["protocol"] = 1;
  c["echo"] = false;
  c["headers"] = true;
  c["no_responders"] = true;
  if (!opts_.credentials.empty()) {
    auto creds = read_credentials(opts_.credentials);
    if (!creds) return creds.status();
    c["jwt"] = creds->jwt;
    if (!nonce_.empty()) {
      unsigned char* sig = nullptr;
      int sig_len = 0;
      natsStatus s = nats_Sign(creds->seed.c_str(), nonce_.c_str(), &sig, &sig_len);
      if (s != NATS_OK) {
        const char* detail = nats_GetLastError(nullptr);
        return Status(Code::kInvalid, "cannot sign the server's nonce with " + opts_.credentials + ": " +
                                          (detail != nullptr && *detail != '\0' ? detail : natsStatus_GetText(s)));
      }
      c["sig"] = base64url(sig, static_cast<size_t>(sig_len));
      free(sig);
    }
  } else if (!url_.user.empty()) {
    c["user"] = url_.user;
    c["pass"] = url_.password;
  } else if (!url_.token.empty()) {
    c["auth_token"] = url_.token;
  }
  connect_sent_ = true;
  std::string b;
  wire::append_connect(b, c.dump());
  wire::append_ping(b);
  ++pings_out_;
  pong_waiters_.emplace_back();
  write_app(b);
  return Status::ok();
}

// The subscriptions on a refused subject, or the watches of a refused
// publish's subject, hear of it. Each is looked up again just before it
// runs: an earlier one may have unsubscribed, unwatched or closed.
void DataConn::permission_violation(std::string_view text) {
  auto v = parse_permission_violation(text);
  if (!v) return;  // logged by the caller, with the text as it came
  const std::string error(text);
  switch (v->kind) {
    case PermissionViolation::Kind::kSubscription: {
      std::vector<uint64_t> to_call;
      for (const auto& [sid, sub] : subs_) {
        if (sub.subject == v->subject && sub.on_refused) to_call.push_back(sid);
      }
      // Each handler only while its subscription (and the connection) still
      // stands: an earlier one may have unsubscribed it or closed.
      for (uint64_t sid : to_call) {
        auto it = subs_.find(sid);
        if (state_ == State::kClosed || it == subs_.end()) continue;
        RefusedHandler f = it->second.on_refused;
        f(error);
      }
      return;
    }
    case PermissionViolation::Kind::kPublish: {
      std::vector<uint64_t> to_call;
      for (const auto& [id, w] : publish_watches_) {
        for (const auto& p : w.patterns) {
          if (wire::subject_matches(p, v->subject)) {
            to_call.push_back(id);
            break;
          }
        }
      }
      if (!to_call.empty()) ++refused_publishes_claimed_;
      for (uint64_t id : to_call) {
        auto it = publish_watches_.find(id);
        if (state_ == State::kClosed || it == publish_watches_.end()) continue;
        PublishRefusedHandler f = it->second.handler;
        f(v->subject, error);
      }
      return;
    }
    case PermissionViolation::Kind::kReply:
      return;  // a reserved reply subject: none of ours is (inboxes)
  }
}

uint64_t DataConn::watch_refused_publishes(std::vector<std::string> patterns, PublishRefusedHandler handler) {
  uint64_t id = next_watch_id_++;
  if (state_ != State::kClosed) publish_watches_[id] = PublishWatch{std::move(patterns), std::move(handler)};
  return id;
}

void DataConn::unwatch_refused_publishes(uint64_t id) { publish_watches_.erase(id); }

Result<uint64_t> DataConn::subscribe(std::string_view subject, Handler handler, RefusedHandler on_refused) {
  if (!up()) return Status(Code::kUnavailable, "NATS data connection not up");
  if (!wire::valid_subject(subject)) return Status(Code::kInvalid, "cannot subscribe to '" + std::string(subject) + "'");
  uint64_t sid = next_sid_++;
  subs_[sid] = Sub{std::string(subject), std::move(handler), std::move(on_refused)};
  wire::append_sub(out_, subject, sid);
  return sid;
}

void DataConn::unsubscribe(uint64_t sid) {
  if (subs_.erase(sid) == 0 || !up()) return;
  wire::append_unsub(out_, sid);
}

Status DataConn::publish(std::string_view subject, std::string_view reply, std::string_view payload) {
  if (!up()) return Status(Code::kUnavailable, "NATS data connection not up");
  if (!wire::valid_subject(subject) || (!reply.empty() && !wire::valid_subject(reply))) {
    return Status(Code::kInvalid, "cannot publish to '" + std::string(subject) + "'");
  }
  if (payload.size() > max_payload_) return too_large(payload.size(), " bytes");
  wire::append_pub(out_, subject, reply, payload);
  ++msgs_out_;
  return Status::ok();
}

Status DataConn::publish(std::string_view subject, std::string_view reply, wire::HeaderBlock& headers,
                         std::string_view payload) {
  if (!up()) return Status(Code::kUnavailable, "NATS data connection not up");
  if (!wire::valid_subject(subject) || (!reply.empty() && !wire::valid_subject(reply))) {
    return Status(Code::kInvalid, "cannot publish to '" + std::string(subject) + "'");
  }
  std::string_view h = headers.finish();
  if (h.size() + payload.size() > max_payload_) return too_large(h.size() + payload.size(), " bytes with headers");
  wire::append_hpub(out_, subject, reply, h, payload);
  ++msgs_out_;
  return Status::ok();
}

void DataConn::flush() {
  if (out_.empty() || state_ == State::kClosed || tcp_ == nullptr) return;
  if (state_ != State::kUp && state_ != State::kHandshake) return;
  if (tls_ && !tls_->done()) return;  // CONNECT first, once the handshake is done
  write_app(out_);
  out_.clear();  // keeps its capacity for the next iteration's writes
}

void DataConn::write_app(std::string_view bytes) {
  if (tls_) {
    tls_out_.clear();
    Status st = tls_->write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
                            tls_out_);
    if (!st) {
      fail(st.message());
      return;
    }
    write_net(tls_out_);
    return;
  }
  write_net(bytes);
}

void DataConn::write_net(std::string_view bytes) {
  if (bytes.empty() || tcp_ == nullptr || state_ == State::kClosed) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(tcp_);
  // Most writes fit the socket at once: written from the caller's buffer,
  // nothing copied or kept. Only what the socket does not take is copied
  // into a request (libuv refuses a direct write while one is queued).
  if (queued_in_uv_ == 0) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
    int n = uv_try_write(stream, &b, 1);
    if (n == static_cast<int>(bytes.size())) return;
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
      fail(std::string("write: ") + uv_strerror(n));
      return;
    }
  }
  auto* w = new WriteReq;
  w->buf.assign(bytes);
  w->req.data = w;
  uv_buf_t b = uv_buf_init(w->buf.data(), static_cast<unsigned>(w->buf.size()));
  queued_in_uv_ += w->buf.size();
  int rc = uv_write(&w->req, stream, &b, 1, &DataConn::on_write);
  if (rc != 0) {
    queued_in_uv_ -= w->buf.size();
    delete w;
    fail(std::string("write: ") + uv_strerror(rc));
  }
}

void DataConn::on_write(uv_write_t* req, int status) {
  auto* w = static_cast<WriteReq*>(req->data);
  auto* self = static_cast<DataConn*>(req->handle->data);
  size_t n = w->buf.size();
  delete w;
  if (self == nullptr) return;
  self->queued_in_uv_ -= n;
  if (status != 0 && status != UV_ECANCELED) self->fail(std::string("write: ") + uv_strerror(status));
}

void DataConn::ping_tick() {
  if (pings_out_ >= 2) {
    fail("no answer to two PINGs (" + std::to_string(2 * kPingIntervalMs / 1000) + "-" +
         std::to_string(3 * kPingIntervalMs / 1000) + " s)");
    return;
  }
  ++pings_out_;
  pong_waiters_.emplace_back();
  wire::append_ping(out_);
  flush();
}

Status DataConn::ping(std::function<void()> on_pong) {
  if (state_ != State::kUp) return Status(Code::kUnavailable, "NATS data connection not up");
  // (Not counted in pings_out_, nor is its PONG: the keep-alive's
  // two-unanswered rule is about its own pings.)
  pong_waiters_.push_back(std::move(on_pong));
  wire::append_ping(out_);
  flush();
  return Status::ok();
}

Status DataConn::too_large(size_t bytes, const char* what) {
  Status st(Code::kTooLarge, "a message of " + std::to_string(bytes) + what +
                                 ", more than the server's max_payload " + std::to_string(max_payload_));
  const int64_t now = loop::mono_ns();
  if (peer_known_ && !probe_ && now - last_probe_mono_ns_ >= kProbeIntervalMs * 1'000'000) {
    last_probe_mono_ns_ = now;
    probe_ = std::make_unique<InfoProbe>(loop_, peer_, 2'000, [this](Result<nlohmann::json> r) {
      probe_.reset();  // (the probe is done with itself: see InfoProbe)
      if (!r) {
        // Once per connection at warning: a server that sends no INFO in
        // clear text first (TLS before anything, or a proxy in front) cannot
        // be asked; a raised max_payload then needs a daemon restart.
        if (!probe_warned_) {
          spdlog::warn("nats data connection: cannot read the server's INFO again to see whether max_payload was "
                       "raised: {} (a restart of the daemon picks up a new limit)",
                       r.status().message());
          probe_warned_ = true;
        } else {
          spdlog::debug("nats data connection: reading the server's INFO again: {}", r.status().message());
        }
        return;
      }
      if (!r->contains("max_payload") || !(*r)["max_payload"].is_number_unsigned()) return;
      const size_t now_max = (*r)["max_payload"].get<size_t>();
      if (now_max == max_payload_) return;
      spdlog::info("nats data connection: the server's max_payload is now {} (was {}; its configuration was "
                   "reloaded)",
                   now_max, max_payload_);
      max_payload_ = now_max;
    });
  }
  return st;
}

void DataConn::fail(const std::string& reason) {
  if (state_ == State::kClosed || state_ == State::kIdle) return;
  close();
  listener_->on_data_down(reason);
}

void DataConn::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  if (timer_) timer_->stop();  // not freed: close() may run inside its callback
  if (gai_ != nullptr) {
    gai_->data = nullptr;  // the request frees itself in on_resolved
    gai_ = nullptr;
  }
  subs_.clear();
  publish_watches_.clear();
  pong_waiters_.clear();
  probe_.reset();
  if (tcp_ != nullptr) {
    tcp_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    tcp_ = nullptr;
  }
}

Result<std::unique_ptr<DataSub>> DataSub::create(const std::shared_ptr<DataConn>& conn, std::string_view subject,
                                                  DataConn::Handler handler, DataConn::RefusedHandler on_refused) {
  if (!conn) return Status(Code::kUnavailable, "NATS data connection not up");
  auto sid = conn->subscribe(subject, std::move(handler), std::move(on_refused));
  if (!sid) return sid.status();
  return std::unique_ptr<DataSub>(new DataSub(conn, *sid));
}

Result<std::unique_ptr<RefusedPublishWatch>> RefusedPublishWatch::create(const std::shared_ptr<DataConn>& conn,
                                                                          std::vector<std::string> patterns,
                                                                          DataConn::PublishRefusedHandler handler) {
  if (!conn) return Status(Code::kUnavailable, "NATS data connection not up");
  uint64_t id = conn->watch_refused_publishes(std::move(patterns), std::move(handler));
  return std::unique_ptr<RefusedPublishWatch>(new RefusedPublishWatch(conn, id));
}

RefusedPublishWatch::~RefusedPublishWatch() {
  if (auto c = conn_.lock()) c->unwatch_refused_publishes(id_);
}

DataSub::~DataSub() {
  if (auto c = conn_.lock()) c->unsubscribe(sid_);
}

}  // namespace isthmus::nats
