// Issue 5 "History, limits and gaps": replica retention in step with the
// leader. Two regions (iad leads, ams follows), each a real nats-server and a
// real isthmusd, linked over TLS with S2. Every test case starts its own
// fresh servers.
//
// What "matches" means here (match()): the replica has the leader's first
// and last sequence, message count and set of deleted sequences, and every
// message the leader holds sits at the same sequence in the replica under
// the header rule (harness/mirror_check.h).
#include <catch2/catch.hpp>

#include <nats/nats.h>
#include <signal.h>

#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

using namespace harness;
using nlohmann::json;

namespace {

const std::string kLeader = "iad";
const std::string kFollower = "ams";
constexpr auto kWait = 60s;

std::vector<OutMsg> messages(const std::string& subject, size_t from, size_t count) {
  std::vector<OutMsg> out;
  for (size_t i = from; i < from + count; ++i) {
    OutMsg m;
    m.subject = subject;
    m.payload = "{\"n\":" + std::to_string(i) + ",\"pad\":\"" + std::string(i % 61, 'p') + "\"}";
    if (i % 3 == 0) m.headers.emplace_back("X-N", std::to_string(i));
    out.push_back(std::move(m));
  }
  return out;
}

std::string daemon_view(Region& r, const std::string& stream) {
  try {
    auto s = r.daemon.lag_stream(stream);
    return s ? s->dump() : std::string("(no lag entry)");
  } catch (const std::exception& e) {
    return std::string("(/v1/lag: ") + e.what() + ")";
  }
}

// Waits until the replica's state equals the leader's, then compares every
// message. Fails early if a daemon dies or the follower reports the stream
// diverged or in error.
void match(Region& l, Region& f, const std::string& stream, std::chrono::milliseconds timeout = kWait) {
  check_for(
      timeout,
      [&](std::string& state) {
        l.daemon.ensure_running("while waiting for the replica");
        f.daemon.ensure_running("while waiting for the replica");
        StreamInfo li = l.js().require_stream_info(stream, true);
        auto fi = f.js().stream_info(stream, true);
        std::string view = daemon_view(f, stream);
        json v = json::parse(view, nullptr, false);
        if (!v.is_discarded() && v.is_object() && (v.value("state", "") == "diverged" || v.value("state", "") == "error"))
          throw Fatal(kFollower + " reports " + stream + " " + v.value("state", "") + ": " + view);
        if (!fi) {
          state = "no replica yet; " + view;
          return false;
        }
        std::string d = compare_stream_states(li, *fi);
        state = "leader first/last/messages " + std::to_string(li.first_seq) + "/" + std::to_string(li.last_seq) +
                "/" + std::to_string(li.messages) + "; replica differs:" + d + "; " + view;
        return d.empty();
      },
      "replica of " + stream + " in " + kFollower + " matching the leader's state");
  auto lm = l.js().read_stream(stream);
  auto fm = f.js().read_stream(stream);
  MirrorDiff d = compare_streams(lm, fm, kLeader);
  INFO(d.summary());
  REQUIRE(d.ok());
  REQUIRE(d.compared == lm.size());
}

json replica_config(Region& f, const std::string& stream) {
  return f.js().require_stream_info(stream).raw["config"];
}

// The replica's own limits never remove anything (docs/architecture.md,
// "Replica retention").
void check_neutral_limits(const json& c, const std::string& retention) {
  INFO(c.dump());
  CHECK(c.value("retention", "") == retention);
  CHECK(c.value("max_msgs", 0) == -1);
  CHECK(c.value("max_bytes", 0) == -1);
  CHECK(c.value("max_age", int64_t{1}) == 0);
  CHECK(c.value("max_msgs_per_subject", 0) == -1);
  CHECK(c.value("discard", "") == "old");
}

// Waits until the follower reports the stream in `state` with a detail
// containing `detail` ("" for any).
void await_follower_state(Region& f, const std::string& stream, const std::string& state,
                          const std::string& detail, std::chrono::milliseconds timeout, const std::string& what) {
  check_for(
      timeout,
      [&](std::string& st) {
        f.daemon.ensure_running(what);
        auto v = f.daemon.lag_stream(stream);
        st = v ? v->dump() : "no stream";
        return v && v->value("state", "") == state && v->value("detail", "").find(detail) != std::string::npos;
      },
      kFollower + ": " + stream + " " + state + ", " + what);
}

// Asks the follower for a rebuild and waits until it replicates again and
// matches the leader.
void rebuild_and_match(Region& l, Region& f, const std::string& stream) {
  auto r = f.daemon.http_post("/v1/streams/" + stream + "/rebuild");
  INFO(r.status << " " << r.body);
  REQUIRE(r.status == 202);
  await_follower_state(f, stream, "replicating", "", 60s, "again after the rebuild");
  match(l, f, stream);
}

// A durable pull consumer of the test's own at the leader (an application).
struct AppConsumer {
  JetStream& js;
  std::string stream, name;
  natsSubscription* sub = nullptr;
  std::string inbox;

  AppConsumer(JetStream& j, std::string s, std::string n, const std::string& filter = "")
      : js(j), stream(std::move(s)), name(std::move(n)) {
    json c = {{"durable_name", name}, {"deliver_policy", "all"}, {"ack_policy", "explicit"},
              {"max_ack_pending", -1}};
    if (!filter.empty()) c["filter_subject"] = filter;
    js.api("$JS.API.CONSUMER.DURABLE.CREATE." + stream + "." + name, {{"stream_name", stream}, {"config", c}});
    inbox = "_INBOX.app." + name;
    if (natsConnection_SubscribeSync(&sub, js.connection(), inbox.c_str()) != NATS_OK)
      throw std::runtime_error("app consumer: subscribe failed");
  }
  ~AppConsumer() { natsSubscription_Destroy(sub); }

