#include "nats/connect_watchdog.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace isthmus::nats {

namespace {

// Every socket descriptor of this process with its inode ("socket:[N]").
std::map<int, unsigned long> process_sockets() {
  std::map<int, unsigned long> out;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return out;
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

// True if fd is a connected TCP socket whose peer's port is `port`.
bool connected_to_port(int fd, uint16_t port) {
  int type = 0;
  socklen_t len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  sockaddr_storage peer{};
  len = sizeof(peer);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return false;  // not (yet) connected
  if (peer.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&peer)->sin_port) == port;
  if (peer.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&peer)->sin6_port) == port;
  return false;
}

}  // namespace

ConnectWatchdog::ConnectWatchdog(uint16_t port, std::chrono::milliseconds limit) : port_(port), limit_(limit) {
  for (const auto& [fd, inode] : process_sockets()) before_.insert(inode);
  thread_ = std::thread([this] { watch(); });
}

ConnectWatchdog::~ConnectWatchdog() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    disarmed_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool ConnectWatchdog::fired() const {
  std::lock_guard<std::mutex> lk(mu_);
  return fired_;
}

void ConnectWatchdog::watch() {
  using Clock = std::chrono::steady_clock;
  constexpr auto kEvery = std::chrono::milliseconds(100);
  std::map<unsigned long, Clock::time_point> first_seen;  // new sockets to the port, by inode
  std::unique_lock<std::mutex> lk(mu_);
  while (!cv_.wait_for(lk, kEvery, [this] { return disarmed_; })) {
    const auto now = Clock::now();
    for (const auto& [fd, inode] : process_sockets()) {
      if (before_.count(inode) != 0 || !connected_to_port(fd, port_)) continue;
      auto [it, added] = first_seen.emplace(inode, now);
      // Seen connected for longer than the limit (the caller's connect
      // timeout plus a margin): cnats' own deadline, which starts before
      // the TCP connect, has passed.
      if (!added && now - it->second > limit_) {
        ::shutdown(fd, SHUT_RDWR);
        fired_ = true;
      }
    }
  }
}

}  // namespace isthmus::nats
