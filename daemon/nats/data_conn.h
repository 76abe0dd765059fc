// DataConn: the replication data path's own connection to the local
// nats-server, beside cnats' (nats/client.h). A leader's pulled messages and
// the pull requests and acknowledgements, and a follower's replica writes,
// their acknowledgements and its watch for foreign writes, go through it;
// everything else (JetStream API requests, advisories) stays on cnats.
//
// Why: per replicated message cnats allocates a message and, with headers, a
// hash map, hands it between its reader, delivery and flusher threads and
// the loop, and frees it on its garbage-collector thread. On two shared
// cores that CPU is what the live lag's tail grew by (docs/benchmarks.md).
// Here the loop thread reads and writes the socket itself: a delivered
// message is a view into the read buffer, a write is appended to one output
// buffer that goes to the socket at the end of the loop iteration.
//
// Protocol: nats/wire.h. Connect: TCP (TLS when the URL is tls:// or the
// server requires it: the system's trust store, the URL's host name
// checked), INFO, CONNECT with the URL's user and password or token, or the
// credentials file's JWT and the nonce signed with its seed (cnats'
// nats_Sign: nats_Open must have run, as it has in the daemon); echo off (like
// cnats', so a watch never sees the daemon's own writes); headers and
// no-responders on. Up after the PONG that answers the first PING.
//
// Liveness: a PING every kPingInterval; two unanswered close the
// connection. No reconnect here: the owner opens a new DataConn.
//
// max_payload: from the INFO at connect. A publish above it is refused
// here (kTooLarge), and then, at most every kProbeIntervalMs, a fresh
// connection to the same server reads its INFO again (nats/info_probe.h):
// a server reload that raised max_payload tells the open connections
// nothing, yet accepts their larger messages.
//
// Permissions: nats-server answers a subscription or a publish the user
// may not make with -ERR 'Permissions Violation ...' and keeps the
// connection; so does DataConn. The subject is read from the text
// (nats/permission_violation.h): a refused subscription is told to its
// RefusedHandler, a refused publish to the watches whose patterns its
// subject falls under (watch_refused_publishes). Each violation is also
// logged, at most one line per 10 s.
//
// Thread: loop thread only. Lifetime: close() may run at any time, also
// inside a callback; after it no callback runs. The object itself must not
// be destroyed inside one of its callbacks (on_data_down included): the
// owner frees it later. The libuv handle is freed in its own close callback.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loop/timer.h"
#include "nats/info_probe.h"
#include "nats/url.h"
#include "nats/wire.h"
#include "util/status.h"

namespace isthmus::tls {
class ClientSession;
}

namespace isthmus::nats {

// A .creds file's user JWT and nkey seed.
struct Credentials {
  std::string jwt;
  std::string seed;
};
Result<Credentials> read_credentials(const std::string& path);

class DataConn {
 public:
  struct Options {
    std::string url;          // one of nats.urls (with its user info)
    std::string credentials;  // a .creds file, or empty
    std::string name = "isthmusd-data";
    int64_t connect_timeout_ms = 5000;
  };
  class Listener {
   public:
    virtual ~Listener() = default;
    // Connected and ready: subscribe and publish from here on.
    virtual void on_data_up() = 0;
    // Failed to connect, or lost; called once, not after close().
    virtual void on_data_down(const std::string& reason) = 0;
  };
  // A message for a subscription. Views are valid during the call only.
  using Handler = std::function<void(const wire::ServerOp&)>;
  // The server refused a subscription (its -ERR text: a permissions
  // violation). The connection stays up; the subscription is dead.
  using RefusedHandler = std::function<void(const std::string& error)>;
  // The server refused a publish to `subject` (the subject as published;
  // error: its -ERR text, a permissions violation). The connection stays
  // up; the message was dropped, and so is every later one to a subject the
  // user may not publish to.
  using PublishRefusedHandler = std::function<void(const std::string& subject, const std::string& error)>;

  static constexpr int64_t kPingIntervalMs = 10'000;
  // The largest message accepted from the server: nats-server's ceiling for
  // max_payload (64 MB), plus room for headers. A larger size announced in
  // a MSG line is refused before anything is buffered (wire::Reader).
  static constexpr size_t kMaxReceive = 64 * 1024 * 1024 + 64 * 1024;

  DataConn(uv_loop_t* loop, Options opts, Listener* listener);
  ~DataConn();
  DataConn(const DataConn&) = delete;
  DataConn& operator=(const DataConn&) = delete;

  // Starts connecting; reports on_data_up or on_data_down.
  void open();
  // Closes without a callback.
  void close();
  bool up() const { return state_ == State::kUp; }

  // Subscriptions: a sid for unsubscribe(). Subjects are checked
  // (wire::valid_subject); kInvalid otherwise.
  Result<uint64_t> subscribe(std::string_view subject, Handler handler, RefusedHandler on_refused = {});
  void unsubscribe(uint64_t sid);

  // Who hears of a refused publish: every watch one of whose patterns the
  // refused subject falls under (wire::subject_matches), each once. The
  // server's text is parsed (nats/permission_violation.h); a violation
  // no watch claims is only logged. Nothing goes to the server: a watch may
  // be added at any time, and lasts until unwatched or close(). An id for
  // unwatch_refused_publishes().
  uint64_t watch_refused_publishes(std::vector<std::string> patterns, PublishRefusedHandler handler);
  void unwatch_refused_publishes(uint64_t id);

