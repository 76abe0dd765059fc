// TlsLayer pairs wired back to back in memory: handshake, data both ways in
// any split, and each refusal with its close reason.
#include <catch2/catch.hpp>

#include <random>

#include "certs.h"
#include "tls/tls_layer.h"
#include "util.h"

using isthmus::link::CloseReason;
using isthmus::tls::TlsContext;
using isthmus::tls::TlsLayer;

namespace {

struct Pki {
  harness::TempDir tmp{"isthmus-tls"};
  harness::TestCa ca{"test CA", tmp.file("ca.pem")};
  harness::TestCa other_ca{"other CA", tmp.file("other-ca.pem")};

  harness::CertFiles cert(const std::string& name, long nb = -3600, long na = 86400,
                          const harness::TestCa* by = nullptr) {
    harness::CertSpec s;
    s.common_name = name;
    s.dns = {name};
    s.not_before_s = nb;
    s.not_after_s = na;
    static int n = 0;
    std::string base = tmp.file(name + std::to_string(n++));
    return (by ? *by : ca).issue(s, base + ".crt", base + ".key");
  }
  std::shared_ptr<TlsContext> ctx(const harness::CertFiles& f, bool tls12 = false) {
    TlsContext::Options o;
    o.ca_file = f.ca;
    o.cert_file = f.cert;
    o.key_file = f.key;
    o.test_tls12_only = tls12;
    auto r = TlsContext::create(o);
    INFO(r.status().message());
    REQUIRE(r);
    return r.value();
  }
};

struct Side {
  std::unique_ptr<TlsLayer> tls;
  std::vector<uint8_t> app;  // received application bytes
  isthmus::Status st;
};

// Moves bytes between the two until nothing moves; `split` cuts every
// transfer into pieces of at most that many bytes.
void pump(Side& a, Side& b, std::vector<uint8_t>& a_to_b, std::vector<uint8_t>& b_to_a, size_t split = SIZE_MAX) {
  while (!a_to_b.empty() || !b_to_a.empty()) {
    auto deliver = [&](Side& to, std::vector<uint8_t>& in, std::vector<uint8_t>& back) {
      size_t n = std::min(split, in.size());
      std::vector<uint8_t> piece(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
      in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
      if (!to.st) return;
      to.st = to.tls->read(piece, to.app, back);
    };
    if (!a_to_b.empty()) deliver(b, a_to_b, b_to_a);
    if (!b_to_a.empty()) deliver(a, b_to_a, a_to_b);
  }
}

struct Pair {
  Side client, server;
  std::vector<uint8_t> c2s, s2c;
  Pair(std::shared_ptr<TlsContext> cctx, std::shared_ptr<TlsContext> sctx, const std::string& expect,
       std::vector<std::string> accept, std::map<std::string, isthmus::tls::Sha256> client_pins = {}) {
    client.tls = std::make_unique<TlsLayer>(cctx, TlsLayer::Role::kClient,
                                            TlsLayer::Peer{{expect}, std::move(client_pins)});
    server.tls = std::make_unique<TlsLayer>(sctx, TlsLayer::Role::kServer, TlsLayer::Peer{std::move(accept), {}});
  }
  void handshake(size_t split = SIZE_MAX) {
    client.st = client.tls->start(c2s);
    pump(client, server, c2s, s2c, split);
  }
};

}  // namespace

TEST_CASE("TLS pair: handshake, names, and data both ways in any split", "[tls]") {
  Pki pki;
  auto iad = pki.ctx(pki.cert("iad"));
  auto ams = pki.ctx(pki.cert("ams"));
  for (size_t split : {size_t{1}, size_t{7}, size_t{1000}, SIZE_MAX}) {
    INFO("split " << split);
    Pair p(ams, iad, "iad", {"ams", "syd"});
    // The client writes before the handshake is done: buffered, sent after.
    std::vector<uint8_t> early = {'h', 'e', 'l', 'l', 'o'};
    REQUIRE(p.client.tls->write(early, true, p.c2s));
    p.handshake(split);
    REQUIRE(p.client.st);
    REQUIRE(p.server.st);
    CHECK(p.client.tls->handshake_done());
    CHECK(p.server.tls->handshake_done());
    CHECK(p.client.tls->peer_name() == "iad");
    CHECK(p.server.tls->peer_name() == "ams");
    CHECK(p.server.app == early);

    std::mt19937 rng(static_cast<unsigned>(split));
    std::vector<uint8_t> big(split < 100 ? 20000 : 300000);
    for (auto& b : big) b = static_cast<uint8_t>(rng());
    REQUIRE(p.server.tls->write(big, true, p.s2c));
    REQUIRE(p.client.tls->write(big, true, p.c2s));
    pump(p.client, p.server, p.c2s, p.s2c, split);
    REQUIRE(p.client.st);
    REQUIRE(p.server.st);
    CHECK(p.client.app == big);
    CHECK(std::vector<uint8_t>(p.server.app.begin() + 5, p.server.app.end()) == big);
  }
}

namespace {
// Runs a handshake and returns the reasons each side failed with (kNone: ok).
std::pair<CloseReason, CloseReason> outcome(Pair& p, std::string* detail = nullptr) {
  p.handshake();
  // A TLS 1.3 client finishes first; a refusal of its certificate arrives later.
  std::vector<uint8_t> ping = {1};
  if (p.client.st) p.client.st = p.client.tls->write(ping, true, p.c2s);
  pump(p.client, p.server, p.c2s, p.s2c);
  if (detail) *detail = (p.client.st ? "" : p.client.st.message()) + " | " + (p.server.st ? "" : p.server.st.message());
  return {p.client.st ? CloseReason::kNone : p.client.tls->failure_reason(),
          p.server.st ? CloseReason::kNone : p.server.tls->failure_reason()};
}
}  // namespace

TEST_CASE("TLS refusals carry their own close reasons", "[tls]") {
  Pki pki;
  auto iad = pki.ctx(pki.cert("iad"));
  std::string detail;

  // A peer whose certificate another CA signed (it trusts ours, so only the
  // other side can refuse).
  auto stranger_ctx = [&](const std::string& name) {
    harness::CertFiles f = pki.cert(name, -3600, 86400, &pki.other_ca);
    f.ca = pki.ca.ca_path();
    return pki.ctx(f);
  };
  SECTION("client certificate from another CA: the server rejects it") {
    auto stranger = stranger_ctx("ams");
    Pair p(stranger, iad, "iad", {"ams"});
    auto [c, s] = outcome(p, &detail);
    INFO(detail);
    CHECK(s == CloseReason::kCertRejected);
    CHECK_THAT(detail, Catch::Contains("unable to get local issuer certificate"));
    CHECK(c != CloseReason::kNone);
  }
  SECTION("server certificate from another CA: the client rejects it") {
    auto client = pki.ctx(pki.cert("ams"));
    auto stranger = stranger_ctx("iad");
    Pair p(client, stranger, "iad", {"ams"});
    auto [c, s] = outcome(p, &detail);
    INFO(detail);
    CHECK(c == CloseReason::kCertRejected);
    CHECK(s != CloseReason::kNone);
  }
  SECTION("expired client certificate") {
    auto old = pki.ctx(pki.cert("ams", -7200, -3600));
    Pair p(old, iad, "iad", {"ams"});
    auto [c, s] = outcome(p, &detail);
    INFO(detail);
    CHECK(s == CloseReason::kCertRejected);
    CHECK_THAT(detail, Catch::Contains("expired"));
  }
  SECTION("not yet valid client certificate") {
    auto future = pki.ctx(pki.cert("ams", 3600, 7200));
    Pair p(future, iad, "iad", {"ams"});
    auto [c, s] = outcome(p, &detail);
    INFO(detail);
    CHECK(s == CloseReason::kCertRejected);
    CHECK_THAT(detail, Catch::Contains("not yet valid"));
  }
  SECTION("the dialed peer's certificate names another region") {
    auto client = pki.ctx(pki.cert("ams"));
    auto syd = pki.ctx(pki.cert("syd"));
    Pair p(client, syd, "iad", {"ams"});
    auto [c, s] = outcome(p, &detail);
    INFO(detail);
    CHECK(c == CloseReason::kNameMismatch);
  }
  SECTION("a client certificate naming no configured peer") {
    auto mars = pki.ctx(pki.cert("mars"));
    Pair p(mars, iad, "iad", {"ams", "syd"});
    auto [c, s] = outcome(p, &detail);
    INFO(detail);
    CHECK(s == CloseReason::kNameMismatch);
    // Who knocked: the names its certificate carries.
    CHECK_THAT(detail, Catch::Contains("no DNS name among: ams, syd (it names mars)"));
  }
  SECTION("pin mismatch") {
    auto client = pki.ctx(pki.cert("ams"));
    isthmus::tls::Sha256 wrong{};
    wrong.fill(0xab);
    Pair p(client, iad, "iad", {"ams"}, {{"iad", wrong}});
    auto [c, s] = outcome(p, &detail);
    INFO(detail);
    CHECK(c == CloseReason::kPinMismatch);
  }
  SECTION("matching pin") {
    harness::CertFiles f = pki.cert("iad");
    auto server = pki.ctx(f);
    auto client = pki.ctx(pki.cert("ams"));
    auto pin = isthmus::tls::parse_pin(harness::TestCa::spki_sha256_hex(f.cert));
    REQUIRE(pin);
    Pair p(client, server, "iad", {"ams"}, {{"iad", *pin}});
    auto [c, s] = outcome(p, &detail);
    INFO(detail);
    CHECK(c == CloseReason::kNone);
    CHECK(s == CloseReason::kNone);
  }
  SECTION("a client offering only TLS 1.2 is refused") {
    auto old = pki.ctx(pki.cert("ams"), true);
    Pair p(old, iad, "iad", {"ams"});
    auto [c, s] = outcome(p, &detail);
    INFO(detail);
    CHECK(s == CloseReason::kTlsHandshakeFailed);
    CHECK(c != CloseReason::kNone);
  }
  SECTION("garbage instead of a ClientHello") {
    TlsLayer server(iad, TlsLayer::Role::kServer, TlsLayer::Peer{{"ams"}, {}});
    std::vector<uint8_t> garbage(64, 'G'), app, back;
    isthmus::Status st = server.read(garbage, app, back);
    CHECK_FALSE(st);
    CHECK(server.failure_reason() == CloseReason::kTlsHandshakeFailed);
    CHECK(app.empty());
  }
}

TEST_CASE("TlsContext reports unusable files by name", "[tls]") {
  Pki pki;
  auto f = pki.cert("iad");
  TlsContext::Options o{f.ca, f.cert, pki.tmp.file("missing.key"), false};
  auto r = TlsContext::create(o);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.status().message(), Catch::Contains("missing.key"));
}