  // Fetches n messages and acknowledges each; returns their sequences.
  std::vector<uint64_t> consume(size_t n) {
    if (n == 0) return {};
    std::string req = "{\"batch\":" + std::to_string(n) + ",\"expires\":5000000000}";
    std::string subj = "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + name;
    natsConnection_PublishRequestString(js.connection(), subj.c_str(), inbox.c_str(), req.c_str());
    std::vector<uint64_t> got;
    while (got.size() < n) {
      natsMsg* m = nullptr;
      if (natsSubscription_NextMsg(&m, sub, 6000) != NATS_OK) break;
      const char* reply = natsMsg_GetReply(m);
      if (reply != nullptr && std::string(reply).rfind("$JS.ACK.", 0) == 0) {
        // $JS.ACK.<stream>.<consumer>.<dcount>.<sseq>.<dseq>.<ts>.<pending>
        std::string r = reply;
        std::vector<std::string> t;
        size_t p = 0;
        while (true) {
          size_t q = r.find('.', p);
          t.push_back(r.substr(p, q == std::string::npos ? std::string::npos : q - p));
          if (q == std::string::npos) break;
          p = q + 1;
        }
        got.push_back(std::stoull(t[5]));
        natsConnection_PublishString(js.connection(), r.c_str(), "+ACK");
      }
      natsMsg_Destroy(m);
    }
    natsConnection_Flush(js.connection());
    if (got.size() != n) throw std::runtime_error("app consumer got " + std::to_string(got.size()) + " of " + std::to_string(n));
    return got;
  }
};

}  // namespace

TEST_CASE("history trimmed by max_msgs and with interior deletes reaches a new follower; limits, purges and "
          "deletes follow, also while the follower's daemon is down",
          "[history]") {
  const std::string kStream = "COVENANT_PROJECTS";
  TempDir tmp("isthmus-history");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  l.js().create_stream({{"name", kStream},
                        {"subjects", {"covenant.projects.>"}},
                        {"retention", "limits"},
                        {"max_msgs", 500},
                        {"discard", "old"},
                        {"storage", "file"},
                        {"num_replicas", 1}});
  // History: 800 published, the first 300 trimmed by max_msgs, interior deletes.
  l.js().publish_bulk(messages("covenant.projects.created", 1, 800));
  for (uint64_t s : {350, 351, 352, 400, 799}) l.js().delete_msg(kStream, s);
  StreamInfo li = l.js().require_stream_info(kStream);
  REQUIRE(li.first_seq == 301);
  REQUIRE(li.last_seq == 800);
  REQUIRE(li.messages == 495);

  auto t0 = Clock::now();
  mesh.start_daemons();
  match(l, f, kStream);
  std::printf("[figures] history (495 of 800, trimmed and with gaps) replicated in %.2f s\n", seconds_since(t0));
  check_neutral_limits(replica_config(f, kStream), "limits");

  SECTION("limits move the leader's first sequence: the replica trims in step") {
    l.js().publish_bulk(messages("covenant.projects.updated", 801, 150));  // max_msgs trims 301..450
    match(l, f, kStream);
    CHECK(f.js().require_stream_info(kStream).first_seq > 400);  // 145 oldest trimmed (deletes do not count)

    // Purge and delete at the leader, with both daemons up.
    auto tp = Clock::now();
    l.js().purge(kStream, 600);
    l.js().delete_msg(kStream, 700);
    l.js().delete_msg(kStream, 701);
    match(l, f, kStream);
    std::printf("[figures] purge below 600 and 2 deletes replicated in %.2f s\n", seconds_since(tp));

    // The same while the follower's daemon is stopped: the audit advisories
    // are lost; the leader's reconcile on SUBSCRIBE brings them.
    f.daemon.terminate();
    l.js().delete_msg(kStream, 650);
    l.js().delete_msg(kStream, 651);
    l.js().purge(kStream, 620);
    l.js().publish_bulk(messages("covenant.projects.deleted", 951, 20));
    l.js().delete_msg(kStream, 960);
    auto tr = Clock::now();
    f.daemon.start();
    match(l, f, kStream);
    std::printf("[figures] deletes and a purge made while the follower's daemon was down replicated %.2f s after "
                "its restart\n",
                seconds_since(tr));

    // Stopped again; the leader moves on and purges past everything the
    // replica holds: the gap (971..999) is crossed with one positioning purge.
    f.daemon.terminate();
    l.js().publish_bulk(messages("covenant.projects.deleted", 971, 50));
    l.js().purge(kStream, 1000);
    f.daemon.start();
    match(l, f, kStream);
    CHECK(f.js().require_stream_info(kStream).first_seq == 1000);
    {
      // Said and counted: 971..999 never reached this region.
      json lag = *f.daemon.lag_stream(kStream);
      INFO(lag.dump());
      CHECK(lag["followers"][0].value("skipped", 0) == 29);
      CHECK(read_file(f.daemon.log_path()).find("the leader no longer holds sequences 971..999") != std::string::npos);
    }

    // And while the leader's daemon is down (reconciled when it is back).
    l.daemon.terminate();
    l.js().delete_msg(kStream, 1005);
    l.js().purge(kStream, 1002);
    l.daemon.start();
    match(l, f, kStream);

    // A full purge empties the replica too.
    l.js().purge(kStream);
    match(l, f, kStream);
    CHECK(f.js().require_stream_info(kStream).messages == 0);
    l.js().publish_bulk(messages("covenant.projects.created", 1021, 5));
    match(l, f, kStream);

    {
      json lag = *f.daemon.lag_stream(kStream);
      INFO(lag.dump());
      CHECK(lag["followers"][0].value("trims", 0) > 0);
      CHECK(lag["followers"][0].value("deletes_applied", 0) > 0);
      CHECK(lag["followers"][0].value("apply_errors", 1) == 0);
    }

    // The leader's last messages deleted while the follower was away: no
    // message comes after them to fill the gap by, yet the replica ends
    // where the leader's stream ends (it read a sequence lag of 2 until the
    // next publish).
    f.daemon.terminate();
    l.js().publish_bulk(messages("covenant.projects.created", 1026, 3));
    l.js().delete_msg(kStream, 1028);
    l.js().delete_msg(kStream, 1027);
    f.daemon.start();
    match(l, f, kStream);
    REQUIRE(f.js().require_stream_info(kStream).last_seq == 1028);
    check_for(
        20s,
        [&](std::string& st) {
          auto fl = f.daemon.lag_stream(kStream);
          auto ll = l.daemon.lag_stream(kStream);
          st = (fl ? fl->dump() : "-") + " / " + (ll ? ll->dump() : "-");
          return fl && ll && fl->value("state", "") == "replicating" &&
                 (*fl)["followers"][0].value("seq_lag", json()) == 0 && ll->contains("followers") && (*ll)["followers"].size() == 1 &&
                 (*ll)["followers"][0].value("seq_lag", json()) == 0 &&
                 (*ll)["followers"][0].value("state", "") == "replicating";
        },
        "no sequence lag at either daemon after the deleted tail");
    // A replica ending in a deleted filler resumes after a restart.
    f.daemon.terminate();
    f.daemon.start();
    l.js().publish_bulk(messages("covenant.projects.created", 1029, 3));
    match(l, f, kStream);
    REQUIRE(f.js().require_stream_info(kStream).last_seq == 1031);
  }
}

