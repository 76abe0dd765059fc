// Unit tests for link::Connection's send pacing (link/connection.h): over a
// real loopback TCP connection whose reader drains at a known rate, the
// measured drain rate follows it and the send budget, group limit and
// TCP_NOTSENT_LOWAT shrink on a slow reader and reach their maximum on a
// fast one. The reader is a plain blocking socket on its own thread; the
// Connection runs on a libuv loop on the test thread.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "link/connection.h"

using namespace isthmus;
using namespace isthmus::link;
using Clock = std::chrono::steady_clock;

namespace {

class Handler : public ConnectionHandler {
 public:
  bool connected = false;
  bool closed = false;
  void on_connected(Connection& c) override {
    connected = true;
    REQUIRE(c.start().is_ok());
  }
  Status on_frame(Connection&, FrameType, std::span<const uint8_t>) override { return Status::ok(); }
  void on_closed(Connection&, CloseReason, const std::string&) override { closed = true; }
};

// Listens on 127.0.0.1:0; accept() and read at `bytes_per_sec` (0: as fast
// as possible) until stopped, on its own thread.
class SlowReader {
 public:
  explicit SlowReader(size_t bytes_per_sec) : rate_(bytes_per_sec) {
    lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(lfd_, reinterpret_cast<sockaddr*>(&a), len) == 0);
    REQUIRE(::listen(lfd_, 1) == 0);
    REQUIRE(::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    addr_ = a;
    thread_ = std::thread([this] { run(); });
  }
  ~SlowReader() {
    stop_ = true;
    ::shutdown(lfd_, SHUT_RDWR);
    thread_.join();
    ::close(lfd_);
  }
  const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&addr_); }
  size_t received() const { return received_; }

 private:
  void run() {
    int fd = ::accept(lfd_, nullptr, nullptr);
    if (fd < 0) return;
    timeval tv{0, 100'000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::vector<char> buf(64 * 1024);
    auto t0 = Clock::now();
    while (!stop_) {
      size_t want = buf.size();
      if (rate_ > 0) {
        // Read only what the rate allows so far (10 ms steps).
        double allowed = std::chrono::duration<double>(Clock::now() - t0).count() * static_cast<double>(rate_);
        if (static_cast<double>(received_) >= allowed) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the reader's own pacing
          continue;
        }
        want = std::min(want, static_cast<size_t>(allowed - static_cast<double>(received_)) + 1);
      }
      ssize_t n = ::recv(fd, buf.data(), want, 0);
      if (n == 0) break;
      if (n > 0) received_ += static_cast<size_t>(n);
    }
    ::close(fd);
  }

  size_t rate_;
  int lfd_ = -1;
  sockaddr_in addr_{};
  std::atomic<bool> stop_{false};
  std::atomic<size_t> received_{0};
  std::thread thread_;
};

// Connects, keeps ~1 MiB of 8 KiB frames queued, and runs the loop until the
// reader has `bytes` (or `limit` passes). Returns the connection's pacing.
struct Pacing {
  double rate = 0;
  size_t budget = 0, group = 0;
};

Pacing drive(SlowReader& r, size_t bytes, std::chrono::seconds limit) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Handler h;
  Pacing out;
  {
    auto c = std::make_unique<Connection>(&loop, &h, 1 << 20);
    REQUIRE(c->connect(r.addr()).is_ok());
    auto deadline = Clock::now() + limit;
    std::vector<uint8_t> frame(8 * 1024, 0x5a);
    while (r.received() < bytes && Clock::now() < deadline && !h.closed) {
      if (h.connected) {
        while (c->pending_bytes() < (1u << 20)) c->queue_copy(frame);
        c->flush();
      }
      uv_run(&loop, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE_FALSE(h.closed);
    REQUIRE(r.received() >= bytes);
    out.rate = c->drain_rate();
    out.budget = c->send_budget();
    out.group = c->group_limit();
    c->close(CloseReason::kShutdown, "", false);
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // the close callbacks
  REQUIRE(uv_loop_close(&loop) == 0);
  return out;
}

}  // namespace

TEST_CASE("send pacing: a reader draining 400 KB/s gets a small budget and small groups", "[link][pacing]") {
  SlowReader r(400'000);
  // Kernel buffers absorb the first few hundred KB at once; 1.6 MB means
  // ~3 s of pacing at the reader's rate.
  Pacing p = drive(r, 1'600'000, std::chrono::seconds(20));
  INFO("drain " << p.rate << " B/s, budget " << p.budget << ", group " << p.group);
  CHECK(p.rate > 150'000);
  CHECK(p.rate < 1'200'000);
  CHECK(p.budget <= 12 * 1024);  // 10 ms of ~400 KB/s, at least 4 KiB
  CHECK(p.group <= 12 * 1024);   // no compression layer: wire = frame bytes
}

TEST_CASE("send pacing: a fast reader gets the full 64 KiB budget", "[link][pacing]") {
  SlowReader r(0);
  Pacing p = drive(r, 64u << 20, std::chrono::seconds(20));
  INFO("drain " << p.rate << " B/s, budget " << p.budget << ", group " << p.group);
  CHECK(p.rate > 6.4e6);
  CHECK(p.budget == Connection::kMaxBudget);
  CHECK(p.group == Connection::kMaxBudget);
}
