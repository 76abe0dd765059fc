// DataConn (daemon/nats/data_conn.h) against real nats-servers on 127.0.0.1:
// messages with headers both ways, echo off, user/password and token auth,
// permissions violations told to the subscription or publish they concern,
// TLS checked against a trust store, refusals with the server's reason, a
// server that dies, and a fake server that sends garbage or announces an
// oversized message.
#include "nats/data_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nats/nats.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

#include "certs.h"
#include "http_client.h"
#include "nats_server.h"
#include "process.h"
#include "util.h"

using isthmus::Status;
using isthmus::nats::DataConn;
using isthmus::nats::DataSub;
namespace wire = isthmus::nats::wire;

namespace {

// A nats-server (no JetStream needed) with extra configuration lines.
class Server {
 public:
  Server(const harness::TempDir& tmp, const std::string& name, const std::string& extra)
      : port_(harness::free_port()), monitor_(harness::free_port()) {
    std::string dir = tmp.subdir(name);
    std::string conf = dir + "/nats.conf";
    harness::write_file(conf, "listen: \"127.0.0.1:" + std::to_string(port_) + "\"\nhttp: \"127.0.0.1:" +
                                  std::to_string(monitor_) + "\"\nmax_payload: 65536\n" + extra);
    proc_.spawn({harness::NatsServer::binary(), "-c", conf}, dir + "/nats.log");
    harness::check_for(
        std::chrono::seconds(20),
        [this] {
          if (!proc_.running()) throw harness::Fatal("nats-server exited: " + harness::tail_file(proc_.log_path(), 20));
          return harness::http_get(monitor_, "/healthz", std::chrono::seconds(1)).status == 200;
        },
        "nats-server " + name + " ready");
  }
  uint16_t port() const { return port_; }
  void kill() { proc_.kill(); }

 private:
  uint16_t port_, monitor_;
  harness::Process proc_;
};

// A loop, a DataConn and what it reported.
struct Client : DataConn::Listener {
  uv_loop_t loop{};
  std::shared_ptr<DataConn> conn;
  bool is_up = false, is_down = false;
  std::string reason;

  Client() { uv_loop_init(&loop); }
  ~Client() override {
    conn.reset();
    // Close callbacks (and a resolution still under way) before the loop goes.
    while (uv_loop_close(&loop) == UV_EBUSY) uv_run(&loop, UV_RUN_ONCE);
  }
  void open(const std::string& url, const std::string& creds = "") {
    DataConn::Options o;
    o.url = url;
    o.credentials = creds;
    o.connect_timeout_ms = 5000;
    conn = std::make_shared<DataConn>(&loop, o, this);
    conn->open();
  }
  void on_data_up() override { is_up = true; }
  void on_data_down(const std::string& r) override {
    is_down = true;
    reason = r;
  }
  // Runs the loop until pred() or the deadline.
  void run_until(const std::function<bool()>& pred, const std::string& what,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = harness::Clock::now() + timeout;
    while (!pred()) {
      if (harness::Clock::now() > deadline) FAIL("timed out waiting for " << what << " (reason: " << reason << ")");
      uv_run(&loop, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  void up_or_fail() { run_until([this] { return is_up || is_down; }, "connected"); }
};

struct Got {
  std::string subject, reply, headers, payload;
};

// A TCP listener that answers its first client with `script` and keeps the
// socket open until destroyed.
class FakeServer {
 public:
  explicit FakeServer(std::string script) : script_(std::move(script)), port_(harness::free_port()) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(::listen(fd_, 1) == 0);
    th_ = std::thread([this] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      client_ = c;
      (void)::write(c, script_.data(), script_.size());
    });
  }
  ~FakeServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    th_.join();
    if (client_ >= 0) ::close(client_);
  }
  uint16_t port() const { return port_; }

 private:
  std::string script_;
  uint16_t port_;
  int fd_ = -1;
  std::atomic<int> client_{-1};
  std::thread th_;
};

std::string url(uint16_t port, const std::string& userinfo = "", const std::string& scheme = "nats") {
  return scheme + "://" + userinfo + "127.0.0.1:" + std::to_string(port);
}

}  // namespace

