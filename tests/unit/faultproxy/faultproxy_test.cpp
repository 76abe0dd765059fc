// Runs the real faultproxy executable between a real server and client on
// 127.0.0.1 (threads and blocking sockets) and checks each fault.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "delay_line.h"
#include "faultproxy/proxy_client.h"
#include "net_helpers.h"
#include "protocol.h"
#include "token_bucket.h"

using fptest::Clock;
using fptest::End;
using fptest::eventually;
using fptest::Socket;
using fptest::TestServer;
using isthmus::test::FaultProxy;
using std::chrono::milliseconds;

namespace {

std::unique_ptr<FaultProxy> start_proxy(const std::string& target) {
  auto r = FaultProxy::start(FaultProxy::default_executable(), target);
  INFO(r.status().to_string());
  REQUIRE(r.is_ok());
  return std::move(r).value();
}

FaultProxy::Stats stats(FaultProxy& fp) {
  auto s = fp.stats();
  INFO(s.status().to_string());
  REQUIRE(s.is_ok());
  return *s;
}

void ok(const isthmus::Status& st) {
  INFO(st.to_string());
  REQUIRE(st.is_ok());
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Median round trip of a 1-byte ping through an echo path.
double median_rtt_ms(int fd, int samples = 5) {
  std::vector<double> v;
  for (int i = 0; i < samples; ++i) {
    auto t0 = Clock::now();
    REQUIRE(fptest::send_all(fd, "p", 1));
    std::string out;
    REQUIRE(fptest::recv_exact(fd, &out, 1, milliseconds(3000)) == 1);
    v.push_back(ms_since(t0));
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Echoes data through fd (a writer thread, this thread reads); returns what came back.
std::string echo_through(int fd, const std::string& data, milliseconds timeout = milliseconds(10000)) {
  std::thread writer([&] { fptest::send_all(fd, data.data(), data.size()); });
  std::string back;
  fptest::recv_exact(fd, &back, data.size(), timeout);
  writer.join();
  return back;
}

// Waits for a connection through the proxy to reach the server.
Socket connect_through(FaultProxy& fp, TestServer& server, size_t expect_connections) {
  Socket s = fptest::connect_local(fp.listen_port());
  REQUIRE(s.valid());
  REQUIRE(eventually([&] { return server.connections() >= expect_connections; }));
  return s;
}

}  // namespace

TEST_CASE("delay line keeps order and monotonic release times", "[faultproxy]") {
  faultproxy::DelayLine line;
  line.push(100, "abc", 3);
  line.push(50, "de", 2);  // earlier stamp: held back to 100, never reordered
  line.push(200, "f", 1);
  REQUIRE(line.bytes() == 6);
  REQUIRE(line.head_release_ns() == 100);
  auto a = line.take(2);
  REQUIRE(std::string(a.begin(), a.end()) == "ab");
  auto b = line.take(1);
  REQUIRE(std::string(b.begin(), b.end()) == "c");
  REQUIRE(line.head_release_ns() == 100);
  auto c = line.take(5);
  REQUIRE(std::string(c.begin(), c.end()) == "de");
  REQUIRE(line.head_release_ns() == 200);
  REQUIRE(line.bytes() == 1);
}

TEST_CASE("token bucket paces bytes", "[faultproxy]") {
  faultproxy::TokenBucket b;
  REQUIRE(b.wait_ns(1 << 20, 0) == 0);  // unlimited
  b.set_rate(1000, 0);                   // 1000 B/s, burst 20 B
  REQUIRE(b.burst() == 20);
  REQUIRE(b.wait_ns(20, 0) == 0);
  b.take(20);
  REQUIRE(b.wait_ns(10, 0) == 10'000'000);  // 10 bytes at 1000 B/s
  REQUIRE(b.wait_ns(10, 10'000'000) == 0);
}

TEST_CASE("command parser accepts the protocol and rejects the rest", "[faultproxy]") {
  using faultproxy::Command;
  using faultproxy::Verb;
  Command c;
  REQUIRE(faultproxy::parse_command("set both delay_ms=75 jitter_ms=5 rate_bps=1000000 slice=0\r", &c).empty());
  REQUIRE(c.verb == Verb::kSet);
  REQUIRE(c.dirs == 3);
  REQUIRE(*c.patch.delay_ms == 75);
  REQUIRE(*c.patch.rate_bps == 1000000);
  REQUIRE(!c.patch.stall.has_value());
  REQUIRE(faultproxy::parse_command("stall a2b on", &c).empty());
  REQUIRE((c.verb == Verb::kStall && c.on && c.dirs == 1));
  REQUIRE(faultproxy::parse_command("cut b2a 1000", &c).empty());
  REQUIRE((c.verb == Verb::kCut && c.count == 1000 && c.dirs == 2));
  for (const char* bad : {"", "bogus", "set a2b", "set up delay_ms=1", "set a2b delay_ms=-1",
                          "set a2b delay_ms=1x", "set a2b nokey=1", "stall a2b maybe", "cut a2b",
                          "reset now", "get both", "set a2b queue_bytes=10"}) {
    INFO(bad);
    REQUIRE(!faultproxy::parse_command(bad, &c).empty());
  }
}

TEST_CASE("forwards both ways at full speed, closes gracefully, exits cleanly", "[faultproxy]") {
  TestServer server(TestServer::kEcho);
  auto fp = start_proxy(server.address());
  REQUIRE(fp->command("ping").value() == "pong");
  REQUIRE(fp->command("bogus").status().code() == isthmus::Code::kInvalid);

  Socket s = connect_through(*fp, server, 1);
  const std::string data = fptest::pattern(32 << 20, 1);
  auto t0 = Clock::now();
  std::string back = echo_through(s.fd(), data);
  double secs = ms_since(t0) / 1000;
  INFO("32 MiB echoed in " << secs << " s");
  REQUIRE(back.size() == data.size());
  REQUIRE(back == data);
  CHECK(secs < 4.0);  // tens of MB/s at least (both ways at once), even on a busy host

  FaultProxy::Stats st = stats(*fp);
  REQUIRE(st.a2b_bytes == data.size());
  REQUIRE(st.b2a_bytes == data.size());
  REQUIRE(st.accepted == 1);
  REQUIRE(st.active == 1);

  // Half-close travels through: the echo server sees EOF and closes too.
  ::shutdown(s.fd(), SHUT_WR);
  std::string rest;
  REQUIRE(fptest::read_to_end(s.fd(), &rest, milliseconds(3000)) == End::kEof);
  REQUIRE(rest.empty());
  REQUIRE(eventually([&] { return stats(*fp).active == 0; }));
  REQUIRE(eventually([&] { return server.finished(0); }));
  REQUIRE(server.end(0) == End::kEof);
  ok(fp->stop());  // exit status 0: the loop closed with no handle left
}

TEST_CASE("delay gives the round trip it promises; jitter never reorders", "[faultproxy]") {
  TestServer server(TestServer::kEcho);
  auto fp = start_proxy(server.address());
  Socket s = connect_through(*fp, server, 1);

  double base = median_rtt_ms(s.fd());
  CHECK(base < 20);

  ok(fp->set(FaultProxy::kA2B, "delay_ms=100"));
  double one_way = median_rtt_ms(s.fd());
  INFO("a2b 100 ms: rtt " << one_way << " ms");
  CHECK(one_way >= 99);
  CHECK(one_way < 150);

  ok(fp->set(FaultProxy::kBoth, "delay_ms=50"));
  double both = median_rtt_ms(s.fd());
  INFO("both 50 ms: rtt " << both << " ms");
  CHECK(both >= 99);
  CHECK(both < 150);

  // Many small writes under heavy jitter come back whole and in order.
  ok(fp->set(FaultProxy::kBoth, "delay_ms=20 jitter_ms=15"));
  std::string msgs;
  for (int i = 0; i < 2000; ++i) msgs += std::to_string(i) + ",";
  std::thread writer([&] {
    for (size_t off = 0; off < msgs.size(); off += 7) {
      fptest::send_all(s.fd(), msgs.data() + off, std::min<size_t>(7, msgs.size() - off));
    }
  });
  std::string back;
  fptest::recv_exact(s.fd(), &back, msgs.size(), milliseconds(5000));
  writer.join();
  REQUIRE(back == msgs);

  ok(fp->clear());
  CHECK(median_rtt_ms(s.fd()) < 20);
  ok(fp->stop());
}

TEST_CASE("bandwidth cap of 1 MB/s moves 1 MB in about a second", "[faultproxy]") {
  TestServer server(TestServer::kSink);
  auto fp = start_proxy(server.address());
  ok(fp->set(FaultProxy::kA2B, "rate_bps=1000000"));
  Socket s = connect_through(*fp, server, 1);

  const std::string data = fptest::pattern(1000000, 2);
  auto t0 = Clock::now();
  std::thread writer([&] { fptest::send_all(s.fd(), data.data(), data.size()); });
  bool all = eventually([&] { return server.received_bytes(0) >= data.size(); }, milliseconds(5000));
  double secs = ms_since(t0) / 1000;
  writer.join();
  INFO("1 MB at 1 MB/s took " << secs << " s");
  REQUIRE(all);
  CHECK(secs > 0.8);
  CHECK(secs < 1.6);
  REQUIRE(server.received(0) == data);
  ok(fp->stop());
}

TEST_CASE("stall forwards nothing, bounds memory, and resumes with nothing lost", "[faultproxy]") {
  TestServer server(TestServer::kSink);
  auto fp = start_proxy(server.address());
  Socket s = connect_through(*fp, server, 1);
  ok(fp->stall(FaultProxy::kA2B, true));

  // Far more than the proxy queue plus both kernels' socket buffers.
  const std::string data = fptest::pattern(48 << 20, 3);
  std::atomic<size_t> sent{0};
  std::thread writer([&] {
    for (size_t off = 0; off < data.size(); off += 64 * 1024) {
      size_t n = std::min<size_t>(64 * 1024, data.size() - off);
      if (!fptest::send_all(s.fd(), data.data() + off, n)) return;
      sent += n;
    }
  });
  // The proxy fills its queue, then stops reading; the sender blocks.
  REQUIRE(eventually([&] { return stats(*fp).a2b_queued >= (1u << 20); }));
  size_t last = 0;
  auto stable_since = Clock::now();
  REQUIRE(eventually(
      [&] {
        size_t now = sent;
        if (now != last) {
          last = now;
          stable_since = Clock::now();
        }
        return ms_since(stable_since) > 300;
      },
      milliseconds(8000)));
  FaultProxy::Stats st = stats(*fp);
  INFO("sender blocked after " << sent << " bytes; proxy holds " << st.a2b_queued);
  CHECK(st.a2b_queued <= (1u << 20) + 64 * 1024);
  CHECK(sent < data.size());
  REQUIRE(server.received_bytes(0) == 0);
  REQUIRE(st.a2b_bytes == 0);

  ok(fp->stall(FaultProxy::kA2B, false));
  REQUIRE(eventually([&] { return server.received_bytes(0) >= data.size(); }, milliseconds(10000)));
  writer.join();
  REQUIRE(server.received(0) == data);
  ok(fp->stop());
}

TEST_CASE("cut forwards exactly N bytes, then resets", "[faultproxy]") {
  SECTION("cut a2b on a live connection") {
    TestServer server(TestServer::kSink);
    auto fp = start_proxy(server.address());
    Socket s = connect_through(*fp, server, 1);
    REQUIRE(fp->command("cut a2b 1000").value() == "connections=1");
    const std::string data = fptest::pattern(5000, 4);
    fptest::send_all(s.fd(), data.data(), data.size());
    REQUIRE(eventually([&] { return server.finished(0); }));
    REQUIRE(server.received(0) == data.substr(0, 1000));
    REQUIRE(server.end(0) == End::kReset);
    std::string junk;
    REQUIRE(fptest::read_to_end(s.fd(), &junk, milliseconds(3000)) == End::kReset);
    REQUIRE(eventually([&] { return stats(*fp).active == 0; }));
  }
  SECTION("cut b2a on a live connection") {
    TestServer server(TestServer::kEcho);
    auto fp = start_proxy(server.address());
    Socket s = connect_through(*fp, server, 1);
    ok(fp->cut(FaultProxy::kB2A, 10));
    const std::string data = fptest::pattern(100, 5);
    fptest::send_all(s.fd(), data.data(), data.size());
    std::string back;
    REQUIRE(fptest::read_to_end(s.fd(), &back, milliseconds(3000)) == End::kReset);
    REQUIRE(back == data.substr(0, 10));
  }
  SECTION("cut_after applies to every new connection") {
    TestServer server(TestServer::kSink);
    auto fp = start_proxy(server.address());
    ok(fp->set(FaultProxy::kA2B, "cut_after=300"));
    for (size_t i = 0; i < 2; ++i) {
      Socket s = connect_through(*fp, server, i + 1);
      const std::string data = fptest::pattern(1000, 6);
      fptest::send_all(s.fd(), data.data(), data.size());
      REQUIRE(eventually([&] { return server.finished(i); }));
      REQUIRE(server.received(i) == data.substr(0, 300));
      REQUIRE(server.end(i) == End::kReset);
    }
    ok(fp->clear());
    Socket s = connect_through(*fp, server, 3);
    fptest::send_all(s.fd(), "0123456789", 10);
    ::shutdown(s.fd(), SHUT_WR);
    REQUIRE(eventually([&] { return server.finished(2); }));
    REQUIRE(server.received(2) == "0123456789");
    REQUIRE(server.end(2) == End::kEof);
    ok(fp->stop());
  }
}

TEST_CASE("slicing into tiny writes preserves every byte", "[faultproxy]") {
  TestServer server(TestServer::kEcho);
  auto fp = start_proxy(server.address());
  ok(fp->set(FaultProxy::kBoth, "slice=7"));
  Socket s = connect_through(*fp, server, 1);
  const std::string data = fptest::pattern(100000, 7);
  REQUIRE(echo_through(s.fd(), data) == data);
  FaultProxy::Stats st = stats(*fp);
  REQUIRE(st.a2b_writes >= data.size() / 7);
  REQUIRE(st.b2a_writes >= data.size() / 7);
  ok(fp->stop());
}

TEST_CASE("down resets and refuses connections; up accepts again", "[faultproxy]") {
  TestServer server(TestServer::kEcho);
  auto fp = start_proxy(server.address());
  Socket c1 = connect_through(*fp, server, 1);
  REQUIRE(echo_through(c1.fd(), "hello") == "hello");

  REQUIRE(fp->command("down").value() == "reset=1");
  std::string junk;
  REQUIRE(fptest::read_to_end(c1.fd(), &junk, milliseconds(3000)) == End::kReset);

  Socket c2 = fptest::connect_local(fp->listen_port());
  REQUIRE(c2.valid());  // accepted by the kernel, then reset by the proxy
  REQUIRE(fptest::read_to_end(c2.fd(), &junk, milliseconds(3000)) == End::kReset);
  FaultProxy::Stats st = stats(*fp);
  REQUIRE(st.refused == 1);
  REQUIRE(st.active == 0);
  REQUIRE(st.down);
  REQUIRE(server.connections() == 1);  // the target never saw c2

  ok(fp->up());
  Socket c3 = connect_through(*fp, server, 2);
  REQUIRE(echo_through(c3.fd(), "again") == "again");
  REQUIRE(stats(*fp).accepted == 2);
  ok(fp->stop());
}

TEST_CASE("reset sends RST on every current connection", "[faultproxy]") {
  TestServer server(TestServer::kEcho);
  auto fp = start_proxy(server.address());
  Socket c1 = connect_through(*fp, server, 1);
  Socket c2 = connect_through(*fp, server, 2);
  REQUIRE(echo_through(c1.fd(), "one") == "one");
  REQUIRE(echo_through(c2.fd(), "two") == "two");

  REQUIRE(fp->command("reset").value() == "reset=2");
  std::string junk;
  REQUIRE(fptest::read_to_end(c1.fd(), &junk, milliseconds(3000)) == End::kReset);
  REQUIRE(fptest::read_to_end(c2.fd(), &junk, milliseconds(3000)) == End::kReset);
  REQUIRE(eventually([&] { return server.finished(0) && server.finished(1); }));
  REQUIRE(server.end(0) == End::kReset);
  REQUIRE(server.end(1) == End::kReset);
  REQUIRE(stats(*fp).active == 0);

  Socket c3 = connect_through(*fp, server, 3);
  REQUIRE(echo_through(c3.fd(), "three") == "three");
  ok(fp->stop());
}

TEST_CASE("many concurrent connections through one proxy", "[faultproxy]") {
  TestServer server(TestServer::kEcho);
  auto fp = start_proxy(server.address());
  ok(fp->set(FaultProxy::kBoth, "delay_ms=5 jitter_ms=2"));
  constexpr int kClients = 8;
  std::vector<std::thread> clients;
  std::atomic<int> good{0};
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      Socket s = fptest::connect_local(fp->listen_port());
      if (!s.valid()) return;
      const std::string data = fptest::pattern(512 * 1024, 100 + static_cast<uint32_t>(i));
      if (echo_through(s.fd(), data) == data) ++good;
    });
  }
  for (auto& t : clients) t.join();
  REQUIRE(good == kClients);
  FaultProxy::Stats st = stats(*fp);
  REQUIRE(st.accepted == kClients);
  REQUIRE(st.a2b_bytes == kClients * 512 * 1024);
  ok(fp->stop());
}

TEST_CASE("an unreachable target resets the client", "[faultproxy]") {
  // A bound socket that does not listen: connecting to it is refused.
  Socket holder(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(holder.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
  socklen_t len = sizeof(sa);
  ::getsockname(holder.fd(), reinterpret_cast<sockaddr*>(&sa), &len);
  auto fp = start_proxy("127.0.0.1:" + std::to_string(ntohs(sa.sin_port)));
  Socket c = fptest::connect_local(fp->listen_port());
  REQUIRE(c.valid());
  std::string junk;
  REQUIRE(fptest::read_to_end(c.fd(), &junk, milliseconds(3000)) == End::kReset);
}
