#include "nats/connect_watchdog.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <system_error>

namespace isthmus::nats {

namespace {

// Every socket descriptor of this process with its inode ("socket:[N]");
// nullopt if the list cannot be read.
std::optional<std::map<int, unsigned long>> process_sockets() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return std::nullopt;
  std::map<int, unsigned long> out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char target[64];
    std::string path = std::string("/proc/self/fd/") + e->d_name;
    ssize_t n = ::readlink(path.c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (std::strncmp(target, "socket:[", 8) != 0) continue;
    out[std::atoi(e->d_name)] = std::strtoul(target + 8, nullptr, 10);
  }
  ::closedir(d);
  return out;
}

// Same family, address and port.
bool same_endpoint(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(x.sin6_addr)) == 0;
  }
  return false;
}

}  // namespace

ConnectWatchdog::ConnectWatchdog(const std::string& host, uint16_t port, std::chrono::milliseconds limit)
    : limit_(limit) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (::getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0) return;  // cnats will fail too
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    sockaddr_storage a{};
    std::memcpy(&a, ai->ai_addr, ai->ai_addrlen);
    addrs_.push_back(a);
  }
  ::freeaddrinfo(res);
  auto now = process_sockets();
  if (addrs_.empty() || !now) return;  // cannot tell new sockets from old: stay unarmed
  for (const auto& [fd, inode] : *now) before_.insert(inode);
  try {
    thread_ = std::thread([this] { watch(); });
  } catch (const std::system_error&) {
    // No thread: unarmed.
  }
}

ConnectWatchdog::~ConnectWatchdog() { disarm(); }

bool ConnectWatchdog::disarm() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    disarmed_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  return fired_;  // the thread has ended: no lock needed
}

bool ConnectWatchdog::is_target(int fd) const {
  int type = 0;
  socklen_t len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  sockaddr_storage peer{};
  len = sizeof(peer);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return false;  // not (yet) connected
  for (const auto& a : addrs_) {
    if (same_endpoint(peer, a)) return true;
  }
  return false;
}

void ConnectWatchdog::watch() {
  using Clock = std::chrono::steady_clock;
  constexpr auto kEvery = std::chrono::milliseconds(100);
  std::map<unsigned long, Clock::time_point> first_seen;  // new sockets to the server, by inode
  std::unique_lock<std::mutex> lk(mu_);
  while (!fired_ && !cv_.wait_for(lk, kEvery, [this] { return disarmed_; })) {
    const auto now = Clock::now();
    auto sockets = process_sockets();
    if (!sockets) continue;
    for (const auto& [fd, inode] : *sockets) {
      if (before_.count(inode) != 0) continue;
      // Work on a duplicate checked to be the same socket: fd may have been
      // closed and reused since the list was read.
      int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (dup < 0) continue;
      struct stat st {};
      if (::fstat(dup, &st) == 0 && st.st_ino == inode && is_target(dup)) {
        auto [it, added] = first_seen.emplace(inode, now);
        // Connected for longer than the limit (the caller's connect timeout
        // plus a margin): cnats' own deadline, which starts before the TCP
        // connect, has passed.
        if (!added && now - it->second > limit_) {
          ::shutdown(dup, SHUT_RDWR);
          fired_ = true;
        }
      }
      ::close(dup);
    }
  }
}

}  // namespace isthmus::nats
