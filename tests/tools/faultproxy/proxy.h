// The forwarding core: a listener, one Connection per accepted client, and
// for each connection two Pipes (a2b: client -> target, b2a: target ->
// client). Each Pipe is a delay line drained by a timer, under the
// direction's fault settings, which are shared by all connections. The
// bandwidth cap is one token bucket per direction shared by all connections.
//
// Memory is bounded per pipe: reading from the source stops while the delay
// line holds more than queue_bytes, and at most kMaxInflight bytes wait in
// libuv's write queue; beyond that the kernel's socket buffers and TCP flow
// control push back on the peer.
// Thread-safety: loop thread only.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "delay_line.h"
#include "protocol.h"
#include "reaper.h"
#include "token_bucket.h"
#include "uv_handle.h"

namespace faultproxy {

class Connection;
class Proxy;

class Pipe {
 public:
  Pipe(Connection* conn, int dir);

  void start_reading();
  // Moves what is due from the delay line to the destination; arms the timer
  // for what is not. Called after every event that can unblock the pipe.
  void pump();
  // Forward at most n more bytes, then reset the connection.
  void cut(uint64_t n);
  void cancel_cut() { cut_left_ = -1; }
  void close_timer() { timer_.close(); }

  uint64_t forwarded() const { return forwarded_; }
  size_t queued() const { return line_.bytes() + inflight_; }
  bool done() const { return shutdown_done_; }

  // libuv callbacks, dispatched by Connection.
  void on_read(ssize_t nread, const uv_buf_t* buf);
  void on_write_done(size_t n, int status);
  void on_shutdown_done(int status);
  uv_buf_t alloc();

 private:
  uv_stream_t* src() const;
  uv_stream_t* dst() const;
  bool dst_ready() const;
  const DirSettings& settings() const;
  void write(std::vector<char> data);
  void arm_timer(uint64_t ns);
  void after_pump();

  Connection* conn_;
  int dir_;
  DelayLine line_;
  UvHandle<uv_timer_t> timer_;
  std::unique_ptr<char[]> scratch_;
  size_t inflight_ = 0;        // bytes handed to uv_write, not yet called back
  size_t inflight_writes_ = 0;
  uint64_t forwarded_ = 0;
  int64_t cut_left_ = -1;      // -1: no cut pending
  uint64_t cut_total_ = 0;
  uint64_t cut_deadline_ns_ = 0;
  bool started_ = false;       // start_reading() was called: the source is connected
  bool reading_ = false;
  bool src_eof_ = false;
  bool shutdown_sent_ = false;
  bool shutdown_done_ = false;
};

class Connection : public Reapable {
 public:
  Connection(Proxy* proxy, uint64_t id);
  ~Connection() override;

  // Accepts the pending client on server. False when accept failed.
  bool accept(uv_stream_t* server);
  // Connects to the target and starts forwarding.
  void start(const sockaddr* target);
  // Closes both sockets (with RST when reset) and hands this to the proxy.
  // The reason is logged once. Idempotent.
  void close(const std::string& reason, bool reset);
  void maybe_finished();

  bool closing() const { return closing_; }
  bool target_connected() const { return target_connected_; }
  uint64_t id() const { return id_; }
  Proxy* proxy() const { return proxy_; }
  Pipe& pipe(int dir) { return dir == kA2B ? a2b_ : b2a_; }
  UvHandle<uv_tcp_t>& client() { return client_; }
  UvHandle<uv_tcp_t>& target() { return target_; }
  // The pipe reading from stream (client -> a2b, target -> b2a).
  Pipe& pipe_reading(const uv_stream_t* s) { return s == client_.stream() ? a2b_ : b2a_; }

 private:
  void on_connected(int status);

  Proxy* proxy_;
  uint64_t id_;
  UvHandle<uv_tcp_t> client_;
  UvHandle<uv_tcp_t> target_;
  Pipe a2b_;
  Pipe b2a_;
  bool target_connected_ = false;
  bool closing_ = false;
};

struct ProxyStats {
  uint64_t bytes[kDirCount] = {0, 0};   // delivered to the destination socket
  uint64_t writes[kDirCount] = {0, 0};  // writes that delivered them
  uint64_t accepted = 0;  // connections forwarded (accepted while up)
  uint64_t refused = 0;   // connections reset on arrival while down
  uint64_t active = 0;
};

class Proxy {
 public:
  Proxy(uv_loop_t* loop, Reaper* reaper, const sockaddr_storage& target, uint64_t seed);
  ~Proxy();

  // Binds and listens. Returns an empty string or the error.
  std::string listen(const sockaddr* addr);
  // Kernel socket buffers (SO_RCVBUF and SO_SNDBUF) of the proxy's own
  // sockets, in bytes; 0 keeps the kernel's (auto-tuned, up to megabytes on
  // loopback). A small value models a bottleneck with a bounded buffer: the
  // kernel behind a stalled or rate-capped direction cannot soak up
  // megabytes and hide the backpressure from the sender. Set before listen().
  void set_socket_buffer(int bytes) { sockbuf_ = bytes; }
  int socket_buffer() const { return sockbuf_; }
  // Applies socket_buffer() to an initialised handle that has a socket.
  void apply_socket_buffer(uv_tcp_t* h) const;
  // The bound address, "HOST:PORT".
  std::string local_address() const;
  // Executes one control command; returns the reply line without newline.
  std::string execute(const Command& cmd);
  // Closes the listener and every connection.
  void shutdown();

  // For connections and pipes.
  uv_loop_t* loop() const { return loop_; }
  const DirSettings& settings(int dir) const { return settings_[dir]; }
  TokenBucket& bucket(int dir) { return buckets_[dir]; }
  // A jitter sample in nanoseconds, uniform in [-ms, +ms].
  int64_t jitter_ns(uint32_t ms);
  void count_forwarded(int dir, size_t n) {
    stats_.bytes[dir] += n;
    ++stats_.writes[dir];
  }
  void on_closed(Connection* c);

 private:
  void on_accept(int status);
  size_t reset_all(const std::string& reason);
  void pump_all();
  std::string stats_line() const;

  uv_loop_t* loop_;
  Reaper* reaper_;
  sockaddr_storage target_;
  UvHandle<uv_tcp_t> listener_;
  DirSettings settings_[kDirCount];
  TokenBucket buckets_[kDirCount];
  std::mt19937_64 rng_;
  int sockbuf_ = 0;
  std::map<uint64_t, std::unique_ptr<Connection>> conns_;
  ProxyStats stats_;
  uint64_t next_id_ = 1;
  bool down_ = false;
};

// "HOST:PORT" of a socket address ("[v6]:PORT" for IPv6).
std::string format_address(const sockaddr* sa);

}  // namespace faultproxy
