// Issue 4, "Bad input": hostile or broken clients on a daemon's link port.
//
// One real two-region mesh (iad leads COVENANT_COUNTRIES, ams follows; ams
// dials iad) is shared by every test case. Each case opens one bad
// connection to ams's link port and checks that
//   - ams closes it within link.handshake_timeout (2 s here),
//   - ams logs exactly one "refused connection from <our address>: <reason>"
//     line with the expected close reason (and detail),
//   - meanwhile the real iad<->ams link stays up (same "since", no
//     reconnects), messages published in iad still reach ams, and ams's
//     /healthz answers 200.
// The clients are plain sockets with timeouts and OpenSSL over a socket BIO.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <catch2/catch.hpp>

#include "harness.h"

using namespace harness;
using nlohmann::json;

namespace {

const std::string kStream = "COVENANT_COUNTRIES";
constexpr auto kHandshake = 2s;        // link.handshake_timeout on both daemons
constexpr auto kSlack = 1500ms;        // scheduling slack on a loaded machine
constexpr uint32_t kMaxFrame = 1 << 20;  // link.max_frame_bytes (1 MiB)

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// ---- the shared mesh ---------------------------------------------------

struct Fixture {
  TempDir tmp{"isthmus-link"};
  Mesh mesh{tmp, {"iad", "ams"}, {{kStream, "iad"}}};
  bool failed = false;
  uint64_t published = 0;  // last sequence published in iad
  int64_t link_since = 0;  // ams's /v1/links "since_ns" for iad, once up

  Region& iad() { return mesh["iad"]; }
  Region& ams() { return mesh["ams"]; }

  Fixture() {
    for (const char* r : {"iad", "ams"}) {
      auto& c = mesh[r].daemon.config();
      c.link_extra = "handshake_timeout = \"2s\"\nmax_frame_bytes = \"1MiB\"\nbatch_bytes = \"64KiB\"";
      mesh[r].daemon.write_config();
    }
    mesh.start_nats();
    iad().js().create_stream({{"name", kStream},
                              {"subjects", {"covenant.countries.>"}},
                              {"storage", "file"},
                              {"num_replicas", 1}});
    mesh.start_daemons();
    check_for(
        30s,
        [&](std::string& st) {
          json l = links("ams");
          st = l.dump();
          return l.value("state", "") == "up";
        },
        "ams link to iad up");
    link_since = links("ams").value("since_ns", int64_t{0});
    replicates("at start");
  }

  ~Fixture() {
    // Keep the temp dir and print log tails if any case failed.
    if (failed) set_test_failed(true);
  }

  // ams's (or iad's) /v1/links entry for its one peer.
  json links(const std::string& region) {
    auto r = mesh[region].daemon.http_get("/v1/links");
    if (r.status != 200) throw std::runtime_error("/v1/links " + std::to_string(r.status));
    json j = json::parse(r.body);
    for (const auto& p : j.at("links"))
      if (p.value("peer", "") == (region == "ams" ? "iad" : "ams")) return p;
    throw std::runtime_error("no peer in /v1/links: " + r.body);
  }

