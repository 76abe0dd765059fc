// DataConn (daemon/nats/data_conn.h) against real nats-servers on 127.0.0.1:
// messages with headers both ways, echo off, user/password and token auth,
// permissions violations told to the subscription or publish they concern,
// TLS checked against a trust store, refusals with the server's reason, a
// server that dies, and a fake server that sends garbage or announces an
// oversized message.
#include "nats/data_conn.h"

#include <nats/nats.h>

#include <catch2/catch.hpp>
#include <optional>
#include <thread>

#include "bare_nats_server.h"
#include "certs.h"
#include "fake_nats_server.h"
#include "operator_auth.h"
#include "util.h"

using isthmus::Status;
using isthmus::nats::DataConn;
using isthmus::nats::DataSub;
namespace wire = isthmus::nats::wire;

namespace {

using Server = harness::BareNatsServer;

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
  harness::ScopedEnv cert_file("SSL_CERT_FILE", std::nullopt);

  SECTION("trusted, by name, with a nats:// URL (the server requires TLS) or tls://") {
    cert_file.set(ca.ca_path());
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
    cert_file.set(tmp.file("nothing.pem"));
    Client c;
    c.open("tls://localhost:" + std::to_string(srv.port()));
    c.up_or_fail();
    CHECK_FALSE(c.is_up);
    CHECK(c.reason.find("certificate") != std::string::npos);
  }
  SECTION("a certificate for another name is refused") {
    cert_file.set(ca.ca_path());
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
    harness::FakeNatsServer fake(info + "PONG\r\nBOGUS stuff\r\n");
    Client c;
    c.open(url(fake.port()));
    c.run_until([&] { return c.is_down; }, "down");
    CHECK(c.reason.find("unknown operation 'BOGUS'") != std::string::npos);
  }
  SECTION("a message above nats-server's ceiling is refused from its control line") {
    // Above the server's max_payload (1024 here) is fine to receive (a
    // stream may hold older, larger messages); above 64 MB is not.
    harness::FakeNatsServer fake(info + "PONG\r\nMSG a 1 2000\r\n" + std::string(2000, 'x') + "\r\nMSG a 1 70000000\r\n");
    Client c;
    c.open(url(fake.port()));
    c.run_until([&] { return c.is_down; }, "down");
    CHECK(c.is_up);  // it was up after the PONG
    CHECK(c.conn->msgs_in() == 1);
    CHECK(c.reason.find("70000000 bytes") != std::string::npos);
  }
  SECTION("a server without headers is refused") {
    harness::FakeNatsServer fake("INFO {\"server_id\":\"old\",\"headers\":false}\r\n");
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
  // Logs and /healthz show URLs without their user info.
  CHECK(u->display() == "tls://nats.example:4443");
  u = isthmus::nats::parse_nats_url("nats://tok@[::1]");
  REQUIRE(u);
  CHECK(u->host == "::1");
  CHECK(u->port == 4222);
  CHECK(u->token == "tok");
  CHECK(u->display() == "nats://[::1]:4222");
  CHECK_FALSE(isthmus::nats::parse_nats_url("http://h:1"));
  CHECK_FALSE(isthmus::nats::parse_nats_url("nats://h:99999"));
  CHECK_FALSE(isthmus::nats::parse_nats_url("nats://:4222"));
  // An error names the URL without its password.
  auto bad_url = isthmus::nats::parse_nats_url("nats://u:s3cret@h:99999");
  REQUIRE_FALSE(bad_url);
  CHECK(bad_url.status().message().find("s3cret") == std::string::npos);
  CHECK(bad_url.status().message().find("nats://u:***@h:99999") != std::string::npos);

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

TEST_CASE(".creds: the user JWT and the nonce signed with its seed pass an operator-mode server",
          "[nats][data_conn]") {
  harness::TempDir tmp("isthmus-dc");
  harness::OperatorAuth auth;
  Server srv(tmp, "operator", auth.server_config());
  auth.write_user_creds(tmp.file("u.creds"));
  // cnats' signing needs the library opened, as the daemon's main does.
  REQUIRE(nats_Open(-1) == NATS_OK);
  // The right seed.
  Client ok;
  ok.open(url(srv.port()), tmp.file("u.creds"));
  ok.up_or_fail();
  INFO(ok.reason);
  CHECK(ok.is_up);
  // The user's JWT with another key's seed: the nonce signature is wrong.
  auth.write_wrong_seed_creds(tmp.file("wrong.creds"));
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
