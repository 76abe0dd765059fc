// InfoProbe: reads a nats-server's current INFO without logging in: a TCP
// connection to the address given, the INFO line the server sends first
// (before any TLS: nats-server 2.9 sends INFO in clear text and only then
// upgrades), closed as soon as that line is in.
//
// Why: a nats-server configuration reload that raises max_payload applies
// to the connections already open, but sends them no new INFO (checked on
// 2.9.10: the larger publish is accepted on the old connection, only a new
// connection's INFO shows the new limit). DataConn checks each publish
// against the limit its INFO announced, so without a fresh look it would go
// on refusing what the server now accepts until the daemon reconnected.
//
// Thread: loop thread only. Lifetime: owned by the caller; `done` runs once
// (the INFO's JSON, or why not) unless the probe is destroyed first, and
// never after. The libuv handle is freed in its own close callback.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "loop/timer.h"
#include "util/status.h"

namespace isthmus::nats {

class InfoProbe {
 public:
  using Done = std::function<void(Result<nlohmann::json>)>;
  // The INFO line is at most this long (nats-server's are ~1 KiB; cluster
  // URLs can make them longer).
  static constexpr size_t kMaxInfoLine = 64 * 1024;

  InfoProbe(uv_loop_t* loop, const sockaddr_storage& addr, uint64_t timeout_ms, Done done);
  ~InfoProbe();
  InfoProbe(const InfoProbe&) = delete;
  InfoProbe& operator=(const InfoProbe&) = delete;

 private:
  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  void finish(Result<nlohmann::json> r);
  void close_tcp();

  uv_tcp_t* tcp_ = nullptr;
  loop::Timer timer_;
  Done done_;
  std::string line_;
  char buf_[4096];
};

}  // namespace isthmus::nats
