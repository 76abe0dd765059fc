// Issue 4, "Tests": the mirror scenario over a faulty link. Two regions (iad
// leads COVENANT_COUNTRIES, ams follows; ams sorts first, so ams dials), the
// iad<->ams link (mutual TLS 1.3 + S2) routed through a faultproxy:
//
//   ams --dials--> faultproxy (listen) --> iad's link port
//   a2b = ams -> iad (acks, ams's heartbeats), b2a = iad -> ams (data).
// (harness::ProxiedPair, tests/harness/proxied_pair.h).
//
// Every case starts fresh servers, daemons and proxy, publishes a few
// thousand events in iad while a fault is on, and ends with the replica
// identical to the leader (harness/mirror_check.h):
//   a  150 ms round trip with jitter; /v1/links rtt_ms within 10% of 150 ms
//   b  1 MB/s cap both ways with a ~40 ms bottleneck buffer, saturated;
//      never closed as stale; rtt_ms under load within 100 ms of the
//      unloaded value (issue #4), every sample
//   c  10-second stall both ways mid-transfer (stale_after = 30 s, so the
//      link must survive the stall: no reconnect, no close)
//   d  5 resets 300 ms apart mid-transfer; reconnects counted in /v1/links
//   e  compression off (the smaller set): 50 ms round trip, then 3 resets
//   f  the leader's daemon stopped (SIGSTOP) longer than stale_after
//   g  eight streams catching up over a link at its window: each moves
//   h  continuous deletes at the leader: reconcile passes paced, bytes counted
//   i  a purge while the link is stalled with megabytes queued: the pass
//      skipped for the full link arrives once it drains
// Each case prints "[figures]" lines.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <exception>
#include <vector>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "faultproxy/proxy_client.h"
#include "harness.h"

using namespace harness;
using isthmus::test::FaultProxy;
using nlohmann::json;

namespace {

const std::string kStream = "COVENANT_COUNTRIES";
const std::string kLeader = "iad";
const std::string kFollower = "ams";  // sorts first: the dialer
constexpr auto kCatchUp = 60s;         // ceiling for the replica to catch up
constexpr auto kNoProgress = 25s;      // no replica progress this long: give up

// What every case publishes into iad (harness::StreamPublisher): seed-style
// events on the stream's three subjects with the headers of the mirror test
// (unique Msg-Ids, multi-valued X-Trace, publish-time headers that must
// travel renamed, some messages without headers), each ack checked to land
// at the next sequence. `pad` adds that many pseudo-random base64
// characters to each event, which S2 cannot shrink much (used to saturate a
// bandwidth cap with a known number of wire bytes).
std::vector<PublishTarget> events(size_t pad = 0) {
  PublishTarget t;
  t.stream = kStream;
  t.subjects = {"covenant.countries.created", "covenant.countries.updated", "covenant.countries.deleted"};
  t.pad = pad;
  return {t};
}

void print_figures(const std::string& what, uint64_t messages, double seconds) {
  std::printf("[figures] %s: %llu messages in %.3f s = %.0f msgs/s\n", what.c_str(),
              static_cast<unsigned long long>(messages), seconds,
              seconds > 0 ? static_cast<double>(messages) / seconds : 0.0);
  std::fflush(stdout);
}

void require_ok(const isthmus::Status& st, const std::string& what) {
  INFO(what << ": " << st.message());
  REQUIRE(st.is_ok());
}

// The pair of every case: ams dials iad through the proxy; link_extra: TOML
// lines for [link] on both daemons; compression: link.compression on both
// ("": the default, s2); sockbuf: the proxy's --sockbuf (its kernel buffers
// stay small, a bounded bottleneck buffer behind a rate cap).
ProxiedPairOptions pair_options(const std::string& link_extra = "", const std::string& compression = "",
                                int sockbuf = 32768) {
  ProxiedPairOptions o;
  o.tmp_prefix = "isthmus-faults";
  o.stream = kStream;
  o.leader = kLeader;
  o.follower = kFollower;
  o.link_extra = link_extra;
  o.compression = compression;
  o.proxy_sockbuf = sockbuf;
  return o;
}

// The whole replica against the whole leader stream.
void verify_mirror(ProxiedPair& s, uint64_t total) {
  StreamInfo li = s.leader().js().require_stream_info(kStream);
  StreamInfo fi = s.follower().js().require_stream_info(kStream);
  INFO("leader first/last/messages " << li.first_seq << "/" << li.last_seq << "/" << li.messages << ", replica "
                                     << fi.first_seq << "/" << fi.last_seq << "/" << fi.messages);
  REQUIRE(li.last_seq == total);
  CHECK(fi.first_seq == li.first_seq);
  CHECK(fi.last_seq == li.last_seq);
  CHECK(fi.messages == li.messages);
  auto lm = s.leader().js().read_stream(kStream);
  auto fm = s.follower().js().read_stream(kStream);
  REQUIRE(lm.size() == li.messages);
  MirrorDiff d = compare_streams(lm, fm, kLeader);
  INFO(d.summary());
  REQUIRE(d.ok());
  REQUIRE(d.compared == lm.size());
}

// Both sides: link up, never reconnected, never closed.
void check_never_closed(ProxiedPair& s, const std::string& when) {
  for (const std::string& r : {kFollower, kLeader}) {
    json l = s.links(r);
    INFO(r << " /v1/links " << when << ": " << l.dump());
    CHECK(l.value("state", "") == "up");
    CHECK(l.value("reconnects", -1) == 0);
    CHECK_FALSE(l.contains("last_close_reason"));
  }
}

// The 1-minute load average (first field of /proc/loadavg), for figures:
// timing on a starved machine is part of what a reader must know.
std::string loadavg() {
  std::string l = read_file("/proc/loadavg");
  return l.substr(0, l.find(' '));
}

double median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string join(const std::vector<double>& v) {
  std::ostringstream o;
  o.precision(1);
  o << std::fixed;
  for (size_t k = 0; k < v.size(); ++k) o << (k ? " " : "") << v[k];
  return o.str();
}

}  // namespace

