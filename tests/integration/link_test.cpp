// Issue 4, "Bad input": hostile or broken clients on a daemon's link port.
//
// One real two-region mesh (iad leads COVENANT_COUNTRIES and
// COVENANT_CITIES, ams follows; ams dials iad) is shared by every test case.
// Cases 1-10 open one bad connection to ams's link port and check that
//   - ams closes it within link.handshake_timeout (2 s here),
//   - ams logs exactly one "refused connection from <our address>: <reason>"
//     line with the expected close reason (and detail), and counts it in
//     /v1/links "refused" and /metrics isthmus_link_refused_total,
//   - meanwhile the real iad<->ams link stays up (same "since", no
//     reconnects), messages published in iad still reach ams, and ams's
//     /healthz answers 200.
// Cases 11-12 are peers that get past the HELLO and then misbehave. iad also
// lists two regions that have no daemon, fra (S2, like every link) and dub
// (compression none); both sort before iad, so they dial iad, and the test
// client plays them with their certificates:
//   11  fra sends an S2 chunk declaring a decoded size beyond the limit:
//       closed as frame_too_large, iad's RSS does not move;
//   12  dub subscribes to both streams (plenty of data), keeps sending
//       heartbeats and never reads: iad's in-flight bytes to dub stay within
//       link.peer_window_bytes over the two streams, its RSS stays bounded,
//       and the link is closed as send_stalled about link.stale_after after
//       its writes stopped making progress.
// The clients are plain sockets with timeouts and OpenSSL over a socket BIO.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include <catch2/catch.hpp>

#include "harness.h"

using namespace harness;
using nlohmann::json;

namespace {

const std::string kStream = "COVENANT_COUNTRIES";
const std::string kStream2 = "COVENANT_CITIES";
constexpr auto kHandshake = 2s;        // link.handshake_timeout on both daemons
constexpr auto kStaleAfter = 4s;       // link.stale_after of iad
constexpr uint64_t kPeerWindow = 1 << 20;  // link.peer_window_bytes of iad (1 MiB)
constexpr uint64_t kStreamWindow = 8 << 20;  // link.window_bytes of iad (8 MiB)
constexpr auto kSlack = 1500ms;        // scheduling slack on a loaded machine
constexpr uint32_t kMaxFrame = 1 << 20;  // link.max_frame_bytes (1 MiB)

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// ---- the shared mesh ---------------------------------------------------

struct Fixture {
  TempDir tmp{"isthmus-link"};
  Mesh mesh{tmp, {"iad", "ams"}, {{kStream, "iad"}, {kStream2, "iad"}}};
  bool failed = false;
  uint64_t published = 0;  // last sequence published in iad
  int64_t link_since = 0;  // ams's /v1/links "since_ns" for iad, once up

  Region& iad() { return mesh["iad"]; }
  Region& ams() { return mesh["ams"]; }