TEST_CASE("messages with headers cross a real server; the writer's own are not echoed", "[nats][data_conn]") {
  harness::TempDir tmp("isthmus-dc");
  Server srv(tmp, "plain", "");
  Client a, b;
  a.open(url(srv.port()));
  b.open(url(srv.port()));
  a.up_or_fail();
  b.up_or_fail();
  REQUIRE(a.is_up);
  REQUIRE(b.is_up);

  std::vector<Got> at_a, at_b;
  bool marker_at_a = false;
  auto sub_a = DataSub::create(a.conn, "orders.>", [&at_a, &marker_at_a](const wire::ServerOp& m) {
    if (m.subject == "orders.marker") {
      marker_at_a = true;
      return;
    }
    at_a.push_back({std::string(m.subject), std::string(m.reply), std::string(m.headers), std::string(m.payload)});
  });
  auto sub_b = DataSub::create(b.conn, "orders.>", [&at_b](const wire::ServerOp& m) {
    at_b.push_back({std::string(m.subject), std::string(m.reply), std::string(m.headers), std::string(m.payload)});
  });
  REQUIRE(sub_a);
  REQUIRE(sub_b);
  a.conn->flush();
  b.conn->flush();
  // The subscriptions are in place once a PING sent after them is answered:
  // publish a marker from b until a sees it.
  a.run_until(
      [&] {
        if (!marker_at_a) {
          (void)b.conn->publish("orders.marker", "", "m");
          b.conn->flush();
          uv_run(&b.loop, UV_RUN_NOWAIT);
        }
        return marker_at_a;
      },
      "a marker");

  wire::HeaderBlock h;
  h.add("Isthmus-Origin-Seq", "42");
  h.add("K", "v1");
  h.add("K", "v2");
  REQUIRE(b.conn->publish("orders.eu", "reply.x", h, "payload \r\n with CRLF inside"));
  REQUIRE(b.conn->publish("orders.us", "", std::string(60000, 'z')));
  b.conn->flush();
  a.run_until(
      [&] {
        uv_run(&b.loop, UV_RUN_NOWAIT);
        return at_a.size() >= 2;
      },
      "two messages at a");
  REQUIRE(at_a.size() == 2);
  CHECK(at_a[0].subject == "orders.eu");
  CHECK(at_a[0].reply == "reply.x");
  CHECK(at_a[0].headers == "NATS/1.0\r\nIsthmus-Origin-Seq: 42\r\nK: v1\r\nK: v2\r\n\r\n");
  CHECK(at_a[0].payload == "payload \r\n with CRLF inside");
  CHECK(at_a[1].payload == std::string(60000, 'z'));
  // b subscribed to the same subjects but its own writes are not echoed.
  CHECK(at_b.empty());

  // What the protocol cannot carry, or the server would refuse, is refused
  // here, before anything is written.
  CHECK(b.conn->publish("bad subject", "", "x").code() == isthmus::Code::kInvalid);
  CHECK(b.conn->publish("ok", "bad\r\nreply", "x").code() == isthmus::Code::kInvalid);
  CHECK(b.conn->publish("ok", "", std::string(65537, 'x')).code() == isthmus::Code::kTooLarge);
  CHECK(b.conn->max_payload() == 65536);

  // After unsubscribing, nothing more arrives at a.
  sub_a.value().reset();
  REQUIRE(b.conn->publish("orders.late", "", "late"));
  REQUIRE(b.conn->publish("orders.marker", "", "m"));
  b.conn->flush();
  size_t before = at_a.size();
  // A third client sees the marker: the late message has passed the server.
  Client c;
  c.open(url(srv.port()));
  c.up_or_fail();
  bool c_saw = false;
  auto sub_c = DataSub::create(c.conn, "orders.done", [&c_saw](const wire::ServerOp&) { c_saw = true; });
  REQUIRE(sub_c);
  c.conn->flush();
  c.run_until(
      [&] {
        (void)b.conn->publish("orders.done", "", "");
        b.conn->flush();
        uv_run(&b.loop, UV_RUN_NOWAIT);
        uv_run(&a.loop, UV_RUN_NOWAIT);
        return c_saw;
      },
      "the last marker");
  CHECK(at_a.size() == before);
  CHECK(a.conn->up());
}

