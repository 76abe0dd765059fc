#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <stdexcept>
#include <thread>

#include "util.h"

extern char** environ;

namespace harness {

std::string ExitStatus::to_string() const {
  if (exited) return "exit " + std::to_string(code);
  if (signaled) return "signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  return "unknown";
}

namespace {

ExitStatus decode(int wstatus) {
  ExitStatus st;
  if (WIFEXITED(wstatus)) {
    st.exited = true;
    st.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    st.signaled = true;
    st.signal = WTERMSIG(wstatus);
  }
  return st;
}

// Everything the child needs, prepared before fork: after fork only
// async-signal-safe calls are allowed (the parent has cnats threads).
struct Prepared {
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

void prepare(Prepared& p, const std::vector<std::string>& argv, const Process::Env& env,
             std::vector<std::string>& argv_storage) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  for (const auto& [k, v] : merged) p.env_storage.push_back(k + "=" + v);
  argv_storage = argv;
  for (auto& a : argv_storage) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);
  for (auto& e : p.env_storage) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
}

// Forks and execs; stdout goes to out_fd and stderr to err_fd. Returns the
// pid; throws if exec fails (reported through a CLOEXEC pipe).
pid_t fork_exec(Prepared& p, int out_fd, int err_fd) {
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(status_pipe[0]);
    ::close(status_pipe[1]);
    throw std::runtime_error(std::string("fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    // Reset signal dispositions and mask the parent may have changed.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(p.argv[0], p.argv.data(), p.envp.data());
    int err = errno;
    ssize_t ignored = ::write(status_pipe[1], &err, sizeof err);
    (void)ignored;
    ::_exit(127);
  }
  ::close(status_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(status_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(status_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int ws;
    ::waitpid(pid, &ws, 0);
    throw std::runtime_error(std::string("exec ") + p.argv[0] + ": " +
                             std::strerror(child_errno));
  }
  return pid;
}

std::string timestamp() {
  char buf[64];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

}  // namespace

Process::~Process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
}

void Process::spawn(const std::vector<std::string>& argv, const std::string& log_path,
                    const Env& env) {
  if (argv.empty()) throw std::runtime_error("spawn: empty argv");
  if (pid_ > 0 && !status_ && running())
    throw std::runtime_error("spawn: " + argv_.at(0) + " is still running");
  Prepared p;
  prepare(p, argv, env, argv_);
  log_path_ = log_path;
  int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("open " + log_path + ": " + std::strerror(errno));
  std::string marker = "=== [harness " + timestamp() + "] start:";
  for (const auto& a : argv) marker += " " + a;
  marker += "\n";
  ssize_t ignored = ::write(fd, marker.data(), marker.size());
  (void)ignored;
  try {
    pid_ = fork_exec(p, fd, fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  status_.reset();
}

bool Process::reap(bool block) {
  if (pid_ <= 0 || status_) return true;
  int ws = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &ws, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = decode(ws);
    return true;
  }
  if (r < 0) {  // ECHILD: someone else reaped it
    status_ = ExitStatus{};
    return true;
  }
  return false;
}

bool Process::running() {
  if (pid_ <= 0) return false;
  return !reap(false);
}

void Process::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

std::optional<ExitStatus> Process::wait_for(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (reap(false)) return status_;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

ExitStatus Process::kill() {
  if (pid_ <= 0) return {};
  if (!status_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  return *status_;
}

ExitStatus Process::terminate(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return {};
  if (!status_) {
    ::kill(pid_, SIGTERM);
    if (!wait_for(grace)) return kill();
  }
  return *status_;
}

RunResult run_capture(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                      const Process::Env& env) {
  if (argv.empty()) throw std::runtime_error("run_capture: empty argv");
  Prepared p;
  std::vector<std::string> argv_storage;
  prepare(p, argv, env, argv_storage);
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  }
  pid_t pid;
  try {
    pid = fork_exec(p, out_pipe[1], err_pipe[1]);
  } catch (...) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    throw;
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  RunResult res;
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int r = ::poll(fds, 2, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? res.out : res.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  if (timed_out) ::kill(pid, SIGKILL);
  int ws = 0;
  while (::waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  res.status = decode(ws);
  if (timed_out)
    throw std::runtime_error("run_capture: " + argv[0] + " did not finish within " +
                             std::to_string(timeout.count()) + " ms; stderr: " + res.err);
  return res;
}

}  // namespace harness
