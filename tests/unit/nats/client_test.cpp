// The daemon's cnats connection (daemon/nats/client.h) against real
// nats-servers on 127.0.0.1 and a scripted fake one: TLS as the data
// connection does it (the certificate checked against the trust store named
// by SSL_CERT_FILE and against the URL's host name or IP address; a tls://
// URL never falls back to plaintext), failures named per URL without user
// info, several URLs, a server that stops answering after its INFO (plain
// and TLS), and a .creds file against an operator-mode server.
#include "nats/client.h"

#include <nats/nats.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <functional>
#include <catch2/catch.hpp>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>

#include "bare_nats_server.h"
#include "certs.h"
#include "fake_nats_server.h"
#include "operator_auth.h"
#include "util.h"

using isthmus::nats::Client;
using isthmus::nats::ConnPtr;

namespace {

// A loop, a Mailbox and a started Client, and what it reported.
struct Cnats : isthmus::nats::ClientListener {
  uv_loop_t loop{};
  std::unique_ptr<isthmus::loop::Mailbox> mailbox;
  std::unique_ptr<Client> client;
  ConnPtr conn;
  bool up = false;

  explicit Cnats(std::vector<std::string> urls, const std::string& creds = "") {
    REQUIRE(nats_Open(-1) == NATS_OK);
    uv_loop_init(&loop);
    mailbox = std::make_unique<isthmus::loop::Mailbox>(&loop);
    isthmus::config::Nats cfg;
    cfg.urls = std::move(urls);
    cfg.credentials = creds;
    client = std::make_unique<Client>(cfg, mailbox.get(), this);
    client->start();
  }
  ~Cnats() override {
    client->stop();
    client.reset();
    conn.reset();
    mailbox->close();
    while (uv_loop_close(&loop) == UV_EBUSY) uv_run(&loop, UV_RUN_ONCE);
  }
  void on_nats_up(ConnPtr c, uint64_t g, const std::string& u) override {
    up = true;
    conn = std::move(c);
    generation = g;
    url = u;
  }
  void on_nats_down(const std::string& why) override {
    up = false;
    ++downs;
    down_reason = why;
  }
  uint64_t generation = 0;
  std::string url;
  int downs = 0;
  std::string down_reason;