// A follower back after the leader's limits dropped what it lacked, under
// traffic: nats-server 2.9's pending count in its reader's deliveries is a
// few too high there, and the leader took it for its last sequence (a lag
// that never cleared on the idle stream).
TEST_CASE("a follower back after the leader's limits dropped what it lacked: no lag once idle", "[history][pending]") {
  const std::string kStream = "COVENANT_PROJECTS";
  TempDir tmp("isthmus-pending");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  l.js().create_stream({{"name", kStream},
                        {"subjects", {"covenant.projects.>"}},
                        {"retention", "limits"},
                        {"max_msgs", 500},
                        {"duplicate_window", 100000000},  // each round's publisher repeats Nats-Msg-Ids
                        {"discard", "old"},
                        {"storage", "file"},
                        {"num_replicas", 1}});
  mesh.start_daemons();
  l.js().publish_bulk(messages("covenant.projects.created", 1, 100));
  match(l, f, kStream);
  for (int round = 0; round < 3; ++round) {
    f.daemon.kill9();
    {
      const uint64_t had = f.js().require_stream_info(kStream).last_seq;
      StreamPublisher pub(l.nats.url(), {{kStream, {"covenant.projects.updated"}}}, 20, 20ms);
      check_for(
          20s,
          [&](std::string& st) {
            if (pub.failed()) pub.stop();  // rethrows
            const auto li = l.js().require_stream_info(kStream);
            st = "published " + std::to_string(pub.published()) + ", leader first " + std::to_string(li.first_seq);
            return li.first_seq > had + 100;
          },
          "the leader's limits dropping what ams lacks");
      // Its reader starts below the leader's first sequence, under traffic.
      f.daemon.start();
      check_for(
          20s,
          [&](std::string& st) {
            auto fl = f.daemon.lag_stream(kStream);
            st = fl ? fl->dump() : "-";
            return fl && (*fl)["followers"][0].value("applied_seq", uint64_t{0}) > had + 500;
          },
          "ams replicating again under traffic");
      pub.stop();
    }
    const uint64_t last = l.js().require_stream_info(kStream).last_seq;
    check_for(
        15s,
        [&](std::string& st) {
          auto fl = f.daemon.lag_stream(kStream);
          auto ll = l.daemon.lag_stream(kStream);
          st = "stream last " + std::to_string(last) + "; " + (ll ? ll->dump() : "-") + " / " + (fl ? fl->dump() : "-");
          if (!fl || !ll || !ll->contains("followers") || (*ll)["followers"].empty()) return false;
          const json& lf = (*ll)["followers"][0];
          const json& ff = (*fl)["followers"][0];
          return lf.value("leader_last_seq", json()) == last && lf.value("seq_lag", json()) == 0 &&
                 lf.value("state", "") == "replicating" && ff.value("leader_last_seq", json()) == last &&
                 ff.value("seq_lag", json()) == 0;
        },
        "round " + std::to_string(round) + ": no lag at either end once idle, the leader's last sequence the stream's");
    match(l, f, kStream);
  }
}