TEST_CASE("user/password and token authentication; refusals carry the server's reason", "[nats][data_conn]") {
  harness::TempDir tmp("isthmus-dc");
  // Connects and reports whether it came up, and why not.
  auto attempt = [](const std::string& u) {
    Client c;
    c.open(u);
    c.up_or_fail();
    return std::make_pair(c.is_up, c.reason);
  };
  SECTION("user and password") {
    Server srv(tmp, "userpass", "authorization { user: isthmus, password: s3cret }\n");
    CHECK(attempt(url(srv.port(), "isthmus:s3cret@")).first);
    for (const std::string& who : {std::string("isthmus:wrong@"), std::string()}) {
      auto [up, reason] = attempt(url(srv.port(), who));
      INFO("user info '" << who << "'");
      CHECK_FALSE(up);
      CHECK(reason.find("Authorization Violation") != std::string::npos);
    }
  }
  SECTION("token") {
    Server srv(tmp, "token", "authorization { token: t0ken }\n");
    CHECK(attempt(url(srv.port(), "t0ken@")).first);
    auto [up, reason] = attempt(url(srv.port(), "other@"));
    CHECK_FALSE(up);
    CHECK(reason.find("Authorization Violation") != std::string::npos);
  }
  SECTION("an unreadable credentials file is named") {
    Server srv(tmp, "creds", "");
    Client c;
    c.open(url(srv.port()), tmp.file("missing.creds"));
    c.up_or_fail();
    CHECK_FALSE(c.is_up);
    CHECK(c.reason.find("missing.creds") != std::string::npos);
  }
}

TEST_CASE("a permissions violation keeps the connection; a refused subscription hears of it", "[nats][data_conn]") {
  harness::TempDir tmp("isthmus-dc");
  Server srv(tmp, "perms",
             "authorization { users = [ { user: u, password: p, permissions: { subscribe: { deny: [\"secret.>\"] }, "
             "publish: { deny: [\"forbidden.>\"] } } } ] }\n");
  Client c;
  c.open(url(srv.port(), "u:p@"));
  c.up_or_fail();
  REQUIRE(c.is_up);
  std::string refused;
  bool other_refused = false;
  auto denied = DataSub::create(
      c.conn, "secret.x", [](const wire::ServerOp&) {}, [&refused](const std::string& e) { refused = e; });
  bool got = false;
  auto allowed = DataSub::create(
      c.conn, "open.x", [&got](const wire::ServerOp& m) { got = m.payload == "after"; },
      [&other_refused](const std::string&) { other_refused = true; });
  REQUIRE(denied);
  REQUIRE(allowed);
  REQUIRE(c.conn->publish("forbidden.y", "", "nope"));
  c.conn->flush();
  c.run_until([&] { return !refused.empty(); }, "the refused subscription's error");
  CHECK(refused.find("Permissions Violation for Subscription to \"secret.x\"") != std::string::npos);
  // Still up: the other subscription works, and only the denied one heard.
  Client d;
  d.open(url(srv.port(), "u:p@"));
  d.up_or_fail();
  c.run_until(
      [&] {
        (void)d.conn->publish("open.x", "", "after");
        d.conn->flush();
        uv_run(&d.loop, UV_RUN_NOWAIT);
        return got;
      },
      "a message after the violations");
  CHECK(c.conn->up());
  CHECK_FALSE(c.is_down);
  CHECK_FALSE(other_refused);
  CHECK(c.conn->permission_errors() >= 2);  // the subscription and the publish
}

