// Issue 2 end to end: two regions (iad leads COVENANT_COUNTRIES, ams follows),
// each a real nats-server and a real isthmusd on free ports. Every test case
// starts its own fresh servers.
//
// What every scenario ends with: the replica holds the leader's messages at
// the same sequences, with the same subject and payload, and the headers of
// the header rule (harness/mirror_check.h), each exactly once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.h"

using namespace harness;
using nlohmann::json;

namespace {

const std::string kStream = "COVENANT_COUNTRIES";
const std::string kLeader = "iad";
const std::string kFollower = "ams";
constexpr int64_t kDupWindowNs = 100'000'000;  // 100 ms: lets Msg-Ids repeat at the leader
constexpr size_t kIdBatch = 2000;              // Msg-Ids are unique within each block of 2000
constexpr auto kCatchUp = 120s;                // ceiling for a replica to catch up

json leader_stream_config() {
  return {{"name", kStream},
          {"subjects",
           {"covenant.countries.created", "covenant.countries.updated", "covenant.countries.deleted"}},
          {"retention", "limits"},
          {"max_age", int64_t{30} * 24 * 3600 * 1'000'000'000},
          {"max_msgs", 1'000'000},
          {"storage", "file"},
          {"num_replicas", 1},
          {"discard", "old"},
          {"duplicate_window", kDupWindowNs}};
}

// Event number i of a run, to be stored at leader sequence `seq`.
// - subjects rotate over created/updated/deleted;
// - every 4th carries Nats-Msg-Id "evt-<n>" with n = (i/4) % 500, so each id
//   repeats every 2000 events (the leader's 100 ms window and the pauses in
//   publish_events() keep the leader from deduplicating them; the replica
//   must not deduplicate them either);
// - every 11th carries Nats-Expected-Stream, every 101st
//   Nats-Expected-Last-Sequence (both valid at the leader);
// - every 7th a two-valued X-Trace header; every 5th no header at all.
OutMsg event(size_t i, uint64_t seq) {
  static const char* kinds[] = {"created", "updated", "deleted"};
  static const char* countries[] = {"FR", "DE", "US", "JP", "BR", "NZ", "KE", "IN", "CA", "NO"};
  OutMsg m;
  m.subject = std::string("covenant.countries.") + kinds[i % 3];
  std::ostringstream p;
  p << "{\"event\":" << i << ",\"country\":\"" << countries[i % 10] << "\",\"kind\":\"" << kinds[i % 3]
    << "\",\"population\":" << (i * 7919) % 100000000 << ",\"note\":\"" << std::string(i % 97, 'n')
    << "\"}";
  m.payload = p.str();
  if (i % 5 == 1) return m;
  m.headers.emplace_back("X-Event-Index", std::to_string(i));
  m.headers.emplace_back("Content-Type", "application/json");
  if (i % 4 == 0) m.headers.emplace_back("Nats-Msg-Id", "evt-" + std::to_string((i / 4) % 500));
  if (i % 7 == 0) {
    m.headers.emplace_back("X-Trace", "a-" + std::to_string(i));
    m.headers.emplace_back("X-Trace", "b-" + std::to_string(i));
  }
  if (i % 11 == 0) m.headers.emplace_back("Nats-Expected-Stream", kStream);
  if (i % 101 == 0) m.headers.emplace_back("Nats-Expected-Last-Sequence", std::to_string(seq - 1));
  return m;
}

// When each Msg-Id number was last acknowledged, over every call in this
// process (a trickle of single publishes followed by a burst reuses ids
// across calls), so that an id's next use comes well after the leader's
// duplicate window. Process-wide and conservative: a wait for an id used in
// an earlier test case's stream costs at most the gap once.
std::mutex g_id_use_mu;
std::map<size_t, Clock::time_point> g_id_last_ack;

// Publishes events [from, from+count) into the leader, which must store
// them at first_seq, first_seq+1, ... Chunks of 250 go out with async acks;
// before a chunk goes, every Msg-Id in it was last acknowledged at least
// 300 ms ago: the leader's 100 ms duplicate window (plus its purge timer)
// has expired by then, so repeated Msg-Ids are stored. That caps a long run
// near 6,700 msg/s and spreads it evenly over time. Throws if any ack is a
// duplicate or lands elsewhere.
void publish_events(JetStream& js, size_t from, size_t count, uint64_t first_seq) {
  constexpr size_t kChunk = 250;
  constexpr auto kIdReuseGap = 300ms;
  size_t i = from;
  const size_t end = from + count;
  while (i < end) {
    const size_t chunk_end = std::min(end, (i / kChunk + 1) * kChunk);
    std::vector<OutMsg> msgs;
    std::vector<size_t> ids;
    for (size_t k = i; k < chunk_end; ++k) {
      msgs.push_back(event(k, first_seq + (k - from)));
      if (k % 4 == 0) ids.push_back((k / 4) % (kIdBatch / 4));
    }
    Clock::time_point not_before{};
    {
      std::lock_guard<std::mutex> lock(g_id_use_mu);
      for (size_t id : ids) {
        auto it = g_id_last_ack.find(id);
        if (it != g_id_last_ack.end()) not_before = std::max(not_before, it->second + kIdReuseGap);
      }
    }
    std::this_thread::sleep_until(not_before);
    auto acks = js.publish_bulk(msgs, 250);
    {
      const auto now = Clock::now();
      std::lock_guard<std::mutex> lock(g_id_use_mu);
      for (size_t id : ids) g_id_last_ack[id] = now;
    }
    for (size_t k = 0; k < acks.size(); ++k) {
      uint64_t want = first_seq + (i + k - from);
      if (acks[k].duplicate || acks[k].seq != want)
        throw std::runtime_error("leader stored event " + std::to_string(i + k) + " at seq " +
                                 std::to_string(acks[k].seq) + (acks[k].duplicate ? " (duplicate)" : "") +
                                 ", expected " + std::to_string(want));
    }
    i = chunk_end;
  }
}

// Runs publish_events on a thread; join() rethrows its error.
class Publisher {
 public:
  Publisher(JetStream& js, size_t from, size_t count, uint64_t first_seq)
      : thread_([this, &js, from, count, first_seq] {
          try {
            publish_events(js, from, count, first_seq);
          } catch (...) {
            error_ = std::current_exception();
          }
          done_ = true;
        }) {}
  ~Publisher() {
    if (thread_.joinable()) thread_.join();
  }
  bool done() const { return done_; }
  void join() {
    if (thread_.joinable()) thread_.join();
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<bool> done_{false};
  std::exception_ptr error_;
  std::thread thread_;
};

uint64_t last_seq_or_zero(Region& r) {
  auto i = r.js().stream_info(kStream);
  return i ? i->last_seq : 0;
}

std::string lag_state(Region& r) {
  try {
    return r.daemon.http_get("/v1/lag", 1s).body;
  } catch (const std::exception& e) {
    return std::string("(/v1/lag: ") + e.what() + ")";
  }
}

// One look at the follower: its replica's last sequence, and a description
// for failure messages. Throws Fatal when waiting is pointless: a daemon
// died, the replica went beyond `limit`, or ams reports the stream diverged.
uint64_t observe_follower(Mesh& mesh, uint64_t limit, std::string& state) {
  Region& f = mesh[kFollower];
  f.daemon.ensure_running("while replicating");
  mesh[kLeader].daemon.ensure_running("while replicating");
  auto i = f.js().stream_info(kStream);
  uint64_t last = i ? i->last_seq : 0;
  if (last > limit)
    throw Fatal("replica last_seq " + std::to_string(last) + " is beyond the leader's " + std::to_string(limit));
  std::string lag = lag_state(f);
  json lj = json::parse(lag, nullptr, false);
  if (!lj.is_discarded() && lj.is_object())
    for (const auto& st : lj.value("streams", json::array()))
      if (st.is_object() && st.value("stream", "") == kStream && st.value("state", "") == "diverged")
        throw Fatal("ams reports " + kStream + " diverged while replicating (replica last_seq " +
                    std::to_string(last) + "): " + st.dump());
  state = (i ? "replica last_seq " + std::to_string(last) : std::string("no replica stream")) + "; ams /v1/lag " + lag;
  return last;
}

// Waits until the follower's replica has reached `target`; fails early if
// observe_follower() does, or if the replica makes no progress for kStall.
constexpr auto kStall = 30s;
void await_replica(Mesh& mesh, uint64_t target, std::chrono::milliseconds timeout = kCatchUp) {
  uint64_t best = 0;
  auto progress_at = Clock::now();
  check_for(
      timeout,
      [&](std::string& state) {
        uint64_t last = observe_follower(mesh, target, state);
        if (last > best || best == 0) {
          if (last > best) progress_at = Clock::now();
          best = std::max(best, last);
        }
        if (Clock::now() - progress_at > kStall)
          throw Fatal("no replication progress for " + std::to_string(kStall.count()) + " s; " + state);
        return last == target;
      },
      "replica " + kStream + " in " + kFollower + " at last_seq " + std::to_string(target));
}

// The whole replica against the whole leader stream.
void verify_mirror(Mesh& mesh) {
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  StreamInfo li = l.js().require_stream_info(kStream);
  StreamInfo fi = f.js().require_stream_info(kStream);
  INFO("leader first/last/messages " << li.first_seq << "/" << li.last_seq << "/" << li.messages
       << ", replica " << fi.first_seq << "/" << fi.last_seq << "/" << fi.messages);
  CHECK(fi.first_seq == li.first_seq);
  CHECK(fi.last_seq == li.last_seq);
  CHECK(fi.messages == li.messages);
  auto lm = l.js().read_stream(kStream);
  auto fm = f.js().read_stream(kStream);
  REQUIRE(lm.size() == li.messages);
  MirrorDiff d = compare_streams(lm, fm, kLeader);
  INFO(d.summary());
  REQUIRE(d.ok());
  REQUIRE(d.compared == lm.size());
}

// Both daemons report the stream caught up through /v1/lag and are healthy.
void verify_lag_api(Mesh& mesh, uint64_t last_seq) {
  auto follower_ok = [&](const json& s, std::string& why) {
    for (const auto& fo : s.value("followers", json::array())) {
      if (fo.value("region", "") != kFollower) continue;
      // (leader_last_seq and seq_lag are null at a follower that has not
      // heard from its leader since it started.)
      auto number = [&fo](const char* k, int64_t fallback) {
        return fo.contains(k) && fo[k].is_number() ? fo[k].get<int64_t>() : fallback;
      };
      if (number("applied_seq", 0) == static_cast<int64_t>(last_seq) &&
          number("leader_last_seq", 0) == static_cast<int64_t>(last_seq) && number("seq_lag", -1) == 0)
        return true;
      why = "follower entry " + fo.dump();
      return false;
    }
    why = "no follower entry for " + kFollower + " in " + s.dump();
    return false;
  };
  for (const std::string& region : {kLeader, kFollower}) {
    Region& r = mesh[region];
    check_for(
        15s,
        [&](std::string& state) {
          json lag = r.daemon.lag();
          state = lag.dump();
          if (lag.value("region", "") != region) return false;
          auto s = r.daemon.lag_stream(kStream);
          if (!s) return false;
          std::string want_role = region == kLeader ? "leader" : "follower";
          if (s->value("leader", "") != kLeader || s->value("role", "") != want_role ||
              s->value("state", "") != "replicating")
            return false;
          std::string why;
          if (!follower_ok(*s, why)) {
            state += " -- " + why;
            return false;
          }
          return true;
        },
        region + " /v1/lag: " + kStream + " replicating, applied_seq = leader_last_seq = " +
            std::to_string(last_seq) + ", seq_lag 0");
    check_for(
        15s,
        [&](std::string& state) {
          auto h = r.daemon.http_get("/healthz");
          state = std::to_string(h.status) + " " + h.body;
          json j = json::parse(h.body, nullptr, false);
          return h.status == 200 && !j.is_discarded() && j.value("status", "") == "ok";
        },
        region + " /healthz 200 {\"status\":\"ok\"}");
  }
}

struct Setup {
  // extra: streams iad also leads, beside kStream.
  explicit Setup(std::vector<IsthmusdConfig::Stream> extra = {})
      : mesh(tmp, {kLeader, kFollower}, [&extra] {
          extra.insert(extra.begin(), IsthmusdConfig::Stream{kStream, kLeader});
          return extra;
        }()) {}
  TempDir tmp{"isthmus-mirror"};
  Mesh mesh;
  Region& leader() { return mesh[kLeader]; }
  Region& follower() { return mesh[kFollower]; }
  void create_leader_stream() { leader().js().create_stream(leader_stream_config()); }
};

// The scheduling policy (sched(7): 0 SCHED_OTHER, 3 SCHED_BATCH) of every
// thread of a process, by thread id, from /proc/PID/task/TID/stat (field 41).
std::map<std::string, int> thread_policies(pid_t pid) {
  std::map<std::string, int> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;  // the thread ended meanwhile
    std::istringstream rest(stat.substr(close + 1));
    std::string field;
    int policy = -1;
    for (int n = 3; rest >> field; ++n) {  // fields after "pid (comm)" start at 3
      if (n == 41) {
        policy = std::stoi(field);
        break;
      }
    }
    if (policy >= 0) out[e.path().filename().string()] = policy;
  }
  return out;
}

// The policy this test runs under, which a daemon it starts inherits
// (SCHED_RESET_ON_FORK aside), and its name as the daemon logs it.
int runner_policy() { return sched_getscheduler(0) & ~SCHED_RESET_ON_FORK; }
const char* policy_name(int policy) {
  switch (policy) {
    case SCHED_OTHER: return "other";
    case SCHED_BATCH: return "batch";
    case SCHED_IDLE: return "idle";
    case SCHED_FIFO: return "fifo";
    case SCHED_RR: return "rr";
  }
  return "?";
}
// What process.cpu_scheduling = "batch" leaves a daemon started from here
// under: SCHED_BATCH, unless started under something other than the default.
int batch_policy() { return runner_policy() == SCHED_OTHER ? SCHED_BATCH : runner_policy(); }

// Every thread of the daemon runs under `policy`; there are several (the
// loop, cnats' reader, flusher and delivery threads, the NATS worker).
void require_thread_policy(Isthmusd& d, int policy, const char* name) {
  auto threads = thread_policies(d.process().pid());
  std::string seen;
  for (const auto& [tid, p] : threads) seen += " " + tid + ":" + std::to_string(p);
  INFO(d.region() << " threads (tid:policy):" << seen);
  CHECK(threads.size() >= 4);
  for (const auto& [tid, p] : threads) CHECK(p == policy);
  std::ifstream log(d.log_path());
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  CHECK(text.find(std::string("cpu scheduling policy: ") + name) != std::string::npos);
}

// Servers, the leader's stream and both daemons up, and 500 events
// replicated and checked.
void replicate_first_500(Setup& s) {
  s.mesh.start_nats();
  s.create_leader_stream();
  s.mesh.start_daemons();
  publish_events(s.leader().js(), 0, 500, 1);
  await_replica(s.mesh, 500);
  verify_mirror(s.mesh);
}

void print_figures(const char* what, uint64_t messages, double seconds) {
  std::printf("[figures] %s: %llu messages in %.3f s = %.0f msgs/s\n", what,
              static_cast<unsigned long long>(messages), seconds,
              seconds > 0 ? static_cast<double>(messages) / seconds : 0.0);
  std::fflush(stdout);
}

}  // namespace

TEST_CASE("a: 20,000 messages reach the replica at the same sequences with the header rule",
          "[mirror]") {
  Setup s;
  s.mesh.start_nats();
  s.create_leader_stream();

  const size_t kBulk = 20'000;
  auto tp = Clock::now();
  publish_events(s.leader().js(), 0, kBulk, 1);
  print_figures("leader publish (paced for the 100 ms dup window)", kBulk, seconds_since(tp));
  REQUIRE(s.leader().js().require_stream_info(kStream).last_seq == kBulk);

  // Catch-up: everything is already in the leader when the daemons start.
  auto t0 = Clock::now();
  s.mesh.start_daemons();
  std::optional<Clock::time_point> first_seen;
  check_for(
      kCatchUp,
      [&](std::string& state) {
        uint64_t last = observe_follower(s.mesh, kBulk, state);
        if (last > 0 && !first_seen) first_seen = Clock::now();
        return last == kBulk;
      },
      "catch-up of " + std::to_string(kBulk) + " messages");
  double total = seconds_since(t0);
  print_figures("catch-up replication iad->ams (from daemon start)", kBulk, total);
  if (first_seen)
    print_figures("catch-up replication iad->ams (from first replica message)", kBulk,
                  std::chrono::duration<double>(Clock::now() - *first_seen).count());

  // Live: publish while both daemons run.
  const size_t kLive = 2'000;
  auto tl = Clock::now();
  publish_events(s.leader().js(), kBulk, kLive, kBulk + 1);
  double pub_secs = seconds_since(tl);
  await_replica(s.mesh, kBulk + kLive);
  double live_secs = seconds_since(tl);
  print_figures("live replication (publish start to replica caught up)", kLive, live_secs);
  std::printf("[figures] live: published in %.3f s, replica caught up %.0f ms after the last ack\n", pub_secs,
              (live_secs - pub_secs) * 1000);

  verify_mirror(s.mesh);
  verify_lag_api(s.mesh, kBulk + kLive);
  // process.cpu_scheduling's default: every thread of both daemons under
  // SCHED_BATCH (set before the first thread starts, inherited by the rest).
  require_thread_policy(s.leader().daemon, batch_policy(), policy_name(batch_policy()));
  require_thread_policy(s.follower().daemon, batch_policy(), policy_name(batch_policy()));

  // The same truth in Prometheus form, at both ends.
  const std::string labels = "{region=\"" + std::string(kFollower) + "\",stream=\"" + kStream +
                             "\",role=\"follower\",follower=\"" + kFollower + "\"}";
  auto m = s.follower().daemon.http_get("/metrics");
  INFO(m.body.substr(0, 2000));
  CHECK(m.status == 200);
  CHECK(m.body.find("\nisthmus_lag_messages" + labels + " 0\n") != std::string::npos);
  CHECK(m.body.find("\nisthmus_lag_applied_sequence" + labels + " " + std::to_string(kBulk + kLive) + "\n") !=
        std::string::npos);
  CHECK(m.body.find("\nisthmus_link_up{region=\"" + std::string(kFollower) + "\",peer=\"" + kLeader + "\"} 1\n") !=
        std::string::npos);
  auto lm = s.leader().daemon.http_get("/metrics");
  CHECK(lm.status == 200);
  CHECK(lm.body.find("isthmus_sent_messages_total{") != std::string::npos);
}

namespace {

enum class Fault { kKillFollowerDaemon, kKillLeaderDaemon, kTerminateLeaderDaemon, kRestartFollowerNats };

// 10,000 events published while a fault hits mid-run; ends with the replica
// complete and aligned.
void run_with_fault(Fault fault) {
  Setup s;
  s.mesh.start_nats();
  s.create_leader_stream();
  s.mesh.start_daemons();
  const size_t kTotal = 10'000;
  JetStream& ljs = s.leader().js();
  s.follower().js();  // connect before the publisher starts

  Publisher pub(ljs, 0, kTotal, 1);
  // Strike once the replica is well under way.
  check_for(
      kCatchUp,
      [&](std::string& state) { return observe_follower(s.mesh, kTotal, state) >= 3000; },
      "replica past seq 3000 before the fault");
  uint64_t at_fault = last_seq_or_zero(s.follower());
  uint64_t leader_at_fault = last_seq_or_zero(s.leader());

  switch (fault) {
    case Fault::kKillFollowerDaemon: {
      ExitStatus st = s.follower().daemon.kill9();
      CHECK(st.signaled);
      // The leader's view: the follower is waiting, and the age of the
      // oldest message it lacks keeps rising while it is away: remembered
      // from the message in flight at the drop, else looked up once the
      // stream moves past it (0 until then if it had everything). Once
      // known it is never unknown again, and it rises with the clock.
      auto view = [&]() -> std::optional<json> {
        auto ls = s.leader().daemon.lag_stream(kStream);
        if (!ls) return std::nullopt;
        for (const auto& f : ls->value("followers", json::array()))
          if (f.value("region", "") == kFollower) return f;
        return std::nullopt;
      };
      check_for(
          5s,
          [&](std::string& state) {
            auto f = view();
            state = f ? f->dump() : "no entry";
            return f && f->value("state", "") == "waiting";
          },
          "iad's view of ams: waiting after the kill");
      struct Sample {
        Clock::time_point before, after;  // around the request
        double age_ms;
      };
      std::vector<Sample> known;  // from the first positive age on
      size_t unknown_before = 0;
      std::string last_view;
      const auto t_end = Clock::now() + 2500ms;
      while (Clock::now() < t_end) {
        auto before = Clock::now();
        auto f = view();
        auto after = Clock::now();
        REQUIRE(f);
        last_view = f->dump();
        const json& a = (*f)["oldest_unreplicated_age_ms"];
        if (a.is_number() && (a.get<double>() > 0 || !known.empty())) {
          known.push_back({before, after, a.get<double>()});
        } else {
          INFO("iad's view of ams: " << last_view);
          CHECK(known.empty());  // unknown (or 0: had everything) only before it is first known
          ++unknown_before;
        }
        std::this_thread::sleep_for(50ms);
      }
      INFO("iad's view of ams at the end: " << last_view);
      std::printf("[figures] iad's oldest-unreplicated age of ams after the kill: %zu samples before it was "
                  "known, %zu after, first %.0f ms\n",
                  unknown_before, known.size(), known.empty() ? -1.0 : known.front().age_ms);
      // The publisher goes on meanwhile: within about a second (the tick)
      // at the latest the age is known.
      REQUIRE(known.size() >= 10);
      for (size_t i = 1; i < known.size(); ++i) CHECK(known[i].age_ms >= known[i - 1].age_ms);
      // Between the two readings at least (last request sent - first
      // answer received) passed on the daemon's clock.
      const double at_least_ms =
          std::chrono::duration<double, std::milli>(known.back().before - known.front().after).count();
      CHECK(known.back().age_ms - known.front().age_ms >= at_least_ms - 20);
      break;
    }
    case Fault::kKillLeaderDaemon: {
      ExitStatus st = s.leader().daemon.kill9();
      CHECK(st.signaled);
      break;
    }
    case Fault::kTerminateLeaderDaemon: {
      // Reading a stream being written: a batch may be held for its pull's
      // answer when the signal comes. The daemon drains and exits by itself.
      ExitStatus st = s.leader().daemon.terminate();
      INFO("leader daemon: " << st.to_string());
      CHECK(st.exited);
      CHECK(st.code == 0);
      // The follower says why the link went down (the leader's GOAWAY),
      // also once its dials since have failed (last_close_reason).
      check_for(
          10s,
          [&](std::string& state) {
            auto r = s.follower().daemon.http_get("/v1/links", 2s);
            state = r.body;
            if (r.status != 200) return false;
            const json j = json::parse(r.body);
            for (const auto& l : j.at("links"))
              if (l.value("peer", "") == s.leader().name) return l.value("last_drop_reason", "") == "peer_goaway";
            return false;
          },
          "ams: last_drop_reason peer_goaway");
      break;
    }
    case Fault::kRestartFollowerNats:
      s.follower().nats.stop();
      break;
  }
  // Let the leader move on while the fault lasts.
  check_for(
      60s,
      [&](std::string& state) {
        uint64_t l = last_seq_or_zero(s.leader());
        state = "leader last_seq " + std::to_string(l);
        return pub.done() || l >= leader_at_fault + 2000;
      },
      "leader advancing during the fault");
  switch (fault) {
    case Fault::kKillFollowerDaemon:
      s.follower().daemon.start();
      break;
    case Fault::kKillLeaderDaemon:
    case Fault::kTerminateLeaderDaemon:
      s.leader().daemon.start();
      break;
    case Fault::kRestartFollowerNats:
      s.follower().nats.start();
      break;
  }
  std::printf("[mirror] fault at replica seq %llu (leader %llu)\n", static_cast<unsigned long long>(at_fault),
              static_cast<unsigned long long>(leader_at_fault));
  pub.join();
  REQUIRE(ljs.require_stream_info(kStream).last_seq == kTotal);
  await_replica(s.mesh, kTotal);
  verify_mirror(s.mesh);
  verify_lag_api(s.mesh, kTotal);
}

}  // namespace

TEST_CASE("b1: kill -9 of the follower daemon mid-run, then restart: exactly once, in order", "[mirror][fault]") {
  run_with_fault(Fault::kKillFollowerDaemon);
}

TEST_CASE("b2: kill -9 of the leader daemon mid-run, then restart: exactly once, in order", "[mirror][fault]") {
  run_with_fault(Fault::kKillLeaderDaemon);
}

TEST_CASE("b3: SIGTERM to the leader daemon mid-run: a clean exit (status 0), then exactly once, in order",
          "[mirror][fault]") {
  run_with_fault(Fault::kTerminateLeaderDaemon);
}

TEST_CASE("c: restart of the follower's nats-server mid-run: the daemon reconnects and completes",
          "[mirror][fault]") {
  run_with_fault(Fault::kRestartFollowerNats);
}

TEST_CASE("d: daemons started before their nats-servers connect once they are up", "[mirror]") {
  Setup s;
  // Prepare the leader's stream, then take both servers away.
  s.leader().nats.start();
  s.create_leader_stream();
  publish_events(s.leader().js(), 0, 3000, 1);
  s.leader().drop_js();
  s.leader().nats.stop();

  s.mesh.start_daemons();
  for (const std::string& region : {kLeader, kFollower}) {
    Region& r = s.mesh[region];
    check_for(
        15s,
        [&](std::string& state) {
          r.daemon.ensure_running("without its nats-server");
          auto h = r.daemon.http_get("/healthz");
          state = std::to_string(h.status) + " " + h.body;
          json j = json::parse(h.body, nullptr, false);
          return h.status == 503 && !j.is_discarded() && j.value("status", "") == "unhealthy" &&
                 j.contains("reasons") && j["reasons"].is_array() && !j["reasons"].empty();
        },
        region + " /healthz 503 with reasons while its nats-server is down");
  }
  check_stays(
      1s,
      [&](std::string& state) {
        state = "leader running " + std::to_string(s.leader().daemon.running()) + ", follower running " +
                std::to_string(s.follower().daemon.running());
        return s.leader().daemon.running() && s.follower().daemon.running();
      },
      "daemons keep running without nats-server");

  s.leader().nats.start();
  s.follower().nats.start();
  await_replica(s.mesh, 3000);
  publish_events(s.leader().js(), 3000, 500, 3001);
  await_replica(s.mesh, 3500);
  verify_mirror(s.mesh);
  verify_lag_api(s.mesh, 3500);
}

TEST_CASE("d2: a follower restarted while its leader's daemon is away shows what its replica holds, and an "
          "unknown lag",
          "[mirror]") {
  Setup s;
  s.mesh.start_nats();
  s.create_leader_stream();
  s.mesh.start_daemons();
  publish_events(s.leader().js(), 0, 300, 1);
  await_replica(s.mesh, 300);
  s.leader().daemon.kill9();
  s.follower().daemon.restart(true);
  // Applied sequence from the replica at once; the leader's last sequence
  // and the sequence lag unknown (it used to read applied 0, lag 0); the
  // newest-applied age rising.
  double age0 = -1;
  check_for(
      15s,
      [&](std::string& state) {
        s.follower().daemon.ensure_running("with its leader away");
        auto v = s.follower().daemon.lag_stream(kStream);
        state = v ? v->dump() : "no stream";
        if (!v) return false;
        const json& f = (*v)["followers"][0];
        if (f.value("applied_seq", uint64_t{0}) != 300) return false;
        CHECK(f["leader_last_seq"].is_null());
        CHECK(f["seq_lag"].is_null());
        if (!f["newest_applied_age_ms"].is_number()) return false;
        age0 = f["newest_applied_age_ms"].get<double>();
        return age0 > 0;
      },
      "ams /v1/lag: applied 300 read from its replica, leader last and seq lag unknown");
  check_for(
      10s,
      [&](std::string& state) {
        auto v = s.follower().daemon.lag_stream(kStream);
        const json& f = (*v)["followers"][0];
        state = f.dump();
        return f["newest_applied_age_ms"].is_number() && f["newest_applied_age_ms"].get<double>() > age0 + 500;
      },
      "ams newest-applied age rising while its leader is away");
  {
    auto m = s.follower().daemon.http_get("/metrics");
    const std::string fb = "{region=\"" + kFollower + "\",stream=\"" + kStream +
                           "\",role=\"follower\",follower=\"" + kFollower + "\"}";
    CHECK(m.body.find("isthmus_lag_applied_sequence" + fb + " 300\n") != std::string::npos);
    CHECK(m.body.find("isthmus_lag_messages" + fb) == std::string::npos);
  }
  s.leader().daemon.start();
  publish_events(s.leader().js(), 300, 50, 301);
  await_replica(s.mesh, 350);
  verify_mirror(s.mesh);
  verify_lag_api(s.mesh, 350);
}

TEST_CASE("e: a leader stream whose first sequence is above 1: the replica starts there", "[mirror]") {
  Setup s;
  s.mesh.start_nats();
  s.create_leader_stream();
  publish_events(s.leader().js(), 0, 100, 1);
  s.leader().js().purge(kStream, 51);
  StreamInfo li = s.leader().js().require_stream_info(kStream);
  REQUIRE(li.first_seq == 51);
  REQUIRE(li.last_seq == 100);
  REQUIRE(li.messages == 50);

  s.mesh.start_daemons();
  await_replica(s.mesh, 100);
  StreamInfo fi = s.follower().js().require_stream_info(kStream);
  CHECK(fi.first_seq == 51);
  CHECK(fi.messages == 50);
  verify_mirror(s.mesh);

  // Events 110..119 (no Nats-Expected-Last-Sequence among them: the notes
  // say that check can be stale right after a purge with a sequence).
  publish_events(s.leader().js(), 110, 10, 101);
  await_replica(s.mesh, 110);
  verify_mirror(s.mesh);
  verify_lag_api(s.mesh, 110);

  // The follower's nats-server restarts: its count for that check is the
  // stream's real last sequence again, so the daemon's offset is 50 too
  // low. More than 50 messages follow: pipelined with that offset, the 51st
  // would match the count and land 50 places early. The probation write
  // after the reconnect is refused instead and teaches the offset; nothing
  // is lost, misplaced or reported as an apply error.
  // (Published while the follower's nats-server is down, so that they come
  // as one backlog, in bursts larger than 50.)
  s.follower().drop_js();
  s.follower().nats.stop();
  publish_events(s.leader().js(), 120, 200, 111);
  s.follower().nats.start();
  await_replica(s.mesh, 310);
  verify_mirror(s.mesh);
  verify_lag_api(s.mesh, 310);
  auto lag = s.follower().daemon.lag_stream(kStream);
  REQUIRE(lag);
  CHECK((*lag)["followers"][0].value("apply_errors", 1) == 0);
  CHECK_THAT(read_file(s.follower().daemon.log_path()), Catch::Contains("headers now follow its count (offset 0;"));
}

TEST_CASE("f: a foreign write into the replica is reported as divergence and stops the stream",
          "[mirror]") {
  Setup s;
  replicate_first_500(s);

  // Someone publishes straight into the replica.
  PubAck foreign = s.follower().js().publish(
      {"covenant.countries.created", {{"X-Foreign", "yes"}}, "{\"foreign\":true}"});
  REQUIRE(foreign.stream == kStream);
  REQUIRE(foreign.seq == 501);

  // The leader goes on.
  publish_events(s.leader().js(), 500, 100, 501);

  Region& f = s.follower();
  check_for(
      30s,
      [&](std::string& state) {
        f.daemon.ensure_running("after the foreign write");
        auto st = f.daemon.lag_stream(kStream);
        state = st ? st->dump() : "no " + kStream + " in " + lag_state(f);
        return st && st->value("state", "") == "diverged" && st->contains("detail") &&
               (*st)["detail"].is_string() && !(*st)["detail"].get<std::string>().empty();
      },
      "ams /v1/lag: " + kStream + " state \"diverged\" with a detail");
  check_for(
      15s,
      [&](std::string& state) {
        auto h = f.daemon.http_get("/healthz");
        state = std::to_string(h.status) + " " + h.body;
        json j = json::parse(h.body, nullptr, false);
        if (h.status != 503 || j.is_discarded() || j.value("status", "") != "unhealthy") return false;
        for (const auto& reason : j.value("reasons", json::array())) {
          std::string r = reason.is_string() ? reason.get<std::string>() : reason.dump();
          for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          if (r.find("diverg") != std::string::npos) return true;
        }
        return false;
      },
      "ams /healthz 503 naming the divergence");

  // Stopped: the leader goes on, the replica does not move any more.
  publish_events(s.leader().js(), 600, 100, 601);
  const uint64_t stopped_at = f.js().require_stream_info(kStream).last_seq;
  check_stays(
      1500ms,
      [&](std::string& state) {
        uint64_t now = f.js().require_stream_info(kStream).last_seq;
        state = "replica last_seq " + std::to_string(now) + " (was " + std::to_string(stopped_at) + ")";
        return now == stopped_at;
      },
      "replica stays put after divergence");
  f.daemon.ensure_running("after divergence");
  std::printf("[mirror] divergence: replica stopped at last_seq %llu (foreign write at 501, leader at 600)\n",
              static_cast<unsigned long long>(stopped_at));
  INFO("replica last_seq after divergence: " << stopped_at);
  CHECK(stopped_at <= 600);  // nothing published after the divergence was applied
  {
    // Diverged, ams hears no more of iad's last sequence: its sequence lag
    // is unknown (it read the figure of the last STATE it had, well below
    // iad's 700), not a number.
    auto st = f.daemon.lag_stream(kStream);
    REQUIRE(st);
    INFO(st->dump());
    REQUIRE(!st->value("followers", json::array()).empty());
    CHECK((*st)["followers"][0]["seq_lag"].is_null());
  }

  // Nothing misaligned: every replica message below the foreign write matches
  // the leader at its sequence, the foreign message is kept where it landed,
  // and whatever was already in flight when it landed (at most the pipeline)
  // sits at its own leader sequence too: nothing was shifted by the foreign write.
  auto lm = s.leader().js().read_stream(kStream);
  auto fm = f.js().read_stream(kStream);
  MirrorDiff d = compare_streams(lm, fm, kLeader, "0", 500);
  INFO(d.summary());
  CHECK(d.ok());
  CHECK(d.compared == 500);
  std::vector<StoredMsg> lm_after, fm_after;
  for (const auto& m : lm) {
    if (m.seq > 501 && m.seq <= stopped_at) lm_after.push_back(m);
  }
  for (const auto& m : fm) {
    if (m.seq > 501) fm_after.push_back(m);
  }
  MirrorDiff d2 = compare_streams(lm_after, fm_after, kLeader, "0", stopped_at);
  INFO("after the foreign write: " << d2.summary());
  CHECK(d2.ok());
  auto fw = f.js().get_msg(kStream, 501);
  REQUIRE(fw.has_value());
  CHECK(fw->payload == "{\"foreign\":true}");
  CHECK(fw->headers == Headers{{"X-Foreign", "yes"}});
}

namespace {

struct CheckRun {
  RunResult r;
  std::string path;
};

CheckRun check_config(TempDir& tmp, const std::string& name, const std::string& text) {
  CheckRun c;
  c.path = tmp.file(name);
  // Links are always TLS: a config with peers needs [link.tls]. Appended
  // last so the line numbers the cases below expect stay put.
  std::string full = text;
  if (full.find("[link.tls]") == std::string::npos) {
    CertFiles certs = region_certs(tmp.path(), "iad");
    full += "\n[link.tls]\nca = \"" + certs.ca + "\"\ncert = \"" + certs.cert + "\"\nkey = \"" + certs.key + "\"\n";
  }
  write_file(c.path, full);
  c.r = run_capture({Isthmusd::binary(), "--check-config", c.path}, 30s);
  return c;
}

// True if some stderr line starts with "PATH:LINE:<col>: KEY: " (any column
// >= 1 when col is 0). key is a regular expression.
bool has_error_line(const CheckRun& c, int line, int col, const std::string& key_re) {
  std::string esc;
  for (char ch : c.path) {
    if (std::string("\\^$.|?*+()[]{}").find(ch) != std::string::npos) esc += '\\';
    esc += ch;
  }
  std::regex re("^" + esc + ":" + std::to_string(line) + ":" + (col > 0 ? std::to_string(col) : "[1-9][0-9]*") +
                ": (" + key_re + "): .+");
  std::istringstream in(c.r.err);
  std::string l;
  while (std::getline(in, l))
    if (std::regex_search(l, re)) return true;
  return false;
}

const char* kGood = R"(# a good configuration
[region]
name = "iad"

[nats]
urls = ["nats://127.0.0.1:4222"]

[link]
listen = "127.0.0.1:7422"

[[peers]]
name = "ams"
address = "127.0.0.1:7423"

[http]
listen = "127.0.0.1:7480"

[[streams]]
name = "COVENANT_COUNTRIES"
leader = "iad"

[log]
level = "info"
)";

}  // namespace

