// Issue 5 "Divergence", end to end over real nats-servers and isthmusd
// processes linked by mutual TLS with S2: iad leads COVENANT_COUNTRIES and
// ALERTS_INCIDENTS, ams keeps replicas of both.
//
// Foreign writes land in ams's COVENANT_COUNTRIES while the leader keeps
// publishing: the stream is reported diverged with the right counts, the
// side stream holds exactly the foreign messages, ALERTS_INCIDENTS keeps
// replicating. A rebuild asked for from a non-loopback address is refused
// (403), from loopback accepted; the daemon is killed (SIGKILL) in the middle
// of the rebuild's sync and finishes it after a restart; the replica ends
// identical to the leader and /healthz is 200 again.
#include <arpa/inet.h>
#include <nats/nats.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.h"

using namespace harness;
using nlohmann::json;

namespace {

const std::string kCountries = "COVENANT_COUNTRIES";
const std::string kAlerts = "ALERTS_INCIDENTS";
const std::string kSide = "ISTHMUS_FOREIGN_COVENANT_COUNTRIES";
const std::string kLeader = "iad";
const std::string kFollower = "ams";

json countries_config() {
  return {{"name", kCountries},
          {"subjects", {"covenant.countries.created", "covenant.countries.updated", "covenant.countries.deleted"}},
          {"retention", "limits"},
          {"max_age", int64_t{30} * 24 * 3600 * 1'000'000'000},
          {"max_msgs", 1'000'000},
          {"storage", "file"},
          {"num_replicas", 1},
          {"discard", "old"}};
}

json alerts_config() {
  return {{"name", kAlerts},
          {"subjects", {"alerts.incidents.*"}},
          {"retention", "limits"},
          {"max_age", int64_t{24} * 3600 * 1'000'000'000},
          {"max_msgs", 1'000'000},
          {"storage", "file"},
          {"num_replicas", 1},
          {"discard", "new"}};
}

OutMsg country(size_t i) {
  static const char* kinds[] = {"created", "updated", "deleted"};
  OutMsg m;
  m.subject = std::string("covenant.countries.") + kinds[i % 3];
  m.payload = "{\"event\":" + std::to_string(i) + ",\"country\":\"C" + std::to_string(i % 200) + "\"}";
  if (i % 3 == 0) m.headers.emplace_back("X-Event-Index", std::to_string(i));
  return m;
}

OutMsg alert(size_t i) {
  OutMsg m;
  m.subject = "alerts.incidents." + std::string(i % 2 ? "open" : "closed");
  m.payload = "{\"incident\":" + std::to_string(i) + "}";
  return m;
}

// Publishes a few messages into both leader streams every ~25 ms until
// stopped: the leader keeps publishing through the whole scenario.
class Trickle {
 public:
  explicit Trickle(JetStream& js) : thread_([this, &js] { run(js); }) {}
  ~Trickle() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void check() const {
    if (error_) std::rethrow_exception(error_);
  }
  size_t published() const { return count_; }

 private:
  void run(JetStream& js) {
    try {
      size_t i = 0;
      while (!stop_) {
        std::vector<OutMsg> c, a;
        for (size_t k = 0; k < 4; ++k, ++i) {
          c.push_back(country(1'000'000 + i));
          a.push_back(alert(i));
        }
        js.publish_bulk(c, 8);
        js.publish_bulk(a, 8);
        count_ += 4;
        std::this_thread::sleep_for(25ms);
      }
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  std::atomic<bool> stop_{false};
  std::atomic<size_t> count_{0};
  std::exception_ptr error_;
  std::thread thread_;
};

// A non-loopback address of this host (IPv4 first), or "".
std::string non_loopback_address() {
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) != 0) return "";
  std::string v4, v6;
  for (ifaddrs* i = ifs; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (i->ifa_addr->sa_family == AF_INET && v4.empty()) {
      auto* a = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
      if ((ntohl(a->sin_addr.s_addr) >> 24) == 127) continue;
      ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
      v4 = buf;
    }
  }
  ::freeifaddrs(ifs);
  return v4.empty() ? v6 : v4;
}

std::string header_of(const Headers& h, const std::string& key) {
  for (const auto& [k, v] : h)
    if (k == key) return v;
  return "";
}

std::optional<json> follower_entry(Region& r, const std::string& stream, json* whole = nullptr) {
  auto s = r.daemon.lag_stream(stream);
  if (!s) return std::nullopt;
  if (whole) *whole = *s;
  for (const auto& f : s->value("followers", json::array()))
    if (f.value("region", "") == kFollower) return f;
  return std::nullopt;
}

// Waits until ams's replica of `stream` holds the leader's last sequence and
// /v1/lag says replicating; then compares the whole streams.
void verify_identical(Mesh& mesh, const std::string& stream, std::chrono::milliseconds timeout) {
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  uint64_t target = l.js().require_stream_info(stream).last_seq;
  check_for(
      timeout,
      [&](std::string& state) {
        f.daemon.ensure_running("catching up " + stream);
        auto fi = f.js().stream_info(stream);
        json s;
        auto fe = follower_entry(f, stream, &s);
        state = "replica " + (fi ? std::to_string(fi->last_seq) : std::string("missing")) + " of " +
                std::to_string(target) + "; " + s.dump();
        return fi && fi->last_seq == target && s.value("state", "") == "replicating";
      },
      kFollower + " " + stream + " caught up at " + std::to_string(target) + " and replicating");
  StreamInfo li = l.js().require_stream_info(stream);
  StreamInfo fi = f.js().require_stream_info(stream);
  CHECK(fi.first_seq == li.first_seq);
  CHECK(fi.last_seq == li.last_seq);
  CHECK(fi.messages == li.messages);
  auto lm = l.js().read_stream(stream);
  auto fm = f.js().read_stream(stream);
  MirrorDiff d = compare_streams(lm, fm, kLeader);
  INFO(stream << ": " << d.summary());
  REQUIRE(d.ok());
  REQUIRE(d.compared == lm.size());
}

std::string side_stream_for_alerts() { return "ISTHMUS_FOREIGN_" + kAlerts; }

bool file_contains(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str().find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("divergence: foreign writes kept aside, rebuild from loopback only, survives SIGKILL mid-rebuild",
          "[diverge]") {
  const std::string remote = non_loopback_address();
  INFO("non-loopback address of this host: '" << remote << "'");
  REQUIRE_FALSE(remote.empty());  // the 403 check needs one: fail, do not skip

  TempDir tmp("isthmus-diverge");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kCountries, kLeader}, {kAlerts, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  f.daemon.config().http_host = "0.0.0.0";
  f.daemon.write_config();
  mesh.start_nats();
  l.js().create_stream(countries_config());
  l.js().create_stream(alerts_config());
  mesh.start_daemons();

  // Some history, replicated.
  {
    std::vector<OutMsg> c, a;
    for (size_t i = 0; i < 300; ++i) c.push_back(country(i));
    for (size_t i = 0; i < 100; ++i) a.push_back(alert(100'000 + i));
    l.js().publish_bulk(c, 256);
    l.js().publish_bulk(a, 256);
  }
  verify_identical(mesh, kCountries, 60s);
  verify_identical(mesh, kAlerts, 60s);

  Trickle trickle(l.js());
  // A foreign write into the replica while the leader publishes.
  struct Foreign {
    OutMsg msg;
    uint64_t seq = 0;
  };
  std::vector<Foreign> foreign;
  auto write_foreign = [&](size_t n) {
    Foreign fw;
    fw.msg.subject = "covenant.countries.updated";
    fw.msg.payload = "{\"foreign\":" + std::to_string(n) + "}";
    fw.msg.headers = {{"X-Foreign", "yes-" + std::to_string(n)}, {"Nats-Msg-Id", "foreign-" + std::to_string(n)}};
    PubAck ack = f.js().publish(fw.msg);
    REQUIRE(ack.stream == kCountries);
    fw.seq = ack.seq;
    foreign.push_back(fw);
  };
  // The trickle reaches the replica before the foreign write lands among it.
  const uint64_t before_trickle = f.js().require_stream_info(kCountries).last_seq;
  check_for(
      30s,
      [&](std::string& state) {
        trickle.check();
        uint64_t last = f.js().require_stream_info(kCountries).last_seq;
        state = "replica last seq " + std::to_string(last);
        return last >= before_trickle + 8;
      },
      "ams " + kCountries + " storing the leader's trickle");
  write_foreign(1);
  check_for(
      30s,
      [&](std::string& state) {
        f.daemon.ensure_running("after the foreign write");
        auto s = f.daemon.lag_stream(kCountries);
        state = s ? s->dump() : "no stream";
        return s && s->value("state", "") == "diverged";
      },
      "ams /v1/lag: " + kCountries + " diverged");
  // More foreign writes while diverged, and a backlog at the leader big
  // enough that the rebuild's sync takes a few seconds.
  write_foreign(2);
  write_foreign(3);
  // Enough of them that the keep-aside, and later the rebuild's scan, take
  // more than one worker job each (2000 sequences per job).
  for (size_t n = 1000; n < 3100; ++n) write_foreign(n);
  {
    std::vector<OutMsg> c;
    // (At 50-200k msg/s the sync lasts 0.5-2 s: the progress check below
    // polls every 20 ms and needs the leader's view too, reported about
    // once a second.)
    for (size_t i = 0; i < 100'000; ++i) c.push_back(country(10'000 + i));
    auto t0 = Clock::now();
    l.js().publish_bulk(c, 1024, 120s);
    std::printf("[figures] leader backlog: 100000 messages published in %.2f s\n", seconds_since(t0));
  }

  // Right counts in /v1/lag and /healthz, and in the log.
  check_for(
      30s,
      [&](std::string& state) {
        json s;
        auto fe = follower_entry(f, kCountries, &s);
        state = s.dump();
        return fe && s.value("state", "") == "diverged" && fe->value("foreign_found", size_t{0}) == foreign.size() &&
               fe->value("foreign_kept", size_t{0}) == foreign.size() && fe->value("side_stream", "") == kSide;
      },
      "ams /v1/lag: " + std::to_string(foreign.size()) + " foreign messages found and kept aside in " + kSide);
  {
    auto h = f.daemon.http_get("/healthz");
    INFO(h.status << " " << h.body);
    CHECK(h.status == 503);
    const std::string n = std::to_string(foreign.size());
    CHECK_THAT(h.body, Catch::Contains("diverged") &&
                           Catch::Contains(n + " foreign message(s) found, " + n + " kept aside in " + kSide));
    CHECK(file_contains(f.daemon.log_path(), "foreign message(s) found in the replica"));
  }

  // The side stream holds exactly the foreign messages.
  std::map<uint64_t, int64_t> replica_times;
  for (const auto& fw : foreign) {
    auto m = f.js().get_msg(kCountries, fw.seq);
    REQUIRE(m.has_value());
    replica_times[fw.seq] = m->time_ns;
  }
  {
    auto side = f.js().read_stream(kSide);
    REQUIRE(side.size() == foreign.size());
    for (size_t i = 0; i < foreign.size(); ++i) {
      const auto& fw = foreign[i];
      const auto& m = side[i];
      INFO("side message " << i << ": " << m.subject << " " << to_string(m.headers) << " " << m.payload);
      CHECK(m.subject == "$ISTHMUS.FOREIGN." + kCountries + "." + std::to_string(fw.seq));
      CHECK(m.payload == fw.msg.payload);
      CHECK(header_of(m.headers, "Isthmus-Foreign-Stream") == kCountries);
      CHECK(header_of(m.headers, "Isthmus-Foreign-Subject") == fw.msg.subject);
      CHECK(header_of(m.headers, "Isthmus-Foreign-Seq") == std::to_string(fw.seq));
      CHECK(header_of(m.headers, "Isthmus-Foreign-Time") == std::to_string(replica_times[fw.seq]));
      CHECK(header_of(m.headers, "X-Foreign") == fw.msg.headers[0].second);
      CHECK(header_of(m.headers, "Isthmus-Orig-Nats-Msg-Id") == fw.msg.headers[1].second);
      CHECK(header_of(m.headers, "Nats-Msg-Id").empty());
    }
  }

  // The other stream keeps replicating meanwhile.
  {
    uint64_t target = l.js().require_stream_info(kAlerts).last_seq;
    check_for(
        30s,
        [&](std::string& state) {
          auto fi = f.js().stream_info(kAlerts);
          json s;
          follower_entry(f, kAlerts, &s);
          state = s.dump();
          return fi && fi->last_seq >= target && s.value("state", "") == "replicating";
        },
        "ams " + kAlerts + " still replicating past " + std::to_string(target));
  }

  // Rebuild: refused from a non-loopback address, for an unknown stream, at
  // the leader; accepted from loopback.
  {
    auto r = http_request_at(remote, f.daemon.http_port(), "POST", "/v1/streams/" + kCountries + "/rebuild");
    INFO("from " << remote << ": " << r.status << " " << r.body);
    CHECK(r.status == 403);
    json j = json::parse(r.body, nullptr, false);
    CHECK((!j.is_discarded() && j.contains("error") && j["error"].is_string()));
    CHECK(f.daemon.lag_stream(kCountries)->value("state", "") == "diverged");
    auto unknown = f.daemon.http_post("/v1/streams/NO_SUCH_STREAM/rebuild");
    CHECK(unknown.status == 404);
    auto at_leader = l.daemon.http_post("/v1/streams/" + kCountries + "/rebuild");
    INFO("at the leader: " << at_leader.body);
    CHECK(at_leader.status == 409);
  }
  auto t_rebuild = Clock::now();
  {
    auto r = f.daemon.http_post("/v1/streams/" + kCountries + "/rebuild");
    INFO(r.status << " " << r.body);
    REQUIRE(r.status == 202);
  }
  // Progress like an initial sync; strike while it is under way.
  json seen;
  check_for(
      60s,
      [&](std::string& state) {
        f.daemon.ensure_running("rebuilding");
        json s;
        auto fe = follower_entry(f, kCountries, &s);
        state = s.dump();
        if (!fe || s.value("state", "") != "rebuilding" || !fe->contains("sync")) return false;
        // (Before the sync starts, while foreign messages go aside, the
        // figures are the old replica's.)
        if (s.value("detail", "").rfind("syncing from", 0) != 0) return false;
        const json& p = (*fe)["sync"];
        if (p.value("kind", "") == "rebuild" && p.value("state", "") == "syncing" &&
            p.value("done", uint64_t{0}) > 4000 && p.value("to_go", uint64_t{0}) > 4000 &&
            p.value("rate_per_s", 0.0) > 0 && p["eta_s"].is_number() && p["elapsed_s"].is_number()) {
          // The same in the metrics, and in the leader's view of ams (its
          // lag report, about once a second).
          auto m = f.daemon.http_get("/metrics");
          const std::string labels = "{region=\"" + std::string(kFollower) + "\",stream=\"" + kCountries +
                                     "\",role=\"follower\",follower=\"" + kFollower + "\"} ";
          state += "\nmetrics: syncing " + std::to_string(m.body.find("isthmus_sync_syncing" + labels + "1")) +
                   ", rate " + std::to_string(m.body.find("isthmus_sync_rate_messages_per_second" + labels + "0\n"));
          if (m.body.find("isthmus_sync_syncing" + labels + "1\n") == std::string::npos) return false;
          if (m.body.find("isthmus_sync_rate_messages_per_second" + labels + "0\n") != std::string::npos) return false;
          auto at_leader = follower_entry(l, kCountries);
          state += "\nat iad: " + (at_leader ? at_leader->dump() : std::string("none"));
          if (!at_leader || !at_leader->contains("sync")) return false;
          const json& lp = (*at_leader)["sync"];
          if (lp.value("kind", "") != "rebuild" || lp.value("state", "") != "syncing") return false;
          seen = p;
          return true;
        }
        if (p.value("to_go", uint64_t{1}) == 0) throw Fatal("the rebuild finished before it could be interrupted: " + state);
        return false;
      },
      "ams /v1/lag and /metrics, and iad's view of ams: " + kCountries +
          " rebuilding with done, to go, rate and estimated time");
  std::printf("[figures] rebuild progress before SIGKILL: %s\n", seen.dump().c_str());
  {
    // Asked again while it syncs: accepted, and changes nothing (the sync
    // goes on; it used to start over, deleting the half-synced replica).
    auto r = f.daemon.http_post("/v1/streams/" + kCountries + "/rebuild");
    INFO(r.status << " " << r.body);
    CHECK(r.status == 202);
    json s;
    auto fe = follower_entry(f, kCountries, &s);
    INFO("after the second request: " << s.dump());
    REQUIRE(fe);
    CHECK(s.value("state", "") == "rebuilding");
    CHECK(s.value("detail", "").rfind("syncing from", 0) == 0);
    REQUIRE(fe->contains("sync"));
    CHECK((*fe)["sync"].value("done", uint64_t{0}) >= seen.value("done", uint64_t{0}));
  }
  ExitStatus st = f.daemon.kill9();
  CHECK(st.signaled);
  uint64_t at_kill = f.js().require_stream_info(kCountries).last_seq;
  f.daemon.start();

  // The rebuild ends while the leader keeps publishing.
  check_for(
      90s,
      [&](std::string& state) {
        f.daemon.ensure_running("finishing the rebuild");
        trickle.check();
        auto s = f.daemon.lag_stream(kCountries);
        state = s ? s->dump() : "no stream";
        return s && s->value("state", "") == "replicating";
      },
      "ams " + kCountries + " replicating again (rebuild done) under continuous publishing");
  trickle.stop();
  trickle.check();
  verify_identical(mesh, kCountries, 120s);
  double rebuild_s = seconds_since(t_rebuild);
  uint64_t total = l.js().require_stream_info(kCountries).last_seq;
  std::printf("[figures] rebuild of %llu messages (killed at replica seq %llu, restarted): %.2f s\n",
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(at_kill), rebuild_s);
  CHECK(file_contains(f.daemon.log_path(), "finishing it"));
  CHECK(file_contains(f.daemon.log_path(), "rebuild done"));
  // The scan of the sealed replica went in parts (one worker job each).
  CHECK(file_contains(f.daemon.log_path(), "rebuild: examined the replica up to sequence"));
  verify_identical(mesh, kAlerts, 60s);
  check_for(
      20s,
      [&](std::string& state) {
        auto h = f.daemon.http_get("/healthz");
        state = std::to_string(h.status) + " " + h.body;
        return h.status == 200;
      },
      "ams /healthz 200 after the rebuild");
  // The foreign messages are still aside, once each.
  auto side = f.js().read_stream(kSide);
  CHECK(side.size() == foreign.size());
  // The replica no longer carries a mark in its description.
  auto fi = f.js().require_stream_info(kCountries);
  CHECK(fi.raw["config"].value("description", "").find("isthmus:") == std::string::npos);

  // isthmusctl: refused from a non-loopback address (exit 5); a healthy
  // replica rebuilt on the operator's word, watched until done.
  const std::string ctl = env_or("ISTHMUS_BUILD_DIR", "") + "/ctl/isthmusctl";
  const std::string port = std::to_string(f.daemon.http_port());
  RunResult refused = run_capture({ctl, "--url", "http://" + remote + ":" + port, "rebuild", kAlerts}, 30s);
  INFO("isthmusctl from " << remote << ": " << refused.status.to_string() << "\n" << refused.out << refused.err);
  CHECK(refused.status.exited);
  CHECK(refused.status.code == 5);
  CHECK_THAT(refused.err, Catch::Contains("403"));
  l.js().publish_bulk([] {
    std::vector<OutMsg> a;
    for (size_t i = 0; i < 5000; ++i) a.push_back(alert(200'000 + i));
    return a;
  }(), 512);
  auto t_ctl = Clock::now();
  RunResult watched = run_capture(
      {ctl, "--url", "http://127.0.0.1:" + port, "rebuild", kAlerts, "--watch", "--interval", "200ms"}, 90s);
  INFO("isthmusctl rebuild --watch: " << watched.status.to_string() << "\n" << watched.out << watched.err);
  CHECK(watched.status.exited);
  CHECK(watched.status.code == 0);
  CHECK_THAT(watched.out, Catch::Contains("accepted") && Catch::Contains("rebuild done"));
  std::printf("[figures] isthmusctl rebuild --watch of a healthy %s replica: %.2f s\n", kAlerts.c_str(),
              seconds_since(t_ctl));
  verify_identical(mesh, kAlerts, 60s);
  CHECK(f.js().stream_info(side_stream_for_alerts()) == std::nullopt);  // nothing foreign: no side stream

  // A daemon that died after sealing and marking the replica for a rebuild
  // (state left as the first rebuild step leaves it), with more foreign
  // messages at the end: the next start redoes the rebuild and keeps those
  // aside too, once each.
  f.daemon.kill9();
  write_foreign(4);
  // A long foreign tail whose start the mark does not give: found by walking
  // down once, then scanned in parts.
  for (size_t n = 5000; n < 7100; ++n) write_foreign(n);
  {
    json cfg = f.js().require_stream_info(kCountries).raw["config"];
    cfg["description"] = cfg.value("description", "") + "; isthmus:rebuild=requested";
    cfg["sealed"] = true;
    f.js().api("$JS.API.STREAM.UPDATE." + kCountries, cfg);
  }
  f.daemon.start();
  verify_identical(mesh, kCountries, 90s);
  CHECK(file_contains(f.daemon.log_path(), "rebuild: replica deleted"));
  auto side2 = f.js().read_stream(kSide);
  REQUIRE(side2.size() == foreign.size());  // those kept before, and the last one, each once
  CHECK(side2.back().payload == foreign.back().msg.payload);
  CHECK(header_of(side2.back().headers, "Isthmus-Foreign-Seq") == std::to_string(foreign.back().seq));
  check_for(
      20s, [&] { return f.daemon.http_get("/healthz").status == 200; }, "ams /healthz 200 after the redone rebuild");
}

// A foreign publish that a stalled replica server receives while Isthmus's
// writes wait in it too: after 10 s without an acknowledgement the follower
// restarts its pipeline and drops those writes, and once the server runs
// again it stores them late, the foreign message among them. The late
// writes must not hide it: the stream diverges, and the foreign message is
// found and kept aside. Stopped 12 s, the data connection survives and its
// watch sees the foreign publish (between pipelines); stopped 35 s, the
// data connection is replaced (no PONG), the watch may miss it, and the
// start checks every place the dropped writes went to.
TEST_CASE("divergence: a foreign publish stored among late writes after a replica stall", "[diverge][late]") {
  int stall_s = 0;
  SECTION("12 s stall") { stall_s = 12; }
  SECTION("35 s stall") { stall_s = 35; }
  TempDir tmp("isthmus-diverge-late");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kCountries, kLeader}, {kAlerts, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  l.js().create_stream(countries_config());
  l.js().create_stream(alerts_config());
  mesh.start_daemons();
  {
    std::vector<OutMsg> c;
    for (size_t i = 0; i < 50; ++i) c.push_back(country(i));
    l.js().publish_bulk(c, 64);
  }
  verify_identical(mesh, kCountries, 60s);
  // A foreign client of ams's nats-server, connected before the stall.
  JetStream foreign(f.nats.url());
  auto ams_entry = [&](std::string& state) {
    auto e = follower_entry(f, kCountries);
    state = e ? e->dump() : "no entry";
    return e ? *e : json::object();
  };
  std::string st;
  const int64_t resets_before = ams_entry(st).value("pipeline_resets", int64_t{-1});
  REQUIRE(resets_before >= 0);
  Trickle trickle(l.js());
  f.nats.process().signal(SIGSTOP);
  const auto stopped = Clock::now();
  check_for(
      15s,
      [&](std::string& state) {
        trickle.check();
        return ams_entry(state).value("inflight", 0) > 0;
      },
      "ams holding writes in flight while its nats-server is stopped");
  // Published now, it waits in the stopped server beside Isthmus's writes.
  REQUIRE(natsConnection_PublishString(foreign.connection(), "covenant.countries.updated", "{\"foreign\":1}") ==
          NATS_OK);
  check_for(
      std::chrono::seconds(stall_s + 10),
      [&](std::string& state) {
        trickle.check();
        return ams_entry(state).value("pipeline_resets", int64_t{0}) > resets_before &&
               Clock::now() - stopped >= std::chrono::seconds(stall_s);
      },
      "ams restarting its pipeline (no acknowledgement for 10 s), the server stopped " + std::to_string(stall_s) +
          " s");
  f.nats.process().signal(SIGCONT);
  check_for(
      60s,
      [&](std::string& state) {
        trickle.check();
        auto s = f.daemon.lag_stream(kCountries);
        state = s ? s->dump() : "no stream";
        return s && s->value("state", "") == "diverged";
      },
      "ams /v1/lag: " + kCountries + " diverged");
  check_for(
      30s,
      [&](std::string& state) {
        auto e = ams_entry(state);
        return e.value("foreign_found", 0) == 1 && e.value("foreign_kept", 0) == 1;
      },
      "the foreign message found and kept aside");
  auto side = f.js().read_stream(kSide);
  REQUIRE(side.size() == 1);
  CHECK(side[0].payload == "{\"foreign\":1}");
  auto s = f.daemon.lag_stream(kCountries);
  REQUIRE(s);
  std::printf("[figures] diverge late (%d s stall): %s\n", stall_s, s->value("detail", "").c_str());
  trickle.stop();
}

namespace {

// Starts both regions with COVENANT_COUNTRIES led by iad, 200 messages,
// replicated.
void start_with_countries(Mesh& mesh) {
  mesh.start_nats();
  mesh[kLeader].js().create_stream(countries_config());
  mesh.start_daemons();
  std::vector<OutMsg> c;
  for (size_t i = 0; i < 200; ++i) c.push_back(country(i));
  mesh[kLeader].js().publish_bulk(c, 256);
  verify_identical(mesh, kCountries, 60s);
}

}  // namespace

// A replica that lost its last messages while the leader still holds them
// (nats-server 2.9 drops writes into an interest stream while it shuts
// down, acknowledging each: soak, 2026-11-29; here deleted by hand while the
// daemon is down, the same state): found at the next start, reported as
// missing (/v1/lag, /healthz, log), replication goes on, and a rebuild
// repairs it.
TEST_CASE("a replica missing its last messages: reported at start, replication goes on, rebuild repairs",
          "[diverge][missing]") {
  TempDir tmp("isthmus-missing");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kCountries, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  start_with_countries(mesh);

  REQUIRE(f.daemon.terminate().exited);
  for (uint64_t s = 198; s <= 200; ++s) f.js().delete_msg(kCountries, s);
  f.daemon.start();

  std::optional<json> fe;
  check_for(
      30s,
      [&](std::string& state) {
        f.daemon.ensure_running("after the start");
        fe = follower_entry(f, kCountries);
        state = fe ? fe->dump() : "no entry";
        return fe && fe->contains("missing");
      },
      "ams /v1/lag: " + kCountries + " missing messages");
  CHECK((*fe)["missing"] == json({{"messages", 3}, {"first_seq", 198}, {"last_seq", 200}}));
  auto h = f.daemon.http_get("/healthz");
  INFO("/healthz: " << h.body);
  CHECK(h.status == 503);
  CHECK(h.body.find("the replica lacks 3 message(s) the leader holds (sequences 198..200)") != std::string::npos);
  CHECK(file_contains(f.daemon.log_path(), "the replica lacks 3 message(s) the leader holds, sequences 198..200"));
  auto metrics = f.daemon.http_get("/metrics");
  CHECK(metrics.body.find("isthmus_replica_missing_messages{region=\"ams\",stream=\"" + kCountries +
                          "\",role=\"follower\",follower=\"ams\"} 3\n") != std::string::npos);

  // The pipeline starts again over the same tail (the link drops: the
  // leader's daemon is killed and restarted): counted once.
  l.daemon.kill9();
  l.daemon.start();
  check_for(
      30s,
      [&](std::string& state) {
        auto r = f.daemon.http_get("/v1/links");
        state = r.body;
        return r.status == 200 && json::parse(r.body)["links"][0].value("state", "") == "up" &&
               f.daemon.lag_stream(kCountries)->value("state", "") == "replicating";
      },
      "ams replicating again after the link came back");
  fe = follower_entry(f, kCountries);
  REQUIRE(fe);
  CHECK((*fe)["missing"] == json({{"messages", 3}, {"first_seq", 198}, {"last_seq", 200}}));

  // Replication goes on meanwhile.
  {
    std::vector<OutMsg> c;
    for (size_t i = 200; i < 250; ++i) c.push_back(country(i));
    l.js().publish_bulk(c, 256);
  }
  check_for(
      30s, [&] { return f.js().require_stream_info(kCountries).last_seq == 250; }, "ams replicating past the hole");
  StreamInfo fi = f.js().require_stream_info(kCountries);
  CHECK(fi.messages == 247);

  auto r = f.daemon.http_post("/v1/streams/" + kCountries + "/rebuild");
  INFO("rebuild: " << r.body);
  REQUIRE(r.status == 202);
  verify_identical(mesh, kCountries, 60s);
  check_for(
      30s,
      [&](std::string& state) {
        auto e = follower_entry(f, kCountries);
        auto hz = f.daemon.http_get("/healthz");
        state = (e ? e->dump() : "no entry") + "; /healthz " + std::to_string(hz.status) + " " + hz.body;
        return e && !e->contains("missing") && hz.status == 200;
      },
      "ams: nothing missing after the rebuild, /healthz 200");
}

TEST_CASE("a hole in a replica: found by the leader's reconcile passes, again after a restart, cleared when the "
          "leader deletes it too; the leader's own deletes and gaps are never holes",
          "[diverge][missing][hole]") {
  TempDir tmp("isthmus-hole");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kCountries, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  start_with_countries(mesh);

  // The leader deletes while it is written: messages the follower holds
  // (replicated deletes) and the newest ones (often not read yet: gaps the
  // follower fills and deletes). Each delete starts a reconcile pass, and
  // none of them may be taken for a hole.
  size_t sampled = 0;
  {
    PublishTarget t{kCountries, {"covenant.countries.created", "covenant.countries.updated"}};
    StreamPublisher pub(l.nats.url(), {t}, 20, 20ms);
    std::set<uint64_t> deleted;
    for (int k = 0; k < 12; ++k) {
      const uint64_t last = l.js().require_stream_info(kCountries).last_seq;
      for (uint64_t s : {last, last - 60}) {
        if (deleted.insert(s).second) l.js().delete_msg(kCountries, s);
      }
      const auto until = Clock::now() + 400ms;
      while (Clock::now() < until) {
        auto fe = follower_entry(f, kCountries);
        INFO("ams's entry: " << (fe ? fe->dump() : "none"));
        REQUIRE(fe);
        REQUIRE(!fe->contains("missing"));
        ++sampled;
        std::this_thread::sleep_for(50ms);
      }
    }
    pub.stop();
  }
  verify_identical(mesh, kCountries, 60s);
  REQUIRE(!follower_entry(f, kCountries)->contains("missing"));
  REQUIRE(file_contains(f.daemon.log_path(), "deleted at the leader"));  // the deletes did replicate
  // (Compared meanwhile: a check needs a pass, each delete starts one.)
  const json hc = (*follower_entry(f, kCountries))["hole_checks"];
  const uint64_t checked = hc.value("count", uint64_t{0});
  CHECK(checked >= 2);
  CHECK(hc.value("candidates", uint64_t{1}) == 0);  // not even once
  std::printf("[figures] hole: no hole reported in %zu samples (%llu checks) while the leader deleted 24 messages\n",
              sampled, static_cast<unsigned long long>(checked));

  // A hole: a message deleted in the replica by hand. Found once two passes
  // in a row see it (each delete at the leader starts one).
  f.js().delete_msg(kCountries, 100);
  // A delete at the leader about once a second: each starts a pass.
  uint64_t trigger = 10;
  auto next_trigger = Clock::now();
  auto trigger_passes = [&] {
    if (Clock::now() < next_trigger) return;
    l.js().delete_msg(kCountries, trigger++);
    next_trigger = Clock::now() + 1000ms;
  };
  auto await_hole = [&](const std::string& what) {
    next_trigger = Clock::now();
    check_for(
        30s,
        [&](std::string& state) {
          trigger_passes();
          auto fe = follower_entry(f, kCountries);
          state = fe ? fe->dump() : "no entry";
          return fe && fe->contains("missing");
        },
        what);
    auto fe = follower_entry(f, kCountries);
    REQUIRE(fe);
    CHECK((*fe)["missing"] == json({{"messages", 1}, {"first_seq", 100}, {"last_seq", 100}}));
    auto h = f.daemon.http_get("/healthz");
    INFO("/healthz: " << h.body);
    CHECK(h.status == 503);
    CHECK(h.body.find("the replica lacks 1 message(s) the leader holds (sequences 100..100)") != std::string::npos);
  };
  await_hole("ams /v1/lag: the hole at 100 reported");
  CHECK(file_contains(f.daemon.log_path(), "the replica lacks 1 message(s) the leader holds, between sequences 100 and "
                                           "100 (deleted in the replica but not at the leader"));

  // Found again after a restart of the follower's daemon (nothing kept in
  // memory: each pass recomputes it).
  REQUIRE(f.daemon.terminate().exited);
  f.daemon.start();
  await_hole("ams /v1/lag: the hole at 100 reported again after the restart");

  // The leader deletes it too: nothing is missing any more.
  l.js().delete_msg(kCountries, 100);
  check_for(
      30s,
      [&](std::string& state) {
        auto e = follower_entry(f, kCountries);
        auto hz = f.daemon.http_get("/healthz");
        state = (e ? e->dump() : "no entry") + "; /healthz " + std::to_string(hz.status) + " " + hz.body;
        return e && !e->contains("missing") && hz.status == 200;
      },
      "ams: nothing missing once the leader deleted 100 too, /healthz 200");
  CHECK(file_contains(f.daemon.log_path(), "the replica no longer lacks messages the leader holds"));

  // A deleted tail longer than the leader sends (4,096) when the follower
  // subscribes again below it: the replica's copy of that tail (deleted
  // there as the leader deleted it) is not a hole.
  {
    std::vector<OutMsg> tail;
    for (size_t i = 0; i < 4200; ++i) {
      OutMsg m;
      m.subject = "covenant.countries.deleted";
      m.payload = "{\"tail\":" + std::to_string(i) + "}";
      tail.push_back(std::move(m));
    }
    l.js().publish_bulk(tail, 512);
  }
  verify_identical(mesh, kCountries, 60s);
  // (Also every earlier "deleted" event: interior deletes, replicated.)
  l.js().api("$JS.API.STREAM.PURGE." + kCountries, {{"filter", "covenant.countries.deleted"}});
  const uint64_t last = l.js().require_stream_info(kCountries).last_seq;
  check_for(
      30s,
      [&](std::string& state) {
        StreamInfo fi = f.js().require_stream_info(kCountries);
        state = "ams " + std::to_string(fi.messages) + " messages, last " + std::to_string(fi.last_seq);
        return fi.messages == l.js().require_stream_info(kCountries).messages && fi.last_seq == last;
      },
      "ams's replica purged as the leader's");
  REQUIRE(f.daemon.terminate().exited);
  f.daemon.start();
  next_trigger = Clock::now();
  uint64_t checks = 0;
  check_for(
      40s,
      [&](std::string& state) {
        trigger_passes();
        auto fe = follower_entry(f, kCountries);
        state = fe ? fe->dump() : "no entry";
        REQUIRE(fe);
        INFO("ams's entry: " << state);
        REQUIRE(!fe->contains("missing"));
        checks = (*fe)["hole_checks"].value("count", uint64_t{0});
        return checks >= 2;
      },
      "ams: two hole checks after the restart");
  std::printf("[figures] hole: %llu checks after a restart below a deleted tail of 4200, nothing missing\n",
              static_cast<unsigned long long>(checks));
  CHECK(f.daemon.http_get("/healthz").status == 200);
}