TEST_CASE("interior deletes above nats.reconcile_max_deleted: live API deletes still replicate, the rest once the "
          "count falls back under it",
          "[history]") {
  const std::string kStream = "COVENANT_PROJECTS";
  TempDir tmp("isthmus-history");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  for (Region* r : {&l, &f}) {
    r->daemon.config().nats_extra = "reconcile_max_deleted = 5";
    r->daemon.write_config();
  }
  mesh.start_nats();
  l.js().create_stream({{"name", kStream},
                        {"subjects", {"covenant.projects.>"}},
                        {"retention", "limits"},
                        {"storage", "file"},
                        {"num_replicas", 1}});
  l.js().publish_bulk(messages("covenant.projects.created", 1, 40));
  mesh.start_daemons();
  match(l, f, kStream);

  auto deletes = [&]() {
    auto s = l.daemon.lag_stream(kStream);
    return s ? s->value("deletes", json::object()) : json::object();
  };
  CHECK(deletes().value("reconciled", false));
  CHECK(deletes().value("limit", 0) == 5);

  // Eight interior deletes through the API, both daemons up: over the limit,
  // yet each is replicated from its advisory.
  for (uint64_t s = 10; s <= 24; s += 2) l.js().delete_msg(kStream, s);
  match(l, f, kStream);
  check_for(
      10s,
      [&](std::string& st) {
        json d = deletes();
        st = d.dump();
        return d.value("interior", 0) == 8 && !d.value("reconciled", true);
      },
      "iad reports 8 interior deletes, not reconciled from the list");
  auto m = l.daemon.http_get("/metrics");
  REQUIRE(m.status == 200);
  CHECK(m.body.find("isthmus_stream_deletes_reconciled{region=\"iad\",stream=\"" + kStream +
                    "\",role=\"leader\"} 0\n") != std::string::npos);
  CHECK(m.body.find("isthmus_stream_interior_deletes{region=\"iad\",stream=\"" + kStream +
                    "\",role=\"leader\"} 8\n") != std::string::npos);
  CHECK(read_file(l.daemon.log_path()).find("exceed nats.reconcile_max_deleted (5)") != std::string::npos);

  // Deletes while the leader's daemon is down: their advisories are lost,
  // and the list is over the limit, so they wait.
  l.daemon.terminate();
  l.js().delete_msg(kStream, 30);
  l.js().delete_msg(kStream, 31);
  l.daemon.start();
  const std::string warning = "exceed nats.reconcile_max_deleted (5)";
  auto count = [&](const std::string& text) {
    size_t n = 0;
    for (size_t at = text.find(warning); at != std::string::npos; at = text.find(warning, at + 1)) ++n;
    return n;
  };
  // The restarted leader's first reconcile (on ams's SUBSCRIBE) decides not
  // to read the list, and says so: nothing sent 30 and 31 on.
  check_for(
      20s,
      [&](std::string& st) {
        st = l.daemon.log_tail(5);
        return count(read_file(l.daemon.log_path())) == 2;
      },
      "the restarted leader warns that it does not reconcile");
  // A marker published after the decision, once replicated, shows that ams
  // received whatever iad sent before it: 30 and 31 must still be there.
  l.js().publish_bulk(messages("covenant.projects.created", 41, 1));
  check_for(
      20s,
      [&](std::string& st) {
        const uint64_t last = f.js().require_stream_info(kStream).last_seq;
        st = "replica last_seq " + std::to_string(last);
        return last == 41;
      },
      "the marker (41) reaches ams");
  for (uint64_t s : {30, 31}) {
    json got = f.js().api_any("$JS.API.STREAM.MSG.GET." + kStream, {{"seq", s}});
    INFO(got.dump());
    CHECK_FALSE(got.contains("error"));  // still in the replica
  }
  // max_msgs removes the front (no delete or purge advisory). First down to
  // five interior deletes (20, 22, 24, 30, 31): at the limit, but not under
  // 90% of it (4), so the leader still does not reconcile (hysteresis).
  json cfg = l.js().require_stream_info(kStream).raw["config"];
  cfg["max_msgs"] = 19;
  l.js().api("$JS.API.STREAM.UPDATE." + kStream, cfg);
  l.js().publish_bulk(messages("covenant.projects.created", 42, 1));  // 19..42 without 5: 19 messages
  REQUIRE(l.js().require_stream_info(kStream).first_seq == 19);
  check_for(
      10s,
      [&](std::string& st) {
        json d = deletes();
        st = d.dump();
        return d.value("interior", 0) == 5;
      },
      "iad reports 5 interior deletes");
  // A purge that removes nothing makes the leader reconcile at once (its
  // API advisory), which decides against reading the list.
  l.js().api("$JS.API.STREAM.PURGE." + kStream, {{"filter", "covenant.projects.none"}});
  check_stays(
      1500ms,
      [&](std::string& st) {
        json d = deletes();
        st = d.dump();
        return d.value("interior", 0) == 5 && !d.value("reconciled", true);
      },
      "iad not reconciling at 5 interior deletes (back only at 4)");
  // Then two are left: under 90% of the limit, the leader sees it in its
  // once-a-second stream state and reconciles; the replica loses 30 and 31
  // too.
  cfg["max_msgs"] = 15;
  l.js().api("$JS.API.STREAM.UPDATE." + kStream, cfg);
  auto tp = Clock::now();
  l.js().publish_bulk(messages("covenant.projects.created", 43, 1));  // 27..43 without 30, 31: 15 messages
  REQUIRE(l.js().require_stream_info(kStream).first_seq == 27);
  match(l, f, kStream);
  std::printf("[figures] back under reconcile_max_deleted: deletes made while the leader's daemon was down "
              "replicated %.2f s after max_msgs trimmed the stream\n",
              seconds_since(tp));
  check_for(
      10s,
      [&](std::string& st) {
        json d = deletes();
        st = d.dump();
        return d.value("interior", 0) == 2 && d.value("reconciled", false);
      },
      "iad reports 2 interior deletes, reconciled");
  json lag = *f.daemon.lag_stream(kStream);
  INFO(lag.dump());
  CHECK(lag["followers"][0].value("apply_errors", 1) == 0);
  // Each API delete reached ams twice (live and in the reconciled list):
  // the second finds it gone, which is no error.
  CHECK(read_file(f.daemon.log_path()).find("cannot apply") == std::string::npos);
}

