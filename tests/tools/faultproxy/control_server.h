// The control port: a line-based text protocol over TCP (see README.md).
// Each line is one command; each command gets exactly one reply line.
// Any number of control clients may be connected at once.
// Thread-safety: loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "proxy.h"
#include "reaper.h"
#include "uv_handle.h"

namespace faultproxy {

class ControlServer;

class ControlSession : public Reapable {
 public:
  ControlSession(ControlServer* server, uint64_t id);
  bool accept(uv_stream_t* listener);
  // Closes the session; why (nullptr: nothing to report) is logged.
  void close(const char* why);
  uint64_t id() const { return id_; }

  void on_read(ssize_t nread, const uv_buf_t* buf);
  void on_write_done(int status);
  uv_buf_t alloc();

 private:
  bool start_reading();
  void reply(std::string line);

  ControlServer* server_;
  uint64_t id_;
  UvHandle<uv_tcp_t> tcp_;
  std::string in_;
  char buf_[4096];
  bool reading_ = false;
  bool closing_ = false;
};

class ControlServer {
 public:
  ControlServer(uv_loop_t* loop, Reaper* reaper, Proxy* proxy);
  ~ControlServer();

  std::string listen(const sockaddr* addr);
  std::string local_address() const;
  void shutdown();

  uv_loop_t* loop() const { return loop_; }
  Proxy* proxy() const { return proxy_; }
  void on_closed(ControlSession* s);

 private:
  void on_accept(int status);

  uv_loop_t* loop_;
  Reaper* reaper_;
  Proxy* proxy_;
  UvHandle<uv_tcp_t> listener_;
  std::map<uint64_t, std::unique_ptr<ControlSession>> sessions_;
  uint64_t next_id_ = 1;
};

}  // namespace faultproxy