TEST_CASE("g: --check-config refuses a bad config with file, line, column and key", "[config]") {
  TempDir tmp("isthmus-config");

  CheckRun good = check_config(tmp, "good.toml", kGood);
  INFO("good config: " << good.r.status.to_string() << "\nstdout: " << good.r.out << "\nstderr: " << good.r.err);
  CHECK(good.r.status.exited);
  CHECK(good.r.status.code == 0);

  // The harness's own generated config must be valid too.
  IsthmusdConfig gen;
  gen.region = "ams";
  gen.nats_urls = {"nats://127.0.0.1:4223"};
  gen.link_port = 17423;
  gen.peers = {{"iad", 17422}};
  gen.http_port = 17481;
  gen.streams = {{kStream, "iad"}};
  CheckRun generated = check_config(tmp, "generated.toml", gen.to_toml());
  INFO("generated config: " << generated.r.status.to_string() << "\nstderr: " << generated.r.err);
  CHECK(generated.r.status.exited);
  CHECK(generated.r.status.code == 0);

  // An unknown key (line 4) and a bad address (line 17): both reported.
  std::string two_errors = kGood;
  two_errors.replace(two_errors.find("name = \"iad\"\n"), 13, "name = \"iad\"\nnmae = \"typo\"\n");
  two_errors.replace(two_errors.find("listen = \"127.0.0.1:7480\""), 25, "listen = \"not an address\"");
  CheckRun bad = check_config(tmp, "bad.toml", two_errors);
  INFO("bad config: " << bad.r.status.to_string() << "\nstdout: " << bad.r.out << "\nstderr: " << bad.r.err);
  CHECK_FALSE((bad.r.status.exited && bad.r.status.code == 0));
  CHECK(has_error_line(bad, 4, 0, R"(region\.nmae)"));
  CHECK(has_error_line(bad, 17, 0, R"(http\.listen)"));

  // A value of the wrong type.
  std::string wrong_type = kGood;
  wrong_type.replace(wrong_type.find("level = \"info\""), 14, "level = 3");
  CheckRun typed = check_config(tmp, "type.toml", wrong_type);
  INFO("wrong type: " << typed.r.status.to_string() << "\nstderr: " << typed.r.err);
  CHECK_FALSE((typed.r.status.exited && typed.r.status.code == 0));
  CHECK(has_error_line(typed, 23, 0, R"(log\.level)"));

  // A stream led by a region that is neither us nor a peer.
  std::string unknown_leader = kGood;
  unknown_leader.replace(unknown_leader.find("leader = \"iad\""), 14, "leader = \"syd\"");
  CheckRun ul = check_config(tmp, "leader.toml", unknown_leader);
  INFO("unknown leader: " << ul.r.status.to_string() << "\nstderr: " << ul.r.err);
  CHECK_FALSE((ul.r.status.exited && ul.r.status.code == 0));
  CHECK(has_error_line(ul, 20, 0, R"(streams\[[01]\]\.leader)"));

  // Peers without the link's TLS files: each missing file named, at the
  // first peer's name (line 12) since there is no [link.tls] table.
  const std::string no_tls_path = tmp.file("no-tls.toml");
  write_file(no_tls_path, kGood);
  CheckRun no_tls{run_capture({Isthmusd::binary(), "--check-config", no_tls_path}, 30s), no_tls_path};
  INFO("no TLS: " << no_tls.r.status.to_string() << "\nstderr: " << no_tls.r.err);
  CHECK_FALSE((no_tls.r.status.exited && no_tls.r.status.code == 0));
  CHECK(has_error_line(no_tls, 12, 8, R"(link\.tls\.ca)"));
  CHECK(has_error_line(no_tls, 12, 8, R"(link\.tls\.cert)"));
  CHECK(has_error_line(no_tls, 12, 8, R"(link\.tls\.key)"));

  // A missing file is refused too.
  RunResult missing = run_capture({Isthmusd::binary(), "--check-config", tmp.file("absent.toml")}, 30s);
  CHECK_FALSE((missing.status.exited && missing.status.code == 0));
  CHECK_FALSE(missing.err.empty());

  RunResult version = run_capture({Isthmusd::binary(), "--version"}, 30s);
  INFO("--version: " << version.status.to_string() << " " << version.out << version.err);
  CHECK(version.status.exited);
  CHECK(version.status.code == 0);
  CHECK_THAT(version.out, Catch::Contains("isthmusd"));
}

