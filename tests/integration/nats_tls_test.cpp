// The daemon's two connections to its local nats-server (cnats' "isthmusd"
// and the data connection "isthmusd-data") end to end, with real
// nats-servers and real isthmusd processes:
//  a. two regions whose nats-servers require TLS (certificates from a test
//     CA that only SSL_CERT_FILE makes trusted), daemons given tls:// URLs:
//     a stream replicates, /healthz is ok, both connections are TLS;
//  b. a daemon that cannot verify its server: a CA it does not trust, a
//     certificate for another name, a tls:// URL to a server without TLS.
//     It does not connect (the server lists no connection of it), and
//     /healthz and the log name the reason; with the right CA it connects;
//  c. two regions whose nats-servers run in operator mode (JWTs made by the
//     test), daemons given a .creds file: a stream replicates.
// Every test case starts its own servers.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "harness.h"

using namespace harness;
using nlohmann::json;

namespace {

const std::string kStream = "COVENANT_COUNTRIES";
const std::string kLeader = "iad";
const std::string kFollower = "ams";
constexpr size_t kMessages = 200;

std::vector<OutMsg> messages(size_t count) {
  std::vector<OutMsg> out;
  for (size_t i = 1; i <= count; ++i) {
    OutMsg m;
    m.subject = "covenant.countries.created";
    m.payload = "{\"n\":" + std::to_string(i) + "}";
    if (i % 3 == 0) m.headers.emplace_back("X-N", std::to_string(i));
    out.push_back(std::move(m));
  }
  return out;
}

std::string tls_block(const CertFiles& f) {
  return "tls {\n  cert_file: \"" + f.cert + "\"\n  key_file: \"" + f.key + "\"\n}";
}

// The server's client connections that are the daemon's (cnats' and the
// data connection), by name.
std::vector<json> daemon_conns(const json& connz) {
  std::vector<json> out;
  for (const auto& c : connz.value("connections", json::array())) {
    const std::string name = c.value("name", "");
    if (name == "isthmusd" || name == "isthmusd-data") out.push_back(c);
  }
  return out;
}

// The leader's stream with kMessages messages, the daemons started, the
// replica identical (every message, under the header rule), /healthz ok at
// both daemons.
void replicate_and_check(Mesh& mesh) {
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  l.js().create_stream({{"name", kStream},
                        {"subjects", {"covenant.countries.>"}},
                        {"retention", "limits"},
                        {"storage", "file"},
                        {"num_replicas", 1}});
  l.js().publish_bulk(messages(kMessages));
  mesh.start_daemons();
  check_for(
      30s,
      [&](std::string& state) {
        l.daemon.ensure_running("while waiting for the replica");
        f.daemon.ensure_running("while waiting for the replica");
        auto fi = f.js().stream_info(kStream);
        state = (fi ? "replica last seq " + std::to_string(fi->last_seq) : std::string("no replica")) +
                "; ams /healthz " + f.daemon.http_get("/healthz").body;
        return fi && fi->last_seq == kMessages;
      },
      "the replica in " + kFollower + " holding " + std::to_string(kMessages) + " messages");
  MirrorDiff d = compare_streams(l.js().read_stream(kStream), f.js().read_stream(kStream), kLeader);
  INFO(d.summary());
  CHECK(d.ok());
  CHECK(d.compared == kMessages);
  for (Region* r : {&l, &f}) {
    check_for(
        10s,
        [&](std::string& state) {
          auto h = r->daemon.http_get("/healthz");
          state = std::to_string(h.status) + " " + h.body;
          return h.status == 200 && json::parse(h.body).value("status", "") == "ok";
        },
        r->name + " /healthz ok");
  }
}

// Polls the daemon's /healthz until it is 503 with a reason that contains
// `want`; returns that reason.
std::string await_refusal(Isthmusd& d, const std::string& want) {
  std::string reason;
  check_for(
      10s,
      [&](std::string& state) {
        d.ensure_running("while waiting for its NATS connection to be refused");
        auto h = d.http_get("/healthz");
        state = std::to_string(h.status) + " " + h.body;
        if (h.status != 503) return false;
        json j = json::parse(h.body);
        if (j.value("nats", "") != "down") return false;
        for (const auto& r : j.value("reasons", json::array())) {
          if (r.get<std::string>().find(want) != std::string::npos) reason = r.get<std::string>();
        }
        return !reason.empty();
      },
      "isthmusd " + d.region() + " /healthz naming \"" + want + "\"");
  return reason;
}

// Restarts the daemon with these URLs and this SSL_CERT_FILE.
void restart_with(Isthmusd& d, const std::string& url, const std::string& cert_file) {
  if (d.running()) d.terminate();
  d.config().nats_urls = {url};
  d.write_config();
  d.set_env({{"SSL_CERT_FILE", cert_file}});
  d.start();
}

}  // namespace

