// Issue 5, "Tests": the three-region scenario. iad leads the seed's four
// streams (three interest-retention COVENANT_* streams, ALERTS_INCIDENTS
// with limits retention, 1 day, 10,000 messages, discard new); ams and syd
// follow, every region linked to the other two (mutual TLS 1.3 + S2). The
// iad<->syd link runs through a faultproxy (iad dials syd: "iad" < "syd").
//
// While a publisher writes continuously into all four streams in iad (an
// application durable consumer at iad on each interest stream has not
// consumed, so iad keeps everything), the run goes through:
//   1. kill -9 of ams's daemon, restart
//   2. kill -9 of syd's daemon, restart
//   3. a restart of ams's nats-server
//   4. a link drop: iad<->syd cut (proxy down, open connections reset) for
//      three seconds, then back
// Then publishing stops and every follower must end with exactly the
// leader's (sequence, subject, payload, headers per the header rule) for
// every stream, with first_seq, last_seq and message count equal too.
#include <cstdio>

#include <catch2/catch.hpp>

#include "faultproxy/proxy_client.h"
#include "harness.h"

using namespace harness;
using isthmus::test::FaultProxy;
using nlohmann::json;

namespace {

const std::string kLeader = "iad";
const std::vector<std::string> kFollowers = {"ams", "syd"};

std::vector<IsthmusdConfig::Stream> mesh_streams() {
  std::vector<IsthmusdConfig::Stream> v;
  for (const auto& s : seed_streams()) v.push_back({s.name, kLeader});
  return v;
}

uint64_t last_seq(Region& r, const std::string& stream) {
  auto i = r.js().stream_info(stream);
  return i ? i->last_seq : 0;
}

std::string lag_state(Region& r, const std::string& stream) {
  auto l = r.daemon.lag_stream(stream);
  return l ? l->value("state", "?") : "absent";
}

}  // namespace