TEST_CASE("h: a write the replica refuses mid-burst is named by its sequence; nothing is lost once it accepts",
          "[mirror]") {
  Setup s;
  s.mesh.start_nats();
  s.create_leader_stream();
  s.mesh.start_daemons();
  publish_events(s.leader().js(), 0, 200, 1);
  await_replica(s.mesh, 200);

  // Someone gives the replica a limit of its own: messages over 1,000 bytes
  // are refused. Then a burst whose 150th message is larger.
  Region& f = s.follower();
  json cfg = f.js().api("$JS.API.STREAM.INFO." + kStream, json::object())["config"];
  cfg["max_msg_size"] = 1000;
  f.js().api("$JS.API.STREAM.UPDATE." + kStream, cfg);
  std::vector<OutMsg> burst;
  for (int i = 0; i < 300; ++i) {
    std::string body = i == 149 ? std::string(4000, 'x') : "{\"n\":" + std::to_string(i) + "}";
    burst.push_back({"covenant.countries.updated", {}, body});
  }
  s.leader().js().publish_bulk(burst, 512, 30s);
  const uint64_t big_seq = 200 + 150;

  // The refusal is found at the next checkpoint and named by its sequence
  // (the writes before it are stored, the ones after it retried, not
  // lost); the retry's preparation restores the replica's neutral limits,
  // so the rest follows, in place.
  await_replica(s.mesh, 500);
  verify_mirror(s.mesh);
  auto lag = f.daemon.lag_stream(kStream);
  REQUIRE(lag);
  CHECK((*lag)["followers"][0].value("apply_errors", 0) >= 1);
  CHECK(f.js().api("$JS.API.STREAM.INFO." + kStream, json::object())["config"].value("max_msg_size", 0) == -1);
  // (Found at a later checkpoint, or by its own acknowledgement when it
  // ended a burst.)
  CHECK_THAT(read_file(f.daemon.log_path()),
             Catch::Contains("the write of sequence " + std::to_string(big_seq) + " was refused") ||
                 Catch::Contains("replica refused sequence " + std::to_string(big_seq) + ":"));
}