TEST_CASE("a refused publish reaches the watches of its subject, once each; the connection stays",
          "[nats][data_conn]") {
  harness::TempDir tmp("isthmus-dc");
  Server srv(tmp, "pubperms",
             "authorization { users = [ { user: u, password: p, permissions: { publish: { deny: [\"forbidden.>\"] "
             "} } } ] }\n");
  Client c;
  c.open(url(srv.port(), "u:p@"));
  c.up_or_fail();
  REQUIRE(c.is_up);
  struct Heard {
    std::vector<std::string> subjects, errors;
  };
  Heard star, both, other;
  auto hear = [](Heard& h) {
    return [&h](const std::string& subject, const std::string& error) {
      h.subjects.push_back(subject);
      h.errors.push_back(error);
    };
  };
  // One pattern matches; two patterns both match (told once); none match.
  auto w_star = isthmus::nats::RefusedPublishWatch::create(c.conn, {"forbidden.*"}, hear(star));
  auto w_both = isthmus::nats::RefusedPublishWatch::create(c.conn, {"forbidden.a", "forbidden.>"}, hear(both));
  auto w_other = isthmus::nats::RefusedPublishWatch::create(c.conn, {"open.>", "forbidden"}, hear(other));
  REQUIRE(w_star);
  REQUIRE(w_both);
  REQUIRE(w_other);

  REQUIRE(c.conn->publish("forbidden.a", "", "nope"));
  // A subject the server quotes with escapes (%q) comes back as published.
  REQUIRE(c.conn->publish("forbidden.\"q\"\\x", "_INBOX.r", "nope"));
  c.conn->flush();
  c.run_until([&] { return both.subjects.size() >= 2; }, "two refused publishes");
  CHECK(both.subjects == std::vector<std::string>{"forbidden.a", "forbidden.\"q\"\\x"});
  CHECK(star.subjects == both.subjects);
  CHECK(both.errors.at(0) == "Permissions Violation for Publish to \"forbidden.a\"");

  // An unwatched owner hears no more; a deeper subject only '>' matches.
  w_star->reset();
  REQUIRE(c.conn->publish("forbidden.b.c", "", "nope"));
  c.conn->flush();
  c.run_until([&] { return both.subjects.size() >= 3; }, "the third refused publish");
  CHECK(both.subjects.back() == "forbidden.b.c");
  CHECK(star.subjects.size() == 2);
  CHECK(other.subjects.empty());
  CHECK(c.conn->refused_publishes_claimed() == 3);

  // The connection still carries what the user may publish.
  Client d;
  d.open(url(srv.port(), "u:p@"));
  d.up_or_fail();
  bool got = false;
  auto sub = DataSub::create(d.conn, "open.x", [&got](const wire::ServerOp& m) { got = m.payload == "after"; });
  REQUIRE(sub);
  d.conn->flush();
  d.run_until(
      [&] {
        (void)c.conn->publish("open.x", "", "after");
        c.conn->flush();
        uv_run(&c.loop, UV_RUN_NOWAIT);
        return got;
      },
      "a message after the refusals");
  CHECK(c.conn->up());
  CHECK_FALSE(c.is_down);
  CHECK(c.conn->permission_errors() == 3);
}

TEST_CASE("TLS: the server's certificate is checked against the trust store and the host name",
          "[nats][data_conn]") {
  harness::TempDir tmp("isthmus-dc");
  // A certificate for "localhost" from a test CA.
  const auto& ca = harness::region_ca(tmp.path());
  auto files = ca.issue({"localhost", {"localhost"}}, tmp.file("localhost.crt"), tmp.file("localhost.key"));
  Server srv(tmp, "tls",
             "tls { cert_file: \"" + files.cert + "\"\n key_file: \"" + files.key + "\" }\n");
  // SSL_CERT_FILE is restored when the case ends, also when it fails.
  struct EnvGuard {
    std::optional<std::string> saved;
    EnvGuard() {
      if (const char* v = std::getenv("SSL_CERT_FILE")) saved = v;
    }
    ~EnvGuard() {
      if (saved) {
        ::setenv("SSL_CERT_FILE", saved->c_str(), 1);
      } else {
        ::unsetenv("SSL_CERT_FILE");
      }
    }
  } env_guard;

  SECTION("trusted, by name, with a nats:// URL (the server requires TLS) or tls://") {
    ::setenv("SSL_CERT_FILE", ca.ca_path().c_str(), 1);
    for (const char* scheme : {"nats", "tls"}) {
      Client c;
      c.open(std::string(scheme) + "://localhost:" + std::to_string(srv.port()));
      c.up_or_fail();
      INFO(scheme << ": " << c.reason);
      REQUIRE(c.is_up);
      bool got = false;
      auto sub = DataSub::create(c.conn, "t", [&got](const wire::ServerOp& m) { got = m.payload == "over tls"; });
      REQUIRE(sub);
      Client d;
      d.open(std::string(scheme) + "://localhost:" + std::to_string(srv.port()));
      d.up_or_fail();
      REQUIRE(d.is_up);
      c.conn->flush();
      c.run_until(
          [&] {
            (void)d.conn->publish("t", "", "over tls");
            d.conn->flush();
            uv_run(&d.loop, UV_RUN_NOWAIT);
            return got;
          },
          "a message over TLS");
    }
  }
  SECTION("an untrusted CA is refused") {
    ::setenv("SSL_CERT_FILE", tmp.file("nothing.pem").c_str(), 1);
    Client c;
    c.open("tls://localhost:" + std::to_string(srv.port()));
    c.up_or_fail();
    CHECK_FALSE(c.is_up);
    CHECK(c.reason.find("certificate") != std::string::npos);
  }
  SECTION("a certificate for another name is refused") {
    ::setenv("SSL_CERT_FILE", ca.ca_path().c_str(), 1);
    Client c;
    c.open("tls://127.0.0.1:" + std::to_string(srv.port()));  // the certificate names localhost only
    c.up_or_fail();
    CHECK_FALSE(c.is_up);
    CHECK(c.reason.find("certificate") != std::string::npos);
  }
}