TEST_CASE("a: 150 ms round trip with jitter: replica identical, rtt_ms within 10% of 150 ms", "[faults]") {
  ProxiedPair s(pair_options());
  require_ok(s.proxy->set(FaultProxy::kBoth, "delay_ms=75 jitter_ms=5"), "set delay");
  s.start();

  const size_t kTotal = 3000;
  auto t0 = Clock::now();
  StreamPublisher pub(s.leader().nats.url(), events(), 100, 100ms, kTotal);  // ~1,000 msgs/s for ~3 s

  // RTT samples from both ends while the (unsaturated) transfer runs: each
  // new value (one per heartbeat) for ~4 s after the first one.
  s.await_rtt();
  std::vector<double> ams_rtt, iad_rtt;
  double last_a = -1, last_i = -1;
  auto until = Clock::now() + 4s;
  check_for(
      10s,
      [&](std::string& st) {
        json a = s.links(kFollower), i = s.links(kLeader);
        double va = a.value("rtt_ms", -1.0), vi = i.value("rtt_ms", -1.0);
        if (va >= 0 && va != last_a) ams_rtt.push_back(last_a = va);
        if (vi >= 0 && vi != last_i) iad_rtt.push_back(last_i = vi);
        st = "ams rtt samples [" + join(ams_rtt) + "], iad [" + join(iad_rtt) + "]";
        return Clock::now() >= until && ams_rtt.size() >= 3 && iad_rtt.size() >= 3;
      },
      "three rtt_ms samples from each side");
  double ma = median(ams_rtt), mi = median(iad_rtt);
  std::printf("[figures] a: rtt_ms at 150 ms imposed: ams median %.1f [%s], iad median %.1f [%s]\n", ma,
              join(ams_rtt).c_str(), mi, join(iad_rtt).c_str());
  CHECK(ma >= 135.0);
  CHECK(ma <= 165.0);
  CHECK(mi >= 135.0);
  CHECK(mi <= 165.0);

  pub.join();
  s.await_replica(kTotal, kCatchUp, kNoProgress);
  print_figures("a: 150 ms RTT (publish start to replica caught up)", kTotal, seconds_since(t0));
  verify_mirror(s, kTotal);
  check_never_closed(s, "after the 150 ms RTT run");
}