  // Publishes 3 messages in iad and waits for them in ams; the real link
  // must still be the same connection, and ams's /healthz 200.
  void replicates(const std::string& when) {
    std::vector<PubAck> acks;
    for (int i = 0; i < 3; ++i) {
      OutMsg m;
      m.subject = "covenant.countries.updated";
      m.payload = "{\"n\":" + std::to_string(published + 1) + ",\"when\":\"" + when + "\"}";
      acks.push_back(iad().js().publish(m));
      published = acks.back().seq;
    }
    check_for(
        20s,
        [&](std::string& st) {
          auto info = ams().js().stream_info(kStream);
          st = info ? "ams last_seq " + std::to_string(info->last_seq) : "no replica";
          if (!info || info->last_seq < published) return false;
          auto m = ams().js().get_msg(kStream, published);
          return m && m->payload.find("\"when\":\"" + when + "\"") != std::string::npos;
        },
        "messages published in iad " + when + " replicated to ams (seq " + std::to_string(published) + ")");
    check_for(
        10s,
        [&](std::string& st) {
          auto h = ams().daemon.http_get("/healthz");
          st = std::to_string(h.status) + " " + h.body;
          return h.status == 200;
        },
        "ams /healthz 200 " + when);
    for (const char* r : {"ams", "iad"}) {
      json l = links(r);
      INFO(r << " /v1/links " << l.dump());
      CHECK(l.value("state", "") == "up");
      CHECK(l.value("reconnects", -1) == 0);
    }
    CHECK(links("ams").value("since_ns", int64_t{0}) == link_since);
  }
};

Fixture& fx() {
  static std::unique_ptr<Fixture> f = std::make_unique<Fixture>();
  return *f;
}

// Keeps the shared temp dir if the current case fails.
struct FailGuard {
  ~FailGuard() {
    if (test_failed() || std::uncaught_exceptions() > 0) fx().failed = true;
  }
};

// ---- bad certificates --------------------------------------------------

struct Pki {
  std::string dir;
  std::unique_ptr<TestCa> other;
  CertFiles iad, syd, expired, not_yet, foreign;

  Pki() {
    Fixture& f = fx();
    dir = f.tmp.subdir("bad-pki");
    const TestCa& ca = region_ca(f.tmp.path());
    auto issue = [&](const TestCa& by, const std::string& name, const std::string& dns, long nb, long na) {
      CertSpec s;
      s.common_name = name;
      s.dns = {dns};
      s.not_before_s = nb;
      s.not_after_s = na;
      return by.issue(s, dir + "/" + name + ".crt", dir + "/" + name + ".key");
    };
    iad = issue(ca, "iad-client", "iad", -3600, 86400);
    syd = issue(ca, "syd", "syd", -3600, 86400);
    expired = issue(ca, "expired", "iad", -2 * 86400, -86400);
    not_yet = issue(ca, "not-yet", "iad", 86400, 2 * 86400);
    other = std::make_unique<TestCa>("some other CA", dir + "/other-ca.pem");
    foreign = issue(*other, "foreign", "iad", -3600, 86400);
  }
};

Pki& pki() {
  static Pki p;
  return p;
}

// ---- the client --------------------------------------------------------

std::string openssl_errors() {
  std::string s;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    s += (s.empty() ? "" : "; ") + std::string(buf);
  }
  return s;
}

class Client {
 public:
  // A TCP connection to 127.0.0.1:port; reads and writes time out after 250 ms.
  explicit Client(uint16_t port) : start_(Clock::now()) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    timeval tv{0, 250'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    sockaddr_in me{};
    socklen_t len = sizeof me;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&me), &len);
    address_ = "127.0.0.1:" + std::to_string(ntohs(me.sin_port));
  }
  ~Client() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The address ams sees (and logs) for this connection.
  const std::string& address() const { return address_; }

  void send_raw(const std::string& bytes) {
    if (::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size()))
      throw std::runtime_error(std::string("send: ") + std::strerror(errno));
  }

  // TLS client handshake. cert/key empty: no client certificate. The
  // server's certificate is not verified (that is not what is under test).
  // Returns whether SSL_connect succeeded (in TLS 1.3 it does before the
  // server has judged our certificate); the error text goes to `error`.
  bool tls_connect(const CertFiles* cert, bool tls12_only) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx_, tls12_only ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx_, tls12_only ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    if (cert != nullptr) {
      if (SSL_CTX_use_certificate_file(ctx_, cert->cert.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_use_PrivateKey_file(ctx_, cert->key.c_str(), SSL_FILETYPE_PEM) != 1)
        throw std::runtime_error("loading client certificate: " + openssl_errors());
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    auto deadline = Clock::now() + kHandshake + kSlack;
    for (;;) {
      ERR_clear_error();
      int rc = SSL_connect(ssl_);
      if (rc == 1) return true;
      int err = SSL_get_error(ssl_, rc);
      bool again = (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE);
      if (!again || Clock::now() > deadline) {
        error = "SSL_connect: error " + std::to_string(err) + " " + openssl_errors();
        return false;
      }
    }
  }

  void tls_send(const std::string& bytes) {
    ERR_clear_error();
    if (SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) != static_cast<int>(bytes.size()))
      throw std::runtime_error("SSL_write: " + openssl_errors());
  }

  // Reads (and discards: alerts, a GOAWAY) until the daemon closes the
  // connection (EOF or reset). Returns milliseconds since connect; throws if
  // the connection is still open after `limit` from connect.
  double wait_closed(std::chrono::milliseconds limit) {
    auto deadline = start_ + limit;
    char buf[4096];
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 250)));
      if (n <= 0) continue;
      ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r == 0) return ms_since(start_);
      if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return ms_since(start_);
    }
    throw std::runtime_error("connection " + address_ + " still open " + std::to_string(limit.count()) +
                             " ms after connect");
  }

  std::string error;

 private:
  int fd_ = -1;
  Clock::time_point start_;
  std::string address_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