TEST_CASE("a tls:// URL to a server without TLS is refused", "[nats][data_conn]") {
  harness::TempDir tmp("isthmus-dc");
  Server srv(tmp, "plain", "");
  Client c;
  c.open(url(srv.port(), "", "tls"));
  c.up_or_fail();
  CHECK_FALSE(c.is_up);
  CHECK(c.reason.find("offers no TLS") != std::string::npos);
}

TEST_CASE("a server that dies takes the connection down with a reason", "[nats][data_conn]") {
  harness::TempDir tmp("isthmus-dc");
  Server srv(tmp, "dies", "");
  Client c;
  c.open(url(srv.port()));
  c.up_or_fail();
  REQUIRE(c.is_up);
  srv.kill();
  c.run_until([&] { return c.is_down; }, "down");
  CHECK(c.reason.find("closed by the server") != std::string::npos);
  CHECK_FALSE(c.conn->up());
  // Nobody listening at all.
  Client d;
  d.open(url(harness::free_port()));
  d.up_or_fail();
  CHECK_FALSE(d.is_up);
  CHECK(d.reason.find("connect to 127.0.0.1") != std::string::npos);
}

TEST_CASE("garbage or an oversized message from the server closes the connection", "[nats][data_conn]") {
  const std::string info = "INFO {\"server_id\":\"fake\",\"max_payload\":1024,\"headers\":true}\r\n";
  SECTION("garbage") {
    FakeServer fake(info + "PONG\r\nBOGUS stuff\r\n");
    Client c;
    c.open(url(fake.port()));
    c.run_until([&] { return c.is_down; }, "down");
    CHECK(c.reason.find("unknown operation 'BOGUS'") != std::string::npos);
  }
  SECTION("a message above nats-server's ceiling is refused from its control line") {
    // Above the server's max_payload (1024 here) is fine to receive (a
    // stream may hold older, larger messages); above 64 MB is not.
    FakeServer fake(info + "PONG\r\nMSG a 1 2000\r\n" + std::string(2000, 'x') + "\r\nMSG a 1 70000000\r\n");
    Client c;
    c.open(url(fake.port()));
    c.run_until([&] { return c.is_down; }, "down");
    CHECK(c.is_up);  // it was up after the PONG
    CHECK(c.conn->msgs_in() == 1);
    CHECK(c.reason.find("70000000 bytes") != std::string::npos);
  }
  SECTION("a server without headers is refused") {
    FakeServer fake("INFO {\"server_id\":\"old\",\"headers\":false}\r\n");
    Client c;
    c.open(url(fake.port()));
    c.run_until([&] { return c.is_down; }, "down");
    CHECK(c.reason.find("headers") != std::string::npos);
  }
}