TEST_CASE("b: 1 MB/s cap both ways, saturated: never stale, rtt_ms within 100 ms of unloaded", "[faults]") {
  // The bottleneck: --sockbuf 8192 (Linux doubles it: a 16 KiB receive
  // buffer, so a ~16 KiB window) plus queue_bytes=16 KiB in the delay line
  // (it stops reading at 16 KiB; one read of at most the window lands on
  // top). It holds 25-45 KB, i.e. 25-45 ms of data at 1 MB/s (the printed
  // "proxy b2a queue max" is the delay-line part), like a sanely buffered
  // 8 Mbit/s link. No sender can keep its RTT below the bottleneck's queue:
  // with the proxy's default 1 MiB queue that alone is ~1 s, and 32 KiB
  // socket buffers make it 100-130 ms. What remains above the unloaded RTT
  // is what the daemons let stand in front of their heartbeats: at most two
  // send budgets (10 ms of measured drain each) plus TCP_NOTSENT_LOWAT
  // (link/connection.h; docs/architecture.md, "Heartbeats ahead of data").
  ProxiedPair s(pair_options("", "", 8192));
  require_ok(s.proxy->set(FaultProxy::kBoth, "rate_bps=1000000 queue_bytes=16384"), "set rate");
  s.start();

  // Unloaded RTT: the link carries only heartbeats.
  auto [unloaded_ams, unloaded_iad] = s.await_rtt();
  auto fp0 = s.proxy->stats();
  REQUIRE(fp0.is_ok());
  const uint64_t b2a0 = fp0->b2a_bytes;

  // ~4 MB of JSON events that S2 barely compresses, published as fast as
  // the leader acks: several seconds of a saturated iad->ams direction.
  const size_t kTotal = 3000;
  auto t0 = Clock::now();
  StreamPublisher pub(s.leader().nats.url(), events(1200), 250, 0ms, kTotal);

  double max_ams = -1, max_iad = -1;
  uint64_t max_queued = 0;
  std::vector<double> ams_seen, iad_seen;
  std::string closed;  // first sighting of a close or reconnect
  uint64_t best = 0;
  auto progress_at = Clock::now();
  check_for(
      kCatchUp,
      [&](std::string& st) {
        s.leader().daemon.ensure_running("during the capped transfer");
        s.follower().daemon.ensure_running("during the capped transfer");
        for (const std::string& r : {kFollower, kLeader}) {
          json l = s.links(r);
          if (closed.empty() && (l.value("state", "") != "up" || l.value("reconnects", 0) != 0 ||
                                 l.contains("last_close_reason")))
            closed = r + " " + l.dump();
          double v = l.value("rtt_ms", -1.0);
          auto& seen = r == kFollower ? ams_seen : iad_seen;
          if (v >= 0 && (seen.empty() || seen.back() != v)) seen.push_back(v);
          (r == kFollower ? max_ams : max_iad) = std::max(r == kFollower ? max_ams : max_iad, v);
        }
        auto ps = s.proxy->stats();
        if (ps.is_ok()) max_queued = std::max(max_queued, ps->b2a_queued);
        uint64_t last = s.replica_last();
        if (last > best) {
          best = last;
          progress_at = Clock::now();
        }
        st = "replica last_seq " + std::to_string(last) + ", published " + std::to_string(pub.published());
        if (Clock::now() - progress_at > kNoProgress) throw Fatal("no replication progress; " + st);
        return pub.finished() && last == kTotal;
      },
      "replica caught up through the 1 MB/s cap");
  double secs = seconds_since(t0);
  pub.join();
  auto fp1 = s.proxy->stats();
  REQUIRE(fp1.is_ok());
  double wire_mb = static_cast<double>(fp1->b2a_bytes - b2a0) / 1e6;
  double payload_mb = static_cast<double>(pub.payload_bytes()) / 1e6;

  print_figures("b: 1 MB/s cap (publish start to replica caught up)", kTotal, secs);
  std::printf("[figures] b: payload %.2f MB, iad->ams wire %.2f MB in %.2f s = %.2f MB/s, proxy b2a queue max %llu B\n",
              payload_mb, wire_mb, secs, secs > 0 ? wire_mb / secs : 0.0,
              static_cast<unsigned long long>(max_queued));
  std::printf("[figures] b: rtt_ms unloaded ams %.1f iad %.1f; saturated max ams %.1f iad %.1f "
              "(ams samples [%s], iad [%s]); load average %s\n",
              unloaded_ams, unloaded_iad, max_ams, max_iad, join(ams_seen).c_str(), join(iad_seen).c_str(),
              loadavg().c_str());
  {
    // iad's send pacing at the end of the transfer, and what S2 achieved.
    json l = s.links(kLeader);
    std::printf("[figures] b: iad send pacing: drain %.2f MB/s, budget %llu B, group limit %llu B; "
                "wire/frame bytes out %.3f\n",
                l.value("drain_rate_bytes_per_s", 0.0) / 1e6,
                static_cast<unsigned long long>(l.value("send_budget_bytes", uint64_t{0})),
                static_cast<unsigned long long>(l.value("group_limit_bytes", uint64_t{0})),
                l.value("compression_ratio_out", 0.0));
  }
  std::fflush(stdout);

  // The transfer really was capped (not loopback speed).
  CHECK(wire_mb >= 2.5);
  CHECK(secs >= 2.0);
  INFO("first close/reconnect seen: " << closed);
  CHECK(closed.empty());
  verify_mirror(s, kTotal);
  check_never_closed(s, "after the capped transfer");
  // Heartbeats must not queue behind data: issue #4 asks that the RTT during
  // a saturating transfer stays within 100 ms of the unloaded value. Every
  // sample counts (the maximum). Before send pacing this was 114-190 ms with
  // 64 KiB groups and frames, ~1,800 ms before control frames got a lane.
  // On a starved machine (load average far above the core count) every
  // process on the path, the proxy included, runs late: the unloaded RTT
  // itself grows from ~1 ms to 10+ ms and the proxy falls below its rate,
  // so its fixed-size buffer holds more time. Measured: max 44-64 ms above
  // unloaded at load 12-15 on 2 cores; 98-242 ms at load 23-25 (2 of 3 runs failed).
  constexpr double kTargetMs = 100.0;
  INFO("ams samples [" << join(ams_seen) << "], iad [" << join(iad_seen) << "]; load average " << loadavg());
  CHECK(ams_seen.size() >= 3);  // the unloaded value and at least two under load
  CHECK(max_ams <= unloaded_ams + kTargetMs);
  CHECK(max_iad <= unloaded_iad + kTargetMs);
}

