// Server: an HTTP/1.1 server on a libuv loop the caller owns. Requests are
// parsed by RequestParser and answered by a Router; see docs/http-api.md.
//
// Threads: everything (listening, parsing, handlers, responses, close) runs
// on the loop thread; no method may be called from another thread.
// Lifetime: the loop and the Router must outlive the Server. The normal end
// is close(done) and running the loop until `done` runs, after which the
// Server may be destroyed (also from inside `done`). Destroying it earlier is
// safe too: its handles are closed and free themselves in their close
// callbacks, so the loop must still run once before uv_loop_close().
// Every connection closes with a reason, logged at debug level.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_set>

#include "http/request_parser.h"
#include "http/router.h"
#include "util/status.h"

namespace isthmus::http {

class Connection;

struct Limits {
  ParserLimits request;                 // header bytes/count and body size per request
  size_t max_connections = 256;         // further connections are closed on accept
  uint64_t idle_timeout_ms = 30'000;    // no request in progress (keep-alive), or a stalled response
  uint64_t header_timeout_ms = 10'000;  // first byte of a request until its headers are complete
  uint64_t request_timeout_ms = 30'000; // first byte of a request until its body is complete
  uint64_t linger_ms = 2'000;           // after a closing response, wait this long for the client's EOF
  uint64_t shutdown_grace_ms = 5'000;   // close(): time given to responses still in flight
  size_t max_pending_requests = 16;     // pipelined requests queued before reading pauses
  size_t max_write_buffer = 1 << 20;    // unsent response bytes before reading pauses
};

class Server {
 public:
  Server(uv_loop_t* loop, Router& router, Limits limits = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on `host` (an IPv4/IPv6 literal or "localhost") and
  // `port` (0 picks a free port; see bound_port()). Callable once.
  Status listen(const std::string& host, uint16_t port);
  // The port actually bound; 0 before a successful listen().
  uint16_t bound_port() const { return port_; }

  // Stops accepting, closes idle connections at once, lets responses in
  // flight finish (with "Connection: close") for up to shutdown_grace_ms,
  // then calls `done` once every handle is closed. `done` runs on the loop
  // thread, synchronously if nothing was open. Later calls are ignored.
  void close(std::function<void()> done);

  // Open connections (including ones still closing).
  size_t connection_count() const { return conns_.size(); }
  const Limits& limits() const { return limits_; }

 private:
  friend class Connection;

  static void on_connection(uv_stream_t* listener, int status);
  static void on_grace_timer(uv_timer_t* t);
  void forget(Connection* c);  // from a connection's final close callback
  void maybe_finish_close();
  void finish_close();

  uv_loop_t* loop_;
  Router& router_;
  Limits limits_;
  uv_tcp_t* listener_ = nullptr;  // heap: freed in its close callback
  uv_timer_t* grace_ = nullptr;   // heap: freed in its close callback
  std::unordered_set<Connection*> conns_;
  uint16_t port_ = 0;
  uint64_t next_id_ = 1;
  bool closing_ = false;
  bool finishing_ = false;
  std::function<void()> done_;
};

}  // namespace isthmus::http
