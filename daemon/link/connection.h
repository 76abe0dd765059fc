// Connection: one TCP connection between two region daemons, carrying link
// frames through a LayerStack. Used for both dialed and accepted sockets.
//
// Thread: loop thread only. Lifetime: owned by the link Manager through a
// unique_ptr. close() may be called at any time (also from inside a handler
// callback); after it no handler callback runs, and the object may be
// destroyed at once: the libuv handle and pending writes are released in
// their own callbacks and never touch the Connection again.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "link/close_reason.h"
#include "link/frame.h"
#include "link/layer.h"

namespace isthmus::tls {
class TlsLayer;
}

namespace isthmus::link {

class Connection;

class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  // TCP connect finished (dialed connections only).
  virtual void on_connected(Connection& c) = 0;
  // A whole frame arrived. Return non-OK to close with kProtocolError.
  virtual Status on_frame(Connection& c, FrameType type, std::span<const uint8_t> body) = 0;
  // The connection closed (by us or the peer); called exactly once, and not
  // for a close() the owner asked for itself.
  virtual void on_closed(Connection& c, CloseReason reason, const std::string& detail) = 0;
};

struct ConnectionStats {
  uint64_t bytes_in = 0;     // on the socket
  uint64_t bytes_out = 0;
  uint64_t frames_in = 0;
  uint64_t frames_out = 0;
  uint64_t frame_bytes_in = 0;   // frame bytes, before decompression/decryption
  uint64_t frame_bytes_out = 0;  // frame bytes, before compression/encryption
};

class Connection {
 public:
  // Takes an initialised, not yet connected uv_tcp_t (or an accepted one).
  Connection(uv_loop_t* loop, ConnectionHandler* handler, uint32_t max_frame_bytes);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uv_tcp_t* handle() { return tcp_; }
  // Dialing side: connect to an address. Reports via on_connected/on_closed.
  Status connect(const sockaddr* addr);
  // Start reading (after connect or accept).
  Status start();

  // Adds a layer next to the socket (TLS); before start() only.
  void push_bottom(std::unique_ptr<Layer> layer) { layers_.push_bottom(std::move(layer)); }
  // Adds a layer next to the frames (S2), in both directions, from now on.
  // Call only from inside ConnectionHandler::on_frame: queued frames are
  // flushed first, and the bytes received after the current frame (maybe in
  // the same read) go through the new layer.
  void push_top(std::unique_ptr<Layer> layer);

  // Queue an encoded data frame; it is written at the next flush().
  void queue(std::vector<uint8_t>&& frame_bytes);
  void queue_copy(std::span<const uint8_t> frame_bytes);
  // Queue a control frame (HELLO, HEARTBEAT): it goes out at the next flush()
  // ahead of every data frame not yet handed to the socket.
  void queue_priority(std::vector<uint8_t>&& frame_bytes);
  // Pass queued frames through the layers and write them to the socket:
  // control frames first, then data frames, in groups of whole frames (one
  // S2 chunk and one socket write per group), while libuv's write queue
  // holds less than send_budget() bytes. The rest stays here (in frame form)
  // and follows as writes complete.
  //
  // What a heartbeat can queue behind (nats-server #7615) is therefore at
  // most about two budgets in libuv plus TCP_NOTSENT_LOWAT in the kernel,
  // and the budget follows the socket's measured drain rate: what it drains
  // in kDrainTargetNs, between kMinBudget and kMaxBudget. A slow link gets
  // small groups (and small DATA frames: group_limit() is the leader's batch
  // size), a fast one full 64 KiB groups. docs/architecture.md, "Heartbeats
  // ahead of data".
  void flush();
  static constexpr int64_t kDrainTargetNs = 10'000'000;  // 10 ms
  static constexpr size_t kMinBudget = 4 * 1024;
  static constexpr size_t kMaxBudget = 64 * 1024;
  static constexpr size_t kInitialBudget = 16 * 1024;  // until a rate is measured
  // Wire bytes allowed in libuv's write queue before the next group waits.
  size_t send_budget() const { return budget_; }
  // Frame bytes per group (before S2/TLS): the budget divided by the recent
  // wire/frame ratio, between kMinBudget and kMaxBudget.
  size_t group_limit() const;
  // Measured drain rate of the socket in bytes per second (0: not yet).
  double drain_rate() const { return rate_; }
  // Bytes accepted but not yet written to the kernel: the link's backpressure.
  size_t pending_bytes() const;
  // Send-side liveness: 0 while libuv's write queue is empty, else the
  // monotonic time of the last write progress (a write completing, or the
  // queue becoming non-empty). The Manager closes a link whose writes made
  // no progress for stale_after (kSendStalled).
  int64_t write_blocked_since_ns() const { return queued_in_uv_ == 0 ? 0 : write_progress_ns_; }
  size_t queued_in_socket() const { return queued_in_uv_; }

  // Close with a reason. Sends a GOAWAY first when `goodbye` is set.
  void close(CloseReason reason, const std::string& detail, bool goodbye);
  bool closed() const { return closed_; }

  std::string peer_address() const;
  const ConnectionStats& stats() const { return stats_; }
  int64_t last_recv_mono_ns() const { return last_recv_ns_; }

  // Free-form per-connection state for the owner.
  std::string peer_name;
  std::string remote_address;  // "host:port" of the other end, kept after close
  bool hello_received = false;
  bool dialed = false;
  int64_t created_mono_ns = 0;
  tls::TlsLayer* tls = nullptr;  // the TLS layer in layers_, if any
  bool compressed = false;       // S2 layer pushed

 private:
  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  void fail(CloseReason reason, const std::string& detail);
  void handle_bytes(std::span<const uint8_t> bytes);
  void write_raw(std::vector<uint8_t>&& bytes);
  void write_frames(std::span<const uint8_t> frames);
  // Send pacing: a write of n bytes completed (drain-rate sample).
  void note_drained(size_t n);
  void set_budget(size_t budget);

  ConnectionHandler* handler_;
  uv_tcp_t* tcp_;
  FrameReader reader_;
  LayerStack layers_;
  std::deque<std::vector<uint8_t>> data_;  // data frames waiting for the socket
  size_t data_bytes_ = 0;
  std::vector<uint8_t> prio_;             // control frames waiting for flush()
  size_t queued_in_uv_ = 0;   // bytes handed to uv_write, not yet completed
  // Drain-rate measurement: only time while writes wait counts.
  int64_t drain_mark_ns_ = 0;   // start of the current busy stretch
  int64_t drain_busy_ns_ = 0;   // busy time in the current sample
  uint64_t drain_bytes_ = 0;    // bytes completed in the current sample
  double rate_ = 0;             // bytes/s, 0: unknown
  double wire_ratio_ = 1.0;     // socket bytes per frame byte, recent data groups
  size_t budget_ = kInitialBudget;
  int lowat_ = 0;               // TCP_NOTSENT_LOWAT now set on the socket
  int64_t write_progress_ns_ = 0;  // see write_blocked_since_ns()
  bool closed_ = false;
  bool pushed_top_ = false;   // push_top() ran inside the current feed
  ConnectionStats stats_;
  int64_t last_recv_ns_ = 0;
  std::vector<char> read_buf_;
};

}  // namespace isthmus::link