// The leader reads in three ways (docs/architecture.md, "Flow control"): a
// backlog back to back, a stream written as it is read in 1 ms bursts, an idle
// stream with one waiting pull that expires every 5 s. Each switch is a place
// where a message could wait for the next expiry or for ever; this walks
// through all of them and asks for every message promptly.
TEST_CASE("i: single messages after an idle spell, a trickle and a burst all arrive promptly", "[mirror]") {
  Setup s;
  s.mesh.start_nats();
  s.create_leader_stream();
  s.mesh.start_daemons();
  JetStream& ljs = s.leader().js();
  auto one_promptly = [&](uint64_t seq, const char* when) {
    publish_events(ljs, seq - 1, 1, seq);
    check_for(
        2s, [&](std::string& state) { return observe_follower(s.mesh, seq, state) == seq; },
        std::string("message ") + std::to_string(seq) + " in the replica within 2 s " + when);
  };
  // Empty stream: the first message arrives on the waiting pull.
  one_promptly(1, "on an empty stream");
  // Idle across the waiting pull's 5 s expiry (a deliberate idle spell, not a
  // wait for a condition), then one message.
  std::this_thread::sleep_for(6500ms);
  one_promptly(2, "after 6.5 s idle");
  one_promptly(3, "right after another");
  // A trickle (one synchronous publish at a time): the reader switches
  // between bursts and waiting many times.
  const uint64_t kTrickle = 300;
  for (uint64_t i = 0; i < kTrickle; ++i) publish_events(ljs, 3 + i, 1, 4 + i);
  check_for(
      5s, [&](std::string& state) { return observe_follower(s.mesh, 3 + kTrickle, state) == 3 + kTrickle; },
      "trickle of " + std::to_string(kTrickle) + " in the replica within 5 s");
  // A burst, then the trickle again.
  const uint64_t base = 3 + kTrickle;
  publish_events(ljs, base, 5000, base + 1);
  await_replica(s.mesh, base + 5000);
  one_promptly(base + 5001, "after a burst");
  verify_mirror(s.mesh);
}