TEST_CASE("URLs and credentials files", "[nats][data_conn]") {
  auto u = isthmus::nats::parse_nats_url("tls://user:pa:ss@nats.example:4443");
  REQUIRE(u);
  CHECK(u->tls);
  CHECK(u->host == "nats.example");
  CHECK(u->port == 4443);
  CHECK(u->user == "user");
  CHECK(u->password == "pa:ss");
  u = isthmus::nats::parse_nats_url("nats://tok@[::1]");
  REQUIRE(u);
  CHECK(u->host == "::1");
  CHECK(u->port == 4222);
  CHECK(u->token == "tok");
  CHECK_FALSE(isthmus::nats::parse_nats_url("http://h:1"));
  CHECK_FALSE(isthmus::nats::parse_nats_url("nats://h:99999"));
  CHECK_FALSE(isthmus::nats::parse_nats_url("nats://:4222"));

  harness::TempDir tmp("isthmus-dc");
  harness::write_file(tmp.file("u.creds"),
                      "-----BEGIN NATS USER JWT-----\neyJhbGciOi.jwt.body\n------END NATS USER JWT------\n\n"
                      "************************* IMPORTANT *************************\n"
                      "NKEY Seed printed below can be used to sign and prove identity.\n\n"
                      "-----BEGIN USER NKEY SEED-----\nSUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4\n"
                      "------END USER NKEY SEED------\n");
  auto c = isthmus::nats::read_credentials(tmp.file("u.creds"));
  REQUIRE(c);
  CHECK(c->jwt == "eyJhbGciOi.jwt.body");
  CHECK(c->seed == "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4");
  harness::write_file(tmp.file("nojwt.creds"), "-----BEGIN USER NKEY SEED-----\nSUA\n------END USER NKEY SEED------\n");
  auto bad = isthmus::nats::read_credentials(tmp.file("nojwt.creds"));
  REQUIRE_FALSE(bad);
  CHECK(bad.status().message().find("no user JWT") != std::string::npos);
}