std::string uvarint(uint64_t v) {
  std::string s;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    s += static_cast<char>(v ? (b | 0x80) : b);
  } while (v);
  return s;
}

std::string be32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[static_cast<size_t>(i)] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
  return s;
}

// A well-formed HELLO frame (wire-format.md): magic, version 1, region,
// epoch 0, flags (S2).
std::string hello(const std::string& region) {
  std::string body = uvarint(0x49535448) + uvarint(1) + uvarint(region.size()) + region + uvarint(0) + uvarint(1);
  return be32(static_cast<uint32_t>(1 + body.size())) + '\x01' + body;
}

// ---- the check every case ends with -------------------------------------

size_t log_size() { return read_file(fx().ams().daemon.log_path()).size(); }

// After a bad connection: ams logs its refusal exactly once, with `reason`
// and a detail containing `detail`; the real link and replication carry on.
void expect_refused(const Client& c, size_t log_from, const std::string& reason, const std::string& detail,
                    const std::string& label) {
  Fixture& f = fx();
  const std::string needle = "links: refused connection from " + c.address() + ": ";
  std::string line;
  auto count = [&] {
    std::string log = read_file(f.ams().daemon.log_path()).substr(log_from);
    size_t n = 0;
    for (size_t pos = log.find(needle); pos != std::string::npos; pos = log.find(needle, pos + 1)) {
      ++n;
      line = log.substr(pos, log.find('\n', pos) - pos);
    }
    return n;
  };
  check_for(
      5s,
      [&](std::string& st) {
        size_t n = count();
        st = n ? line : "no line yet";
        return n > 0;
      },
      "ams logs \"" + needle + reason + "\"");
  INFO("log line: " << line);
  CHECK(line.find(needle + reason) != std::string::npos);
  CHECK(line.find(detail) != std::string::npos);
  f.replicates("after " + label);
  CHECK(count() == 1);  // logged once, also after the replication round
}

// Connection closed well before the handshake deadline could have fired.
void expect_prompt_close(Client& c) {
  double ms = c.wait_closed(std::chrono::duration_cast<std::chrono::milliseconds>(kHandshake + kSlack));
  INFO("closed after " << ms << " ms");
  CHECK(ms < std::chrono::duration<double, std::milli>(kHandshake).count());
}

uint16_t ams_port() { return fx().ams().daemon.config().link_port; }

}  // namespace

// ---- the cases -------------------------------------------------------------

TEST_CASE("1: garbage bytes are refused as tls_handshake_failed", "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  std::string junk;
  for (int i = 0; i < 512; ++i) junk += static_cast<char>((i * 131 + 7) & 0xff);
  c.send_raw(junk);
  expect_prompt_close(c);
  expect_refused(c, from, "tls_handshake_failed", "wrong version number", "garbage");
}