TEST_CASE("j: process.cpu_scheduling = \"inherit\" keeps the policy the daemon was started with", "[mirror][config]") {
  Setup s;
  s.follower().daemon.config().extra += "\n[process]\ncpu_scheduling = \"inherit\"\n";
  s.follower().daemon.write_config();
  replicate_first_500(s);
  // (The test runs under SCHED_OTHER normally: then the two differ.)
  require_thread_policy(s.follower().daemon, runner_policy(), policy_name(runner_policy()));
  require_thread_policy(s.leader().daemon, batch_policy(), policy_name(batch_policy()));
}

// nats-server stores whatever header block a client writes; cnats cannot
// write a malformed one, so this writes the protocol itself.
void raw_hpub(uint16_t port, const std::string& subject, const std::string& headers, const std::string& payload) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  std::string out = "CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB " + subject + " " +
                    std::to_string(headers.size()) + " " + std::to_string(headers.size() + payload.size()) +
                    "\r\n" + headers + payload + "\r\nPING\r\n";
  REQUIRE(::write(fd, out.data(), out.size()) == static_cast<ssize_t>(out.size()));
  // The PONG says the server has read the HPUB.
  std::string in;
  char buf[4096];
  while (in.find("PONG") == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    REQUIRE(n > 0);
    in.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  REQUIRE(in.find("-ERR") == std::string::npos);
}

TEST_CASE("k: a message whose header block is partly malformed replicates with the headers that can be read",
          "[mirror]") {
  Setup s;
  s.mesh.start_nats();
  s.create_leader_stream();
  s.mesh.start_daemons();
  JetStream& ljs = s.leader().js();
  publish_events(ljs, 0, 1, 1);
  raw_hpub(s.leader().nats.port(), "covenant.countries.created",
           "NATS/1.0\r\nthis line has no colon\r\nX-Good: yes\r\n\r\n", "raw payload");
  check_for(
      10s, [&] { return ljs.require_stream_info(kStream).last_seq == 2; }, "the raw message stored at the leader");
  publish_events(ljs, 2, 1, 3);
  await_replica(s.mesh, 3, 30s);
  auto m = s.follower().js().get_msg(kStream, 2);
  REQUIRE(m);
  CHECK(m->payload == "raw payload");
  CHECK(m->subject == "covenant.countries.created");
  std::map<std::string, std::string> h(m->headers.begin(), m->headers.end());
  CHECK(h["X-Good"] == "yes");
  CHECK(h["Isthmus-Origin-Seq"] == "2");
  for (const auto& [k, v] : m->headers) CHECK(k.find("no colon") == std::string::npos);
  // The stream went on, and the leader said why a header is missing.
  auto m3 = s.follower().js().get_msg(kStream, 3);
  REQUIRE(m3);
  CHECK(read_file(s.leader().daemon.log_path()).find("malformed header block") != std::string::npos);
}

TEST_CASE("l: a data connection the server refuses (connection limit) shows in /healthz and is retried until "
          "it is accepted",
          "[mirror]") {
  Setup s;
  // The follower's server takes one client: cnats' connection gets it, the
  // data connection is refused.
  s.follower().nats.append_config("max_connections: 1");
  s.mesh.start_nats();
  s.create_leader_stream();
  s.mesh.start_daemons();
  check_for(
      20s,
      [&](std::string& state) {
        auto h = s.follower().daemon.http_get("/healthz");
        state = std::to_string(h.status) + " " + h.body;
        return h.status == 503 && h.body.find("data connection: server: maximum connections exceeded") !=
                                      std::string::npos;
      },
      "ams /healthz naming the refused data connection");
  CHECK(read_file(s.follower().daemon.log_path()).find("NATS data connection failed") != std::string::npos);
  // The operator raises the limit; the daemon's retry (at most 5 s apart)
  // gets in and replication starts.
  s.follower().nats.append_config("max_connections: 10");
  s.follower().nats.reload();
  publish_events(s.leader().js(), 0, 100, 1);
  await_replica(s.mesh, 100, 30s);
  check_for(
      10s, [&] { return s.follower().daemon.http_get("/healthz").status == 200; }, "ams /healthz 200 again");
  verify_mirror(s.mesh);
  // Each retry was refused alike: said once (the rest at debug), and the
  // connection coming back is said too.
  const std::string log = read_file(s.follower().daemon.log_path());
  INFO(log);
  size_t n = 0;
  for (size_t p = log.find("NATS data connection failed"); p != std::string::npos;
       p = log.find("NATS data connection failed", p + 1))
    ++n;
  CHECK(n == 1);
  CHECK(log.find("replication: NATS data connection up (after ") != std::string::npos);
}

namespace {

// The reasons of a daemon's /healthz (503 or 200), joined by " | ".
std::string health_reasons(Region& r, int& status) {
  auto h = r.daemon.http_get("/healthz");
  status = h.status;
  json j = json::parse(h.body, nullptr, false);
  std::string out;
  if (j.is_discarded() || !j.is_object()) return h.body;
  for (const auto& reason : j.value("reasons", json::array())) out += (out.empty() ? "" : " | ") + reason.get<std::string>();
  return out;
}

// A leader stream on `subject_prefix`.* with `n` messages.
void publish_to(JetStream& js, const std::string& name, const std::string& subject_prefix, size_t n);

void make_stream(JetStream& js, const std::string& name, const std::string& subject_prefix, size_t n,
                 const std::string& retention = "limits") {
  js.create_stream({{"name", name},
                    {"subjects", {subject_prefix + ".*"}},
                    {"retention", retention},
                    {"storage", "file"},
                    {"num_replicas", 1}});
  publish_to(js, name, subject_prefix, n);
}

// n messages "<name> <i>" on <subject_prefix>.0/1/2.
void publish_to(JetStream& js, const std::string& name, const std::string& subject_prefix, size_t n) {
  std::vector<OutMsg> msgs;
  for (size_t i = 0; i < n; ++i) {
    OutMsg m;
    m.subject = subject_prefix + "." + std::to_string(i % 3);
    m.payload = name + " " + std::to_string(i);
    msgs.push_back(std::move(m));
  }
  js.publish_bulk(msgs, 100);
}

// The replica of `stream` in ams matches iad's, `n` messages.
void await_same(Setup& s, const std::string& stream, uint64_t n, std::chrono::milliseconds timeout) {
  check_for(
      timeout,
      [&](std::string& state) {
        s.follower().daemon.ensure_running();
        auto i = s.follower().js().stream_info(stream);
        state = i ? "replica last_seq " + std::to_string(i->last_seq) : std::string("no replica");
        state += "; ams /v1/lag " + lag_state(s.follower());
        return i && i->last_seq == n;
      },
      "replica " + stream + " in ams at last_seq " + std::to_string(n));
  auto lm = s.leader().js().read_stream(stream);
  auto fm = s.follower().js().read_stream(stream);
  REQUIRE(lm.size() == n);
  MirrorDiff d = compare_streams(lm, fm, kLeader);
  INFO(d.summary());
  CHECK(d.ok());
  CHECK(d.compared == n);
}

}  // namespace

// How many requests to `subject` a nats-server's log shows refused for
// permissions.
size_t count_refusals(const std::string& log_path, const std::string& subject) {
  const std::string log = read_file(log_path);
  const std::string refused = "Publish Violation";
  size_t n = 0;
  for (size_t p = log.find(refused); p != std::string::npos; p = log.find(refused, p + 1)) {
    const size_t eol = log.find('\n', p);
    const std::string line = log.substr(p, eol == std::string::npos ? std::string::npos : eol - p);
    if (line.find("\"" + subject + "\"") != std::string::npos) ++n;
  }
  return n;
}

// True when the leader's /v1/lag row for the follower on `stream` is in
// error with a detail containing each of `needles`; `state` gets the entry.
bool leader_row_error(Setup& s, const std::string& stream, const std::vector<std::string>& needles,
                      std::string& state) {
  auto st = s.leader().daemon.lag_stream(stream);
  state = st ? st->dump() : "no entry";
  if (!st) return false;
  for (const auto& f : st->value("followers", json::array())) {
    if (f.value("region", "") != kFollower || f.value("state", "") != "error") continue;
    const std::string detail = f.value("detail", "");
    if (std::all_of(needles.begin(), needles.end(),
                    [&](const std::string& n) { return detail.find(n) != std::string::npos; }))
      return true;
  }
  return false;
}