TEST_CASE("max_age at the leader: the replica (no max_age of its own) drops messages as the leader does",
          "[history][max_age]") {
  const std::string kStream = "COVENANT_PROJECTS";
  TempDir tmp("isthmus-max-age");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  l.js().create_stream({{"name", kStream},
                        {"subjects", {"covenant.projects.>"}},
                        {"max_age", int64_t{3'000'000'000}},  // 3 s
                        {"storage", "file"}});
  mesh.start_daemons();
  l.js().publish_bulk(messages("covenant.projects.created", 1, 100));
  match(l, f, kStream);
  check_neutral_limits(replica_config(f, kStream), "limits");
  check_for(
      20s, [&] { return l.js().require_stream_info(kStream).messages == 0; }, "leader expires everything");
  match(l, f, kStream, 10s);
  CHECK(f.js().require_stream_info(kStream).first_seq == 101);
  l.js().publish_bulk(messages("covenant.projects.updated", 101, 10));
  match(l, f, kStream);
}

TEST_CASE("the leader's subjects change: a subject added replicates at once, a removed one leaves the replica at its "
          "next start",
          "[history][subjects]") {
  const std::string kStream = "COVENANT_PROJECTS";
  TempDir tmp("isthmus-subjects");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  json cfg = {{"name", kStream}, {"subjects", {"covenant.projects.created"}}, {"storage", "file"}};
  l.js().create_stream(cfg);
  mesh.start_daemons();
  l.js().publish_bulk(messages("covenant.projects.created", 1, 100));
  match(l, f, kStream);
  auto subjects_of = [](const json& c) {
    std::set<std::string> out;
    for (const auto& x : c["subjects"]) out.insert(x.get<std::string>());
    return out;
  };

  // Added while replicating: the first message on it makes the follower
  // refresh the leader's configuration and update its replica.
  cfg["subjects"] = {"covenant.projects.created", "covenant.projects.archived"};
  json upd = l.js().api("$JS.API.STREAM.UPDATE." + kStream, cfg);
  INFO(upd.dump());
  REQUIRE_FALSE(upd.contains("error"));
  l.js().publish_bulk(messages("covenant.projects.archived", 101, 50));
  l.js().publish_bulk(messages("covenant.projects.created", 151, 50));
  match(l, f, kStream);
  CHECK(subjects_of(replica_config(f, kStream)) == subjects_of(cfg));
  check_neutral_limits(replica_config(f, kStream), "limits");
  CHECK(read_file(f.daemon.log_path()).find("the leader's subjects changed; the replica's follow") != std::string::npos);

  // Removed: the replica keeps it until the follower's next start (nothing
  // on it arrives from the leader any more), then follows.
  cfg["subjects"] = {"covenant.projects.created"};
  upd = l.js().api("$JS.API.STREAM.UPDATE." + kStream, cfg);
  INFO(upd.dump());
  REQUIRE_FALSE(upd.contains("error"));
  f.daemon.restart(true);
  l.js().publish_bulk(messages("covenant.projects.created", 201, 50));
  match(l, f, kStream);
  CHECK(subjects_of(replica_config(f, kStream)) == subjects_of(cfg));
  auto v = f.daemon.lag_stream(kStream);
  REQUIRE(v);
  CHECK(v->value("state", "") == "replicating");
}

TEST_CASE("a replica purged by hand lacks what the leader holds: diverged, and a rebuild brings it back; the "
          "leader deleting its first messages one by one is not mistaken for it",
          "[history][front]") {
  const std::string kStream = "COVENANT_PROJECTS";
  TempDir tmp("isthmus-front");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  l.js().create_stream({{"name", kStream}, {"subjects", {"covenant.projects.>"}}, {"storage", "file"}});
  mesh.start_daemons();
  l.js().publish_bulk(messages("covenant.projects.created", 1, 200));
  match(l, f, kStream);
  // The leader removes its first message again and again (each reaches the
  // follower as a delete before the STATE that moves the first sequence).
  for (uint64_t seq = 1; seq <= 20; ++seq) {
    l.js().delete_msg(kStream, seq);
    std::this_thread::sleep_for(100ms);  // pacing the deletes over two STATE periods, not a wait for a result
  }
  match(l, f, kStream);
  check_stays(
      3s,
      [&](std::string& state) {
        auto v = f.daemon.lag_stream(kStream);
        state = v ? v->dump() : "no stream";
        return v && v->value("state", "") == "replicating";
      },
      "ams keeps replicating while the leader deletes its first messages");
  // Purged by hand in ams: 21..200 gone from the replica, held at the leader.
  f.js().purge(kStream);
  await_follower_state(f, kStream, "diverged",
                       "messages the leader holds are missing from the replica: sequences 21 to 200", 15s,
                       "naming the missing sequences");
  l.js().publish_bulk(messages("covenant.projects.created", 201, 20));
  rebuild_and_match(l, f, kStream);
  // Purged by hand while ams's daemon is stopped: found at the next start
  // (not taken as the replica's new beginning).
  f.daemon.kill9();
  f.js().purge(kStream, 150);
  f.daemon.start();
  await_follower_state(f, kStream, "diverged",
                       "messages the leader holds are missing from the replica: sequences 21 to 149", 15s,
                       "after a purge while its daemon was stopped");
}

TEST_CASE("the leader's stream deleted and created again: every replica of the old one diverges, and a rebuild "
          "copies the new one",
          "[history][replaced]") {
  const std::string kStream = "COVENANT_PROJECTS";
  TempDir tmp("isthmus-replaced");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  const json cfg = {{"name", kStream}, {"subjects", {"covenant.projects.>"}}, {"storage", "file"}};
  l.js().create_stream(cfg);
  mesh.start_daemons();
  l.js().publish_bulk(messages("covenant.projects.created", 1, 100));
  match(l, f, kStream);
  auto recreate = [&] {
    json d = l.js().api("$JS.API.STREAM.DELETE." + kStream, json::object());
    INFO(d.dump());
    REQUIRE(d.value("success", false));
    l.js().create_stream(cfg);
  };
  // (Said by the leader, or found by the follower's comparison.)
  auto await_replaced = [&](const std::string& why) {
    await_follower_state(f, kStream, "diverged", "deleted and created again", 20s, why);
  };
  auto rebuild = [&] { rebuild_and_match(l, f, kStream); };

  // Created again while replicating, and grown past the replica: the same
  // sequences, other messages (they used to be taken for the old ones).
  recreate();
  l.js().publish_bulk(messages("covenant.projects.updated", 1001, 150));
  await_replaced("the new stream grown past the old one");
  CHECK(read_file(l.daemon.log_path()).find("the stream was deleted and created again") != std::string::npos);
  rebuild();

  // Created again and left shorter than the replica.
  recreate();
  l.js().publish_bulk(messages("covenant.projects.updated", 2001, 20));
  await_replaced("the new stream ending below the replica");
  rebuild();

  // Created again while the follower's daemon was stopped.
  f.daemon.kill9();
  recreate();
  l.js().publish_bulk(messages("covenant.projects.updated", 3001, 40));
  f.daemon.start();
  await_replaced("found at the follower's next start");
  rebuild();

  // Created again while the follower's daemon was stopped, and the new
  // stream's first sequence already beyond the replica's last: the follower
  // cannot compare anything (it used to position its replica there,
  // deleting the old stream's messages, and carry on); the leader tells it
  // when it subscribes. The replica keeps the old messages until rebuilt.
  {
    const StreamInfo before = f.js().require_stream_info(kStream);
    f.daemon.kill9();
    recreate();
    l.js().publish_bulk(messages("covenant.projects.updated", 3501, before.last_seq + 50));
    json p = l.js().api("$JS.API.STREAM.PURGE." + kStream, json{{"keep", 10}});
    INFO(p.dump());
    REQUIRE(p.value("success", false));
    REQUIRE(l.js().require_stream_info(kStream).first_seq > before.last_seq + 1);
    f.daemon.start();
    await_replaced("the new stream beginning beyond the replica's last sequence");
    const StreamInfo after = f.js().require_stream_info(kStream);
    CHECK(after.messages == before.messages);
    CHECK(after.first_seq == before.first_seq);
    rebuild();
  }

  // Created again while both daemons were stopped (the leader's daemon
  // cannot tell): the follower's first subscription finds it.
  f.daemon.kill9();
  l.daemon.kill9();
  recreate();
  l.js().publish_bulk(messages("covenant.projects.updated", 4001, 60));
  l.daemon.start();
  f.daemon.start();
  await_replaced("found by the follower's subscription after both daemons restarted");
  CHECK(read_file(l.daemon.log_path()).find("follower ams stopped: diverged: the leader's stream is not the one") !=
        std::string::npos);
  rebuild();

  // A replica ending in deleted sequences (the leader's last messages
  // deleted while the follower was away: filled, also on the probation of
  // a start), then created again while both daemons were stopped, shorter:
  // the follower's start looks past the deleted tail for the last message
  // it holds, which the new stream has not reached (it used to find no
  // last message to compare and carry on).
  {
    const uint64_t last = l.js().require_stream_info(kStream).last_seq;
    f.daemon.kill9();
    l.js().publish_bulk(messages("covenant.projects.updated", 4101, 3));
    for (uint64_t s = last + 1; s <= last + 3; ++s) l.js().delete_msg(kStream, s);
    f.daemon.start();
    match(l, f, kStream);
    REQUIRE(f.js().require_stream_info(kStream).last_seq == last + 3);
    f.daemon.kill9();
    l.daemon.kill9();
    recreate();
    l.js().publish_bulk(messages("covenant.projects.updated", 4201, last - 10));
    l.daemon.start();
    f.daemon.start();
    await_replaced("a replica ending in a deleted tail, the stream created again shorter");
    rebuild();
  }

  // Created again with other storage and retention (nats-server cannot
  // change those in place): the rebuild recreates the replica with them
  // (it used to be refused: 409, "a stream it did not create").
  {
    json d = l.js().api("$JS.API.STREAM.DELETE." + kStream, json::object());
    REQUIRE(d.value("success", false));
    json other = cfg;
    other["storage"] = "memory";
    other["retention"] = "interest";
    l.js().create_stream(other);
    l.js().publish_bulk(messages("covenant.projects.updated", 5001, 80));
  }
  await_replaced("created again with memory storage and interest retention");
  rebuild();
  const json rc = replica_config(f, kStream);
  CHECK(rc.value("storage", "") == "memory");
  check_neutral_limits(rc, "interest");
}

TEST_CASE("ALERTS_INCIDENTS with discard new filled past 10,000: the replica never refuses and matches; a "
          "conflicting replica of another stream is refused alone",
          "[history][discard_new]") {
  const std::string kStream = "ALERTS_INCIDENTS";
  const std::string kOther = "COVENANT_COUNTRIES";
  TempDir tmp("isthmus-discard-new");
  const std::string kQueue = "COVENANT_JOBS";
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}, {kOther, kLeader}, {kQueue, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  json alerts = {{"name", kStream},
                 {"subjects", {"alerts.incidents.>"}},
                 {"retention", "limits"},
                 {"max_age", int64_t{86400} * 1'000'000'000},
                 {"max_msgs", 10'000},
                 {"discard", "new"},
                 {"storage", "file"},
                 {"num_replicas", 1}};
  l.js().create_stream(alerts);
  // A replica made earlier with the leader's own limits (as Isthmus used to):
  // Isthmus must give it neutral limits, or it would refuse once full.
  f.js().create_stream(alerts);
  // A replica of another stream that conflicts (storage differs).
  l.js().create_stream({{"name", kOther}, {"subjects", {"covenant.countries.>"}}, {"storage", "file"}});
  f.js().create_stream({{"name", kOther}, {"subjects", {"covenant.countries.>"}}, {"storage", "memory"}});
  // A work-queue stream is not replicated (a reader would take its messages).
  l.js().create_stream({{"name", kQueue}, {"subjects", {"covenant.jobs.>"}}, {"retention", "workqueue"}});
  l.js().publish_bulk(messages("covenant.jobs.new", 0, 10));

  l.js().publish_bulk(messages("alerts.incidents.opened", 0, 10'000), 1024);
  OutMsg extra = messages("alerts.incidents.opened", 10'000, 1)[0];
  CHECK_THROWS_WITH(l.js().publish(extra), Catch::Contains("maximum messages"));

  mesh.start_daemons();
  match(l, f, kStream, 120s);
  check_neutral_limits(replica_config(f, kStream), "limits");

  // Make room at the leader, publish more: the leader is at its limit again,
  // the replica holds the same 10,000 and never refused any.
  l.js().purge(kStream, 2001);
  l.js().publish_bulk(messages("alerts.incidents.closed", 10'000, 2'000), 1024);
  CHECK_THROWS_WITH(l.js().publish(extra), Catch::Contains("maximum messages"));
  for (uint64_t s = 5000; s < 5100; ++s) l.js().delete_msg(kStream, s);
  l.js().publish_bulk(messages("alerts.incidents.closed", 12'000, 100), 1024);
  match(l, f, kStream, 120s);
  StreamInfo fi = f.js().require_stream_info(kStream);
  CHECK(fi.first_seq == 2001);
  CHECK(fi.last_seq == 12'100);
  CHECK(fi.messages == 10'000);
  json lag = *f.daemon.lag_stream(kStream);
  INFO(lag.dump());
  CHECK(lag["followers"][0].value("apply_errors", 1) == 0);

  // The conflicting stream is refused with both values named; ALERTS carried on.
  std::string detail;
  check_for(
      15s,
      [&](std::string& st) {
        auto other = f.daemon.lag_stream(kOther);
        st = other ? other->dump() : "(no entry)";
        if (!other || other->value("state", "") != "error") return false;
        detail = other->value("detail", "");
        return true;
      },
      kOther + " in state error at " + kFollower);
  CHECK(detail.find("storage") != std::string::npos);
  CHECK(detail.find("memory") != std::string::npos);
  CHECK(detail.find("file") != std::string::npos);
  CHECK(f.js().require_stream_info(kOther).raw["config"].value("storage", "") == "memory");

  // The operator removes the conflicting stream: the next retry (every 2 s)
  // creates the replica. The leader's stream is empty, so no write proves
  // the repair yet: until one does (or 10 s pass), ams says it is retrying
  // after that error (the leader's row for ams shows error meanwhile), and
  // its /healthz is not held at 503 by it. The first write clears it.
  f.js().api("$JS.API.STREAM.DELETE." + kOther, nullptr);
  check_for(
      10s,
      [&](std::string& st) {
        auto other = f.daemon.lag_stream(kOther);
        st = other ? other->dump() : "(no entry)";
        return other && other->value("state", "") == "replicating" &&
               other->value("detail", "").rfind("retrying after: cannot prepare replica: ", 0) == 0 &&
               other->value("detail", "").find("storage") != std::string::npos;
      },
      kOther + " replicating again at " + kFollower + ", retrying after the conflict until a write is acknowledged");
  {
    auto h = f.daemon.http_get("/healthz");
    INFO(h.body);
    CHECK(h.body.find(kOther) == std::string::npos);
  }
  l.js().publish(messages("covenant.countries.created", 0, 1)[0]);
  check_for(
      5s,
      [&](std::string& st) {
        auto other = f.daemon.lag_stream(kOther);
        st = other ? other->dump() : "(no entry)";
        return other && other->value("state", "") == "replicating" && !other->contains("detail") &&
               f.js().stream_info(kOther) && f.js().stream_info(kOther)->last_seq == 1;
      },
      kOther + " at " + kFollower + ": the first acknowledged write clears the retry detail");
  CHECK(f.js().require_stream_info(kOther).raw["config"].value("storage", "") == "file");

  check_for(
      15s,
      [&](std::string& st) {
        auto q = f.daemon.lag_stream(kQueue);
        st = q ? q->dump() : "(no entry)";
        return q && q->value("state", "") == "error" && q->value("detail", "").find("work-queue") != std::string::npos;
      },
      kQueue + " refused (work-queue) at " + kFollower);
  CHECK(l.js().require_stream_info(kQueue).messages == 10);  // nothing taken from the queue
  CHECK_FALSE(f.js().stream_info(kQueue));                   // no replica created
}

namespace {

// COVENANT_USERS as the seed has it (interest retention), at R1.
json users_config(const std::string& name) {
  return {{"name", name},
          {"subjects", {"covenant.users.>"}},
          {"retention", "interest"},
          {"max_age", int64_t{7} * 86400 * 1'000'000'000},
          {"max_msgs", 100'000},
          {"discard", "old"},
          {"storage", "file"},
          {"num_replicas", 1}};
}

}  // namespace

TEST_CASE("interest retention: the replica keeps what nobody in its region consumes, follows the leader's "
          "consumption, and the leader keeps what the follower has not stored",
          "[history][interest]") {
  const std::string kStream = "COVENANT_USERS";
  TempDir tmp("isthmus-interest");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  l.js().create_stream(users_config(kStream));
  AppConsumer app(l.js(), kStream, "billing");
  // The durable of a region that is no longer a peer (syd): it would pin
  // the stream forever; the leader's daemon deletes it.
  l.js().api("$JS.API.CONSUMER.DURABLE.CREATE." + kStream + ".isthmus_syd_1",
             {{"stream_name", kStream},
              {"config", {{"durable_name", "isthmus_syd_1"}, {"ack_policy", "all"}, {"deliver_policy", "all"}}}});
  l.js().publish_bulk(messages("covenant.users.signup", 1, 300));
  REQUIRE(l.js().require_stream_info(kStream).messages == 300);

  mesh.start_daemons();
  match(l, f, kStream);
  check_for(
      15s,
      [&](std::string& st) {
        json c = l.js().api("$JS.API.CONSUMER.NAMES." + kStream, json::object())["consumers"];
        st = c.dump();
        for (const auto& n : c)
          if (n.get<std::string>() == "isthmus_syd_1") return false;
        return true;
      },
      "stale durable isthmus_syd_1 deleted by iad's daemon");
  json rc = replica_config(f, kStream);
  check_neutral_limits(rc, "interest");
  // Nobody consumes in ams: the retention anchor keeps everything.
  CHECK(f.js().require_stream_info(kStream).messages == 300);
  auto anchor = f.js().api("$JS.API.CONSUMER.INFO." + kStream + ".isthmus_retention_anchor", nullptr);
  CHECK(anchor["config"].value("ack_policy", "") == "explicit");
  // The leader reads through a durable named for the follower, sized for its window.
  auto names = l.js().api("$JS.API.CONSUMER.NAMES." + kStream, json::object())["consumers"];
  INFO(names.dump());
  std::string durable;
  for (const auto& n : names)
    if (n.get<std::string>().rfind("isthmus_ams_", 0) == 0) durable = n.get<std::string>();
  REQUIRE_FALSE(durable.empty());
  auto dinfo = l.js().api("$JS.API.CONSUMER.INFO." + kStream + "." + durable, nullptr);
  CHECK(dinfo["config"].value("ack_policy", "") == "all");
  CHECK(dinfo["config"].value("max_ack_pending", 0) >= 50'000);
  // It has acknowledged what the follower stored: only the app's interest remains.
  check_for(
      15s,
      [&](std::string& st) {
        auto d = l.js().api("$JS.API.CONSUMER.INFO." + kStream + "." + durable, nullptr);
        st = d.dump();
        return d["ack_floor"].value("stream_seq", 0) == 300;
      },
      "isthmus durable acknowledged through 300");
  CHECK(l.js().require_stream_info(kStream).messages == 300);

  // The application consumes part: the leader drops it, the replica follows.
  auto got = app.consume(120);
  REQUIRE(got.front() == 1);
  REQUIRE(got.back() == 120);
  check_for(
      15s, [&] { return l.js().require_stream_info(kStream).first_seq == 121; }, "leader dropped 1..120");
  match(l, f, kStream);
  CHECK(f.js().require_stream_info(kStream).first_seq == 121);

  // The follower's daemon is stopped: the leader keeps what it has not
  // stored even after the application consumed it.
  f.daemon.terminate();
  l.js().publish_bulk(messages("covenant.users.updated", 301, 50));
  auto rest = app.consume(230);  // 121..350
  REQUIRE(rest.back() == 350);
  std::this_thread::sleep_for(1s);
  StreamInfo held = l.js().require_stream_info(kStream);
  CHECK(held.first_seq == 301);
  CHECK(held.messages == 50);

  // Back: the follower stores them, the leader drops them, the replica follows.
  f.daemon.start();
  check_for(
      kWait, [&] { return l.js().require_stream_info(kStream).messages == 0; },
      "leader drops 301..350 once ams stored them");
  match(l, f, kStream);
  StreamInfo fi = f.js().require_stream_info(kStream);
  CHECK(fi.messages == 0);
  CHECK(fi.last_seq == 350);

  // kill -9 of the follower's daemon while deliveries are outstanding: the
  // leader replaces its durable (new one first) and still keeps everything
  // ams has not stored; nothing is lost, nothing duplicated.
  // ams's daemon is frozen (SIGSTOP) while 3000 are published: the leader
  // delivers them into its window but hears no ACK; then kill -9.
  f.daemon.process().signal(SIGSTOP);
  l.js().publish_bulk(messages("covenant.users.updated", 351, 3000), 1024);
  std::string durable_before;
  check_for(
      kWait,
      [&](std::string& st) {
        json now = l.js().api("$JS.API.CONSUMER.NAMES." + kStream, json::object())["consumers"];
        for (const auto& n : now)
          if (n.get<std::string>().rfind("isthmus_ams_", 0) == 0) durable_before = n.get<std::string>();
        json d = l.js().api("$JS.API.CONSUMER.INFO." + kStream + "." + durable_before, nullptr);
        st = d.dump();
        return d.value("num_ack_pending", 0) > 0;
      },
      "deliveries to ams outstanding at the leader");
  f.daemon.kill9();
  auto all = app.consume(3000);
  REQUIRE(all.back() == 3350);
  uint64_t stored = f.js().require_stream_info(kStream).last_seq;
  std::this_thread::sleep_for(500ms);
  StreamInfo kept = l.js().require_stream_info(kStream);
  INFO("ams had stored up to " << stored << " when killed; leader first " << kept.first_seq);
  CHECK(kept.first_seq <= stored + 1);  // nothing ams lacks was dropped
  CHECK(kept.last_seq == 3350);
  f.daemon.start();
  check_for(
      kWait, [&] { return l.js().require_stream_info(kStream).messages == 0; },
      "leader drops 351..3350 once ams stored them");
  match(l, f, kStream);
  CHECK(f.js().require_stream_info(kStream).last_seq == 3350);
  json after = l.js().api("$JS.API.CONSUMER.NAMES." + kStream, json::object())["consumers"];
  INFO("consumers before " << durable_before << ", after " << after.dump());
  std::vector<std::string> durables;
  for (const auto& n : after)
    if (n.get<std::string>().rfind("isthmus_ams_", 0) == 0) durables.push_back(n.get<std::string>());
  REQUIRE(durables.size() == 1);
  CHECK(durables[0] != durable_before);  // replaced, the old one deleted
}

// Not a test of correctness: catch-up figures for a limits stream (ephemeral
// ack-none reader) against an interest stream (durable, ack all per ACK
// frame). Hidden; run with: history_test "[perf]"
TEST_CASE("catch-up rate: ephemeral reader vs durable reader", "[.][perf]") {
  for (const char* retention : {"limits", "interest", "limits", "interest"}) {
    const std::string kStream = "COVENANT_USERS";
    TempDir tmp("isthmus-perf");
    Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
    Region& l = mesh[kLeader];
    Region& f = mesh[kFollower];
    mesh.start_nats();
    l.js().create_stream({{"name", kStream}, {"subjects", {"covenant.users.>"}}, {"retention", retention},
                          {"storage", "file"}});
    std::optional<AppConsumer> app;
    if (std::string(retention) == "interest") app.emplace(l.js(), kStream, "billing");
    const size_t n = 50'000;
    for (size_t i = 0; i < n; i += 10'000) l.js().publish_bulk(messages("covenant.users.signup", i, 10'000), 1024);
    auto t0 = Clock::now();
    mesh.start_daemons();
    check_for(
        120s, [&] { auto fi = f.js().stream_info(kStream); return fi && fi->last_seq == n; }, "caught up");
    double secs = seconds_since(t0);
    std::printf("[figures] catch-up of %zu x ~100 B, %s retention: %.2f s = %.0f msgs/s\n", n, retention, secs,
                static_cast<double>(n) / secs);
  }
}

TEST_CASE("interest retention, nats-server 2.9.10: what an application acknowledged on a replica and its server "
          "removed at a restart is reported, and a rebuild restores it",
          "[.][history][interest][restart-loss]") {
  const std::string kStream = "COVENANT_USERS";
  TempDir tmp("isthmus-anchor-loss");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kStream, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  l.js().create_stream(users_config(kStream));
  AppConsumer billing(l.js(), kStream, "billing");  // at the leader: keeps everything there
  l.js().publish_bulk(messages("covenant.users.created", 0, 100), 256);
  l.js().publish_bulk(messages("covenant.users.updated", 100, 100), 256);
  l.js().publish_bulk(messages("covenant.users.created", 200, 100), 256);
  mesh.start_daemons();
  match(l, f, kStream);

  // In ams an application reads the updates (101..200) from the replica
  // and acknowledges them; the retention anchor keeps them.
  {
    AppConsumer audit(f.js(), kStream, "audit", "covenant.users.updated");
    auto got = audit.consume(100);
    REQUIRE(got.front() == 101);
    REQUIRE(got.back() == 200);
  }
  check_for(
      10s, [&] { return f.js().require_stream_info(kStream).messages == 300; },
      "ams's replica keeps what its application acknowledged");

  // ams's nats-server restarted (the daemon stopped first, as the unit's
  // PartOf= does): 2.9.10 may recover the anchor, which never acknowledged
  // anything, as if it had acknowledged everything, and remove what the
  // application's acknowledgement floor covers, 1..200 (its filter skipped
  // 1..100). Not at every restart (the order it recovers the two consumers
  // in, it seems): restarted until it does, at most 12 times.
  REQUIRE(f.daemon.terminate().exited);
  StreamInfo after;
  int restarts = 0;
  do {
    f.nats.restart();
    ++restarts;
    after = f.js().require_stream_info(kStream);
  } while (after.messages == 300 && restarts < 12);
  std::printf("[figures] restart-loss: ams's replica after %d restart(s) of its server: %llu messages, %llu..%llu\n",
              restarts, static_cast<unsigned long long>(after.messages),
              static_cast<unsigned long long>(after.first_seq), static_cast<unsigned long long>(after.last_seq));
  REQUIRE(after.messages < 300);  // (the defect this case is about; fixed in a later nats-server)
  f.daemon.start();
  std::string detail;
  check_for(
      30s,
      [&](std::string& state) {
        auto s = f.daemon.lag_stream(kStream);
        state = s ? s->dump() : "no entry";
        if (!s) return false;
        detail = s->value("detail", "");
        if (s->value("state", "") == "diverged") return true;
        for (const auto& e : s->value("followers", json::array()))
          if (e.value("region", "") == kFollower && e.contains("missing")) return true;
        return false;
      },
      "ams /v1/lag: the messages its server removed reported");
  // At the replica's front: diverged, naming them.
  CHECK(detail == "messages the leader holds are missing from the replica: sequences " +
                      std::to_string(l.js().require_stream_info(kStream).first_seq) + " to " +
                      std::to_string(after.first_seq - 1) +
                      " (purged or deleted outside Isthmus); only a rebuild brings them back");
  CHECK(f.daemon.http_get("/healthz").status == 503);
  auto r = f.daemon.http_post("/v1/streams/" + kStream + "/rebuild");
  INFO(r.status << " " << r.body);
  REQUIRE(r.status == 202);
  await_follower_state(f, kStream, "replicating", "", 60s, "again after the rebuild");
  match(l, f, kStream);
  CHECK(f.js().require_stream_info(kStream).messages == 300);
}
