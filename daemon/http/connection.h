// Connection: one accepted HTTP connection of a Server (internal to
// daemon/http). Reads bytes into a RequestParser, hands complete requests to
// the Router one at a time, writes responses in order, and enforces the
// timeouts and backpressure of Limits. Every close has a CloseReason.
//
// Lifetime: created by the Server on accept, owns its uv_tcp_t and
// uv_timer_t, and deletes itself in the last of their close callbacks (after
// libuv has cancelled any pending write or shutdown request), never before.
// It tells its Server through forget() unless detach()ed.
// Threads: loop thread only.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "http/request_parser.h"
#include "http/response.h"

namespace isthmus::http {

class Router;
class Server;
struct Limits;

enum class CloseReason {
  kClientClosed,     // the client closed (EOF) between requests
  kReadError,
  kWriteError,
  kAcceptError,
  kIdleTimeout,      // nothing to do for idle_timeout_ms
  kHeaderTimeout,    // headers not complete within header_timeout_ms (slowloris)
  kRequestTimeout,   // body not complete within request_timeout_ms
  kResponseTimeout,  // handler or client reading the response made no progress
  kBadRequest,       // the parser refused the request (400/413/431/501/505)
  kDone,             // a response ended the connection (Connection: close)
  kConnectionLimit,  // max_connections reached at accept
  kServerShutdown,
};

const char* close_reason_name(CloseReason r);

class Connection {
 public:
  Connection(Server& server, uint64_t id);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Accepts the pending connection of `listener`; false (and logs) on error.
  bool accept(uv_stream_t* listener);
  void start();
  // Idempotent. The object is deleted later, in the close callbacks.
  void close(CloseReason reason, const std::string& detail = {});
  // Server shutdown: close now if idle, else after the response in flight.
  void drain();
  // The Server is going away: never call it again.
  void detach() { server_ = nullptr; }

 private:
  struct Pending;  // shared with the Responder of the request in flight
  struct WriteReq;
  enum class TimerKind { kNone, kIdle, kHeader, kRequest, kResponse, kLinger };

  ~Connection();  // only through the close callbacks

  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_timer(uv_timer_t* t);
  static void on_closed(uv_handle_t* h);

  void handle_bytes(const char* data, size_t n);
  void handle_eof();
  void pump();
  void begin_request(Request req);
  void finish_request(Response resp);
  void send_final(const Response& resp, CloseReason reason, const std::string& detail);
  void write(std::string data);
  void after_final_write();
  void update_reading();
  void arm_timer();
  bool server_closing() const;
  const Limits& limits() const;
  uint64_t now() const;

  Server* server_;
  Router& router_;
  uv_loop_t* loop_;
  uint64_t id_;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  uv_shutdown_t shutdown_req_{};
  int open_handles_ = 0;
  PeerAddress peer_;
  RequestParser parser_;

  std::shared_ptr<Pending> pending_;  // request in flight, if any
  bool in_flight_ = false;
  bool cur_keep_alive_ = true;
  bool cur_http10_ = false;
  bool cur_head_ = false;

  uint64_t request_start_ = 0;  // loop time of the current request's first bytes
  size_t write_bytes_ = 0;      // queued, not yet written
  size_t writes_pending_ = 0;
  bool reading_ = false;
  bool pumping_ = false;
  bool peer_eof_ = false;
  bool draining_ = false;
  bool final_sent_ = false;     // a response that ends the connection is queued
  bool lingering_ = false;
  bool closing_ = false;
  CloseReason final_reason_ = CloseReason::kDone;
  std::string final_detail_;
  TimerKind timer_kind_ = TimerKind::kNone;
};

}  // namespace isthmus::http