TEST_CASE("m: a replica write, a pull or an acknowledgement the daemon's NATS user may not publish stops that "
          "stream with an error naming the subject; the others replicate; granting it lets the stream catch up",
          "[mirror]") {
  const std::string kAlerts = "ALERTS_INCIDENTS";     // replicates throughout
  const std::string kUsers = "COVENANT_USERS";        // iad's user may not pull it
  const std::string kProjects = "COVENANT_PROJECTS";  // interest; iad's user may not acknowledge it
  Setup s({{kAlerts, kLeader}, {kUsers, kLeader}, {kProjects, kLeader}});
  // Every client of each server, the daemon and this test alike, is the
  // user `isthmus` (no_auth_user). In ams it may not publish to
  // COVENANT_COUNTRIES' subjects (the replica's writes); in iad not to
  // COVENANT_USERS' pull subjects nor COVENANT_PROJECTS' acknowledgements.
  auto perms = [](const std::vector<std::string>& deny) {
    std::string p = "no_auth_user: isthmus\nauthorization { users = [ { user: isthmus, password: s3cret";
    if (!deny.empty()) {
      p += ", permissions: { publish: { deny: [";
      for (size_t i = 0; i < deny.size(); ++i) p += (i ? ", \"" : "\"") + deny[i] + "\"";
      p += "] } }";
    }
    return p + " } ] }";
  };
  s.follower().nats.append_config(perms({"covenant.countries.>"}));
  s.leader().nats.append_config(perms({"$JS.API.CONSUMER.MSG.NEXT." + kUsers + ".>", "$JS.ACK." + kProjects + ".>"}));
  s.mesh.start_nats();
  s.create_leader_stream();
  publish_events(s.leader().js(), 0, 100, 1);
  make_stream(s.leader().js(), kAlerts, "alerts.incidents", 50);
  make_stream(s.leader().js(), kUsers, "covenant.users", 50);
  // (Empty: an interest stream drops what it gets while it has no consumer.)
  make_stream(s.leader().js(), kProjects, "covenant.projects", 0, "interest");
  const auto started = Clock::now();
  s.mesh.start_daemons();

  // ams: the write is refused at once, and the stream says which subject and
  // what to grant: /v1/lag, /healthz (503) and the log.
  check_for(
      10s,
      [&](std::string& state) {
        auto st = s.follower().daemon.lag_stream(kStream);
        state = st ? st->dump() : "no entry";
        return st && st->value("state", "") == "error" &&
               st->value("detail", "").find("may not publish to \"covenant.countries.created\"") !=
                   std::string::npos;
      },
      "ams /v1/lag: " + kStream + " in error naming the refused subject");
  auto detail = s.follower().daemon.lag_stream(kStream)->value("detail", "");
  CHECK(detail.find("grant it publish permission on the replica's subjects (covenant.countries.created, "
                    "covenant.countries.updated, covenant.countries.deleted)") != std::string::npos);
  check_for(
      5s,
      [&](std::string& state) {
        int status = 0;
        state = health_reasons(s.follower(), status);
        return status == 503 && state.find("stream " + kStream + ": the daemon's NATS user may not publish to "
                                           "\"covenant.countries.created\"") != std::string::npos;
      },
      "ams /healthz 503 naming the refused subject");
  CHECK(read_file(s.follower().daemon.log_path())
            .find("stream " + kStream + ": the daemon's NATS user may not publish to") != std::string::npos);
  // iad's row for ams says so too (from ams's lag reports), and its current
  // time lag is at least the age of the first message ams lacks (published
  // before the daemons started), not unknown or the last applied one's.
  check_for(
      10s,
      [&](std::string& state) {
        if (!leader_row_error(s, kStream, {"region ams reports that it cannot apply this stream"}, state)) return false;
        auto st = s.leader().daemon.lag_stream(kStream);
        for (const auto& f : st->value("followers", json::array())) {
          if (f.value("region", "") != kFollower) continue;
          const json& tl = f.value("time_lag", json::object());
          const json& oldest = f.value("oldest_unreplicated_age_ms", json());
          if (!tl.contains("current_ms") || !tl["current_ms"].is_number() || !oldest.is_number()) return false;
          const double age_started = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
          return tl["current_ms"].get<double>() >= age_started - 100 &&
                 tl["current_ms"].get<double>() + 1000 >= oldest.get<double>();
        }
        return false;
      },
      "iad /v1/lag: " + kStream + " -> ams in error as ams reports, current time lag rising with the first lacking "
      "message's age");
  // iad: the pull is refused; the follower's row says so, and /healthz.
  auto pull_refused_shown = [&](std::string& state) {
    return leader_row_error(s, kUsers, {"may not publish to \"$JS.API.CONSUMER.MSG.NEXT." + kUsers + "."}, state);
  };
  check_for(10s, pull_refused_shown, "iad /v1/lag: " + kUsers + " -> ams in error naming the pull subject");
  {
    int status = 0;
    std::string reasons = health_reasons(s.leader(), status);
    INFO(reasons);
    CHECK(status == 503);
    CHECK(reasons.find("stream " + kUsers + ": follower ams: the daemon's NATS user may not publish to "
                       "\"$JS.API.CONSUMER.MSG.NEXT." + kUsers + ".") != std::string::npos);
  }
  // iad: the interest stream's acknowledgements are refused. Its messages
  // reach ams, but iad keeps them all (nothing acknowledged them), and the
  // follower's row and /healthz say why.
  check_for(
      10s,
      [&](std::string& state) {
        auto r = s.leader().js().api("$JS.API.CONSUMER.NAMES." + kProjects, json::object());
        state = r.dump();
        return r.value("total", 0) >= 1;
      },
      "iad's durable reader of " + kProjects);
  publish_to(s.leader().js(), kProjects, "covenant.projects", 50);
  await_same(s, kProjects, 50, 10s);
  auto acks_refused_shown = [&](std::string& state) {
    return leader_row_error(
        s, kProjects,
        {"may not publish to \"$JS.ACK." + kProjects + ".", "grant it publish permission on $JS.ACK.>"}, state);
  };
  check_for(10s, acks_refused_shown, "iad /v1/lag: " + kProjects + " -> ams in error naming the ack subject");
  {
    int status = 0;
    std::string reasons = health_reasons(s.leader(), status);
    INFO(reasons);
    CHECK(status == 503);
    CHECK(reasons.find("stream " + kProjects + ": follower ams: the daemon's NATS user may not publish to \"$JS.ACK." +
                       kProjects + ".") != std::string::npos);
    auto held = s.leader().js().stream_info(kProjects);
    REQUIRE(held);
    CHECK(held->messages == 50);
  }
  // The other stream replicates meanwhile; nothing was written to the refused ones.
  await_same(s, kAlerts, 50, 10s);
  CHECK(last_seq_or_zero(s.follower()) == 0);
  auto users = s.follower().js().stream_info(kUsers);
  CHECK((!users || users->last_seq == 0));
  std::printf("[figures] m: errors shown %.1f s after the daemons started\n",
              std::chrono::duration<double>(Clock::now() - started).count());

  // Retried every 2 s while nothing changes: each is refused again (each
  // server logs a second refused publish), and the errors stand; ams's
  // daemon warns of its error once, not at every retry.
  auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  check_for(
      10s,
      [&](std::string& state) {
        size_t writes = count(read_file(s.follower().nats.log_path()), "Subject \"covenant.countries.created\"");
        size_t pulls = count(read_file(s.leader().nats.log_path()),
                             "Subject \"$JS.API.CONSUMER.MSG.NEXT." + kUsers + ".");
        state = std::to_string(writes) + " refused writes logged by ams's server, " + std::to_string(pulls) +
                " refused pulls logged by iad's server";
        return writes >= 2 && pulls >= 2;
      },
      "a retry of each, refused again");
  {
    const std::string log = read_file(s.follower().daemon.log_path());
    CHECK(count(log, "warning stream " + kStream + ": the daemon's NATS user may not publish to") == 1);
    CHECK(count(log, "stream " + kStream + ": retrying: replicating from") == 1);
  }
  {
    std::string state;
    bool shown = pull_refused_shown(state);
    INFO(state);
    CHECK(shown);
  }
  // Through the retries (each restarts the stream for a moment and writes
  // the refused message again), the error stays up: /healthz never
  // answers 200 for ams, and its /v1/lag row stays in error.
  check_stays(
      3s,
      [&](std::string& state) {
        int status = 0;
        state = health_reasons(s.follower(), status);
        auto st = s.follower().daemon.lag_stream(kStream);
        if (st) state += " | " + st->value("state", "") + ": " + st->value("detail", "");
        return status == 503 && st && st->value("state", "") == "error" &&
               st->value("detail", "").find("may not publish to") != std::string::npos;
      },
      "ams: the refused write stays its stream's error across a retry");
  // A refusal that lasts over a minute lets the leader's ephemeral consumer
  // expire (nothing pulls from it): deleting it now stands for that. The
  // retry after the grant goes unanswered (nats-server 2.9 answers a pull
  // for a missing consumer with nothing), and the reader is recreated.
  {
    std::string state;
    REQUIRE(pull_refused_shown(state));
    const std::string marker = "MSG.NEXT." + kUsers + ".";
    size_t at = state.find(marker);
    REQUIRE(at != std::string::npos);
    at += marker.size();
    size_t end = state.find_first_of("\\\"", at);  // the name ends at the (JSON-escaped) quote
    REQUIRE(end != std::string::npos);
    const std::string consumer = state.substr(at, end - at);
    INFO(consumer);
    s.leader().js().api("$JS.API.CONSUMER.DELETE." + kUsers + "." + consumer, json::object());
  }

  // The operator grants both and reloads the servers: the retries (every
  // 2 s) go through and both streams catch up.
  s.follower().nats.append_config(perms({}));
  s.follower().nats.reload();
  s.leader().nats.append_config(perms({}));
  s.leader().nats.reload();
  const auto granted = Clock::now();
  await_replica(s.mesh, 100, 15s);
  verify_mirror(s.mesh);
  await_same(s, kUsers, 50, 15s);
  CHECK(read_file(s.follower().daemon.log_path()).find("stream " + kStream + ": replica writes are accepted again") !=
        std::string::npos);
  // The acknowledgement is sent again and goes through: iad lets go of
  // what ams stored, and the row clears.
  check_for(
      10s,
      [&](std::string& state) {
        auto held = s.leader().js().stream_info(kProjects);
        std::string refused;
        bool shown = acks_refused_shown(refused);
        state = (held ? std::to_string(held->messages) : std::string("?")) + " messages held by iad; " +
                (shown ? "row still in error" : "row clear");
        return held && held->messages == 0 && !shown;
      },
      "iad to release " + kProjects + "' messages once acknowledgements are allowed");
  std::printf("[figures] m: caught up %.1f s after the grant\n",
              std::chrono::duration<double>(Clock::now() - granted).count());
  std::fflush(stdout);
  for (Region* r : {&s.follower(), &s.leader()}) {
    check_for(
        10s,
        [&](std::string& state) {
          int status = 0;
          state = health_reasons(*r, status);
          return status == 200;
        },
        r->name + " /healthz 200 again");
  }
}

