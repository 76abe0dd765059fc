#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
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

uint16_t free_port() {
  static std::mutex mu;
  static std::set<uint16_t> handed_out;
  std::lock_guard<std::mutex> lock(mu);
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      int err = errno;
      ::close(fd);
      throw std::runtime_error(std::string("bind: ") + std::strerror(err));
    }
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      int err = errno;
      ::close(fd);
      throw std::runtime_error(std::string("getsockname: ") + std::strerror(err));
    }
    ::close(fd);
    uint16_t port = ntohs(addr.sin_port);
    if (handed_out.insert(port).second) return port;
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

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace harness