  // Appends a publish to the output buffer; it reaches the socket at the
  // next flush(). kInvalid for a subject, reply or header the protocol
  // cannot carry (whitespace in a subject, CR/LF in a header...), which
  // callers must not pass on. kTooLarge above the server's max_payload.
  // kUnavailable when not up.
  Status publish(std::string_view subject, std::string_view reply, std::string_view payload);
  Status publish(std::string_view subject, std::string_view reply, wire::HeaderBlock& headers,
                 std::string_view payload);
  // Sends a PING now; on_pong runs when its PONG arrives (the server has
  // read everything sent before it and is answering: a liveness check).
  // Not after close(). kUnavailable when not up.
  Status ping(std::function<void()> on_pong);
  // Writes what was appended (one socket write).
  void flush();
  // Bytes appended and not yet written to the kernel.
  size_t pending_bytes() const { return out_.size() + queued_in_uv_; }
  // The server's max_payload (INFO at connect; a probe's after a refusal).
  size_t max_payload() const { return max_payload_; }
  static constexpr int64_t kProbeIntervalMs = 5'000;

  uint64_t msgs_in() const { return msgs_in_; }
  // -ERR 'Permissions Violation ...' answers (logged; the connection stays).
  uint64_t permission_errors() const { return permission_errors_; }
  // Of those, refused publishes that a watch claimed.
  uint64_t refused_publishes_claimed() const { return refused_publishes_claimed_; }
  uint64_t msgs_out() const { return msgs_out_; }

 private:
  enum class State { kIdle, kConnecting, kHandshake, kUp, kClosed };
  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res);
  void connect_next(const std::string& last_error);
  void permission_violation(std::string_view text);
  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  void handle_bytes(std::span<const uint8_t> net);
  Status handle_op(const wire::ServerOp& op);
  Status on_info(std::string_view json);
  Status send_connect();
  void write_net(std::string_view bytes);  // copies only what the socket does not take at once
  void write_app(std::string_view bytes);
  void fail(const std::string& reason);
  void ping_tick();
  Status too_large(size_t bytes, const char* what);  // kTooLarge, and a probe of the server's INFO

  uv_loop_t* loop_;
  Options opts_;
  NatsUrl url_;
  Listener* listener_;
  uv_tcp_t* tcp_ = nullptr;
  uv_getaddrinfo_t* gai_ = nullptr;      // resolving (frees itself)
  std::vector<sockaddr_storage> addrs_;  // still to try
  State state_ = State::kIdle;
  std::unique_ptr<tls::ClientSession> tls_;
  bool tls_wanted_ = false;
  wire::Reader reader_;
  std::string read_buf_;
  std::string out_;
  std::string tls_out_;  // write_app's scratch for TLS records
  size_t queued_in_uv_ = 0;
  size_t max_payload_ = 1024 * 1024;
  sockaddr_storage peer_{};               // the server's address, once connected
  bool peer_known_ = false;
  std::unique_ptr<InfoProbe> probe_;      // reading the server's INFO again
  int64_t last_probe_mono_ns_ = 0;
  bool probe_warned_ = false;             // a failed probe was logged at warning
  std::string nonce_;
  bool info_seen_ = false;
  bool connect_sent_ = false;
  struct Sub {
    std::string subject;
    Handler handler;
    RefusedHandler on_refused;
  };
  std::map<uint64_t, Sub> subs_;
  uint64_t next_sid_ = 1;
  struct PublishWatch {
    std::vector<std::string> patterns;
    PublishRefusedHandler handler;
  };
  std::map<uint64_t, PublishWatch> publish_watches_;
  uint64_t next_watch_id_ = 1;
  uint64_t refused_publishes_claimed_ = 0;
  int pings_out_ = 0;
  // One per PING awaiting its PONG, in order (empty: the keep-alive's).
  std::deque<std::function<void()>> pong_waiters_;
  std::unique_ptr<loop::Timer> timer_;  // connect deadline, then pings
  uint64_t msgs_in_ = 0, msgs_out_ = 0;
  uint64_t permission_errors_ = 0;
  int64_t last_permission_log_ns_ = 0;
};

// A watch for refused publishes on a DataConn (watch_refused_publishes),
// removed when destroyed (if the connection still exists). Loop thread only.
class RefusedPublishWatch {
 public:
  static Result<std::unique_ptr<RefusedPublishWatch>> create(const std::shared_ptr<DataConn>& conn,
                                                             std::vector<std::string> patterns,
                                                             DataConn::PublishRefusedHandler handler);
  ~RefusedPublishWatch();
  RefusedPublishWatch(const RefusedPublishWatch&) = delete;
  RefusedPublishWatch& operator=(const RefusedPublishWatch&) = delete;

 private:
  RefusedPublishWatch(std::weak_ptr<DataConn> conn, uint64_t id) : conn_(std::move(conn)), id_(id) {}
  std::weak_ptr<DataConn> conn_;
  uint64_t id_;
};

// A subscription on a DataConn, removed when destroyed (if the connection
// still exists). Loop thread only.
class DataSub {
 public:
  static Result<std::unique_ptr<DataSub>> create(const std::shared_ptr<DataConn>& conn, std::string_view subject,
                                                 DataConn::Handler handler, DataConn::RefusedHandler on_refused = {});
  ~DataSub();
  DataSub(const DataSub&) = delete;
  DataSub& operator=(const DataSub&) = delete;

 private:
  DataSub(std::weak_ptr<DataConn> conn, uint64_t sid) : conn_(std::move(conn)), sid_(sid) {}
  std::weak_ptr<DataConn> conn_;
  uint64_t sid_;
};

}  // namespace isthmus::nats