TEST_CASE("2: a plain-TCP client sending a valid HELLO frame is refused as tls_handshake_failed",
          "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  c.send_raw(hello("iad"));
  expect_prompt_close(c);
  expect_refused(c, from, "tls_handshake_failed", "wrong version number", "plain TCP hello");
}

TEST_CASE("3: a TLS client without a certificate is refused as tls_handshake_failed", "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  c.tls_connect(nullptr, false);
  expect_prompt_close(c);
  expect_refused(c, from, "tls_handshake_failed", "peer did not return a certificate", "no certificate");
}

TEST_CASE("4: a certificate from another CA is certificate_rejected", "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  c.tls_connect(&pki().foreign, false);
  expect_prompt_close(c);
  expect_refused(c, from, "certificate_rejected", "unable to get local issuer certificate", "other CA");
}

TEST_CASE("5a: a certificate from the right CA naming a region that is not a peer is name_mismatch",
          "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  c.tls_connect(&pki().syd, false);
  expect_prompt_close(c);
  expect_refused(c, from, "name_mismatch", "iad", "syd certificate");
}

// With only two regions, ams knows one peer (iad), so a HELLO naming any
// other region is unknown_peer before the certificate/HELLO name check can
// run (name_mismatch there needs a second configured peer). A HELLO naming
// iad itself is refused because ams dials iad (wrong_direction); either way
// the real link must not be replaced.
TEST_CASE("5b: a certificate naming iad, then a HELLO naming syd, is unknown_peer", "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  REQUIRE(c.tls_connect(&pki().iad, false));
  c.tls_send(hello("syd"));
  expect_prompt_close(c);
  expect_refused(c, from, "unknown_peer", "syd", "hello as syd");
}

TEST_CASE("5c: a certificate naming iad with a HELLO from iad to ams, the dialer, is wrong_direction",
          "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  REQUIRE(c.tls_connect(&pki().iad, false));
  c.tls_send(hello("iad"));
  expect_prompt_close(c);
  expect_refused(c, from, "wrong_direction", "", "hello as iad");
}

TEST_CASE("6: an expired certificate is certificate_rejected", "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  c.tls_connect(&pki().expired, false);
  expect_prompt_close(c);
  expect_refused(c, from, "certificate_rejected", "certificate has expired", "expired certificate");
}

TEST_CASE("7: a not-yet-valid certificate is certificate_rejected", "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  c.tls_connect(&pki().not_yet, false);
  expect_prompt_close(c);
  expect_refused(c, from, "certificate_rejected", "certificate is not yet valid", "not-yet-valid certificate");
}

TEST_CASE("8: a client offering only TLS 1.2 is refused as tls_handshake_failed", "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  CHECK_FALSE(c.tls_connect(&pki().iad, true));
  INFO("client: " << c.error);
  expect_prompt_close(c);
  expect_refused(c, from, "tls_handshake_failed", "unsupported protocol", "TLS 1.2 client");
}

TEST_CASE("9: a frame header declaring more than max_frame_bytes is frame_too_large", "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  REQUIRE(c.tls_connect(&pki().iad, false));
  c.tls_send(be32(kMaxFrame + 1) + '\x01');  // a HELLO "of" 1 MiB + 1 bytes
  expect_prompt_close(c);
  expect_refused(c, from, "frame_too_large", "", "oversized frame");
}

TEST_CASE("10: a client that completes TLS and sends nothing is closed at the handshake deadline",
          "[link][bad]") {
  FailGuard g;
  size_t from = log_size();
  Client c(ams_port());
  REQUIRE(c.tls_connect(&pki().iad, false));
  double ms = c.wait_closed(std::chrono::duration_cast<std::chrono::milliseconds>(kHandshake + kSlack));
  INFO("closed after " << ms << " ms");
  CHECK(ms >= std::chrono::duration<double, std::milli>(kHandshake).count() - 50);
  expect_refused(c, from, "handshake_timeout", "", "idle client");
}