  Fixture() {
    for (const char* r : {"iad", "ams"}) {
      auto& c = mesh[r].daemon.config();
      c.link_extra = "handshake_timeout = \"2s\"\nmax_frame_bytes = \"1MiB\"\nbatch_bytes = \"64KiB\"";
      if (std::string(r) == "iad") {
        c.link_extra += "\nstale_after = \"4s\"\nwindow_bytes = \"8MiB\"\npeer_window_bytes = \"1MiB\"";
        // Regions without a daemon, played by the test client (cases 11-12).
        c.peers.push_back({.name = "fra", .port = free_port()});
        c.peers.push_back({.name = "dub", .port = free_port(), .compression = "none"});
      }
      mesh[r].daemon.write_config();
    }
    mesh.start_nats();
    iad().js().create_stream({{"name", kStream},
                              {"subjects", {"covenant.countries.>"}},
                              {"storage", "file"},
                              {"num_replicas", 1}});
    iad().js().create_stream({{"name", kStream2},
                              {"subjects", {"covenant.cities.>"}},
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

  // region's whole /v1/links answer.
  json links_all(const std::string& region) {
    auto r = mesh[region].daemon.http_get("/v1/links");
    if (r.status != 200) throw std::runtime_error("/v1/links " + std::to_string(r.status));
    return json::parse(r.body);
  }

  // ams's (or iad's) /v1/links entry for peer (default: the other one).
  json links(const std::string& region, std::string peer = "") {
    if (peer.empty()) peer = region == "ams" ? "iad" : "ams";
    json j = links_all(region);
    for (const auto& p : j.at("links"))
      if (p.value("peer", "") == peer) return p;
    throw std::runtime_error("no " + peer + " in /v1/links: " + j.dump());
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

std::string frame(uint8_t type, const std::string& body) {
  return be32(static_cast<uint32_t>(1 + body.size())) + static_cast<char>(type) + body;
}

// A well-formed HELLO frame (wire-format.md): magic, version 1, region,
// epoch 0, flags (1: S2).
std::string hello(const std::string& region, bool s2 = true) {
  return frame(1, uvarint(0x49535448) + uvarint(1) + uvarint(region.size()) + region + uvarint(0) + uvarint(s2 ? 1 : 0));
}

// SUBSCRIBE (type 4): stream, from_seq, epoch, sub_id.
std::string subscribe(const std::string& stream, uint64_t from_seq, uint64_t sub_id) {
  return frame(4, uvarint(stream.size()) + stream + uvarint(from_seq) + uvarint(0) + uvarint(sub_id));
}

// HEARTBEAT (type 9) with zero timestamps (no RTT sample, still liveness).
std::string heartbeat() { return frame(9, std::string(3, '\0')); }

// ---- the check every case ends with -------------------------------------

size_t log_size() { return read_file(fx().ams().daemon.log_path()).size(); }

// ams's refusal counter for `reason` in /v1/links, and the same counter in
// /metrics (-1 where absent).
uint64_t refused_count(const std::string& reason) {
  json r = fx().links_all("ams").value("refused", json::object());
  return r.value(reason, uint64_t{0});
}
double metric(const std::string& region, const std::string& line_prefix) {
  auto r = fx().mesh[region].daemon.http_get("/metrics");
  if (r.status != 200) throw std::runtime_error("/metrics " + std::to_string(r.status));
  size_t pos = r.body.find("\n" + line_prefix + " ");
  if (pos == std::string::npos) return -1;
  return std::stod(r.body.substr(pos + 1 + line_prefix.size() + 1));
}

// Where a case starts: ams's log size and its refusal counters.
struct Mark {
  size_t log = 0;
  json refused;
};
Mark mark() { return Mark{log_size(), fx().links_all("ams").value("refused", json::object())}; }

// After a bad connection: ams logs its refusal exactly once, with `reason`
// and a detail containing `detail`, and counts it once under `reason` in
// /v1/links and /metrics; the real link and replication carry on.
void expect_refused(const Client& c, const Mark& from, const std::string& reason, const std::string& detail,
                    const std::string& label) {
  Fixture& f = fx();
  const size_t log_from = from.log;
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
  const uint64_t before = from.refused.value(reason, uint64_t{0});
  CHECK(refused_count(reason) == before + 1);
  const json last = f.links_all("ams").value("last_refused", json::object());
  INFO("last_refused: " << last.dump());
  CHECK(last.value("reason", "") == reason);
  CHECK(last.value("from", "") == c.address());
  CHECK(last.value("detail", "").find(detail) != std::string::npos);
  CHECK(metric("ams", "isthmus_link_refused_total{region=\"ams\",reason=\"" + reason + "\"}") ==
        static_cast<double>(before + 1));
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
  Mark from = mark();
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
  Mark from = mark();
  Client c(ams_port());
  c.send_raw(hello("iad"));
  expect_prompt_close(c);
  expect_refused(c, from, "tls_handshake_failed", "wrong version number", "plain TCP hello");
}

TEST_CASE("3: a TLS client without a certificate is refused as tls_handshake_failed", "[link][bad]") {
  FailGuard g;
  Mark from = mark();
  Client c(ams_port());
  c.tls_connect(nullptr, false);
  expect_prompt_close(c);
  expect_refused(c, from, "tls_handshake_failed", "peer did not return a certificate", "no certificate");
}

TEST_CASE("4: a certificate from another CA is certificate_rejected", "[link][bad]") {
  FailGuard g;
  Mark from = mark();
  Client c(ams_port());
  c.tls_connect(&pki().foreign, false);
  expect_prompt_close(c);
  expect_refused(c, from, "certificate_rejected", "unable to get local issuer certificate", "other CA");
}

TEST_CASE("5a: a certificate from the right CA naming a region that is not a peer is name_mismatch",
          "[link][bad]") {
  FailGuard g;
  Mark from = mark();
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
  Mark from = mark();
  Client c(ams_port());
  REQUIRE(c.tls_connect(&pki().iad, false));
  c.tls_send(hello("syd"));
  expect_prompt_close(c);
  expect_refused(c, from, "unknown_peer", "syd", "hello as syd");
}

TEST_CASE("5c: a certificate naming iad with a HELLO from iad to ams, the dialer, is wrong_direction",
          "[link][bad]") {
  FailGuard g;
  Mark from = mark();
  Client c(ams_port());
  REQUIRE(c.tls_connect(&pki().iad, false));
  c.tls_send(hello("iad"));
  expect_prompt_close(c);
  expect_refused(c, from, "wrong_direction", "", "hello as iad");
}

TEST_CASE("6: an expired certificate is certificate_rejected", "[link][bad]") {
  FailGuard g;
  Mark from = mark();
  Client c(ams_port());
  c.tls_connect(&pki().expired, false);
  expect_prompt_close(c);
  expect_refused(c, from, "certificate_rejected", "certificate has expired", "expired certificate");
}

TEST_CASE("7: a not-yet-valid certificate is certificate_rejected", "[link][bad]") {
  FailGuard g;
  Mark from = mark();
  Client c(ams_port());
  c.tls_connect(&pki().not_yet, false);
  expect_prompt_close(c);
  expect_refused(c, from, "certificate_rejected", "certificate is not yet valid", "not-yet-valid certificate");
}

TEST_CASE("8: a client offering only TLS 1.2 is refused as tls_handshake_failed", "[link][bad]") {
  FailGuard g;
  Mark from = mark();
  Client c(ams_port());
  CHECK_FALSE(c.tls_connect(&pki().iad, true));
  INFO("client: " << c.error);
  expect_prompt_close(c);
  expect_refused(c, from, "tls_handshake_failed", "unsupported protocol", "TLS 1.2 client");
}

TEST_CASE("9: a frame header declaring more than max_frame_bytes is frame_too_large", "[link][bad]") {
  FailGuard g;
  Mark from = mark();
  Client c(ams_port());
  REQUIRE(c.tls_connect(&pki().iad, false));
  c.tls_send(be32(kMaxFrame + 1) + '\x01');  // a HELLO "of" 1 MiB + 1 bytes
  expect_prompt_close(c);
  expect_refused(c, from, "frame_too_large", "", "oversized frame");
}

TEST_CASE("10: a client that completes TLS and sends nothing is closed at the handshake deadline",
          "[link][bad]") {
  FailGuard g;
  Mark from = mark();
  Client c(ams_port());
  REQUIRE(c.tls_connect(&pki().iad, false));
  double ms = c.wait_closed(std::chrono::duration_cast<std::chrono::milliseconds>(kHandshake + kSlack));
  INFO("closed after " << ms << " ms");
  CHECK(ms >= std::chrono::duration<double, std::milli>(kHandshake).count() - 50);
  expect_refused(c, from, "handshake_timeout", "", "idle client");
}

// ---- peers that get past the HELLO (cases 11-12) ----------------------------

namespace {

// Resident set of a process in bytes (VmRSS).
uint64_t rss_bytes(pid_t pid) {
  std::string st = read_file("/proc/" + std::to_string(pid) + "/status");
  size_t pos = st.find("VmRSS:");
  if (pos == std::string::npos) throw std::runtime_error("no VmRSS for pid " + std::to_string(pid));
  return std::stoull(st.substr(pos + 6)) * 1024;  // "VmRSS:   12345 kB"
}

uint64_t iad_rss() { return rss_bytes(fx().iad().daemon.process().pid()); }
uint16_t iad_port() { return fx().iad().daemon.config().link_port; }

// iad's certificate-and-key pair for a region without a daemon.
const CertFiles& peer_cert(const std::string& region) {
  static std::map<std::string, CertFiles> certs;
  auto it = certs.find(region);
  if (it != certs.end()) return it->second;
  Fixture& f = fx();
  const std::string dir = f.tmp.subdir("fake-" + region);
  CertSpec s;
  s.common_name = region;
  s.dns = {region};
  s.not_before_s = -3600;
  s.not_after_s = 86400;
  return certs[region] = region_ca(f.tmp.path()).issue(s, dir + "/" + region + ".crt", dir + "/" + region + ".key");
}

uint64_t closes(const json& link, const std::string& reason) {
  return link.value("closes", json::object()).value(reason, uint64_t{0});
}

// Publishes `count` messages of `size` bytes on subject, in bulk.
void publish_many(const std::string& subject, size_t count, size_t size) {
  std::vector<OutMsg> msgs;
  for (size_t i = 0; i < count; ++i) {
    OutMsg m;
    m.subject = subject;
    m.payload = "{\"i\":" + std::to_string(i) + ",\"pad\":\"";
    uint64_t x = 0x9E3779B97F4A7C15ull * (i + 1);
    while (m.payload.size() + 2 < size) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      m.payload += static_cast<char>('a' + (x % 26));
    }
    m.payload += "\"}";
    msgs.push_back(std::move(m));
  }
  fx().iad().js().publish_bulk(msgs, 256);
}

}  // namespace

TEST_CASE("11: an S2 chunk declaring a decoded size beyond the limit is frame_too_large, nothing allocated",
          "[link][bad][s2]") {
  FailGuard g;
  Fixture& f = fx();
  const uint64_t before = closes(f.links("iad", "fra"), "frame_too_large");
  const uint64_t rss0 = iad_rss();
  Client c(iad_port());
  REQUIRE(c.tls_connect(&peer_cert("fra"), false));
  // HELLO with the S2 flag, then the S2 stream (wire-format.md, "Layers"):
  // the stream identifier, and a compressed chunk of 16 bytes (checksum,
  // decoded-length varint, 8 bytes of "data") whose block declares a decoded
  // size of 64 MiB; the limit here is max_frame_bytes + 5 (1 MiB + 5).
  std::string s2 = std::string("\xff\x06\x00\x00", 4) + "S2sTwO";
  std::string chunk = std::string(4, '\x11') + std::string("\x80\x80\x80\x20", 4) + std::string(8, 'x');
  s2 += std::string(1, '\x00') + static_cast<char>(chunk.size()) + std::string(2, '\0') + chunk;
  c.tls_send(hello("fra") + s2);
  double ms = c.wait_closed(std::chrono::duration_cast<std::chrono::milliseconds>(kHandshake + kSlack));
  INFO("closed after " << ms << " ms");
  CHECK(ms < std::chrono::duration<double, std::milli>(kHandshake).count());

  json l;
  check_for(
      5s,
      [&](std::string& st) {
        l = f.links("iad", "fra");
        st = l.dump();
        return closes(l, "frame_too_large") == before + 1;
      },
      "iad counts a frame_too_large close of the link to fra");
  INFO("iad /v1/links fra: " << l.dump());
  CHECK(l.value("state", "") != "up");
  CHECK(l.value("last_close_reason", "") == "frame_too_large");
  CHECK(l.value("last_close_detail", "").find("declared length 67108864 exceeds limit") != std::string::npos);
  CHECK(metric("iad", "isthmus_link_closes_total{region=\"iad\",peer=\"fra\",reason=\"frame_too_large\"}") ==
        static_cast<double>(before + 1));
  const uint64_t rss1 = iad_rss();
  std::printf("[figures] 11: iad RSS %.1f MiB before, %.1f MiB after the 64 MiB chunk header\n", rss0 / 1048576.0,
              rss1 / 1048576.0);
  CHECK(rss1 < rss0 + (8u << 20));  // the declared 64 MiB was never allocated
  f.replicates("after the oversized S2 chunk");
}

TEST_CASE("12: a peer that subscribes and never reads: bounded memory and in-flight bytes, closed as send_stalled",
          "[link][bad][stall]") {
  FailGuard g;
  Fixture& f = fx();
  // Plenty of data in both streams: 2 x 3,000 messages of 4 KiB (24 MiB),
  // replicated to ams as usual before the case starts.
  constexpr size_t kCount = 3000, kSize = 4096;
  publish_many("covenant.countries.bulk", kCount, kSize);
  publish_many("covenant.cities.bulk", kCount, kSize);
  f.published += kCount;
  check_for(
      60s,
      [&](std::string& st) {
        auto a = f.ams().js().stream_info(kStream), b = f.ams().js().stream_info(kStream2);
        st = "ams " + kStream + " " + (a ? std::to_string(a->last_seq) : "-") + ", " + kStream2 + " " +
             (b ? std::to_string(b->last_seq) : "-");
        return a && b && a->last_seq >= f.published && b->last_seq >= kCount;
      },
      "the bulk data replicated to ams");
  const uint64_t before = closes(f.links("iad", "dub"), "send_stalled");
  const uint64_t rss0 = iad_rss();

  Client c(iad_port());
  REQUIRE(c.tls_connect(&peer_cert("dub"), false));
  c.tls_send(hello("dub", false));
  c.tls_send(subscribe(kStream, 1, 1) + subscribe(kStream2, 1, 1));
  auto subscribed = Clock::now();

  // Heartbeats every 300 ms (so iad never sees the link as stale), nothing
  // read; watch iad's in-flight bytes to dub, its RSS, and the link.
  uint64_t max_inflight = 0, max_unacked_sum = 0, max_rss = rss0;
  json l;
  double closed_after_ms = -1;
  auto next_hb = Clock::now();
  check_for(
      kStaleAfter + 10s,
      [&](std::string& st) {
        if (Clock::now() >= next_hb) {
          try {
            c.tls_send(heartbeat());
          } catch (const std::exception&) {
            // the daemon closed the connection: what we wait for
          }
          next_hb = Clock::now() + 300ms;
        }
        max_rss = std::max(max_rss, iad_rss());
        uint64_t sum = 0, inflight = 0;
        for (const auto& s : f.iad().daemon.lag().value("streams", json::array()))
          for (const auto& fl : s.value("followers", json::array()))
            if (fl.value("region", "") == "dub") {
              sum += fl.value("unacked_bytes", uint64_t{0});
              inflight = std::max(inflight, fl.value("link_inflight_bytes", uint64_t{0}));
            }
        max_unacked_sum = std::max(max_unacked_sum, sum);
        max_inflight = std::max(max_inflight, inflight);
        l = f.links("iad", "dub");
        st = "dub link " + l.dump() + "; unacked sum " + std::to_string(sum);
        if (closes(l, "send_stalled") == before + 1) {
          closed_after_ms = ms_since(subscribed);
          return true;
        }
        return false;
      },
      "iad closes the link to dub as send_stalled");
  std::printf("[figures] 12: dub closed as send_stalled %.0f ms after subscribing (stale_after %lld ms); "
              "max in flight to dub %llu B (peer window %llu B), max unacked over both streams %llu B; "
              "iad RSS %.1f MiB before, max %.1f MiB\n",
              closed_after_ms, static_cast<long long>(std::chrono::milliseconds(kStaleAfter).count()),
              static_cast<unsigned long long>(max_inflight), static_cast<unsigned long long>(kPeerWindow),
              static_cast<unsigned long long>(max_unacked_sum), rss0 / 1048576.0, max_rss / 1048576.0);
  INFO("iad /v1/links dub: " << l.dump());
  CHECK(l.value("last_close_reason", "") == "send_stalled");
  CHECK(l.value("last_close_detail", "").find("nothing could be written for") != std::string::npos);
  CHECK(closes(l, "stale") == 0);
  CHECK(metric("iad", "isthmus_link_closes_total{region=\"iad\",peer=\"dub\",reason=\"send_stalled\"}") ==
        static_cast<double>(before + 1));
  // Deadline: writes stop making progress within a second or so of the
  // SUBSCRIBE (socket buffers full), then stale_after, then one tick.
  CHECK(closed_after_ms >= std::chrono::duration<double, std::milli>(kStaleAfter).count());
  CHECK(closed_after_ms <= std::chrono::duration<double, std::milli>(kStaleAfter + 4s).count());
  // The link's window held over the two streams (each alone could have
  // had 8 MiB in flight). A pull is sized to the room left at the estimated
  // message size and pull sizes start at 16 and double: the bound can be
  // exceeded by one pull's misestimate (here the stream's first messages are
  // ~100 B and the bulk 4 KiB: at most 32-64 messages' worth).
  constexpr uint64_t kOvershoot = 256 * 1024;
  CHECK(max_unacked_sum > 0);
  CHECK(max_unacked_sum <= kPeerWindow + kOvershoot);
  CHECK(max_inflight <= kPeerWindow + kOvershoot);
  CHECK(kStreamWindow > kPeerWindow);
  // Memory: 24 MiB were there to send; iad's RSS grew by far less.
  CHECK(max_rss < rss0 + (12u << 20));
  c.wait_closed(10s);
  f.replicates("after the peer that stopped reading");
}