TEST_CASE("c: 10-second stall both ways mid-transfer (stale_after 30 s): link survives, replica identical",
          "[faults]") {
  // stale_after = 30 s: a 10 s stall must NOT close the link (the default
  // 10 s would race the stall); the case proves replication resumes on the
  // same connection after it.
  ProxiedPair s(pair_options("stale_after = \"30s\""));
  s.start();

  const size_t kTotal = 4000;
  auto t0 = Clock::now();
  StreamPublisher pub(s.leader().nats.url(), events(), 100, 100ms, kTotal);  // ~1,000 msgs/s for ~4 s
  s.await_replica_past(500);

  require_ok(s.proxy->stall(FaultProxy::kBoth, true), "stall on");
  uint64_t at_stall = s.replica_last();
  auto ts = Clock::now();
  // While stalled: the link stays up on both sides and the leader moves on.
  check_stays(
      10s,
      [&](std::string& st) {
        json a, i;
        try {
          a = s.links(kFollower);
          i = s.links(kLeader);
        } catch (const Fatal&) {
          throw;
        } catch (const std::exception&) {
          return true;  // a slow HTTP answer on a loaded machine: no observation, not a close
        }
        st = "ams " + a.dump() + "; iad " + i.dump();
        return a.value("state", "") == "up" && i.value("state", "") == "up";
      },
      "link up on both sides during the stall");
  uint64_t before_resume = s.replica_last();
  require_ok(s.proxy->stall(FaultProxy::kBoth, false), "stall off");
  double stall_secs = seconds_since(ts);
  auto tr = Clock::now();
  pub.join();
  s.await_replica(kTotal, kCatchUp, kNoProgress);
  double resume_secs = seconds_since(tr);

  std::printf("[figures] c: stall %.2f s at replica seq %llu (seq %llu at resume, leader at %llu)\n", stall_secs,
              static_cast<unsigned long long>(at_stall), static_cast<unsigned long long>(before_resume),
              static_cast<unsigned long long>(kTotal));
  print_figures("c: catch-up after the stall (resume to replica caught up)", kTotal - before_resume, resume_secs);
  print_figures("c: whole run (publish start to replica caught up)", kTotal, seconds_since(t0));
  CHECK(before_resume < kTotal);  // the stall did hold the transfer back
  verify_mirror(s, kTotal);
  check_never_closed(s, "after the stall");
}