TEST_CASE("three regions, four seed streams, kill -9, nats restart and a link drop: every replica identical",
          "[mesh]") {
  TempDir tmp("isthmus-mesh");
  Mesh mesh(tmp, {"ams", kLeader, "syd"}, mesh_streams());
  Region& iad = mesh[kLeader];

  uint16_t syd_link = mesh["syd"].daemon.config().link_port;
  auto fp = FaultProxy::start(FaultProxy::default_executable(), "127.0.0.1:" + std::to_string(syd_link));
  INFO("faultproxy: " << (fp.is_ok() ? "started" : fp.status().message()));
  REQUIRE(fp.is_ok());
  std::unique_ptr<FaultProxy> proxy = std::move(*fp);
  for (auto& p : iad.daemon.config().peers)
    if (p.name == "syd") p.address = proxy->listen_address();
  iad.daemon.write_config();

  mesh.start_nats();
  std::vector<PublishTarget> targets;
  create_seed_streams(iad.js());
  for (const auto& s : seed_streams()) targets.push_back({s.name, s.subjects, s.weight});
  mesh.start_daemons();

  auto links_up = [&](Region& r, std::string& st) {
    auto res = r.daemon.http_get("/v1/links", 2s);
    st += r.name + ": " + std::to_string(res.status) + " " + res.body + "; ";
    if (res.status != 200) return false;
    size_t up = 0;
    const json j = json::parse(res.body);
    for (const auto& l : j.at("links")) up += l.value("state", "") == "up";
    return up == 2;
  };
  check_for(
      30s,
      [&](std::string& st) {
        st.clear();
        bool a = links_up(iad, st), b = links_up(mesh["ams"], st), c = links_up(mesh["syd"], st);
        return a && b && c;
      },
      "full mesh of links up");

  // ~8 messages per round, 10 rounds per 100 ms: ~800 msgs/s in all.
  StreamPublisher pub(iad.nats.url(), targets, 10, 100ms);

  // Each step waits until both followers have moved past what the leader
  // had when it began, so every fault hits a live, replicating mesh.
  auto await_progress = [&](const std::string& why, const std::vector<std::string>& followers = kFollowers) {
    std::map<std::string, uint64_t> mark;
    for (const auto& s : seed_streams()) mark[s.name] = last_seq(iad, s.name);
    check_for(
        45s,
        [&](std::string& st) {
          if (pub.failed()) throw Fatal("publisher failed");
          st.clear();
          bool all = true;
          for (const auto& f : followers)
            for (const auto& s : seed_streams()) {
              uint64_t l = last_seq(mesh[f], s.name);
              if (l < mark[s.name]) {
                all = false;
                st += f + "/" + s.name + " at " + std::to_string(l) + " of " + std::to_string(mark[s.name]) +
                      " (" + lag_state(mesh[f], s.name) + "); ";
              }
            }
          return all;
        },
        "followers replicating " + why);
  };

  await_progress("before the faults");

  mesh["ams"].daemon.kill9();
  await_progress("with ams's daemon down", {"syd"});  // syd keeps up; ams cannot move
  mesh["ams"].daemon.start();
  await_progress("after ams's daemon restarted");

  mesh["syd"].daemon.kill9();
  mesh["syd"].daemon.start();
  await_progress("after syd's daemon restarted");

  mesh["ams"].drop_js();
  mesh["ams"].nats.restart();
  await_progress("after ams's nats-server restarted");

  REQUIRE(proxy->down().is_ok());  // refuses new connections and resets the open one
  check_for(
      15s,
      [&] {
        auto r = iad.daemon.http_get("/v1/links", 2s);
        const json j = json::parse(r.body);
        for (const auto& l : j.at("links"))
          if (l.value("peer", "") == "syd") return l.value("state", "") != "up";
        return false;
      },
      "iad sees the link to syd down");
  uint64_t syd_before = last_seq(mesh["syd"], "COVENANT_COUNTRIES");
  check_for(
      10s, [&] { return last_seq(iad, "COVENANT_COUNTRIES") > syd_before + 500; },
      "the leader moving on while syd is cut off");
  REQUIRE(proxy->up().is_ok());
  await_progress("after the iad<->syd link returned");

  pub.stop();
  std::printf("[figures] mesh: published %llu messages into 4 streams\n",
              static_cast<unsigned long long>(pub.published()));

  for (const auto& s : seed_streams()) {
    StreamInfo li = iad.js().require_stream_info(s.name);
    REQUIRE(li.last_seq == pub.published(s.name));
    for (const auto& f : kFollowers) {
      Region& r = mesh[f];
      check_for(
          60s,
          [&](std::string& st) {
            r.daemon.ensure_running("catching up");
            uint64_t l = last_seq(r, s.name);
            st = "replica at " + std::to_string(l) + ", state " + lag_state(r, s.name);
            return l == li.last_seq;
          },
          f + " " + s.name + " caught up at " + std::to_string(li.last_seq));
      StreamInfo fi = r.js().require_stream_info(s.name);
      INFO(f << " " << s.name << ": leader first/last/messages " << li.first_seq << "/" << li.last_seq << "/"
             << li.messages << ", replica " << fi.first_seq << "/" << fi.last_seq << "/" << fi.messages);
      CHECK(fi.first_seq == li.first_seq);
      CHECK(fi.messages == li.messages);
      auto lm = iad.js().read_stream(s.name);
      auto fm = r.js().read_stream(s.name);
      MirrorDiff d = compare_streams(lm, fm, kLeader);
      INFO(d.summary());
      CHECK(d.ok());
      CHECK(d.compared == lm.size());
      CHECK(lm.size() == pub.published(s.name));
    }
  }
  for (const auto& f : kFollowers) {
    auto h = mesh[f].daemon.http_get("/healthz", 2s);
    INFO(f << " /healthz: " << h.body);
    CHECK(h.status == 200);
  }
}