  // Runs the loop until pred() or `ms` have passed; returns pred().
  bool run_until(const std::function<bool()>& pred, int ms) {
    auto deadline = harness::Clock::now() + std::chrono::milliseconds(ms);
    while (!pred() && harness::Clock::now() < deadline) {
      uv_run(&loop, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return pred();
  }

  // Runs the loop until the first attempt over every URL has ended: up, or
  // an error reported (last_error(), set on the loop thread).
  void settle() {
    auto deadline = harness::Clock::now() + std::chrono::seconds(10);
    while (!up && client->last_error().empty()) {
      if (harness::Clock::now() > deadline) FAIL("the cnats client neither connected nor failed within 10 s");
      uv_run(&loop, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  const std::string& error() const { return client->last_error(); }
};

// The server's client connections named "isthmusd" (cnats' name), as
// /connz reports them.
std::vector<nlohmann::json> isthmusd_conns(harness::BareNatsServer& srv) {
  std::vector<nlohmann::json> out;
  for (const auto& c : srv.connz().value("connections", nlohmann::json::array())) {
    if (c.value("name", "") == "isthmusd") out.push_back(c);
  }
  return out;
}

// A server that accepts every connection, sends a nats-server's INFO (and,
// with certificates, requires TLS and completes the handshake), then reads
// whatever comes and never answers: a nats-server stopped or wedged right
// after accepting. Counts the connections accepted and the ones the client
// closed.
class SilentServer {
 public:
  explicit SilentServer(const harness::CertFiles* tls = nullptr) : port_(harness::free_port()) {
    if (tls != nullptr) {
      ctx_ = SSL_CTX_new(TLS_server_method());
      if (SSL_CTX_use_certificate_chain_file(ctx_, tls->cert.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(ctx_, tls->key.c_str(), SSL_FILETYPE_PEM) != 1)
        throw std::runtime_error("silent server: cannot load the certificate");
    }
    fd_ = harness::listen_loopback(port_, 16, "silent server");
    th_ = std::thread([this] { run(); });
  }
  ~SilentServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    th_.join();
    ::close(fd_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }
  int closed_by_client() const { return closed_; }

 private:
  // One connection at a time: the client makes one attempt at a time.
  void run() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ++accepted_;
      std::string info = std::string("INFO {\"server_id\":\"silent\",\"version\":\"2.9.10\",\"proto\":1,") +
                         "\"headers\":true,\"max_payload\":65536" + (ctx_ ? ",\"tls_required\":true" : "") + "}\r\n";
      (void)::write(c, info.data(), info.size());
      SSL* ssl = nullptr;
      if (ctx_ != nullptr) {
        ssl = SSL_new(ctx_);
        SSL_set_fd(ssl, c);
        if (SSL_accept(ssl) != 1) {
          SSL_free(ssl);
          ::close(c);
          continue;
        }
      }
      char buf[4096];
      for (;;) {
        pollfd p{c, POLLIN, 0};
        if (stop_) break;
        if (::poll(&p, 1, 20) <= 0 && (ssl == nullptr || SSL_pending(ssl) == 0)) continue;
        int n = ssl != nullptr ? SSL_read(ssl, buf, sizeof(buf)) : static_cast<int>(::read(c, buf, sizeof(buf)));
        if (n <= 0) {
          ++closed_;
          break;
        }
      }
      if (ssl != nullptr) SSL_free(ssl);
      ::close(c);
    }
  }

  uint16_t port_;
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0}, closed_{0};
  std::thread th_;
};

std::string tls_config(const harness::CertFiles& f) {
  return "tls { cert_file: \"" + f.cert + "\"\n key_file: \"" + f.key + "\" }\n";
}

}  // namespace

TEST_CASE("cnats over TLS: the certificate is checked against SSL_CERT_FILE's CA and the URL's host",
          "[nats][client]") {
  harness::TempDir tmp("isthmus-cnats");
  const auto& ca = harness::region_ca(tmp.path());
  harness::TestCa other_ca("another CA", tmp.file("other-ca.pem"));
  auto by_name = ca.issue({"localhost", {"localhost"}}, tmp.file("name.crt"), tmp.file("name.key"));
  auto by_ip = ca.issue({"ip", {}, {"127.0.0.1"}}, tmp.file("ip.crt"), tmp.file("ip.key"));
  harness::BareNatsServer named(tmp, "named", tls_config(by_name));
  harness::BareNatsServer ip(tmp, "ip", tls_config(by_ip));
  harness::ScopedEnv cert_file("SSL_CERT_FILE", ca.ca_path());
  const std::string port = std::to_string(named.port());

  // Trusted, right name: TLS whether the URL asks for it or the server
  // requires it.
  for (const char* scheme : {"tls", "nats"}) {
    INFO(scheme);
    Cnats c({std::string(scheme) + "://localhost:" + port});
    c.settle();
    INFO(c.error());
    REQUIRE(c.up);
    // The previous round's connection may still be closing at the server.
    std::vector<nlohmann::json> conns;
    harness::check_for(
        std::chrono::seconds(5),
        [&](std::string& state) {
          conns = isthmusd_conns(named);
          state = std::to_string(conns.size()) + " isthmusd connections";
          return conns.size() == 1;
        },
        "one isthmusd connection at the server");
    CHECK_FALSE(conns[0].value("tls_version", "").empty());
  }
  // An IP address in the URL is checked against the IP addresses the
  // certificate names, not its DNS names.
  {
    Cnats c({"tls://127.0.0.1:" + port});
    c.settle();
    CHECK_FALSE(c.up);
    CHECK(c.error() == "tls://127.0.0.1:" + port + ": TLS: server certificate: IP address mismatch" +
                           " (depth=0:cert=/CN=localhost:issuer=/CN=isthmus test CA)");
  }
  {
    Cnats c({"tls://127.0.0.1:" + std::to_string(ip.port())});
    c.settle();
    INFO(c.error());
    CHECK(c.up);
  }
  // A name the certificate does not carry.
  {
    Cnats c({"tls://localhost:" + std::to_string(ip.port())});
    c.settle();
    CHECK_FALSE(c.up);
    CHECK(c.error().find("TLS: server certificate: hostname mismatch (expected=localhost") != std::string::npos);
  }
  // A trust store without the server's CA, for either scheme.
  cert_file.set(other_ca.ca_path());
  for (const char* scheme : {"tls", "nats"}) {
    INFO(scheme);
    Cnats c({std::string(scheme) + "://localhost:" + port});
    c.settle();
    CHECK_FALSE(c.up);
    CHECK(c.error().find("localhost:" + port + ": TLS: server certificate: unable to get local issuer certificate") !=
          std::string::npos);
  }
  // None of the refused attempts left a connection behind.
  CHECK(isthmusd_conns(named).empty());
  CHECK(isthmusd_conns(ip).empty());
}

TEST_CASE("cnats: a tls:// URL to a server without TLS is refused before the CONNECT", "[nats][client]") {
  // cnats alone would carry on in plaintext and send the URL's password.
  // (The fake hangs up on the first bytes it receives, so that a client
  // that sent a CONNECT would fail at once rather than after the timeout.)
  harness::FakeNatsServer fake(
      "INFO {\"server_id\":\"plain\",\"version\":\"2.9.10\",\"proto\":1,\"headers\":true,\"max_payload\":65536,"
      "\"auth_required\":true}\r\n",
      harness::FakeNatsServer::AfterInput::kHangUp);
  const std::string port = std::to_string(fake.port());
  {
    Cnats c({"tls://isthmus:s3cret@127.0.0.1:" + port});
    c.settle();
    CHECK_FALSE(c.up);
    CHECK(c.error() == "tls://127.0.0.1:" + port + ": tls:// URL, but the server does not require TLS (no TLS, or TLS optional with allow_non_tls, which the NATS C client cannot use)");
  }
  harness::check_for(std::chrono::seconds(5), [&] { return fake.client_closed(); }, "the client to hang up");
  CHECK(fake.received().find("CONNECT") == std::string::npos);
  CHECK(fake.received().find("s3cret") == std::string::npos);

  // The same with a real server.
  harness::TempDir tmp("isthmus-cnats");
  harness::BareNatsServer plain(tmp, "plain", "authorization { user: isthmus, password: s3cret }\n");
  Cnats c({"tls://isthmus:s3cret@127.0.0.1:" + std::to_string(plain.port())});
  c.settle();
  CHECK_FALSE(c.up);
  CHECK(c.error().find("tls:// URL, but the server does not require TLS") != std::string::npos);
  CHECK(isthmusd_conns(plain).empty());
}

TEST_CASE("cnats: each URL is tried; a failure names every URL without its user info", "[nats][client]") {
  harness::TempDir tmp("isthmus-cnats");
  harness::BareNatsServer plain(tmp, "plain", "authorization { user: isthmus, password: s3cret }\n");
  const std::string closed = std::to_string(harness::free_port());  // nothing listens there
  const std::string good = "nats://isthmus:s3cret@127.0.0.1:" + std::to_string(plain.port());
  {
    Cnats c({"nats://isthmus:s3cret@127.0.0.1:" + closed, good});
    c.settle();
    INFO(c.error());
    CHECK(c.up);
  }
  {
    Cnats c({"nats://isthmus:wrong@127.0.0.1:" + closed, "nats://isthmus:wrong@127.0.0.1:" + std::to_string(plain.port())});
    c.settle();
    CHECK_FALSE(c.up);
    const std::string& e = c.error();
    INFO(e);
    CHECK(e.find("nats://127.0.0.1:" + closed + ": ") != std::string::npos);
    CHECK(e.find("nats://127.0.0.1:" + std::to_string(plain.port()) + ": ") != std::string::npos);
    CHECK(e.find("Authorization Violation") != std::string::npos);
    CHECK(e.find("wrong") == std::string::npos);
  }
}

TEST_CASE("cnats with a .creds file: an operator-mode server lets the user in, refuses a wrong seed",
          "[nats][client]") {
  harness::TempDir tmp("isthmus-cnats");
  harness::OperatorAuth auth;
  harness::BareNatsServer srv(tmp, "operator", auth.server_config());
  auth.write_user_creds(tmp.file("u.creds"));
  auth.write_wrong_seed_creds(tmp.file("wrong.creds"));
  const std::string url = "nats://127.0.0.1:" + std::to_string(srv.port());
  {
    Cnats c({url}, tmp.file("u.creds"));
    c.settle();
    INFO(c.error());
    CHECK(c.up);
  }
  {
    Cnats c({url}, tmp.file("wrong.creds"));
    c.settle();
    CHECK_FALSE(c.up);
    CHECK(c.error().find("Authorization Violation") != std::string::npos);
  }
}

TEST_CASE("cnats: a server that sends INFO and then never answers the CONNECT fails the attempt after the timeout",
          "[nats][client]") {
  // cnats 3.4.1 alone would never return from this connect, spinning
  // (nats/connect_watchdog.h): the worker would hang, the other URLs would
  // never be tried and stop() would wait for ever.
  harness::TempDir tmp("isthmus-cnats");
  auto certs = harness::region_ca(tmp.path()).issue({"localhost", {"localhost"}}, tmp.file("s.crt"), tmp.file("s.key"));
  harness::ScopedEnv cert_file("SSL_CERT_FILE", certs.ca);
  SilentServer plain;
  SilentServer tls(&certs);
  for (const std::string& url : {"nats://127.0.0.1:" + std::to_string(plain.port()),
                                "tls://localhost:" + std::to_string(tls.port())}) {
    INFO(url);
    SilentServer& srv = url[0] == 'n' ? plain : tls;
    {
      Cnats c({url});
      c.settle();
      CHECK_FALSE(c.up);
      CHECK(c.error() == url + ": the server sent its INFO but did not answer the CONNECT within 2000 ms");
      CHECK(srv.accepted() >= 1);
    }
    // The attempt's socket was closed by the client (the watchdog shut it
    // down, cnats then closed it), and stop() above returned.
    harness::check_for(
        std::chrono::seconds(5), [&] { return srv.closed_by_client() >= 1; }, "the client to close the connection");
  }
  // With a working server in nats.urls too, the client ends up there
  // whichever URL it tries first.
  harness::BareNatsServer good(tmp, "good", "");
  for (int round = 0; round < 2; ++round) {
    Cnats c({"nats://127.0.0.1:" + std::to_string(plain.port()), "nats://127.0.0.1:" + std::to_string(good.port())});
    c.settle();
    INFO(c.error());
    REQUIRE(c.up);
    // And stays there: no late shutdown of the connection it kept.
    harness::check_stays(
        std::chrono::seconds(3),
        [&](std::string& state) {
          uv_run(&c.loop, UV_RUN_NOWAIT);
          state = std::string(c.up ? "up" : "down") + ", " + (c.client->connected() ? "connected" : "not connected") +
                  ": " + c.error();
          return c.up && c.client->connected();
        },
        "connected to the working server");
  }
}

TEST_CASE("cnats: leave_server moves to the next URL, the one left last; a stale generation is ignored",
          "[nats][client]") {
  harness::TempDir tmp("isthmus-cnats-leave");
  harness::BareNatsServer a(tmp, "a", ""), b(tmp, "b", "");
  const std::string ua = "nats://127.0.0.1:" + std::to_string(a.port());
  const std::string ub = "nats://127.0.0.1:" + std::to_string(b.port());
  Cnats c({ua, ub});
  c.settle();
  REQUIRE(c.up);
  const std::string first = c.url;
  const uint64_t g1 = c.generation;
  c.client->leave_server(g1, "no JetStream there");
  REQUIRE(c.run_until([&] { return c.downs == 1 && c.up; }, 5000));
  CHECK(c.down_reason == "no JetStream there");
  CHECK(c.url != first);  // the other server
  CHECK(c.generation == g1 + 1);
  // The server left has no connection of ours any more.
  harness::BareNatsServer& left = first == ua ? a : b;
  harness::check_for(std::chrono::seconds(5), [&] { return isthmusd_conns(left).empty(); },
                     "no connection of the client's left at the server it left");
  // A leave meant for the connection already left changes nothing.
  c.client->leave_server(g1, "late");
  CHECK_FALSE(c.run_until([&] { return c.downs > 1; }, 500));
  CHECK(c.up);
  // Leaving again goes back to the first (two URLs: the next is the other).
  c.client->leave_server(c.generation, "again");
  REQUIRE(c.run_until([&] { return c.downs == 2 && c.up; }, 5000));
  CHECK(c.url == first);
}

TEST_CASE("cnats: leave_server with a single URL connects to it again", "[nats][client]") {
  harness::TempDir tmp("isthmus-cnats-leave1");
  harness::BareNatsServer a(tmp, "a", "");
  Cnats c({"nats://127.0.0.1:" + std::to_string(a.port())});
  c.settle();
  REQUIRE(c.up);
  const uint64_t g = c.generation;
  c.client->leave_server(g, "test");
  REQUIRE(c.run_until([&] { return c.downs == 1 && c.up; }, 5000));
  CHECK(c.generation == g + 1);
}