TEST_CASE("d: 5 resets 300 ms apart mid-transfer: replica identical, reconnects counted", "[faults]") {
  ProxiedPair s(pair_options());
  s.start();

  const size_t kTotal = 4000;
  auto t0 = Clock::now();
  StreamPublisher pub(s.leader().nats.url(), events(), 100, 100ms, kTotal);  // ~1,000 msgs/s for ~4 s
  s.await_replica_past(300);

  std::vector<int> hit;
  for (int k = 0; k < 5; ++k) {
    if (k > 0) std::this_thread::sleep_for(300ms);  // the fault's own timing
    auto r = s.proxy->command("reset");
    REQUIRE(r.is_ok());
    int n = 0;
    std::sscanf(r->c_str(), "reset=%d", &n);
    hit.push_back(n);
  }
  uint64_t after_resets = s.replica_last();
  pub.join();
  s.await_replica(kTotal, kCatchUp, kNoProgress);
  double secs = seconds_since(t0);

  json a, i;
  check_for(
      15s,
      [&](std::string& st) {
        a = s.links(kFollower);
        i = s.links(kLeader);
        st = "ams " + a.dump() + "; iad " + i.dump();
        return a.value("state", "") == "up" && i.value("state", "") == "up";
      },
      "link up again on both sides");
  std::ostringstream h;
  for (int n : hit) h << n << " ";
  std::printf("[figures] d: resets hit connections [%s], replica at seq %llu after them; reconnects ams %llu iad %llu, "
              "last close ams \"%s\" iad \"%s\"\n",
              h.str().c_str(), static_cast<unsigned long long>(after_resets),
              static_cast<unsigned long long>(a.value("reconnects", uint64_t{0})),
              static_cast<unsigned long long>(i.value("reconnects", uint64_t{0})),
              a.value("last_close_reason", std::string()).c_str(), i.value("last_close_reason", std::string()).c_str());
  print_figures("d: 5 resets (publish start to replica caught up)", kTotal, secs);
  CHECK(hit[0] >= 1);  // the first reset hit the established link
  INFO("ams " << a.dump() << "; iad " << i.dump());
  CHECK(a.value("reconnects", uint64_t{0}) >= 1);
  CHECK(i.value("reconnects", uint64_t{0}) >= 1);
  CHECK(a.contains("last_close_reason"));
  CHECK(i.contains("last_close_reason"));
  verify_mirror(s, kTotal);
}

TEST_CASE("e: compression off: 50 ms round trip and 3 resets mid-transfer, replica identical", "[faults]") {
  ProxiedPair s(pair_options("", "none"));
  require_ok(s.proxy->set(FaultProxy::kBoth, "delay_ms=25 jitter_ms=2"), "set delay");
  s.start();
  {
    json a = s.links(kFollower);
    INFO("ams /v1/links " << a.dump());
    if (a.contains("compression")) CHECK(a.value("compression", "") == "none");
  }

  const size_t kTotal = 3000;
  auto t0 = Clock::now();
  StreamPublisher pub(s.leader().nats.url(), events(), 100, 100ms, kTotal);
  s.await_replica_past(300);
  for (int k = 0; k < 3; ++k) {
    if (k > 0) std::this_thread::sleep_for(400ms);  // the fault's own timing
    require_ok(s.proxy->reset(), "reset");
  }
  pub.join();
  s.await_replica(kTotal, kCatchUp, kNoProgress);
  print_figures("e: compression off, 50 ms RTT, 3 resets (publish start to replica caught up)", kTotal,
                seconds_since(t0));
  json a = s.links(kFollower);
  INFO("ams /v1/links " << a.dump());
  CHECK(a.value("reconnects", uint64_t{0}) >= 1);
  verify_mirror(s, kTotal);
}

