// Blocking-socket helpers for the faultproxy tests: a threaded echo/sink
// server on 127.0.0.1 and client calls bounded by deadlines.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fptest {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Polls pred every 2 ms until it holds or timeout passes.
bool eventually(const std::function<bool()>& pred, milliseconds timeout = milliseconds(5000));

// Owns a socket fd.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket();
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept;
  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Connects to 127.0.0.1:port (blocking, TCP_NODELAY). Invalid on failure.
Socket connect_local(uint16_t port);
// Sends everything; false on error (no SIGPIPE).
bool send_all(int fd, const void* data, size_t n);

enum class End { kEof, kReset, kTimeout, kError };
const char* end_name(End e);

// Reads exactly n bytes into out before timeout; returns how many it got.
size_t recv_exact(int fd, std::string* out, size_t n, milliseconds timeout);
// Reads until the peer closes (or timeout), appending to out.
End read_to_end(int fd, std::string* out, milliseconds timeout);

// Deterministic pseudo-random bytes.
std::string pattern(size_t n, uint32_t seed);

// A server on 127.0.0.1:0, one thread per connection.
//  kEcho: writes back what it reads.  kSink: keeps what it reads.
class TestServer {
 public:
  enum Mode { kEcho, kSink };
  explicit TestServer(Mode mode);
  ~TestServer();

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  size_t connections() const;
  // Per accepted connection, in accept order.
  std::string received(size_t i) const;
  size_t received_bytes(size_t i) const;
  bool finished(size_t i) const;
  End end(size_t i) const;

 private:
  struct Conn {
    Socket sock;
    std::string data;   // sink only
    size_t bytes = 0;
    bool finished = false;
    End end = End::kTimeout;
  };
  void accept_loop();
  void serve(Conn* c);

  Mode mode_;
  Socket listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace fptest
