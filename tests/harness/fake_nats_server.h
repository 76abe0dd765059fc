// FakeNatsServer: a TCP listener on 127.0.0.1 that answers its first client
// with a fixed script (an INFO line, garbage...) and records every byte the
// client sends, until the client closes or the fake is destroyed. For what
// a client does before or without a real server's answers (e.g. that it
// sends no CONNECT to a server that offers no TLS). Optionally it hangs up
// once the client has sent something.
// Threads: one accept/read thread of its own; received() from any thread.
// Lifetime: listening from construction; closed and joined by the
// destructor.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace harness {

class FakeNatsServer {
 public:
  // kHangUp: close the client's connection once its first bytes have
  // arrived (a client that would wait for an answer fails at once).
  enum class AfterInput { kKeepOpen, kHangUp };
  explicit FakeNatsServer(std::string script, AfterInput after = AfterInput::kKeepOpen);
  ~FakeNatsServer();
  FakeNatsServer(const FakeNatsServer&) = delete;
  FakeNatsServer& operator=(const FakeNatsServer&) = delete;

  uint16_t port() const { return port_; }
  // Bytes received so far from the client.
  std::string received() const;
  // True once the client has closed its side (or the read failed).
  bool client_closed() const { return closed_; }

 private:
  std::string script_;
  AfterInput after_;
  uint16_t port_;
  int fd_ = -1;
  std::atomic<int> client_{-1};
  std::atomic<bool> closed_{false};
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::string received_;
  std::thread th_;
};

}  // namespace harness
