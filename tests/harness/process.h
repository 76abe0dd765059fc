// A child process for tests: argv plus environment additions, stdout and
// stderr appended to a log file, signals, waiting with a deadline.
//
// Lifetime: the child is killed (SIGKILL) and reaped when the Process is
// destroyed; the child also gets PR_SET_PDEATHSIG=SIGKILL, so it dies with
// the thread that spawned it. Spawn from the test's main thread: a child
// spawned from a short-lived thread would die with that thread.
// Thread-safety: none; use from one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace harness {

struct ExitStatus {
  bool exited = false;  // normal exit; code is valid
  int code = 0;
  bool signaled = false;  // killed by a signal; signal is valid
  int signal = 0;
  std::string to_string() const;  // "exit 0", "signal 9 (Killed)"
};

class Process {
 public:
  using Env = std::vector<std::pair<std::string, std::string>>;

  Process() = default;
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Starts argv[0] (a path; not searched in PATH) with the current
  // environment plus `env` (overriding same names). Output is appended to
  // log_path, after a marker line. Throws if the process is still running
  // or the executable cannot be started.
  void spawn(const std::vector<std::string>& argv, const std::string& log_path,
             const Env& env = {});

  pid_t pid() const { return pid_; }
  // True while the child has not been reaped (reaps it if it has exited).
  bool running();
  // The exit status once reaped.
  const std::optional<ExitStatus>& status() const { return status_; }

  // Sends a signal (no-op if not running).
  void signal(int sig);
  // Waits for exit until `timeout`; returns the status or nullopt.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
  // SIGKILL and reap.
  ExitStatus kill();
  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the status.
  ExitStatus terminate(std::chrono::milliseconds grace = std::chrono::seconds(10));

  const std::string& log_path() const { return log_path_; }
  const std::vector<std::string>& argv() const { return argv_; }

 private:
  bool reap(bool block);
  pid_t pid_ = -1;
  std::optional<ExitStatus> status_;
  std::string log_path_;
  std::vector<std::string> argv_;
};

// Runs argv to completion (stdout and stderr captured separately) with a
// deadline; the child is killed if it overruns. Throws on spawn failure or
// timeout.
struct RunResult {
  ExitStatus status;
  std::string out;
  std::string err;
};
RunResult run_capture(const std::vector<std::string>& argv,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30),
                      const Process::Env& env = {});

}  // namespace harness