TEST_CASE("a. nats-servers that require TLS: tls:// URLs, the certificates verified against SSL_CERT_FILE; a "
          "stream replicates",
          "[nats_tls]") {
  TempDir tmp("isthmus-natstls");
  // A CA of its own for the nats-servers (not the links' CA): only
  // SSL_CERT_FILE makes the daemons trust it.
  TestCa nats_ca("isthmus test NATS CA", tmp.file("nats-ca.pem"));
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
  for (const std::string& name : {kLeader, kFollower}) {
    Region& r = mesh[name];
    // localhost for the daemons' URLs, 127.0.0.1 for the harness's client.
    CertFiles cert = nats_ca.issue({"localhost", {"localhost"}, {"127.0.0.1"}}, tmp.file(name + "-nats.crt"),
                                   tmp.file(name + "-nats.key"));
    r.nats.append_config(tls_block(cert));
    r.nats.set_client_options({nats_ca.ca_path(), ""});
    r.daemon.config().nats_urls = {"tls://localhost:" + std::to_string(r.nats.port())};
    r.daemon.write_config();
    r.daemon.set_env({{"SSL_CERT_FILE", nats_ca.ca_path()}});
  }
  mesh.start_nats();
  replicate_and_check(mesh);
  // Both connections of each daemon are TLS (the servers allow nothing
  // else; this shows they are the daemon's and up).
  for (const std::string& name : {kLeader, kFollower}) {
    // (A connection of an earlier attempt may still be closing.)
    std::vector<json> conns;
    check_for(
        5s,
        [&](std::string& state) {
          conns = daemon_conns(mesh[name].nats.connz());
          state = json(conns).dump();
          return conns.size() == 2;
        },
        name + ": the daemon's two connections");
    for (const auto& c : conns) CHECK_FALSE(c.value("tls_version", "").empty());
  }
}

