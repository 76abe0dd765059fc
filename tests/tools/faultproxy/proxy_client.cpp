#include "proxy_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

extern char** environ;

namespace isthmus::test {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kReplyTimeout = std::chrono::seconds(5);

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// "HOST:PORT" -> parts; false when malformed.
bool split_address(const std::string& a, std::string* host, uint16_t* port) {
  size_t colon = a.rfind(':');
  if (colon == std::string::npos) return false;
  unsigned v = 0;
  const char* b = a.data() + colon + 1;
  const char* e = a.data() + a.size();
  auto [end, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || end != e || v == 0 || v > 65535) return false;
  *host = a.substr(0, colon);
  *port = static_cast<uint16_t>(v);
  return true;
}

// Value of "key=" in a space-separated reply.
bool field(const std::string& text, const std::string& key, std::string* out) {
  size_t pos = 0;
  std::string k = key + "=";
  while ((pos = text.find(k, pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == ' ') {
      size_t end = text.find(' ', pos);
      *out = text.substr(pos + k.size(), end == std::string::npos ? std::string::npos : end - pos - k.size());
      return true;
    }
    pos += k.size();
  }
  return false;
}

bool field_u64(const std::string& text, const std::string& key, uint64_t* out) {
  std::string v;
  if (!field(text, key, &v)) return false;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
  return ec == std::errc() && end == v.data() + v.size();
}

// Reads one line from fd before the deadline (pending holds leftovers).
Result<std::string> read_line(int fd, std::string* pending, Clock::time_point deadline) {
  for (;;) {
    size_t nl = pending->find('\n');
    if (nl != std::string::npos) {
      std::string line = pending->substr(0, nl);
      pending->erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Status(Code::kTimeout, "no complete line before the deadline");
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return Status(Code::kIo, errno_text("poll"));
    }
    if (rc == 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status(Code::kIo, errno_text("read"));
    }
    if (n == 0) return Status(Code::kIo, "connection closed before a complete line");
    pending->append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

const char* FaultProxy::dir_name(Dir d) {
  switch (d) {
    case kA2B: return "a2b";
    case kB2A: return "b2a";
    case kBoth: return "both";
  }
  return "both";
}

std::string FaultProxy::default_executable() {
  const char* dir = std::getenv("ISTHMUS_BUILD_DIR");
  if (dir == nullptr || *dir == '\0') return {};
  return std::string(dir) + "/tests/tools/faultproxy/faultproxy";
}

Result<std::unique_ptr<FaultProxy>> FaultProxy::start(const std::string& exe, const std::string& target,
                                                      std::chrono::milliseconds ready_timeout,
                                                    const std::vector<std::string>& extra_args) {
  if (exe.empty()) return Status(Code::kInvalid, "no faultproxy executable (is ISTHMUS_BUILD_DIR set?)");
  if (::access(exe.c_str(), X_OK) != 0) return Status(Code::kNotFound, errno_text(exe.c_str()));
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return Status(Code::kIo, errno_text("pipe2"));

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  std::vector<std::string> args = {exe, "--listen", "127.0.0.1:0", "--target", target, "--control", "127.0.0.1:0"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::unique_ptr<FaultProxy> fp(new FaultProxy());
  int rc = posix_spawn(&fp->pid_, exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    fp->pid_ = -1;
    return Status(Code::kIo, std::string("posix_spawn ") + exe + ": " + std::strerror(rc));
  }

  // From here on, fp's destructor stops the child on any error.
  std::string pending;
  Result<std::string> line = read_line(out[0], &pending, Clock::now() + ready_timeout);
  ::close(out[0]);  // the proxy prints nothing else on stdout
  if (!line.is_ok()) return Status(line.status().code(), "faultproxy ready line: " + line.status().message());

  // "listen=127.0.0.1:PORT control=127.0.0.1:PORT"
  std::string listen, control, control_host;
  if (!field(*line, "listen", &listen) || !field(*line, "control", &control) ||
      !split_address(listen, &fp->listen_host_, &fp->listen_port_) ||
      !split_address(control, &control_host, &fp->control_port_)) {
    return Status(Code::kCorrupt, "faultproxy: bad ready line '" + *line + "'");
  }
  fp->listen_address_ = listen;
  Status st = fp->connect_control();
  if (!st.is_ok()) return st;
  return fp;
}

Status FaultProxy::connect_control() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status(Code::kIo, errno_text("socket"));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(control_port_);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    Status st(Code::kIo, errno_text("connect to faultproxy control"));
    ::close(fd);
    return st;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  control_fd_ = fd;
  return Status::ok();
}

FaultProxy::~FaultProxy() { (void)stop(); }

Status FaultProxy::stop(std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> lock(mu_);
  if (control_fd_ >= 0) {
    ::close(control_fd_);
    control_fd_ = -1;
  }
  if (pid_ <= 0) return Status::ok();
  ::kill(pid_, SIGTERM);
  auto deadline = Clock::now() + grace;
  int wstatus = 0;
  pid_t r = 0;
  while ((r = ::waitpid(pid_, &wstatus, WNOHANG)) == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Status st;
  if (r == 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &wstatus, 0);
    st = Status(Code::kTimeout, "faultproxy ignored SIGTERM; killed");
  } else if (r < 0) {
    st = Status(Code::kIo, errno_text("waitpid"));
  } else if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    st = Status(Code::kInternal, "faultproxy exited with status " + std::to_string(wstatus));
  }
  pid_ = -1;
  return st;
}

Result<std::string> FaultProxy::command(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (control_fd_ < 0) return Status(Code::kUnavailable, "faultproxy not running");
  std::string msg = line + "\n";
  size_t off = 0;
  while (off < msg.size()) {
    ssize_t n = ::send(control_fd_, msg.data() + off, msg.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status(Code::kIo, errno_text("send to faultproxy"));
    }
    off += static_cast<size_t>(n);
  }
  Result<std::string> reply = read_line(control_fd_, &pending_, Clock::now() + kReplyTimeout);
  if (!reply.is_ok()) return Status(reply.status().code(), "faultproxy '" + line + "': " + reply.status().message());
  const std::string& r = *reply;
  if (r == "ok") return std::string();
  if (r.rfind("ok ", 0) == 0) return r.substr(3);
  if (r.rfind("err ", 0) == 0) return Status(Code::kInvalid, "faultproxy '" + line + "': " + r.substr(4));
  return Status(Code::kCorrupt, "faultproxy '" + line + "': unexpected reply '" + r + "'");
}

namespace {
Status drop_value(Result<std::string> r) { return r.is_ok() ? Status::ok() : r.status(); }
}  // namespace

Status FaultProxy::set(Dir d, const std::string& params) {
  return drop_value(command(std::string("set ") + dir_name(d) + " " + params));
}
Status FaultProxy::stall(Dir d, bool on) {
  return drop_value(command(std::string("stall ") + dir_name(d) + (on ? " on" : " off")));
}
Status FaultProxy::cut(Dir d, uint64_t bytes) {
  return drop_value(command(std::string("cut ") + dir_name(d) + " " + std::to_string(bytes)));
}
Status FaultProxy::reset() { return drop_value(command("reset")); }
Status FaultProxy::down() { return drop_value(command("down")); }
Status FaultProxy::up() { return drop_value(command("up")); }
Status FaultProxy::clear() { return drop_value(command("clear")); }

Result<FaultProxy::Stats> FaultProxy::stats() {
  Result<std::string> r = command("stats");
  if (!r.is_ok()) return r.status();
  Stats s;
  bool ok = field_u64(*r, "a2b_bytes", &s.a2b_bytes) && field_u64(*r, "b2a_bytes", &s.b2a_bytes) &&
            field_u64(*r, "accepted", &s.accepted) && field_u64(*r, "active", &s.active) &&
            field_u64(*r, "refused", &s.refused) && field_u64(*r, "a2b_queued", &s.a2b_queued) &&
            field_u64(*r, "b2a_queued", &s.b2a_queued) && field_u64(*r, "a2b_writes", &s.a2b_writes) &&
            field_u64(*r, "b2a_writes", &s.b2a_writes);
  uint64_t down = 0;
  ok = ok && field_u64(*r, "down", &down);
  s.down = down != 0;
  if (!ok) return Status(Code::kCorrupt, "faultproxy: bad stats reply '" + *r + "'");
  return s;
}

}  // namespace isthmus::test
