#include "net_helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <random>

namespace fptest {

bool eventually(const std::function<bool()>& pred, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return pred();
}

Socket::~Socket() {
  if (fd_ >= 0) ::close(fd_);
}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

namespace {
sockaddr_in loopback(uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}
}  // namespace

Socket connect_local(uint16_t port) {
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa = loopback(port);
  if (::connect(s.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return Socket();
  int one = 1;
  setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return s;
}

bool send_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

const char* end_name(End e) {
  switch (e) {
    case End::kEof: return "eof";
    case End::kReset: return "reset";
    case End::kTimeout: return "timeout";
    case End::kError: return "error";
  }
  return "?";
}

namespace {
// One bounded read: >0 bytes, 0 EOF, -1 error (errno), -2 timeout.
ssize_t read_some(int fd, char* buf, size_t cap, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, remaining_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return -1;
    if (rc == 0) return -2;
    ssize_t n = ::recv(fd, buf, cap, 0);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}
}  // namespace

size_t recv_exact(int fd, std::string* out, size_t n, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  size_t got = 0;
  char buf[65536];
  while (got < n) {
    ssize_t r = read_some(fd, buf, std::min(sizeof(buf), n - got), deadline);
    if (r <= 0) break;
    out->append(buf, static_cast<size_t>(r));
    got += static_cast<size_t>(r);
  }
  return got;
}

End read_to_end(int fd, std::string* out, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  char buf[65536];
  for (;;) {
    ssize_t r = read_some(fd, buf, sizeof(buf), deadline);
    if (r > 0) {
      out->append(buf, static_cast<size_t>(r));
      continue;
    }
    if (r == 0) return End::kEof;
    if (r == -2) return End::kTimeout;
    return errno == ECONNRESET ? End::kReset : End::kError;
  }
}

std::string pattern(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 4) {
    uint32_t v = rng();
    for (size_t j = 0; j < 4 && i + j < n; ++j) s[i + j] = static_cast<char>((v >> (8 * j)) & 0xff);
  }
  return s;
}

TestServer::TestServer(Mode mode) : mode_(mode) {
  listener_ = Socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa = loopback(0);
  ::bind(listener_.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  ::listen(listener_.fd(), 64);
  socklen_t len = sizeof(sa);
  ::getsockname(listener_.fd(), reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

TestServer::~TestServer() {
  stop_ = true;
  acceptor_.join();
  {
    // Unblock echo threads stuck in send() to a peer that stopped reading.
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : conns_) ::shutdown(c->sock.fd(), SHUT_RDWR);
  }
  for (auto& t : threads_) t.join();
}

void TestServer::accept_loop() {
  while (!stop_) {
    pollfd p{listener_.fd(), POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    conns_.push_back(std::make_unique<Conn>());
    Conn* c = conns_.back().get();
    c->sock = Socket(fd);
    threads_.emplace_back([this, c] { serve(c); });
  }
}

void TestServer::serve(Conn* c) {
  char buf[65536];
  End end = End::kTimeout;
  while (!stop_) {
    ssize_t r = read_some(c->sock.fd(), buf, sizeof(buf), Clock::now() + milliseconds(20));
    if (r == -2) continue;
    if (r == 0) {
      end = End::kEof;
      break;
    }
    if (r < 0) {
      end = errno == ECONNRESET ? End::kReset : End::kError;
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (mode_ == kSink) c->data.append(buf, static_cast<size_t>(r));
      c->bytes += static_cast<size_t>(r);
    }
    if (mode_ == kEcho && !send_all(c->sock.fd(), buf, static_cast<size_t>(r))) {
      end = End::kError;
      break;
    }
  }
  if (mode_ == kEcho && end == End::kEof) ::shutdown(c->sock.fd(), SHUT_WR);
  std::lock_guard<std::mutex> lock(mu_);
  c->end = end;
  c->finished = true;
}

size_t TestServer::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return conns_.size();
}
std::string TestServer::received(size_t i) const {
  std::lock_guard<std::mutex> lock(mu_);
  return i < conns_.size() ? conns_[i]->data : std::string();
}
size_t TestServer::received_bytes(size_t i) const {
  std::lock_guard<std::mutex> lock(mu_);
  return i < conns_.size() ? conns_[i]->bytes : 0;
}
bool TestServer::finished(size_t i) const {
  std::lock_guard<std::mutex> lock(mu_);
  return i < conns_.size() && conns_[i]->finished;
}
End TestServer::end(size_t i) const {
  std::lock_guard<std::mutex> lock(mu_);
  return i < conns_.size() ? conns_[i]->end : End::kTimeout;
}

}  // namespace fptest