// --- Decentralized auth: an operator, an account and a user made here ---
//
// nkeys: a public key is base32(prefix | 32-byte ed25519 key | crc16 LE),
// a seed base32(seed prefix | type | 32-byte seed | crc16 LE); JWTs are
// base64url(header).base64url(claims).base64url(ed25519 signature by the
// issuer's key). The server (operator mode, memory resolver) checks the
// user JWT's chain and the nonce signature made with the user's seed.
namespace {

std::string b32(const std::vector<uint8_t>& in) {
  static const char* kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (uint8_t b : in) {
    buf = (buf << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlpha[(buf >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kAlpha[(buf << (5 - bits)) & 31]);
  return out;
}

uint16_t crc16_xmodem(const std::vector<uint8_t>& d) {
  uint16_t crc = 0;
  for (uint8_t b : d) {
    crc ^= static_cast<uint16_t>(b) << 8;
    for (int i = 0; i < 8; ++i) crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
  }
  return crc;
}

std::string b64url(const std::string& in) {
  static const char* kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buf = (buf << 8) | c;
    bits += 8;
    while (bits >= 6) {
      out.push_back(kAlpha[(buf >> (bits - 6)) & 63]);
      bits -= 6;
    }
  }
  if (bits > 0) out.push_back(kAlpha[(buf << (6 - bits)) & 63]);
  return out;
}

struct NKey {
  std::vector<uint8_t> seed, pub;  // raw 32 bytes each
  uint8_t prefix = 0;              // 14<<3 operator, 0 account, 20<<3 user

  static NKey make(uint8_t prefix) {
    NKey k;
    k.prefix = prefix;
    EVP_PKEY* key = nullptr;
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
    REQUIRE(ctx != nullptr);
    REQUIRE(EVP_PKEY_keygen_init(ctx) == 1);
    REQUIRE(EVP_PKEY_keygen(ctx, &key) == 1);
    EVP_PKEY_CTX_free(ctx);
    size_t n = 32;
    k.seed.resize(32);
    k.pub.resize(32);
    REQUIRE(EVP_PKEY_get_raw_private_key(key, k.seed.data(), &n) == 1);
    n = 32;
    REQUIRE(EVP_PKEY_get_raw_public_key(key, k.pub.data(), &n) == 1);
    EVP_PKEY_free(key);
    return k;
  }
  std::string public_key() const {
    std::vector<uint8_t> raw{prefix};
    raw.insert(raw.end(), pub.begin(), pub.end());
    uint16_t c = crc16_xmodem(raw);
    raw.push_back(static_cast<uint8_t>(c & 0xff));
    raw.push_back(static_cast<uint8_t>(c >> 8));
    return b32(raw);
  }
  std::string encoded_seed() const {
    const uint8_t kSeed = 18 << 3;
    std::vector<uint8_t> raw{static_cast<uint8_t>(kSeed | (prefix >> 5)), static_cast<uint8_t>((prefix & 31) << 3)};
    raw.insert(raw.end(), seed.begin(), seed.end());
    uint16_t c = crc16_xmodem(raw);
    raw.push_back(static_cast<uint8_t>(c & 0xff));
    raw.push_back(static_cast<uint8_t>(c >> 8));
    return b32(raw);
  }
  std::string sign(const std::string& data) const {
    EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size());
    REQUIRE(key != nullptr);
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    REQUIRE(EVP_DigestSignInit(md, nullptr, nullptr, nullptr, key) == 1);
    std::string sig(64, '\0');
    size_t n = sig.size();
    REQUIRE(EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &n,
                           reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    return sig;
  }
};

std::string jwt(const NKey& issuer, const NKey& subject, const std::string& name, nlohmann::json nats) {
  static int jti = 0;
  nlohmann::json claims = {{"jti", "ISTHMUSTEST" + std::to_string(++jti)},
                           {"iat", static_cast<int64_t>(::time(nullptr))},
                           {"iss", issuer.public_key()},
                           {"name", name},
                           {"sub", subject.public_key()},
                           {"nats", std::move(nats)}};
  std::string head = b64url(R"({"typ":"JWT","alg":"ed25519-nkey"})") + "." + b64url(claims.dump());
  return head + "." + b64url(issuer.sign(head));
}

std::string creds_file(const std::string& user_jwt, const NKey& user) {
  return "-----BEGIN NATS USER JWT-----\n" + user_jwt + "\n------END NATS USER JWT------\n\n" +
         "-----BEGIN USER NKEY SEED-----\n" + user.encoded_seed() + "\n------END USER NKEY SEED------\n";
}

}  // namespace

TEST_CASE(".creds: the user JWT and the nonce signed with its seed pass an operator-mode server",
          "[nats][data_conn]") {
  harness::TempDir tmp("isthmus-dc");
  NKey op = NKey::make(14 << 3), acc = NKey::make(0), user = NKey::make(20 << 3), other = NKey::make(20 << 3);
  const std::string op_jwt = jwt(op, op, "op", {{"type", "operator"}, {"version", 2}});
  const nlohmann::json limits = {{"subs", -1}, {"data", -1}, {"payload", -1}, {"imports", -1},
                                 {"exports", -1}, {"wildcards", true}, {"conn", -1}, {"leaf", -1}};
  const std::string acc_jwt = jwt(op, acc, "acc", {{"limits", limits}, {"type", "account"}, {"version", 2}});
  const nlohmann::json user_claims = {{"pub", nlohmann::json::object()}, {"sub", nlohmann::json::object()},
                                      {"subs", -1}, {"data", -1}, {"payload", -1}, {"type", "user"}, {"version", 2}};
  const std::string user_jwt = jwt(acc, user, "u", user_claims);
  Server srv(tmp, "operator",
             "operator: " + op_jwt + "\nresolver: MEMORY\nresolver_preload: {\n  " + acc.public_key() + ": " +
                 acc_jwt + "\n}\n");
  harness::write_file(tmp.file("u.creds"), creds_file(user_jwt, user));
  // cnats' signing needs the library opened, as the daemon's main does.
  REQUIRE(nats_Open(-1) == NATS_OK);
  // The right seed.
  Client ok;
  ok.open(url(srv.port()), tmp.file("u.creds"));
  ok.up_or_fail();
  INFO(ok.reason);
  CHECK(ok.is_up);
  // The user's JWT with another key's seed: the nonce signature is wrong.
  harness::write_file(tmp.file("wrong.creds"), creds_file(user_jwt, other));
  Client bad;
  bad.open(url(srv.port()), tmp.file("wrong.creds"));
  bad.up_or_fail();
  CHECK_FALSE(bad.is_up);
  CHECK(bad.reason.find("Authorization Violation") != std::string::npos);
  // No credentials at all.
  Client none;
  none.open(url(srv.port()));
  none.up_or_fail();
  CHECK_FALSE(none.is_up);
}
