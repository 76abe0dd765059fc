// Test-side handle on one faultproxy process (see README.md for the control
// protocol). start() spawns the executable, waits for its ready line and
// opens the control connection; the destructor stops the process (SIGTERM,
// then SIGKILL after a grace period) and reaps it.
//
//   auto fp = FaultProxy::start(FaultProxy::default_executable(), "127.0.0.1:4222");
//   REQUIRE(fp.is_ok());
//   (*fp)->set(FaultProxy::kBoth, "delay_ms=75 jitter_ms=5");
//   connect to (*fp)->listen_port() instead of 4222.
//
// Thread-safety: commands may be sent from any thread (serialised by a
// mutex); start/destruction from one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <vector>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "util/status.h"

namespace isthmus::test {

class FaultProxy {
 public:
  enum Dir { kA2B, kB2A, kBoth };  // a2b: client -> target
  static const char* dir_name(Dir d);

  struct Stats {
    uint64_t a2b_bytes = 0;  // bytes delivered to the target
    uint64_t b2a_bytes = 0;  // bytes delivered to the client
    uint64_t accepted = 0;   // connections forwarded
    uint64_t active = 0;     // connections open now
    uint64_t refused = 0;    // connections reset on arrival while down
    uint64_t a2b_queued = 0; // bytes held by the proxy now
    uint64_t b2a_queued = 0;
    uint64_t a2b_writes = 0; // writes the proxy made (slicing shows here)
    uint64_t b2a_writes = 0;
    bool down = false;
  };

  // $ISTHMUS_BUILD_DIR/tests/tools/faultproxy/faultproxy ("" when unset).
  static std::string default_executable();

  // Spawns `exe --listen 127.0.0.1:0 --target TARGET --control 127.0.0.1:0`
  // and waits up to ready_timeout for its ready line.
  static Result<std::unique_ptr<FaultProxy>> start(
      const std::string& exe, const std::string& target,
      std::chrono::milliseconds ready_timeout = std::chrono::seconds(5),
      const std::vector<std::string>& extra_args = {});

  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // Where clients connect: "127.0.0.1:PORT", and its parts.
  const std::string& listen_address() const { return listen_address_; }
  const std::string& listen_host() const { return listen_host_; }
  uint16_t listen_port() const { return listen_port_; }
  uint16_t control_port() const { return control_port_; }
  pid_t pid() const { return pid_; }

  // Sends one command line and waits for its reply. Returns the reply after
  // "ok" (trimmed, possibly empty); an "err" reply becomes kInvalid with the
  // proxy's reason, a socket failure kIo, no reply within 5 s kTimeout.
  Result<std::string> command(const std::string& line);

  // Shorthands. params: "delay_ms=75 jitter_ms=5 rate_bps=1000000 slice=0 ..."
  Status set(Dir d, const std::string& params);
  Status stall(Dir d, bool on);
  Status cut(Dir d, uint64_t bytes);
  Status reset();
  Status down();
  Status up();
  Status clear();
  Result<Stats> stats();

  // SIGTERM, wait up to grace, then SIGKILL. OK when the proxy exited 0.
  Status stop(std::chrono::milliseconds grace = std::chrono::seconds(3));

 private:
  FaultProxy() = default;
  Status connect_control();

  pid_t pid_ = -1;
  int control_fd_ = -1;
  std::string listen_address_, listen_host_;
  uint16_t listen_port_ = 0;
  uint16_t control_port_ = 0;
  std::string pending_;  // bytes read past the last reply
  std::mutex mu_;
};

}  // namespace isthmus::test