TEST_CASE("b. a server the daemon cannot verify: no connection; /healthz and the log say why", "[nats_tls]") {
  TempDir tmp("isthmus-natstls");
  TestCa nats_ca("isthmus test NATS CA", tmp.file("nats-ca.pem"));
  TestCa other_ca("another CA", tmp.file("other-ca.pem"));
  Mesh mesh(tmp, {kLeader}, {});
  Region& r = mesh[kLeader];
  Isthmusd& d = r.daemon;
  // The region's own server: TLS with a certificate for localhost.
  CertFiles good = nats_ca.issue({"localhost", {"localhost"}, {"127.0.0.1"}}, tmp.file("nats.crt"), tmp.file("nats.key"));
  r.nats.append_config(tls_block(good));
  r.nats.set_client_options({nats_ca.ca_path(), ""});
  mesh.start_nats();
  // Two more servers the daemon must refuse (it never gets far enough to
  // need JetStream): a certificate for another name, and no TLS at all.
  CertFiles elsewhere = nats_ca.issue({"elsewhere", {"nats.elsewhere.test"}}, tmp.file("elsewhere.crt"),
                                      tmp.file("elsewhere.key"));
  BareNatsServer wrong_name(tmp, "wrong-name", tls_block(elsewhere));
  BareNatsServer plain(tmp, "plain", "authorization { user: isthmus, password: s3cret }");
  const std::string port = std::to_string(r.nats.port());

  SECTION("an untrusted CA, a wrong name, no TLS; then the right CA") {
    // A trust store without the server's CA.
    restart_with(d, "tls://localhost:" + port, other_ca.ca_path());
    std::string reason = await_refusal(d, "certificate");
    CHECK(reason == "local NATS connection down (tls://localhost:" + port +
                        ": TLS: server certificate: unable to get local issuer certificate"
                        " (depth=0:cert=/CN=localhost:issuer=/CN=isthmus test NATS CA))");
    CHECK(read_file(d.log_path()).find("nats: cannot connect: tls://localhost:" + port +
                                       ": TLS: server certificate: unable to get local issuer certificate") !=
          std::string::npos);
    CHECK(daemon_conns(r.nats.connz()).empty());

    // Trusted, but for another name; a nats:// URL (the server requires TLS).
    const std::string wport = std::to_string(wrong_name.port());
    restart_with(d, "nats://localhost:" + wport, nats_ca.ca_path());
    reason = await_refusal(d, "certificate");
    CHECK(reason.find("nats://localhost:" + wport + ": TLS: server certificate: hostname mismatch") !=
          std::string::npos);
    CHECK(read_file(d.log_path()).find("nats: cannot connect: nats://localhost:" + wport +
                                       ": TLS: server certificate: hostname mismatch") != std::string::npos);
    CHECK(daemon_conns(wrong_name.connz()).empty());

    // tls:// to a server without TLS: refused, not plaintext (the URL's
    // password is not sent, and no connection shows at the server).
    const std::string pport = std::to_string(plain.port());
    restart_with(d, "tls://isthmus:s3cret@localhost:" + pport, nats_ca.ca_path());
    reason = await_refusal(d, "does not require TLS");
    CHECK(reason == "local NATS connection down (tls://localhost:" + pport + ": tls:// URL, but the server does not require TLS (no TLS, or TLS optional with allow_non_tls, which the NATS C client cannot use))");
    CHECK(daemon_conns(plain.connz()).empty());
    CHECK(read_file(d.log_path()).find("s3cret") == std::string::npos);

    // The right CA: the same daemon connects to its server.
    restart_with(d, "tls://localhost:" + port, nats_ca.ca_path());
    check_for(
        10s,
        [&](std::string& state) {
          auto h = d.http_get("/healthz");
          state = std::to_string(h.status) + " " + h.body;
          return h.status == 200;
        },
        "/healthz 200 with the right CA");
    CHECK(daemon_conns(r.nats.connz()).size() == 2);
  }
}

TEST_CASE("c. nats-servers in operator mode: the daemons' .creds file serves both connections; a stream replicates",
          "[nats_tls]") {
  TempDir tmp("isthmus-natstls");
  OperatorAuth auth(/*jetstream=*/true);
  auth.write_user_creds(tmp.file("isthmus.creds"));
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
  for (const std::string& name : {kLeader, kFollower}) {
    Region& r = mesh[name];
    r.nats.append_config(auth.server_config());
    r.nats.set_client_options({"", tmp.file("isthmus.creds")});
    r.daemon.config().nats_extra = "credentials = \"" + tmp.file("isthmus.creds") + "\"";
    r.daemon.write_config();
  }
  mesh.start_nats();
  replicate_and_check(mesh);
  for (const std::string& name : {kLeader, kFollower}) {
    check_for(
        5s,
        [&](std::string& state) {
          auto conns = daemon_conns(mesh[name].nats.connz());
          state = json(conns).dump();
          return conns.size() == 2;
        },
        name + ": the daemon's two connections");
  }
}
