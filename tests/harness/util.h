// Small shared pieces of the integration-test harness: errors, the failure
// flag, TempDir, check_for, free_port, ScopedEnv.
//
// Error convention for the whole harness: every failure is reported by
// throwing std::runtime_error (or harness::Fatal, a subclass, for conditions
// that make waiting pointless, e.g. a daemon that exited). The harness links
// no test framework; test code turns exceptions into failures (Catch2 does it
// by itself).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

namespace harness {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Thrown for conditions that no amount of polling can fix. check_for rethrows
// it at once instead of treating it as "not yet".
struct Fatal : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Whether the current test has failed. A test-framework listener (see
// tests/integration/listener.cpp) sets it; fixtures read it in their
// destructors to keep temp dirs and print log tails. Also true while an
// exception unwinds the stack.
void set_test_failed(bool failed);
bool test_failed();

// Polls fn every ~20 ms until it returns true, or throws std::runtime_error
// naming `what` and the last observed state once `timeout` has passed.
// fn may describe what it saw in `state`; exceptions thrown by fn (other than
// Fatal) count as "not yet" and their message becomes the state.
void check_for(std::chrono::milliseconds timeout,
               const std::function<bool(std::string& state)>& fn,
               const std::string& what);
void check_for(std::chrono::milliseconds timeout, const std::function<bool()>& fn,
               const std::string& what);

// The opposite: fn must stay true for the whole `duration` (polled every
// ~20 ms); throws on the first false, naming `what` and the state.
void check_stays(std::chrono::milliseconds duration,
                 const std::function<bool(std::string& state)>& fn,
                 const std::string& what);

// A TCP port on 127.0.0.1 that was free a moment ago (bound, then closed),
// taken below the kernel's ephemeral range (ip_local_port_range) when there
// is room: there, no outgoing connection can take it before the process it
// is meant for binds it (a port from bind(0) could be, and a daemon then
// failed with "address already in use"). Ports handed out by this process
// are never handed out twice, and come from blocks of 500 that the process
// holds an flock on (/tmp/isthmus-test-ports.N.lock) until it exits, so test
// processes running side by side never hand out the same port.
uint16_t free_port();

// A listening TCP socket on 127.0.0.1:port (SO_REUSEADDR), for the tests'
// scripted servers; throws naming `who` if it cannot listen. The caller
// closes it.
int listen_loopback(uint16_t port, int backlog, const std::string& who);

// A fresh directory under $TMPDIR (or /tmp). Removed on destruction when the
// test passed; kept, with its path printed on stderr, when it failed (or
// when ISTHMUS_KEEP_TMP is set).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "isthmus-it");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Creates (if needed) and returns a subdirectory.
  std::string subdir(const std::string& name) const;
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// File helpers (throw on error).
void write_file(const std::string& path, const std::string& content);
std::string read_file(const std::string& path);
// Last `lines` lines of a file ("" if it does not exist).
std::string tail_file(const std::string& path, int lines);

// Environment variable or a fallback.
std::string env_or(const char* name, const std::string& fallback);

// Sets (or, with nullopt, unsets) an environment variable of this process
// and restores its previous value when destroyed, also when a test fails
// (e.g. SSL_CERT_FILE for a test CA: OpenSSL reads it each time a TLS
// context loads its default trust store). Not thread-safe (setenv): use it
// while no other thread of the test reads the environment.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::optional<std::string>& value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  void set(const std::optional<std::string>& value);

 private:
  std::string name_;
  std::optional<std::string> saved_;
};

// Seconds since `start`, as a double.
double seconds_since(Clock::time_point start);

}  // namespace harness
