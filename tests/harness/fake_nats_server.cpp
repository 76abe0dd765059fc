#include "fake_nats_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "util.h"

namespace harness {

FakeNatsServer::FakeNatsServer(std::string script, AfterInput after)
    : script_(std::move(script)), after_(after), port_(free_port()) {
  fd_ = listen_loopback(port_, 1, "fake server");
  th_ = std::thread([this] {
    int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    client_ = c;
    (void)::write(c, script_.data(), script_.size());
    char buf[4096];
    while (!stop_) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      ssize_t n = ::read(c, buf, sizeof(buf));
      if (n <= 0) break;
      {
        std::lock_guard<std::mutex> lk(mu_);
        received_.append(buf, static_cast<size_t>(n));
      }
      if (after_ == AfterInput::kHangUp) {
        ::shutdown(c, SHUT_RDWR);
        break;
      }
    }
    closed_ = true;
  });
}

FakeNatsServer::~FakeNatsServer() {
  stop_ = true;
  ::shutdown(fd_, SHUT_RDWR);  // ends a pending accept()
  th_.join();
  ::close(fd_);
  if (client_ >= 0) ::close(client_);
}

std::string FakeNatsServer::received() const {
  std::lock_guard<std::mutex> lk(mu_);
  return received_;
}

}  // namespace harness