TEST_CASE("f: the leader's daemon stopped 6 s (stale_after 3 s): continued, it says it did not run instead of "
          "blaming its peer, and replication resumes",
          "[faults]") {
  ProxiedPair s(pair_options("heartbeat_interval = \"500ms\"\nstale_after = \"3s\"\nbackoff_max = \"1s\""));
  s.start();
  const size_t kTotal = 2000;
  StreamPublisher pub(s.leader().nats.url(), events(), 50, 100ms, kTotal);  // ~500 msgs/s for ~4 s
  s.await_replica_past(200);
  const size_t log_at = read_file(s.leader().daemon.log_path()).size();
  auto& iad = s.leader().daemon.process();
  iad.signal(SIGSTOP);
  const auto t0 = Clock::now();
  std::this_thread::sleep_until(t0 + 6s);  // the stop's length, not a wait for a condition
  iad.signal(SIGCONT);
  pub.join();
  s.await_replica(kTotal, kCatchUp, kNoProgress);
  verify_mirror(s, kTotal);
  check_for(
      10s,
      [&](std::string& st) {
        st = s.leader().daemon.log_tail(8);
        return read_file(s.leader().daemon.log_path()).find("this daemon did not run for", log_at) !=
               std::string::npos;
      },
      "iad says it did not run");
  const std::string log = read_file(s.leader().daemon.log_path()).substr(log_at);
  INFO("iad's log since the stop:\n" << log);
  // Its peer stopped hearing from it and closed the link; iad itself
  // received nothing because it did not run, not because ams went quiet.
  CHECK(log.find("nothing received for") == std::string::npos);
}

TEST_CASE("g: a link at its window shares it: eight streams catching up over a 1.5 MB/s link all move from the start",
          "[faults][window]") {
  // Eight streams with 400 messages of ~1 KB each behind a link that holds
  // at most 64 KiB in flight (link.peer_window_bytes, a stream's own window
  // too) and carries 1.5 MB/s: about 2 s of a full link. Room freed by an
  // acknowledgement goes round the streams, so by the time half of all
  // messages are across, every stream has a fair part of its own. (Before:
  // the stream whose acknowledgement freed the room took it again at once,
  // and the streams that did not get in first waited until the others were
  // done, with nothing moving: a stream's lag grew without bound while the
  // link stayed full.)
  constexpr int kStreams = 8;
  constexpr uint64_t kPer = 400;
  auto o = pair_options("window_bytes = \"64KiB\"\npeer_window_bytes = \"64KiB\"\nmax_frame_bytes = \"32KiB\"\n"
             "batch_bytes = \"16KiB\"",
             "none");
  for (int i = 1; i <= kStreams; ++i) o.extra_streams.push_back("FAIR_" + std::to_string(i));
  ProxiedPair s(o);
  require_ok(s.proxy->set(FaultProxy::kB2A, "rate_bps=1500000"), "set rate");
  s.start_nats();
  const std::string pad(1000, 'x');
  for (int i = 1; i <= kStreams; ++i) {
    const std::string name = "FAIR_" + std::to_string(i);
    s.leader().js().create_stream({{"name", name},
                                   {"subjects", {"fair." + std::to_string(i) + ".*"}},
                                   {"retention", "limits"},
                                   {"storage", "file"},
                                   {"num_replicas", 1}});
    std::vector<OutMsg> msgs;
    for (uint64_t k = 0; k < kPer; ++k) {
      OutMsg m;
      m.subject = "fair." + std::to_string(i) + ".e";
      m.payload = name + " " + std::to_string(k) + " " + pad;
      msgs.push_back(std::move(m));
    }
    s.leader().js().publish_bulk(msgs, 100);
  }
  s.start_daemons();

  // Sample every replica until half of all messages are across.
  std::vector<uint64_t> at_half;
  std::string sampled;
  check_for(
      60s,
      [&](std::string& st) {
        for (const std::string& r : {kLeader, kFollower}) s.mesh[r].daemon.ensure_running();
        std::vector<uint64_t> now;
        uint64_t total = 0;
        for (int i = 1; i <= kStreams; ++i) {
          auto info = s.follower().js().stream_info("FAIR_" + std::to_string(i));
          now.push_back(info ? info->last_seq : 0);
          total += now.back();
        }
        st.clear();
        for (auto n : now) st += std::to_string(n) + " ";
        if (total * 2 < kStreams * kPer) return false;
        at_half = now;
        sampled = st;
        return true;
      },
      "half of the messages replicated");
  std::printf("[figures] g: replicas' last sequences when half were across: %s(of %llu each)\n", sampled.c_str(),
              static_cast<unsigned long long>(kPer));
  std::fflush(stdout);
  INFO("replicas when half were across: " << sampled);
  // Each stream has at least a quarter of its messages: round the streams
  // the room comes to each within a few of its windows' worth (a window is
  // about 60 of these messages).
  for (uint64_t n : at_half) CHECK(n >= kPer / 4);

  for (int i = 1; i <= kStreams; ++i) {
    const std::string name = "FAIR_" + std::to_string(i);
    check_for(
        60s,
        [&](std::string& st) {
          auto info = s.follower().js().stream_info(name);
          st = info ? std::to_string(info->last_seq) : "none";
          return info && info->last_seq == kPer;
        },
        name + " complete in ams");
  }
  check_never_closed(s, "after the transfer");
}