TEST_CASE("n: a stream missing from a follower's configuration is named at the leader; the others replicate",
          "[mirror][config]") {
  const std::string kAlerts = "ALERTS_INCIDENTS";  // led by iad; ams's configuration lacks it
  Setup s({{kAlerts, kLeader}});
  auto& streams = s.follower().daemon.config().streams;
  streams.erase(std::remove_if(streams.begin(), streams.end(), [&](const auto& st) { return st.name == kAlerts; }),
                streams.end());
  s.follower().daemon.write_config();
  s.mesh.start_nats();
  s.create_leader_stream();
  publish_events(s.leader().js(), 0, 100, 1);
  make_stream(s.leader().js(), kAlerts, "alerts.incidents", 20);
  const auto started = Clock::now();
  s.mesh.start_daemons();
  await_replica(s.mesh, 100);
  // It used to stay "waiting" with iad healthy, for ever.
  check_for(
      40s,
      [&](std::string& state) {
        if (!leader_row_error(s, kAlerts, {"region ams has not asked for this stream", "missing from its configuration"},
                              state)) {
          return false;
        }
        int status = 0;
        std::string reasons = health_reasons(s.leader(), status);
        state += "\nhealthz " + std::to_string(status) + " " + reasons;
        return status == 503 && reasons.find("stream " + kAlerts + ": follower ams: region ams has not asked") !=
                                    std::string::npos;
      },
      "iad /v1/lag and /healthz: " + kAlerts + " -> ams never asked for");
  const double after = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf("[figures] n: named %.1f s after the daemons started\n", after);
  CHECK(after >= 15.0);  // not before a follower had every chance to ask
  // The stream it follows is not flagged, and still replicates.
  {
    std::string state;
    CHECK_FALSE(leader_row_error(s, kStream, {""}, state));
  }
  publish_events(s.leader().js(), 100, 50, 101);
  await_replica(s.mesh, 150);
  verify_mirror(s.mesh);
}

TEST_CASE("o: a follower whose local nats-server is down shows in error at the leader while the link stands",
          "[mirror]") {
  Setup s;
  s.mesh.start_nats();
  s.create_leader_stream();
  publish_events(s.leader().js(), 0, 100, 1);
  s.mesh.start_daemons();
  await_replica(s.mesh, 100);
  s.follower().nats.stop();
  // (It read "replicating", with iad healthy, for as long as the server was
  // down: the follower sent no lag reports while waiting for it.)
  // (ams's own /healthz says why; iad's stays 200: iad is fine.)
  check_for(
      15s,
      [&](std::string& state) {
        return leader_row_error(s, kStream, {"region ams reports that it cannot apply this stream now"}, state);
      },
      "iad /v1/lag: ams cannot apply while its nats-server is down");
  {
    int status = 0;
    std::string reasons = health_reasons(s.follower(), status);
    INFO(reasons);
    CHECK(status == 503);
    CHECK(reasons.find("local NATS connection down") != std::string::npos);
  }
  // iad goes on taking messages: ams, not replicating, does not know how
  // far behind it is (it read the figure of the last STATE or DATA frame it
  // had, which iad stops sending once its window is full); iad does.
  publish_events(s.leader().js(), 100, 20, 101);
  check_for(
      15s,
      [&](std::string& state) {
        auto l = s.leader().daemon.lag_stream(kStream);
        auto f = s.follower().daemon.lag_stream(kStream);
        state = "iad " + (l ? l->dump() : std::string("-")) + "\nams " + (f ? f->dump() : std::string("-"));
        if (!l || !f || l->value("followers", json::array()).empty() || f->value("followers", json::array()).empty())
          return false;
        const json& lf = (*l)["followers"][0];
        const json& ff = (*f)["followers"][0];
        return lf.value("seq_lag", json()) == 20 && f->value("state", "") == "starting" && ff["seq_lag"].is_null() &&
               ff.value("applied_seq", 0) == 100;
      },
      "iad's row for ams: seq_lag 20; ams's own: starting (waiting for its server), seq_lag null (unknown)");
  s.follower().nats.start();
  publish_events(s.leader().js(), 120, 30, 121);
  await_replica(s.mesh, 150);
  check_for(
      15s,
      [&](std::string& state) { return !leader_row_error(s, kStream, {""}, state); },
      "iad's row for ams out of error once ams's nats-server is back");
  verify_mirror(s.mesh);
}

TEST_CASE("p: a message over the follower server's max_payload stops the stream, named; raised by a nats-server "
          "reload, replication resumes without restarting the daemon",
          "[mirror]") {
  Setup s;
  // ams's server takes 4 KiB; iad's the default 1 MiB.
  s.follower().nats.append_config("max_payload: 4096");
  s.mesh.start_nats();
  s.create_leader_stream();
  publish_events(s.leader().js(), 0, 100, 1);
  {
    OutMsg big;
    big.subject = "covenant.countries.created";
    big.payload = std::string(6000, 'x');
    s.leader().js().publish_bulk({big});
  }
  publish_events(s.leader().js(), 101, 50, 102);
  s.mesh.start_daemons();
  check_for(
      20s,
      [&](std::string& state) {
        int status = 0;
        state = health_reasons(s.follower(), status);
        return status == 503 && state.find("sequence 101 cannot be written") != std::string::npos &&
               state.find("max_payload 4096") != std::string::npos;
      },
      "ams /healthz names sequence 101 and max_payload 4096");
  CHECK(s.follower().js().require_stream_info(kStream).last_seq == 100);
  // The operator raises it and reloads nats-server: the open connection
  // accepts larger messages but is not told; the daemon reads the server's
  // INFO again and the stream's retry goes through.
  s.follower().nats.append_config("max_payload: 65536");
  s.follower().nats.reload();
  await_replica(s.mesh, 151, 30s);
  verify_mirror(s.mesh);
  CHECK(read_file(s.follower().daemon.log_path()).find("the server's max_payload is now 65536 (was 4096") !=
        std::string::npos);
  check_for(
      10s, [&] { return s.follower().daemon.http_get("/healthz").status == 200; }, "ams /healthz 200 again");
}

namespace {
// Resident set, or its peak (VmHWM), of a process in bytes.
uint64_t proc_status_bytes(pid_t pid, const char* key) {
  std::string st = read_file("/proc/" + std::to_string(pid) + "/status");
  size_t pos = st.find(key);
  if (pos == std::string::npos) throw std::runtime_error(std::string("no ") + key + " for pid " + std::to_string(pid));
  return std::stoull(st.substr(pos + std::strlen(key))) * 1024;  // "VmRSS:   12345 kB"
}

// JetStream API requests a server has answered (its monitoring /jsz).
uint64_t api_requests(Region& r) {
  auto res = http_get(r.nats.monitor_port(), "/jsz", 2s);
  if (res.status != 200) throw std::runtime_error("/jsz: HTTP " + std::to_string(res.status));
  return json::parse(res.body).at("api").at("total").get<uint64_t>();
}
}  // namespace


TEST_CASE("q: 60 streams: a follower's catch-up stays within its windows' memory, and the daemons read the "
          "streams' state with a few requests a second",
          "[mirror][memory]") {
  // Small messages (about 12-byte payloads, the most per byte of window)
  // in many streams: every stream's window arrives at once. The follower's
  // memory must follow link.peer_window_bytes (4 MiB here), not the number
  // of streams or of messages.
  constexpr int kStreams = 60;
  constexpr size_t kPer = 2000;
  std::vector<IsthmusdConfig::Stream> extra;
  for (int i = 1; i <= kStreams; ++i) extra.push_back({"BULK_" + std::to_string(i), kLeader});
  Setup s(extra);
  for (Region* r : {&s.leader(), &s.follower()}) {
    r->daemon.config().link_extra = "max_frame_bytes = \"1MiB\"\npeer_window_bytes = \"4MiB\"";
    r->daemon.write_config();
  }
  s.mesh.start_nats();
  s.create_leader_stream();
  for (int i = 1; i <= kStreams; ++i)
    make_stream(s.leader().js(), "BULK_" + std::to_string(i), "bulk" + std::to_string(i), kPer);
  // The follower first, idle (its leader's daemon not yet up): its own size
  // with every stream set up.
  s.follower().daemon.start();
  check_for(
      20s,
      [&](std::string& st) {
        auto lag = s.follower().daemon.lag();
        st = lag.dump().substr(0, 300);
        return lag.value("streams", json::array()).size() == kStreams + 1;
      },
      "ams lists every stream");
  std::this_thread::sleep_for(1s);  // what it allocates at start settles (nothing to poll for)
  const pid_t pid = s.follower().daemon.process().pid();
  // The peak from here on: reset VmHWM to the current RSS (proc(5),
  // clear_refs "5"), so a start-up peak does not count.
  std::ofstream(("/proc/" + std::to_string(pid) + "/clear_refs").c_str()) << "5";
  const uint64_t idle = proc_status_bytes(pid, "VmRSS:");
  const auto t0 = Clock::now();
  s.leader().daemon.start();
  check_for(
      90s,
      [&](std::string& st) {
        s.follower().daemon.ensure_running();
        int done = 0;
        for (int i = 1; i <= kStreams; ++i) {
          auto info = s.follower().js().stream_info("BULK_" + std::to_string(i));
          if (info && info->last_seq == kPer) ++done;
        }
        st = std::to_string(done) + " of " + std::to_string(kStreams) + " replicas complete";
        return done == kStreams;
      },
      "every replica in ams at " + std::to_string(kPer));
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const uint64_t peak = proc_status_bytes(pid, "VmHWM:");
  std::printf("[figures] q: %d streams x %zu messages caught up in %.1f s; follower RSS idle %.1f MiB, peak %.1f MiB "
              "(+%.1f MiB; peer window 4 MiB)\n",
              kStreams, kPer, secs, idle / 1048576.0, peak / 1048576.0, (peak - idle) / 1048576.0);
  std::fflush(stdout);
  // The window's messages, the shared 2 MiB write budget (in the buffer,
  // its TLS copy and what the socket has not taken), link buffers and the
  // allocator's slack. Before the budget and the per-message window cost:
  // every stream's window serialised at once, 40+ MiB.
  CHECK(peak - idle < (14u << 20));
  for (int i : {1, kStreams / 2, kStreams}) await_same(s, "BULK_" + std::to_string(i), kPer, 10s);

  // Idle, each daemon reads every stream's state once a second (the
  // leader's STATE, the follower's check of its replica) and the leader's
  // for a /v1/lag call: listed together, a few requests in all, not one per
  // stream (61 a second each before).
  const uint64_t l0 = api_requests(s.leader()), f0 = api_requests(s.follower());
  const auto m0 = Clock::now();
  std::this_thread::sleep_for(5s);  // the measuring interval
  for (int i = 0; i < 3; ++i) REQUIRE(s.leader().daemon.lag().value("streams", json::array()).size() == kStreams + 1);
  const double span = std::chrono::duration<double>(Clock::now() - m0).count();
  const double lr = static_cast<double>(api_requests(s.leader()) - l0) / span;
  const double fr = static_cast<double>(api_requests(s.follower()) - f0) / span;
  std::printf("[figures] q: JetStream API requests a second, idle with %d streams: iad %.1f, ams %.1f\n",
              kStreams + 1, lr, fr);
  std::fflush(stdout);
  CHECK(lr < 10.0);
  CHECK(fr < 10.0);
}

