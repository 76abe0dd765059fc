#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace harness {

namespace {
std::atomic<bool> g_failed{false};
constexpr auto kPoll = 20ms;
}  // namespace

void set_test_failed(bool failed) { g_failed = failed; }
bool test_failed() { return g_failed || std::uncaught_exceptions() > 0; }

void check_for(std::chrono::milliseconds timeout,
               const std::function<bool(std::string& state)>& fn,
               const std::string& what) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  std::string state;
  for (;;) {
    std::string seen;
    try {
      if (fn(seen)) return;
    } catch (const Fatal&) {
      throw;
    } catch (const std::exception& e) {
      seen = std::string("exception: ") + e.what();
    }
    state = std::move(seen);
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(kPoll);
  }
  std::ostringstream os;
  os << "timed out after " << seconds_since(start) << " s waiting for: " << what
     << "; last state: " << (state.empty() ? "(none reported)" : state);
  throw std::runtime_error(os.str());
}

void check_for(std::chrono::milliseconds timeout, const std::function<bool()>& fn,
               const std::string& what) {
  check_for(timeout, [&](std::string&) { return fn(); }, what);
}

void check_stays(std::chrono::milliseconds duration,
                 const std::function<bool(std::string& state)>& fn,
                 const std::string& what) {
  const auto start = Clock::now();
  const auto end = start + duration;
  for (;;) {
    std::string state;
    if (!fn(state)) {
      std::ostringstream os;
      os << "condition stopped holding after " << seconds_since(start) << " s: " << what
         << "; state: " << (state.empty() ? "(none reported)" : state);
      throw std::runtime_error(os.str());
    }
    if (Clock::now() >= end) return;
    std::this_thread::sleep_for(kPoll);
  }
}

int listen_loopback(uint16_t port, int backlog, const std::string& who) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(who + ": socket: " + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, backlog) != 0) {
    std::string err = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error(who + ": bind/listen on port " + std::to_string(port) + ": " + err);
  }
  return fd;
}

namespace {

// Binds 127.0.0.1:port (0: any); returns the bound port, 0 if it is taken.
uint16_t try_bind(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EADDRINUSE || err == EACCES) return 0;
    throw std::runtime_error(std::string("bind: ") + std::strerror(err));
  }
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    throw std::runtime_error(std::string("getsockname: ") + std::strerror(err));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// The first port of the kernel's ephemeral range (32768 when unknown).
int ephemeral_low() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  int high = 0;
  if (in >> low >> high && low > 0) return low;
  return 32768;
}

// Claims one block of kPortBlock ports for this process: an exclusive
// flock on /tmp/isthmus-test-ports.<block>.lock, held until the process
// exits (the kernel drops it then, also after a crash). Test processes that
// run at the same time (meson runs two integration tests at once) thus hand
// out disjoint ports, and a port a test's server gives up while it restarts
// cannot be taken by another test meanwhile. Returns the block's index, or
// -1 when every block is held (or none of the files can be opened).
constexpr uint32_t kPortBlock = 500;

int claim_port_block(uint32_t blocks, uint32_t start, std::set<uint32_t>& mine) {
  for (uint32_t i = 0; i < blocks; ++i) {
    const uint32_t b = (start + i) % blocks;
    if (mine.count(b) != 0) continue;
    const std::string path = "/tmp/isthmus-test-ports." + std::to_string(b) + ".lock";
    // Read-only suffices for flock, and opens a file another user (root,
    // from a sudo run) left behind; one that cannot be opened is skipped.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      mine.insert(b);  // the descriptor stays open: the lock lives with the process
      return static_cast<int>(b);
    }
    ::close(fd);
  }
  return -1;
}

}  // namespace

uint16_t free_port() {
  static std::mutex mu;
  static std::set<uint16_t> handed_out;
  static std::set<uint32_t> blocks_held;
  static int block = -1;
  static uint32_t next_in_block = 0;
  std::lock_guard<std::mutex> lock(mu);
  // Below the ephemeral range, in blocks claimed by this process.
  const int low = ephemeral_low();
  const int first = 10000;
  if (low - first >= static_cast<int>(kPortBlock)) {
    const uint32_t blocks = static_cast<uint32_t>(low - first) / kPortBlock;
    const uint32_t start = static_cast<uint32_t>(::getpid()) % blocks;
    for (;;) {
      if (block < 0 || next_in_block >= kPortBlock) {
        block = claim_port_block(blocks, start, blocks_held);
        next_in_block = 0;
        if (block < 0) break;
      }
      const auto port = static_cast<uint16_t>(first + static_cast<uint32_t>(block) * kPortBlock + next_in_block++);
      if (handed_out.count(port) != 0) continue;
      if (try_bind(port) == port) {
        handed_out.insert(port);
        return port;
      }
    }
  }
  // No room below it, or no block to be had: any free port.
  for (int attempt = 0; attempt < 100; ++attempt) {
    uint16_t port = try_bind(0);
    if (port != 0 && handed_out.insert(port).second) return port;
  }
  throw std::runtime_error("free_port: no fresh port after 100 attempts");
}

TempDir::TempDir(const std::string& prefix) {
  std::string base = env_or("TMPDIR", "/tmp");
  std::string tmpl = base + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (keep_ || test_failed() || std::getenv("ISTHMUS_KEEP_TMP") != nullptr) {
    std::cerr << "[harness] kept temp dir: " << path_ << "\n";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::subdir(const std::string& name) const {
  std::string p = path_ + "/" + name;
  std::error_code ec;
  std::filesystem::create_directories(p, ec);
  if (ec) throw std::runtime_error("mkdir " + p + ": " + ec.message());
  return p;
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << content;
  out.close();
  if (!out) throw std::runtime_error("error writing " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string tail_file(const std::string& path, int lines) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(std::move(line));
    if (static_cast<int>(last.size()) > lines) last.pop_front();
  }
  std::string out;
  for (auto& l : last) out += l + "\n";
  return out;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::string(v) : fallback;
}

ScopedEnv::ScopedEnv(std::string name, const std::optional<std::string>& value) : name_(std::move(name)) {
  if (const char* v = std::getenv(name_.c_str())) saved_ = v;
  set(value);
}

ScopedEnv::~ScopedEnv() { set(saved_); }

void ScopedEnv::set(const std::optional<std::string>& value) {
  if (value) {
    ::setenv(name_.c_str(), value->c_str(), 1);
  } else {
    ::unsetenv(name_.c_str());
  }
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace harness