TEST_CASE("h: a stream deleted from continuously: reconcile passes at most about once a second, deletes replicated",
          "[faults][deletes]") {
  // 10,000 interior deletes (every other message purged by subject): each
  // reconcile pass lists them all to the follower (about 10 KB without
  // compression). Then an application deletes 200 messages, one every
  // 20 ms: 200 delete advisories, each asking for a pass. Passes back to
  // back sent a list every few milliseconds (megabytes in 4 s, more than a
  // slow link carries); at most one a second, a handful.
  ProxiedPair s(pair_options("", "none"));
  s.start_nats();
  constexpr uint64_t kTotal = 20001;  // the last is kept: no deleted tail
  {
    std::vector<OutMsg> msgs;
    for (uint64_t i = 0; i < kTotal; ++i) {
      OutMsg m;
      m.subject = i % 2 == 0 ? "covenant.countries.created" : "covenant.countries.updated";
      m.payload = "event " + std::to_string(i + 1);
      msgs.push_back(std::move(m));
    }
    s.leader().js().publish_bulk(msgs, 500);
  }
  s.leader().js().api("$JS.API.STREAM.PURGE." + kStream, json{{"filter", "covenant.countries.updated"}});
  REQUIRE(s.leader().js().require_stream_info(kStream).messages == (kTotal + 1) / 2);
  s.start_daemons();
  s.await_replica(kTotal);
  auto same_count = [&](const std::string& what) {
    check_for(
        20s,
        [&](std::string& st) {
          const uint64_t l = s.leader().js().require_stream_info(kStream).messages;
          const uint64_t f = s.follower().js().require_stream_info(kStream).messages;
          st = "leader " + std::to_string(l) + " messages, replica " + std::to_string(f);
          return l == f;
        },
        what);
  };
  same_count("the replica to hold what the leader holds after the purge");

  auto b2a = [&] {
    auto st = s.proxy->stats();
    REQUIRE(st.is_ok());
    return st->b2a_bytes;
  };
  const uint64_t before = b2a();
  const auto t0 = Clock::now();
  for (uint64_t k = 0; k < 200; ++k) {
    const uint64_t seq = 2 * (k + 100) + 1;  // a kept ("created") message
    s.leader().js().api("$JS.API.STREAM.MSG.DELETE." + kStream, json{{"seq", seq}});
    std::this_thread::sleep_for(20ms);  // the application's pace, not a wait for a condition
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  same_count("the 200 deletes to be replicated");
  // What a pass the last deletes asked for still sends (at most one more).
  std::this_thread::sleep_for(2500ms);  // the measuring interval's end
  const uint64_t bytes = b2a() - before;
  std::printf("[figures] h: 200 deletes over %.1f s with 10,000 interior deletes: %llu bytes leader -> follower\n",
              secs, static_cast<unsigned long long>(bytes));
  std::fflush(stdout);
  // About 10 KB a pass: one a second over ~4 + 2.5 s is under 100 KB, with
  // the live deletes and heartbeats; passes back to back, megabytes.
  CHECK(bytes < 300'000);
  verify_mirror(s, kTotal);
}

TEST_CASE("i: a purge while the link to the follower is stalled with megabytes queued: the pass it skipped comes "
          "once the link drains",
          "[faults][deletes]") {
  // The leader skips a reconcile pass for a follower whose link has more
  // than 4 MiB queued (the lists must not pile up in front of its data)
  // and owes it one: sent when the link has drained, not at the next 30 s
  // pass. A purge by subject has no sequence of its own to send live, so
  // only a pass tells the follower.
  ProxiedPair s(pair_options("stale_after = \"60s\"\nwindow_bytes = \"24MiB\"\npeer_window_bytes = \"32MiB\"", "none"));
  s.start();
  constexpr uint64_t kTotal = 16000;
  constexpr uint64_t kFirst = 10;  // replicated before the stall: ams subscribed
  const std::string pad(1000, 'y');
  auto publish = [&](uint64_t from, uint64_t to) {
    std::vector<OutMsg> msgs;
    for (uint64_t i = from; i < to; ++i) {
      OutMsg m;
      m.subject = i % 160 == 7 ? "covenant.countries.deleted" : "covenant.countries.created";
      m.payload = "event " + std::to_string(i + 1) + " " + pad;
      msgs.push_back(std::move(m));
    }
    s.leader().js().publish_bulk(msgs, 500);
  };
  publish(0, kFirst);
  s.await_replica(kFirst);
  require_ok(s.proxy->stall(FaultProxy::kB2A, true), "stall iad -> ams");
  publish(kFirst, kTotal);
  // iad reads and sends into the stalled link until its queue passes
  // 4 MiB (far below the 24 MiB window): then what it has sent stops
  // growing, over 5 MiB (the rest sits in socket buffers).
  uint64_t prev = 0;
  check_for(
      20s,
      [&](std::string& st) {
        json f = s.lag_entry(kLeader);
        st = f.dump();
        const uint64_t sent = f.value("bytes_sent", uint64_t{0});
        const bool still = sent == prev && sent > (5u << 20);
        prev = sent;
        if (!still) std::this_thread::sleep_for(300ms);  // the next sample's spacing
        return still;
      },
      "iad's sending to stop with over 5 MiB sent into the stalled link");
  REQUIRE(s.lag_entry(kLeader).value("messages_sent", uint64_t{0}) < kTotal);  // held back by the queue
  s.leader().js().api("$JS.API.STREAM.PURGE." + kStream, json{{"filter", "covenant.countries.deleted"}});
  const uint64_t kept = s.leader().js().require_stream_info(kStream).messages;
  REQUIRE(kept == kTotal - 100);
  // The pass the purge asked for has run (and skipped ams) before the link
  // drains: the advisory's pass starts within a second.
  std::this_thread::sleep_for(2s);  // a pass's time; no observable to poll for
  require_ok(s.proxy->stall(FaultProxy::kB2A, false), "stall off");
  const auto t0 = Clock::now();
  s.await_replica(kTotal, kCatchUp, kNoProgress);
  check_for(
      15s,
      [&](std::string& st) {
        const uint64_t f = s.follower().js().require_stream_info(kStream).messages;
        st = "replica holds " + std::to_string(f) + ", leader " + std::to_string(kept);
        return f == kept;
      },
      "the purge to reach ams once the link drained");
  std::printf("[figures] i: purge applied in ams %.1f s after the stall ended\n", seconds_since(t0));
  std::fflush(stdout);
  verify_mirror(s, kTotal);
}