TEST_CASE("r: a NATS user that may not list streams: the daemons read each stream on their own and say why once; "
          "replication goes on",
          "[mirror][config]") {
  // 12 streams (listing starts at 8). Every client of both servers is one
  // user denied $JS.API.STREAM.LIST.
  constexpr int kStreams = 11;
  std::vector<IsthmusdConfig::Stream> extra;
  for (int i = 1; i <= kStreams; ++i) extra.push_back({"LISTED_" + std::to_string(i), kLeader});
  Setup s(extra);
  for (Region* r : {&s.leader(), &s.follower()}) {
    r->nats.append_config(
        "no_auth_user: isthmus\nauthorization { users = [ { user: isthmus, password: s3cret, permissions: { "
        "publish: { deny: [\"$JS.API.STREAM.LIST\"] } } } ] }");
    r->daemon.config().nats_extra = "request_timeout = \"1s\"";
    r->daemon.write_config();
  }
  s.mesh.start_nats();
  s.create_leader_stream();
  for (int i = 1; i <= kStreams; ++i) make_stream(s.leader().js(), "LISTED_" + std::to_string(i), "listed" + std::to_string(i), 30);
  s.mesh.start_daemons();
  const std::string said = "the daemon's NATS user may not publish to $JS.API.STREAM.LIST";
  for (Region* r : {&s.leader(), &s.follower()}) {
    check_for(
        30s,
        [&](std::string& st) {
          st = r->daemon.log_tail(10);
          return read_file(r->daemon.log_path()).find(said) != std::string::npos;
        },
        r->daemon.region() + " logs that it may not list streams");
  }
  for (int i = 1; i <= kStreams; ++i) await_same(s, "LISTED_" + std::to_string(i), 30, 30s);
  // More traffic, read as usual; the reason is given once per daemon, at
  // info, naming the refused subject.
  for (int i = 1; i <= kStreams; ++i) publish_to(s.leader().js(), "LISTED_" + std::to_string(i), "listed" + std::to_string(i), 5);
  for (int i = 1; i <= kStreams; ++i) await_same(s, "LISTED_" + std::to_string(i), 35, 30s);
  for (Region* r : {&s.leader(), &s.follower()}) {
    const std::string log = read_file(r->daemon.log_path());
    size_t at = log.find(said), n = 0;
    for (size_t p = at; p != std::string::npos; p = log.find(said, p + 1)) ++n;
    INFO(r->daemon.region() << " log:\n" << r->daemon.log_tail(30));
    CHECK(n == 1);
    CHECK(log.find("Permissions Violation for Publish to \"$JS.API.STREAM.LIST\"", at) != std::string::npos);
    CHECK(r->daemon.http_get("/healthz").status == 200);
  }
}

TEST_CASE("s: the leader's nats-server stopped for 12 s: the readers wait for it (no reader recreated, the state "
          "reads' warnings counted past a few), then replication goes on",
          "[mirror][faults]") {
  // Nine streams, idle (waiting pulls) when the server stops. A pull
  // unanswered for 7 s used to recreate each stream's reader with a
  // warning; the recreations then timed out, a warning each again.
  constexpr int kStreams = 8;
  std::vector<IsthmusdConfig::Stream> extra;
  for (int i = 1; i <= kStreams; ++i) extra.push_back({"STALLED_" + std::to_string(i), kLeader});
  Setup s(extra);
  s.mesh.start_nats();
  s.create_leader_stream();
  for (int i = 1; i <= kStreams; ++i) make_stream(s.leader().js(), "STALLED_" + std::to_string(i), "stalled" + std::to_string(i), 20);
  s.mesh.start_daemons();
  for (int i = 1; i <= kStreams; ++i) await_same(s, "STALLED_" + std::to_string(i), 20, 30s);
  const size_t log_at = read_file(s.leader().daemon.log_path()).size();
  auto& leader_nats = s.leader().nats.process();
  leader_nats.signal(SIGSTOP);
  const auto t0 = Clock::now();
  // The count of the state reads' warnings comes once their 10 s window is
  // over: within the stall.
  const std::string counted = "warning(s) \"stream X: cannot read local stream\" in 10 s not logged";
  check_for(
      20s,
      [&](std::string& st) {
        st = s.leader().daemon.log_tail(12);
        return read_file(s.leader().daemon.log_path()).find(counted, log_at) != std::string::npos;
      },
      "iad counts the state reads' warnings it did not log");
  // 12 s in all (past the 7 s after which an idle reader's pull counts as
  // unanswered; within the data connection's 20-30 s keep-alive).
  std::this_thread::sleep_until(t0 + 12s);  // the stall's length, not a wait for a condition
  leader_nats.signal(SIGCONT);
  for (int i = 1; i <= kStreams; ++i) publish_to(s.leader().js(), "STALLED_" + std::to_string(i), "stalled" + std::to_string(i), 5);
  for (int i = 1; i <= kStreams; ++i) await_same(s, "STALLED_" + std::to_string(i), 25, 30s);
  const std::string log = read_file(s.leader().daemon.log_path()).substr(log_at);
  INFO("iad's log since the stop:\n" << log);
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t p = log.find(what); p != std::string::npos; p = log.find(what, p + 1)) ++n;
    return n;
  };
  CHECK(count("; recreating") == 0);
  CHECK(count("cannot create consumer") == 0);
  // Each stream says it once per cause (every timeout is one, whichever
  // request went unanswered): 9 lines or more without the limit, at most 5
  // with it (one 10 s window; 10 if the second window saw another cause).
  CHECK(count(": cannot read local stream: ") <= 10);
  CHECK(count(counted) >= 1);
  check_for(
      10s, [&] { return s.leader().daemon.http_get("/healthz").status == 200; }, "iad /healthz 200 again");
}

TEST_CASE("t: streams whose requests go unanswered while their server answers are asked again only after a "
          "while; the other streams are read and replicated as usual",
          "[mirror][config]") {
  // Three streams whose requests the servers refuse for permissions (each
  // refused request is logged by the server; cnats waits out the request
  // timeout, 1 s here, and every other request of the daemon waits behind
  // it on the NATS worker; a clustered stream without a leader looks the
  // same from the daemon):
  //  - BLOCKED: neither daemon may ask for its state ($JS.API.STREAM.INFO);
  //  - NOREADER: iad may not create consumers on it (its reader for ams);
  //  - NOREPLICA: ams may not ask for its replica's state (preparing it).
  std::vector<IsthmusdConfig::Stream> extra{{"BLOCKED", kLeader}, {"NOREADER", kLeader}, {"NOREPLICA", kLeader}};
  Setup s(extra);
  const std::string blocked = "$JS.API.STREAM.INFO.BLOCKED";
  const std::string create = "$JS.API.CONSUMER.CREATE.NOREADER";
  const std::string replica = "$JS.API.STREAM.INFO.NOREPLICA";
  auto quoted = [](const std::string& x) { return "\"" + x + "\""; };
  for (auto [r, deny] : {std::pair{&s.leader(), quoted(blocked) + ", " + quoted(create) + ", " + quoted(create + ".>")},
                         std::pair{&s.follower(), quoted(blocked) + ", " + quoted(replica)}}) {
    r->nats.append_config(
        "no_auth_user: isthmus\nauthorization { users = [ { user: isthmus, password: s3cret, permissions: { "
        "publish: { deny: [" + deny + "] } } } ] }");
    r->daemon.config().nats_extra = "request_timeout = \"1s\"";
    r->daemon.write_config();
  }
  s.mesh.start_nats();
  s.create_leader_stream();
  make_stream(s.leader().js(), "BLOCKED", "blocked", 5);
  make_stream(s.leader().js(), "NOREADER", "noreader", 5);
  make_stream(s.leader().js(), "NOREPLICA", "noreplica", 5);
  s.mesh.start_daemons();
  publish_events(s.leader().js(), 0, 50, 1);
  await_replica(s.mesh, 50, 30s);
  // The reader and the replica named with the pause, at iad and at ams.
  check_for(
      30s,
      [&](std::string& state) {
        // (iad's row stays "syncing": the reader is what is missing.)
        auto l = s.leader().daemon.lag_stream("NOREADER");
        bool reader = false;
        if (l)
          for (const auto& f : l->value("followers", json::array()))
            reader = reader || (f.value("detail", "").find("cannot create consumer") != std::string::npos &&
                                f.value("detail", "").find("(asked again in ") != std::string::npos);
        auto e = s.follower().daemon.lag_stream("NOREPLICA");
        state = "iad NOREADER: " + (l ? l->dump() : std::string("no entry")) +
                "\nams NOREPLICA: " + (e ? e->dump() : std::string("no entry"));
        return reader && e && e->value("state", "") == "error" &&
               e->value("detail", "").find("(asked again in ") != std::string::npos;
      },
      "iad's reader of NOREADER and ams's replica of NOREPLICA in error, asked again later");
  auto count = [&](Region& r, const std::string& subject) { return count_refusals(r.nats.log_path(), subject); };
  const size_t blocked_before = count(s.leader(), blocked);
  const size_t create_before = count(s.leader(), create);
  const size_t replica_before = count(s.follower(), replica);
  const auto t0 = Clock::now();
  // Meanwhile the other stream replicates, and iad's /v1/lag answers
  // promptly (its state reads are not stuck behind the others').
  double worst_lag_call_ms = 0;
  for (int k = 0; k < 8; ++k) {
    publish_events(s.leader().js(), 50 + 5 * k, 5, 51 + 5 * k);
    const auto c0 = Clock::now();
    REQUIRE(s.leader().daemon.http_get("/v1/lag").status == 200);
    worst_lag_call_ms =
        std::max(worst_lag_call_ms, std::chrono::duration<double, std::milli>(Clock::now() - c0).count());
    std::this_thread::sleep_until(t0 + std::chrono::seconds(2 * (k + 1)));  // a fixed sampling pace
  }
  await_replica(s.mesh, 90, 30s);
  const size_t blocked_n = count(s.leader(), blocked) - blocked_before;
  const size_t create_n = count(s.leader(), create) - create_before;
  const size_t replica_n = count(s.follower(), replica) - replica_before;
  std::printf("[figures] t: refused over 16 s: BLOCKED state requests at iad %zu, NOREADER reader creations at iad "
              "%zu, NOREPLICA state requests at ams %zu; slowest /v1/lag %.0f ms\n",
              blocked_n, create_n, replica_n, worst_lag_call_ms);
  INFO("servers' logs: " << s.leader().nats.log_path() << ", " << s.follower().nats.log_path());
  // BLOCKED: 13 when every state read asked it; 5-6 once those were quiet
  // from a second timeout in a row (5 s, then 10 s), ams's request for the
  // stream still asked unpaced every 2-3 s; 1-3 since that is paced too
  // (from its fourth unanswered in a row). NOREADER and NOREPLICA: every
  // 2 s plus the timeout, 5-6 each; paced, 1-2 (ams's state reads of its
  // replica ask at their own pace, quiet the same way).
  CHECK(blocked_n <= 4);
  CHECK(blocked_n >= 1);  // (the refusals are what is counted: the test sees them)
  CHECK(create_n <= 3);
  CHECK(replica_n <= 4);
}
