// SIGHUP reload (docs/configuration.md, "Reload"): two regions (iad leads,
// ams follows), each a real nats-server and a real isthmusd. A reload
// applies the reloadable keys (log format and level, a stream added, a
// peer's address, also a host name resolved slowly), refuses a file with errors or with a change that needs a
// restart (naming the file and line, or the keys) and then changes nothing;
// replication goes on through all of it. Streams removed by reload, the
// follower first or the leader first, stop at both ends and say so, and
// added back they resume. A third region added by reload follows from the
// first sequence; removed, its link closes and its durable readers go. A
// stream's leader changed by reload (a switchover) makes the old leader
// and a third region follow the new one, with nothing diverged or lost.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "harness.h"

using namespace harness;
using nlohmann::json;

namespace {

const std::string kLeader = "iad";
const std::string kFollower = "ams";
const std::string kFirst = "COVENANT_COUNTRIES";
const std::string kAdded = "ALERTS_INCIDENTS";

std::vector<OutMsg> messages(const std::string& subject, size_t from, size_t count) {
  std::vector<OutMsg> out;
  for (size_t i = from; i < from + count; ++i) {
    OutMsg m;
    m.subject = subject;
    m.payload = "{\"n\":" + std::to_string(i) + "}";
    out.push_back(std::move(m));
  }
  return out;
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// Sends SIGHUP and waits until the daemon's log has one more line with
// `expect` than before; returns the log.
std::string reload(Region& r, const std::string& expect) {
  const size_t before = count_of(read_file(r.daemon.log_path()), expect);
  r.daemon.process().signal(SIGHUP);
  std::string log;
  check_for(
      10s,
      [&](std::string& st) {
        r.daemon.ensure_running("after SIGHUP");
        log = read_file(r.daemon.log_path());
        st = tail_file(r.daemon.log_path(), 5);
        return count_of(log, expect) > before;
      },
      r.name + " logs '" + expect + "' after SIGHUP");
  return log;
}

// The follower's replica holds the leader's last sequence.
void replicated(Region& l, Region& f, const std::string& stream, const std::string& when) {
  check_for(
      30s,
      [&](std::string& st) {
        l.daemon.ensure_running(when);
        f.daemon.ensure_running(when);
        auto li = l.js().require_stream_info(stream);
        auto fi = f.js().stream_info(stream);
        st = "leader last " + std::to_string(li.last_seq) + ", replica " +
             (fi ? std::to_string(fi->last_seq) : std::string("missing"));
        return fi && fi->last_seq == li.last_seq && fi->messages == li.messages;
      },
      stream + " replicated to " + f.name + " " + when);
}

json link_to(Region& r, const std::string& peer) {
  auto res = r.daemon.http_get("/v1/links");
  if (res.status != 200) throw std::runtime_error("/v1/links " + std::to_string(res.status));
  const json all = json::parse(res.body);
  for (const auto& p : all["links"]) {
    if (p.value("peer", "") == peer) return p;
  }
  throw std::runtime_error("no link to " + peer + " in " + res.body);
}

// Whether r's link to peer is up (`up`) or not, and, when `address` is
// given, dialed at it; `st` says what was seen.
bool link_is(Region& r, const std::string& peer, bool up, std::string& st, const std::string& address = "") {
  json p = link_to(r, peer);
  st = p.dump();
  return (p.value("state", "") == "up") == up && (address.empty() || p.value("address", "") == address);
}

}  // namespace

TEST_CASE("SIGHUP applies reloadable changes, refuses the rest by name, and replication goes on", "[reload]") {
  TempDir tmp("isthmus-reload");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kFirst, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  l.js().create_stream({{"name", kFirst}, {"subjects", {"covenant.countries.>"}}, {"storage", "file"},
                        {"num_replicas", 1}});
  l.js().create_stream({{"name", kAdded},
                        {"subjects", {"alerts.incidents.>"}},
                        {"retention", "limits"},
                        {"max_msgs", 10000},
                        {"discard", "new"},
                        {"storage", "file"},
                        {"num_replicas", 1}});
  l.js().publish_bulk(messages("covenant.countries.created", 1, 50));
  l.js().publish_bulk(messages("alerts.incidents.opened", 1, 30));  // history before it is configured
  // ams resolves *.slow.test slowly (tests/tools/slowresolve), for the
  // host-name address below.
  {
    Process::Env env = {{"LD_PRELOAD", env_or("ISTHMUS_BUILD_DIR", "") + "/tests/tools/slowresolve/libslowresolve.so"},
                        {"SLOWRESOLVE_MS", "3000"}};
    const std::string asan = env_or("ASAN_OPTIONS", "");
    if (!asan.empty()) env.push_back({"ASAN_OPTIONS", asan + ":verify_asan_link_order=0"});
    f.daemon.set_env(env);
  }
  mesh.start_daemons();
  replicated(l, f, kFirst, "at start");
  REQUIRE_FALSE(f.js().stream_info(kAdded).has_value());

  // The status page (GET /): the health, lag and links tables as HTML.
  {
    auto page = f.daemon.http_get("/");
    CHECK(page.status == 200);
    CHECK(page.header("Content-Type") == "text/html; charset=utf-8");
    CHECK(page.body.find("<title>isthmusd ams: ok</title>") != std::string::npos);
    CHECK(page.body.find(kFirst + "  follower  iad") != std::string::npos);
    CHECK(page.body.find("replicating") != std::string::npos);
    CHECK(page.body.find("<meta http-equiv=\"refresh\" content=\"2\">") != std::string::npos);
    CHECK(f.daemon.http_get("/?refresh=0").body.find("http-equiv") == std::string::npos);
    CHECK(f.daemon.http_get("/?refresh=soon").status == 400);
  }

  // Nothing changed.
  reload(f, "reloaded: nothing changed");

  // A key with a line break, refused: the text log escapes it (it wrote a
  // second line of the key's choosing).
  {
    const std::string good = read_file(l.daemon.config_path());
    write_file(l.daemon.config_path(), good + "\"x\\n2026-11-28T13:00:00.000 info FORGED\" = 1\n");
    const std::string text = reload(l, "reload refused: ");
    CHECK(text.find("\n2026-11-28T13:00:00.000 info FORGED") == std::string::npos);
    CHECK(text.find("x\\n2026-11-28T13:00:00.000 info FORGED") != std::string::npos);
    write_file(l.daemon.config_path(), good);
    reload(l, "reloaded: nothing changed");
  }

  // Log format and level: the reload's own line is already JSON. (The
  // harness writes the [log] table last: `extra` lands in it.)
  f.daemon.config().extra = "format = \"json\"";
  f.daemon.config().log_level = "debug";
  f.daemon.write_config();
  std::string log = reload(f, "reloaded: log.level, log.format");
  CHECK(log.find("{\"ts\":") != std::string::npos);
  CHECK(log.find("\"level\":\"warning\",\"msg\":\"SIGHUP: configuration " + f.daemon.config_path() +
                 " reloaded: log.level, log.format\"") != std::string::npos);

  // A file with an error: named with its line, nothing applied.
  const std::string good = read_file(f.daemon.config_path());
  write_file(f.daemon.config_path(), good + "\n[bogus]\nkey = 1\n");
  log = reload(f, "reload refused: ");
  CHECK(log.find(f.daemon.config_path() + ":") != std::string::npos);
  CHECK(log.find("bogus") != std::string::npos);
  {
    // Seen in /healthz and /metrics too, and the daemon stays healthy.
    auto h = f.daemon.http_get("/healthz");
    INFO(h.body);
    CHECK(h.status == 200);
    json hj = json::parse(h.body);
    CHECK(hj["config"].value("last_reload_ok", true) == false);
    CHECK(hj["config"].value("last_reload_error", "").find("bogus") != std::string::npos);
    auto m = f.daemon.http_get("/metrics");
    CHECK(m.body.find("isthmus_config_last_reload_successful{region=\"ams\"} 0\n") != std::string::npos);
    // And on the status page (isthmusctl health's table), healthy all the same.
    auto page = f.daemon.http_get("/?refresh=0").body;
    CHECK(page.find("<title>isthmusd ams: ok</title>") != std::string::npos);
    CHECK(page.find("the last reload was refused: " + f.daemon.config_path() + ":") != std::string::npos);
  }
  l.js().publish_bulk(messages("covenant.countries.updated", 51, 20));
  replicated(l, f, kFirst, "after a refused reload");

  // A change that needs a restart: named, nothing applied (the new stream
  // in the same file is not added either).
  write_file(f.daemon.config_path(), good);
  f.daemon.config().streams.push_back({kAdded, kLeader});
  const uint16_t listen = f.daemon.config().link_port;
  f.daemon.config().link_port = free_port();
  f.daemon.write_config();
  f.daemon.config().link_port = listen;
  log = reload(f, "reload refused: a restart is needed for: link.listen (");
  CHECK(f.daemon.lag_stream(kAdded) == std::nullopt);

  // A stream added at both ends, the follower first: it asks until the
  // leader has it too, then syncs its history and replicates.
  f.daemon.write_config();
  reload(f, "streams[1].name ALERTS_INCIDENTS added");
  check_for(
      10s,
      [&](std::string& st) {
        auto s = f.daemon.lag_stream(kAdded);
        st = s ? s->dump() : "not listed";
        return s.has_value();
      },
      "ams lists the added stream");
  l.daemon.config().streams.push_back({kAdded, kLeader});
  l.daemon.write_config();
  reload(l, "streams[1].name ALERTS_INCIDENTS added");
  {
    auto m = f.daemon.http_get("/metrics");
    CHECK(m.body.find("isthmus_config_last_reload_successful{region=\"ams\"} 1\n") != std::string::npos);
    CHECK(json::parse(f.daemon.http_get("/healthz").body)["config"].value("reloads", 0) == 5);
  }
  l.js().publish_bulk(messages("alerts.incidents.opened", 31, 20));
  replicated(l, f, kAdded, "after the stream was added by reload");
  replicated(l, f, kFirst, "after the stream was added by reload");
  CHECK(f.js().require_stream_info(kAdded).first_seq == 1);
  check_for(
      15s,
      [&](std::string& st) {
        auto s = l.daemon.lag_stream(kAdded);
        st = s ? s->dump() : "not listed";
        return s && s->value("state", "") == "replicating" && s->contains("followers") &&
               (*s)["followers"].size() == 1 && (*s)["followers"][0].value("seq_lag", json()) == 0 &&
               (*s)["followers"][0].value("state", "") == "replicating";
      },
      "iad reports the added stream replicating to ams with no lag");

  // A stream led by ams, which led none (so it watches the API advisories
  // from now on: a delete at ams reaches iad within seconds, not at the
  // next 30 s reconcile).
  const std::string kOwn = "AMS_EVENTS";
  f.js().create_stream({{"name", kOwn}, {"subjects", {"ams.events.>"}}, {"storage", "file"}, {"num_replicas", 1}});
  f.js().publish_bulk(messages("ams.events.seen", 1, 10));
  f.daemon.config().streams.push_back({kOwn, kFollower});
  f.daemon.write_config();
  reload(f, "streams[2].name AMS_EVENTS added");
  l.daemon.config().streams.push_back({kOwn, kFollower});
  l.daemon.write_config();
  reload(l, "streams[2].name AMS_EVENTS added");
  replicated(f, l, kOwn, "after a stream led by ams was added by reload");
  f.js().delete_msg(kOwn, 5);
  check_for(
      8s,
      [&](std::string& st) {
        auto li = l.js().require_stream_info(kOwn);
        st = "iad's replica holds " + std::to_string(li.messages);
        return li.messages == 9;
      },
      "the delete at ams replicated to iad promptly (advisories watched)");

  // A peer's address: ams dials iad (names sort). Pointed by reload at a
  // black hole (a port that takes TCP connections and never answers, with a
  // long handshake_timeout): the link that is up stays up; once it drops,
  // ams's attempt hangs there. Set back, the attempt is dropped and the old
  // address dialed at once (it used to wait out the handshake timeout).
  REQUIRE(f.daemon.config().peers.size() == 1);
  const uint16_t hole = free_port();
  const int hole_fd = listen_loopback(hole, 16, "black hole");
  f.daemon.config().link_extra = "handshake_timeout = \"60s\"";
  f.daemon.config().peers[0].address = "127.0.0.1:" + std::to_string(hole);
  f.daemon.write_config();
  reload(f, "peer iad is now at 127.0.0.1:" + std::to_string(hole));
  check_stays(
      1s, [&](std::string& st) { return link_is(f, kLeader, true, st); },
      "the link that is up stays up after the address changed");
  l.daemon.restart();  // the link drops; iad listens again on its port
  check_stays(
      3s, [&](std::string& st) { return link_is(f, kLeader, false, st, "127.0.0.1:" + std::to_string(hole)); },
      "ams keeps trying the address the reload gave it");
  // A host name, resolved off the loop thread: one that does not resolve
  // says so in the link's last close (and the daemon keeps answering);
  // "localhost" links.
  const std::string port = std::to_string(l.daemon.config().link_port);
  f.daemon.config().peers[0].address = "no-such-region.invalid:" + port;
  f.daemon.write_config();
  reload(f, "peer iad is now at no-such-region.invalid:" + port);
  check_for(
      40s,
      [&](std::string& st) {
        json p = link_to(f, kLeader);
        st = p.dump();
        return p.value("state", "") != "up" &&
               p.value("last_close_detail", "").find("cannot resolve no-such-region.invalid") != std::string::npos;
      },
      "ams's link to iad at a name that does not resolve says so");
  f.daemon.config().peers[0].address = "localhost:" + port;
  f.daemon.write_config();
  reload(f, "peer iad is now at localhost:" + port);
  check_for(
      10s, [&](std::string& st) { return link_is(f, kLeader, true, st, "localhost:" + port); },
      "ams's link to iad up at once at localhost, the address set by reload");
  // A resolver that takes 3 s for each answer: the link comes up at the
  // name once it answers, and the daemon's HTTP API (on the loop thread,
  // like the links) answers promptly all along (a blocking lookup held the
  // loop for the whole 3 s at every dial).
  f.daemon.config().peers[0].address = "iad.slow.test:" + port;
  f.daemon.write_config();
  reload(f, "peer iad is now at iad.slow.test:" + port);
  l.daemon.restart();  // the link drops; ams dials the slow name
  {
    int64_t slowest_ms = 0, polls_while_down = 0;
    check_for(
        20s,
        [&](std::string& st) {
          const auto t0 = std::chrono::steady_clock::now();
          auto res = f.daemon.http_get("/healthz");
          const auto ms =
              std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
          slowest_ms = std::max<int64_t>(slowest_ms, ms);
          bool up = link_is(f, kLeader, true, st, "iad.slow.test:" + port);
          if (!up) ++polls_while_down;
          st += "; /healthz " + std::to_string(res.status) + " in " + std::to_string(ms) + " ms";
          return up;
        },
        "ams's link to iad up at a name that takes 3 s to resolve");
    INFO("polls while the link was down: " << polls_while_down);
    CHECK(polls_while_down >= 10);
    CHECK(slowest_ms < 2000);  // (it took the whole 3 s when the loop resolved)
  }
  ::close(hole_fd);
  f.daemon.config().peers[0].address.clear();
  f.daemon.write_config();
  reload(f, "peer iad is now at 127.0.0.1:" + port);

  // The redial backoff: raised while the link is up, the next loss waits
  // it (10-20 s); set back, the waiting redial starts over from the new
  // minimum at once (it used to wait out the old one).
  f.daemon.config().link_extra = "handshake_timeout = \"60s\"\nbackoff_min = \"20s\"\nbackoff_max = \"40s\"";
  f.daemon.write_config();
  reload(f, "reloaded: link.backoff_min, link.backoff_max");
  l.daemon.restart();
  check_stays(
      2s, [&](std::string& st) { return link_is(f, kLeader, false, st); },
      "ams waits out the raised backoff before it dials iad again");
  f.daemon.config().link_extra = "handshake_timeout = \"60s\"";
  f.daemon.write_config();
  reload(f, "reloaded: link.backoff_min, link.backoff_max");
  check_for(
      5s, [&](std::string& st) { return link_is(f, kLeader, true, st); },
      "ams's link to iad up again soon after the backoff was set back by reload");
  // The level: debug lines (connection attempts) since it was set.
  CHECK(read_file(f.daemon.log_path()).find("\"level\":\"debug\"") != std::string::npos);
  l.js().publish_bulk(messages("covenant.countries.updated", 71, 20));
  l.js().publish_bulk(messages("alerts.incidents.opened", 51, 20));
  replicated(l, f, kFirst, "at the end");
  replicated(l, f, kAdded, "at the end");
  f.js().publish_bulk(messages("ams.events.seen", 11, 5));
  replicated(f, l, kOwn, "at the end");
}

namespace {

void remove_stream(Region& r, const std::string& stream) {
  auto& v = r.daemon.config().streams;
  v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& s) { return s.name == stream; }), v.end());
  r.daemon.write_config();
}

std::vector<std::string> durables(Region& r, const std::string& stream) {
  std::vector<std::string> out;
  const json names = r.js().api("$JS.API.CONSUMER.NAMES." + stream, json::object());
  for (const auto& n : names.value("consumers", json::array())) {
    if (n.get<std::string>().rfind("isthmus_", 0) == 0) out.push_back(n.get<std::string>());
  }
  return out;
}

// The leader's reader of `stream` for the follower is one durable.
void await_one_durable(Region& l, const std::string& stream, const std::string& when) {
  check_for(
      10s,
      [&](std::string& st) {
        auto d = durables(l, stream);
        st = std::to_string(d.size()) + " durables";
        return d.size() == 1;
      },
      "iad reads " + stream + " for ams through a durable" + when);
}

// iad's /healthz, /metrics and status page report `n` durables left on
// `stream` (removed at a restart), and iad stays healthy.
void await_leftover(Region& l, const std::string& stream, size_t n, const std::string& when) {
  const std::string metric = "isthmus_leftover_durables{region=\"iad\",stream=\"" + stream + "\"} ";
  check_for(
      15s,
      [&](std::string& st) {
        auto h = l.daemon.http_get("/healthz");
        st = h.body;
        if (h.status != 200) return false;
        const json left = json::parse(h.body).value("leftover_durables", json::object());
        const size_t found = left.contains(stream) ? left[stream].size() : 0;
        if (found != n) return false;
        const std::string m = l.daemon.http_get("/metrics").body;
        const std::string page = l.daemon.http_get("/?refresh=0").body;
        st += "; metrics and page disagree";
        const bool in_page = page.find(stream + ", removed at a restart, still has isthmus_ams_") != std::string::npos;
        if (n == 0) return m.find(metric) == std::string::npos && !in_page;
        return m.find(metric + std::to_string(n) + "\n") != std::string::npos && in_page &&
               page.find("nats consumer rm " + stream + " isthmus_ams_") != std::string::npos;
      },
      "iad reports " + std::to_string(n) + " durable(s) left on " + stream + " " + when);
}

// The leader's row for `follower` on `stream`.
json leader_row(Region& l, const std::string& stream) {
  auto s = l.daemon.lag_stream(stream);
  if (!s || !s->contains("followers") || (*s)["followers"].empty()) return json();
  return (*s)["followers"][0];
}

}  // namespace

TEST_CASE("streams removed by reload stop at both ends, the leader's durable readers are deleted, and added back "
          "they resume",
          "[reload][remove]") {
  const std::string kUsers = "COVENANT_USERS";  // interest: a durable reader per follower
  TempDir tmp("isthmus-reload-remove");
  Mesh mesh(tmp, {kLeader, kFollower}, {{kFirst, kLeader}, {kUsers, kLeader}, {kAdded, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  mesh.start_nats();
  l.js().create_stream({{"name", kFirst}, {"subjects", {"covenant.countries.>"}}, {"num_replicas", 1}});
  l.js().create_stream(
      {{"name", kUsers}, {"subjects", {"covenant.users.>"}}, {"retention", "interest"}, {"num_replicas", 1}});
  l.js().create_stream({{"name", kAdded}, {"subjects", {"alerts.incidents.>"}}, {"num_replicas", 1}});
  // An application's consumer keeps the interest stream's messages at iad
  // whatever Isthmus does.
  l.js().api("$JS.API.CONSUMER.DURABLE.CREATE." + kUsers + ".billing",
             {{"stream_name", kUsers},
              {"config", {{"durable_name", "billing"}, {"ack_policy", "explicit"}, {"deliver_policy", "all"}}}});
  l.js().publish_bulk(messages("covenant.countries.created", 1, 20));
  l.js().publish_bulk(messages("covenant.users.signup", 1, 20));
  l.js().publish_bulk(messages("alerts.incidents.opened", 1, 20));
  mesh.start_daemons();
  replicated(l, f, kFirst, "at start");
  replicated(l, f, kUsers, "at start");
  replicated(l, f, kAdded, "at start");
  await_one_durable(l, kUsers, "");

  // The follower first: ams stops following, tells iad, and its replica
  // stays as it was while iad takes in more.
  remove_stream(f, kUsers);
  std::string log = reload(f, "reloaded: streams[1].name " + kUsers + " removed");
  CHECK(log.find("stream " + kUsers + ": removed by reload (iad leads it): no longer followed") != std::string::npos);
  CHECK_FALSE(f.daemon.lag_stream(kUsers).has_value());
  auto shows_stopped = [&](std::chrono::seconds within, const std::string& when) {
    check_for(
        within,
        [&](std::string& st) {
          json row = leader_row(l, kUsers);
          st = row.dump();
          return row.value("state", "") == "stopped" &&
                 row.value("detail", "") == "stream " + kUsers + " was removed from region ams's configuration";
        },
        "iad's row for ams on " + kUsers + " reads stopped, saying why, " + when);
  };
  shows_stopped(10s, "after ams's reload");
  // It stays so across a link drop: iad's daemon restarted (ams says it
  // again when the link is back), then ams's (iad remembers it).
  auto still_stopped = [&](const std::string& when) {
    check_for(
        10s, [&](std::string& st) { return link_is(l, kFollower, true, st); }, "the link up again after " + when);
    shows_stopped(5s, "after " + when);
  };
  l.daemon.restart();
  still_stopped("iad restarted");
  f.daemon.restart();
  still_stopped("ams restarted");
  l.js().publish_bulk(messages("covenant.users.signup", 21, 10));
  l.js().publish_bulk(messages("covenant.countries.created", 21, 10));
  replicated(l, f, kFirst, "while " + kUsers + " is removed at ams");
  CHECK(f.js().require_stream_info(kUsers).last_seq == 20);
  CHECK(durables(l, kUsers).size() == 1);  // iad still replicates it (to nobody now)
  {
    auto h = f.daemon.http_get("/healthz");
    INFO(h.body);
    CHECK(h.status == 200);
    CHECK(f.daemon.http_get("/metrics").body.find("stream=\"" + kUsers + "\"") == std::string::npos);
  }
  // Then the leader: its durable reader goes, the stream's messages stay
  // (the application's consumer has not read them).
  remove_stream(l, kUsers);
  log = reload(l, "reloaded: streams[1].name " + kUsers + " removed");
  CHECK(log.find("stream " + kUsers + ": removed by reload (this region led it)") != std::string::npos);
  check_for(
      10s,
      [&](std::string& st) {
        auto d = durables(l, kUsers);
        st = std::to_string(d.size()) + " durables; log: " + tail_file(l.daemon.log_path(), 3);
        return d.empty() && read_file(l.daemon.log_path()).find("stream " + kUsers + ": deleted durable isthmus_ams_") !=
                                std::string::npos;
      },
      "iad deletes its durable reader of " + kUsers + " for ams");
  CHECK(l.js().require_stream_info(kUsers).messages == 30);
  CHECK_FALSE(l.daemon.lag_stream(kUsers).has_value());

  // The leader first: ams's replica stops in error, said at once (not after
  // a timeout), and asks again until it is removed there too.
  remove_stream(l, kAdded);
  reload(l, "reloaded: streams[1].name " + kAdded + " removed");
  const std::string not_lead = "leader iad: region iad does not lead stream " + kAdded;
  check_for(
      5s,
      [&](std::string& st) {
        auto s = f.daemon.lag_stream(kAdded);
        st = s ? s->dump() : "not listed";
        return s && s->value("state", "") == "error" && s->value("detail", "") == not_lead;
      },
      "ams: " + kAdded + " in error once iad no longer leads it");
  {
    auto h = f.daemon.http_get("/healthz");
    INFO(h.body);
    CHECK(h.status == 503);
    CHECK(h.body.find(not_lead) != std::string::npos);
  }
  l.js().publish_bulk(messages("alerts.incidents.opened", 21, 10));
  check_stays(
      2s,
      [&](std::string& st) {
        auto s = f.daemon.lag_stream(kAdded);
        st = s ? s->dump() : "not listed";
        // (Its retry every 2 s reads `starting` while it asks.)
        return f.js().require_stream_info(kAdded).last_seq == 20 && s &&
               (s->value("state", "") == "error" || s->value("state", "") == "starting");
      },
      "ams's replica of " + kAdded + " stays at 20, in error");
  remove_stream(f, kAdded);
  reload(f, "reloaded: streams[1].name " + kAdded + " removed");
  check_for(
      5s,
      [&](std::string& st) {
        auto h = f.daemon.http_get("/healthz");
        st = h.body;
        return h.status == 200;
      },
      "ams healthy once it no longer follows " + kAdded + " either");

  // Added back at both ends, the leader first (its rows for ams stay
  // stopped until ams asks): each resumes from its
  // replica's last sequence, nothing written twice, and what was published
  // meanwhile arrives.
  l.daemon.config().streams.push_back({kAdded, kLeader});
  l.daemon.config().streams.push_back({kUsers, kLeader});
  l.daemon.write_config();
  reload(l, kUsers + " added");
  for (const auto& stream : {kUsers, kAdded}) {  // (ams removed ALERTS after iad did: told all the same)
    json row = leader_row(l, stream);
    INFO(stream << ": " << row.dump());
    CHECK(row.value("state", "") == "stopped");
  }
  f.daemon.config().streams.push_back({kAdded, kLeader});
  f.daemon.config().streams.push_back({kUsers, kLeader});
  f.daemon.write_config();
  reload(f, kUsers + " added");
  l.js().publish_bulk(messages("alerts.incidents.opened", 31, 5));
  l.js().publish_bulk(messages("covenant.users.signup", 31, 5));
  replicated(l, f, kAdded, "after it was added back");
  check_for(
      20s,
      [&](std::string& st) {
        auto li = l.js().require_stream_info(kUsers);
        auto fi = f.js().require_stream_info(kUsers);
        st = "leader last " + std::to_string(li.last_seq) + ", replica last " + std::to_string(fi.last_seq) + ", " +
             std::to_string(fi.messages) + " messages";
        return fi.last_seq == 35 && fi.messages == 35;
      },
      kUsers + " replicated again after it was added back, the messages of its absence too");
  for (const auto& stream : {kAdded, kUsers}) {
    auto s = f.daemon.lag_stream(stream);
    REQUIRE(s);
    INFO(s->dump());
    CHECK(s->value("state", "") == "replicating");
    CHECK((*s)["followers"][0].value("apply_errors", 1) == 0);
  }
  CHECK(f.daemon.http_get("/healthz").status == 200);

  // Removed at a restart instead of a reload: the durable reader stays (a
  // configuration that lost a stream by mistake must not cost ams what the
  // application consumes meanwhile), and iad's daemon names it at start.
  await_one_durable(l, kUsers, " again");
  remove_stream(l, kUsers);
  l.daemon.restart();
  check_for(
      10s,
      [&](std::string& st) {
        st = tail_file(l.daemon.log_path(), 3);
        return read_file(l.daemon.log_path())
                   .find("stream " + kUsers + " is not in this daemon's configuration, yet Isthmus' durable "
                         "reader(s) isthmus_ams_") != std::string::npos;
      },
      "iad, restarted without " + kUsers + ", names the durable reader left on it");
  CHECK(durables(l, kUsers).size() == 1);
  // ... and /healthz, the metric and the status page show it (healthy all
  // the same) until the stream is added back (its durable in use again).
  await_leftover(l, kUsers, 1, "after the restart without " + kUsers);

  // Added back and removed again by reload while iad's nats-server is
  // down: the durable goes once the server is back.
  l.daemon.config().streams.push_back({kUsers, kLeader});
  l.daemon.write_config();
  reload(l, kUsers + " added");
  await_leftover(l, kUsers, 0, "once " + kUsers + " is added back");
  l.js().publish(messages("covenant.users.signup", 36, 1)[0]);
  check_for(
      20s,
      [&](std::string& st) {
        auto fi = f.js().require_stream_info(kUsers);
        st = "replica last " + std::to_string(fi.last_seq);
        return fi.last_seq == 36;
      },
      kUsers + " replicated after it was added back at iad");
  l.drop_js();
  l.nats.stop();
  remove_stream(l, kUsers);
  reload(l, "reloaded: streams[");
  l.nats.start();
  check_for(
      20s,
      [&](std::string& st) {
        auto d = durables(l, kUsers);
        st = std::to_string(d.size()) + " durables; log: " + tail_file(l.daemon.log_path(), 3);
        return d.empty();
      },
      "iad deletes its durable reader of " + kUsers + " once its nats-server is back");

  // Removed at a restart again, and the durable deleted by hand, as the
  // warning says: the daemon notices.
  l.daemon.config().streams.push_back({kUsers, kLeader});
  l.daemon.write_config();
  reload(l, kUsers + " added");
  await_one_durable(l, kUsers, " once more");
  remove_stream(l, kUsers);
  l.daemon.restart();
  await_leftover(l, kUsers, 1, "after a second restart without " + kUsers);
  for (const auto& d : durables(l, kUsers)) l.js().api("$JS.API.CONSUMER.DELETE." + kUsers + "." + d, json::object());
  await_leftover(l, kUsers, 0, "once its durable is deleted by hand");
}

namespace {

// r's /v1/lag row for `region` on `stream` (a leader's, one per follower).
json row_for(Region& r, const std::string& stream, const std::string& region) {
  auto s = r.daemon.lag_stream(stream);
  if (!s) return json();
  for (const auto& f : s->value("followers", json::array())) {
    if (f.value("region", "") == region) return f;
  }
  return json();
}

bool lists_peer(Region& r, const std::string& peer) {
  const json all = json::parse(r.daemon.http_get("/v1/links").body);
  for (const auto& p : all["links"]) {
    if (p.value("peer", "") == peer) return true;
  }
  return false;
}

// The regions of Isthmus durables (isthmus_<region>_<n>), sorted.
std::vector<std::string> regions_of(const std::vector<std::string>& durables) {
  std::vector<std::string> out;
  for (const auto& d : durables) {
    if (d == "isthmus_retention_anchor") continue;  // a replica's (or a promoted one's)
    const std::string rest = d.substr(std::string("isthmus_").size());
    out.push_back(rest.substr(0, rest.rfind('_')));
  }
  std::sort(out.begin(), out.end());
  return out;
}

void remove_peer(Region& r, const std::string& peer) {
  auto& v = r.daemon.config().peers;
  v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& p) { return p.name == peer; }), v.end());
  r.daemon.write_config();
}

}  // namespace

TEST_CASE("regions added by reload follow the streams led here from their first sequence; removed, their links "
          "close and their durable readers go",
          "[reload][peers]") {
  const std::string kUsers = "COVENANT_USERS";  // interest: a durable reader per follower
  // syd sorts after iad and ams (they dial it); akl before both (it dials them).
  const std::string kLate = "syd";
  const std::string kEarly = "akl";
  TempDir tmp("isthmus-reload-peers");
  Mesh mesh(tmp, {kLeader, kFollower, kLate, kEarly}, {{kFirst, kLeader}, {kUsers, kLeader}});
  Region& l = mesh[kLeader];
  Region& f = mesh[kFollower];
  Region& late = mesh[kLate];
  Region& early = mesh[kEarly];
  // iad and ams start without syd and akl (whose own configurations list
  // every region).
  auto peer_entry = [](Region& r, const std::string& name) {
    auto& v = r.daemon.config().peers;
    return *std::find_if(v.begin(), v.end(), [&](const auto& p) { return p.name == name; });
  };
  const auto late_at_iad = peer_entry(l, kLate), early_at_iad = peer_entry(l, kEarly);
  const auto late_at_ams = peer_entry(f, kLate), early_at_ams = peer_entry(f, kEarly);
  for (Region* r : {&l, &f}) {
    remove_peer(*r, kLate);
    remove_peer(*r, kEarly);
  }
  mesh.start_nats();
  l.js().create_stream({{"name", kFirst}, {"subjects", {"covenant.countries.>"}}, {"num_replicas", 1}});
  l.js().create_stream(
      {{"name", kUsers}, {"subjects", {"covenant.users.>"}}, {"retention", "interest"}, {"num_replicas", 1}});
  // An application's consumer keeps the interest stream's messages at iad.
  l.js().api("$JS.API.CONSUMER.DURABLE.CREATE." + kUsers + ".billing",
             {{"stream_name", kUsers},
              {"config", {{"durable_name", "billing"}, {"ack_policy", "explicit"}, {"deliver_policy", "all"}}}});
  l.js().publish_bulk(messages("covenant.countries.created", 1, 30));
  l.js().publish_bulk(messages("covenant.users.signup", 1, 30));
  l.daemon.spawn();
  f.daemon.spawn();
  l.daemon.wait_http();
  f.daemon.wait_http();
  replicated(l, f, kFirst, "at start");
  replicated(l, f, kUsers, "at start");
  CHECK(regions_of(durables(l, kUsers)) == std::vector<std::string>{"ams"});
  CHECK_FALSE(lists_peer(l, kLate));

  // Both added at iad and ams, then started: they copy the history and
  // follow, and link up with each other and with ams.
  l.daemon.config().peers.push_back(late_at_iad);
  l.daemon.config().peers.push_back(early_at_iad);
  l.daemon.write_config();
  f.daemon.config().peers.push_back(late_at_ams);
  f.daemon.config().peers.push_back(early_at_ams);
  f.daemon.write_config();
  reload(l, "peers[1].name " + kLate + " added, peers[2].name " + kEarly + " added");
  reload(f, "peers[1].name " + kLate + " added, peers[2].name " + kEarly + " added");
  CHECK(lists_peer(l, kLate));
  CHECK(lists_peer(l, kEarly));
  late.daemon.spawn();
  early.daemon.spawn();
  late.daemon.wait_http();
  early.daemon.wait_http();
  l.js().publish_bulk(messages("covenant.countries.updated", 31, 10));
  l.js().publish_bulk(messages("covenant.users.signup", 31, 10));
  for (Region* r : {&f, &late, &early}) {
    replicated(l, *r, kFirst, "after syd and akl were added");
    replicated(l, *r, kUsers, "after syd and akl were added");
  }
  for (Region* r : {&late, &early}) {
    for (const auto& stream : {kFirst, kUsers}) {
      auto d = compare_streams(l.js().read_stream(stream), r->js().read_stream(stream), kLeader);
      INFO(r->name << " " << stream << ": " << (d.problems.empty() ? "" : d.problems.front()));
      CHECK(d.compared == 40);
      CHECK(d.mismatches == 0);
    }
  }
  check_for(
      10s,
      [&](std::string& st) {
        st = link_to(f, kLate).dump() + "; " + link_to(f, kEarly).dump() + "; " + row_for(l, kUsers, kEarly).dump();
        return link_to(f, kLate).value("state", "") == "up" && link_to(f, kEarly).value("state", "") == "up" &&
               link_to(late, kEarly).value("state", "") == "up" &&
               row_for(l, kUsers, kLate).value("state", "") == "replicating" &&
               row_for(l, kUsers, kEarly).value("state", "") == "replicating";
      },
      "every link up, iad's rows for syd and akl replicating");
  CHECK(regions_of(durables(l, kUsers)) == std::vector<std::string>{"akl", "ams", "syd"});
  for (Region* r : {&l, &f, &late, &early}) {
    auto h = r->daemon.http_get("/healthz");
    INFO(r->name << ": " << h.body);
    CHECK(h.status == 200);
  }

  // syd removed at iad and ams: its links close (syd hears why), iad
  // forgets its row and deletes its durable reader at once.
  remove_peer(l, kLate);
  remove_peer(f, kLate);
  reload(l, "name " + kLate + " removed");
  reload(f, "name " + kLate + " removed");
  check_for(
      10s,
      [&](std::string& st) {
        auto dd = durables(l, kUsers);
        st = std::to_string(dd.size()) + " durables; " + tail_file(l.daemon.log_path(), 3);
        return regions_of(dd) == std::vector<std::string>{"akl", "ams"};
      },
      "iad deletes syd's durable reader of " + kUsers);
  CHECK(read_file(l.daemon.log_path()).find(" of region syd, which is no longer a peer") != std::string::npos);
  for (Region* r : {&l, &f}) {
    INFO(r->name);
    CHECK_FALSE(lists_peer(*r, kLate));
    CHECK(r->daemon.http_get("/metrics").body.find("\"syd\"") == std::string::npos);
  }
  CHECK(row_for(l, kUsers, kLate).is_null());
  check_for(
      10s,
      [&](std::string& st) {
        auto li = link_to(late, kLeader);
        st = li.dump();
        return li.value("state", "") != "up" &&
               li.value("last_drop_detail", "").find("peer_removed") != std::string::npos;
      },
      "syd's link to iad closed, saying why");
  {
    // syd's own /healthz says why (the peer's reason in the goodbye).
    auto h = late.daemon.http_get("/healthz");
    INFO(h.body);
    CHECK(h.status == 503);
    CHECK(h.body.find("link to iad is waiting (last close: peer_goaway: peer_removed: removed from iad's "
                      "configuration)") != std::string::npos);
  }

  // akl removed at iad while iad's nats-server is down: its durable goes
  // once the server is back. akl's daemon, left running, dials in vain.
  remove_peer(f, kEarly);
  reload(f, "name " + kEarly + " removed");
  l.drop_js();
  l.nats.stop();
  remove_peer(l, kEarly);
  reload(l, "name " + kEarly + " removed");
  CHECK_FALSE(lists_peer(l, kEarly));
  l.nats.start();
  check_for(
      20s,
      [&](std::string& st) {
        auto dd = durables(l, kUsers);
        st = std::to_string(dd.size()) + " durables; " + tail_file(l.daemon.log_path(), 3);
        return regions_of(dd) == std::vector<std::string>{"ams"};
      },
      "iad deletes akl's durable reader of " + kUsers + " once its nats-server is back");
  check_for(
      15s,
      [&](std::string& st) {
        const json links = json::parse(l.daemon.http_get("/v1/links").body);
        st = links.dump();
        return links["refused"].value("name_mismatch", 0) > 0 && links.contains("last_refused") &&
               links["last_refused"].value("detail", "").find("(it names akl)") != std::string::npos;
      },
      "iad refuses akl's dials (TLS: its certificate names no peer), naming akl");
  // akl dials again and again: one warning a minute, the rest at debug.
  check_for(
      20s,
      [&](std::string& st) {
        const json links = json::parse(l.daemon.http_get("/v1/links").body);
        st = links["refused"].dump();
        return links["refused"].value("name_mismatch", 0) >= 2;
      },
      "akl's daemon dials iad again");
  CHECK(count_of(read_file(l.daemon.log_path()), "(it names akl)") == 1);

  // syd added back: it resumes from its replicas' last sequences and gets
  // what was published while it was away (the application's consumer kept
  // it at iad).
  l.js().publish_bulk(messages("covenant.countries.updated", 41, 10));
  l.js().publish_bulk(messages("covenant.users.signup", 41, 10));
  replicated(l, f, kFirst, "after syd and akl were removed");
  replicated(l, f, kUsers, "after syd and akl were removed");
  l.daemon.config().peers.push_back(late_at_iad);
  l.daemon.write_config();
  f.daemon.config().peers.push_back(late_at_ams);
  f.daemon.write_config();
  reload(l, "name " + kLate + " added");
  reload(f, "name " + kLate + " added");
  for (const auto& stream : {kFirst, kUsers}) {
    replicated(l, late, stream, "after syd was added back");
    // (The interest stream holds fewer: nats-server 2.9.10 removes an R1
    // interest stream's acknowledged-by-one messages at a restart, and the
    // replicas follow the leader's.)
    const auto lead = l.js().read_stream(stream);
    if (stream == kFirst) CHECK(lead.size() == 50);
    auto d = compare_streams(lead, late.js().read_stream(stream), kLeader);
    INFO(stream << ": " << (d.problems.empty() ? "" : d.problems.front()));
    CHECK(d.compared == lead.size());
    CHECK(d.mismatches == 0);
  }
  check_for(
      10s,
      [&](std::string& st) {
        st = row_for(l, kUsers, kLate).dump();
        return row_for(l, kUsers, kLate).value("state", "") == "replicating";
      },
      "iad's row for syd replicating again");
  for (const auto& stream : {kFirst, kUsers}) {
    auto s = late.daemon.lag_stream(stream);
    REQUIRE(s);
    INFO(s->dump());
    CHECK((*s)["followers"][0].value("apply_errors", 1) == 0);
  }
  CHECK(regions_of(durables(l, kUsers)) == std::vector<std::string>{"ams", "syd"});
  for (Region* r : {&l, &f}) {
    auto h = r->daemon.http_get("/healthz");
    INFO(r->name << ": " << h.body);
    CHECK(h.status == 200);
  }
}

namespace {

void set_leader(Region& r, const std::string& stream, const std::string& leader) {
  for (auto& s : r.daemon.config().streams) {
    if (s.name == stream) s.leader = leader;
  }
  r.daemon.write_config();
}

// Whether two regions hold the same messages of `stream`, sequence for
// sequence (subject, payload and, where both carry one, the same origin
// store time); `st` names the first difference.
bool same_messages(Region& a, Region& b, const std::string& stream, std::string& st) {
  const auto x = a.js().read_stream(stream), y = b.js().read_stream(stream);
  st = a.name + " holds " + std::to_string(x.size()) + ", " + b.name + " " + std::to_string(y.size());
  if (x.size() != y.size()) return false;
  auto origin_time = [](const StoredMsg& m) {
    for (const auto& [k, v] : m.headers) {
      if (k == "Isthmus-Origin-Time") return static_cast<int64_t>(std::stoll(v));
    }
    return m.time_ns;  // stored there first
  };
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i].seq != y[i].seq || x[i].subject != y[i].subject || x[i].payload != y[i].payload ||
        origin_time(x[i]) != origin_time(y[i])) {
      st += "; they differ at " + a.name + "'s sequence " + std::to_string(x[i].seq);
      return false;
    }
  }
  return true;
}

// Within 6 s, `leader`'s rows for every region of `regions` on `stream`
// read `replicating`.
void await_replicating(Region& leader, const std::string& stream, const std::vector<std::string>& regions,
                       const std::string& when) {
  check_for(
      6s,
      [&](std::string& st) {
        st.clear();
        for (const auto& r : regions) {
          json row = row_for(leader, stream, r);
          st += r + ": " + row.dump() + "; ";
          if (row.value("state", "") != "replicating") return false;
        }
        return true;
      },
      leader.name + "'s rows on " + stream + " replicating " + when);
}

std::string header(const StoredMsg& m, const std::string& key) {
  for (const auto& [k, v] : m.headers) {
    if (k == key) return v;
  }
  return "";
}

}  // namespace

TEST_CASE("a stream's leader changed by reload: the old leader follows the new one, a third region follows it "
          "too, and nothing diverges or is lost",
          "[reload][leader]") {
  const std::string kUsers = "COVENANT_USERS";  // interest: a durable reader per follower
  const std::string kThird = "syd";
  TempDir tmp("isthmus-reload-leader");
  Mesh mesh(tmp, {kLeader, kFollower, kThird}, {{kFirst, kLeader}, {kUsers, kLeader}});
  Region& old_leader = mesh[kLeader];
  Region& next_leader = mesh[kFollower];
  Region& third = mesh[kThird];
  mesh.start_nats();
  old_leader.js().create_stream({{"name", kFirst}, {"subjects", {"covenant.countries.>"}}, {"num_replicas", 1}});
  // No application consumer: at iad only Isthmus's durables keep the
  // interest stream's messages, each until its region has stored them.
  old_leader.js().create_stream(
      {{"name", kUsers}, {"subjects", {"covenant.users.>"}}, {"retention", "interest"}, {"num_replicas", 1}});
  old_leader.js().publish_bulk(messages("covenant.countries.created", 1, 20));
  old_leader.js().publish_bulk(messages("covenant.users.signup", 1, 20));
  mesh.start_daemons();
  for (Region* r : {&next_leader, &third}) {
    replicated(old_leader, *r, kFirst, "at start");
    replicated(old_leader, *r, kUsers, "at start");
  }

  // syd's daemon stands still (SIGSTOP) while ten more are written: iad's
  // durable keeps them for it (ams has them).
  third.daemon.process().signal(SIGSTOP);
  old_leader.js().publish_bulk(messages("covenant.countries.created", 21, 10));
  old_leader.js().publish_bulk(messages("covenant.users.signup", 21, 10));
  replicated(old_leader, next_leader, kFirst, "while syd is away");
  replicated(old_leader, next_leader, kUsers, "while syd is away");
  REQUIRE(old_leader.js().require_stream_info(kUsers).messages == 10);

  // The switchover: writes stopped, ams leads from now on. iad is
  // reloaded first (for a moment nobody leads: both say so), then ams,
  // then syd once it runs again.
  for (Region* r : {&old_leader, &next_leader, &third}) {
    set_leader(*r, kFirst, kFollower);
    set_leader(*r, kUsers, kFollower);
  }
  std::string log = reload(old_leader, "streams[0].leader, streams[1].leader");
  CHECK(log.find("stream " + kUsers + ": leader changed by reload from iad to ams: followed here from now on") !=
        std::string::npos);
  log = reload(next_leader, "streams[0].leader, streams[1].leader");
  CHECK(log.find("stream " + kUsers + ": leader changed by reload from iad to ams: led here from now on") !=
        std::string::npos);
  // Within seconds ams's row for iad reads `replicating`: iad's error of
  // the moment nobody led is not kept the 10 s an error that may come back
  // is (an idle stream: no write clears it).
  await_replicating(next_leader, kFirst, {kLeader}, "soon after the reloads");
  // (iad was told ams did not lead it yet, reloaded first: that cleared.)
  CHECK(read_file(old_leader.daemon.log_path())
            .find("replicating again after: leader ams: region ams does not lead stream") != std::string::npos);

  // iad's replica is prepared (the retention anchor in place) before its
  // durables go: nothing they kept is lost.
  check_for(
      20s,
      [&](std::string& st) {
        auto d = durables(old_leader, kUsers);
        st = "durables at iad:";
        for (const auto& n : d) st += " " + n;
        return d == std::vector<std::string>{"isthmus_retention_anchor"};
      },
      "iad keeps only the retention anchor on " + kUsers);
  CHECK(old_leader.js().require_stream_info(kUsers).messages == 10);
  CHECK(regions_of(durables(next_leader, kUsers)) == std::vector<std::string>{"iad"});

  // ams takes writes; syd runs again, is reloaded and follows ams (telling
  // iad why it stopped following it there).
  next_leader.js().publish_bulk(messages("covenant.countries.created", 31, 10));
  next_leader.js().publish_bulk(messages("covenant.users.signup", 31, 10));
  third.daemon.process().signal(SIGCONT);
  log = reload(third, "streams[0].leader, streams[1].leader");
  CHECK(log.find("stream " + kFirst + ": leader changed by reload from iad to ams: followed from the new leader") !=
        std::string::npos);
  // And for both, soon after syd's reload.
  await_replicating(next_leader, kFirst, {kLeader, kThird}, "soon after the last reload");
  for (Region* r : {&old_leader, &third}) {
    for (const auto& stream : {kFirst, kUsers}) {
      replicated(next_leader, *r, stream, "after the switchover");
      check_for(
          10s, [&](std::string& st) { return same_messages(next_leader, *r, stream, st); },
          stream + " at " + r->name + " holds what ams holds");
    }
  }
  CHECK(next_leader.js().require_stream_info(kFirst).messages == 40);
  // The limits stream shows where each message was first stored.
  {
    auto m = third.js().get_msg(kFirst, 20);
    REQUIRE(m);
    CHECK(header(*m, "Isthmus-Origin-Region") == kLeader);
    m = old_leader.js().get_msg(kFirst, 35);
    REQUIRE(m);
    CHECK(header(*m, "Isthmus-Origin-Region") == kFollower);
    CHECK(header(*m, "Isthmus-Origin-Seq") == "35");
  }
  check_for(
      10s,
      [&](std::string& st) {
        auto d = regions_of(durables(next_leader, kUsers));
        st = std::to_string(d.size()) + " regions";
        return d == std::vector<std::string>{"iad", "syd"};
      },
      "ams reads " + kUsers + " for iad and syd through durables");
  for (Region* r : {&old_leader, &next_leader, &third}) {
    check_for(
        15s,
        [&](std::string& st) {
          auto h = r->daemon.http_get("/healthz");
          st = h.body;
          return h.status == 200;
        },
        r->name + " healthy after the switchover");
    const std::string l = read_file(r->daemon.log_path());
    INFO(r->name);
    CHECK(l.find("DIVERGED") == std::string::npos);
  }
  for (Region* r : {&old_leader, &third}) {
    for (const auto& stream : {kFirst, kUsers}) {
      auto s = r->daemon.lag_stream(stream);
      REQUIRE(s);
      INFO(r->name << " " << s->dump());
      CHECK(s->value("role", "") == "follower");
      CHECK(s->value("leader", "") == kFollower);
    }
  }
  CHECK(read_file(third.daemon.log_path()).find("is ams's message at that sequence: replicating on") !=
        std::string::npos);
  CHECK(read_file(old_leader.daemon.log_path()).find("is ams's message at that sequence: replicating on") !=
        std::string::npos);

  // A reader durable left on a stream this region follows (a switchover
  // done by restart leaves them: the daemon did not know it had led it) is
  // deleted once the replica is ready after the next start.
  old_leader.js().api("$JS.API.CONSUMER.DURABLE.CREATE." + kUsers + ".isthmus_syd_42",
                      {{"stream_name", kUsers},
                       {"config", {{"durable_name", "isthmus_syd_42"}, {"ack_policy", "all"},
                                   {"deliver_policy", "all"}}}});
  old_leader.daemon.restart();
  check_for(
      20s,
      [&](std::string& st) {
        auto d = durables(old_leader, kUsers);
        st = std::to_string(d.size()) + " durables";
        return d == std::vector<std::string>{"isthmus_retention_anchor"};
      },
      "iad deletes the reader durable left on the replica it follows");
  CHECK(old_leader.js().require_stream_info(kUsers).messages == next_leader.js().require_stream_info(kUsers).messages);
}

TEST_CASE("a failover to a region that lacks the old leader's last messages: the old leader and a third region "
          "that holds them diverge, keep everything not known to be the new leader's aside, and rebuilds make them "
          "its replicas",
          "[reload][leader]") {
  const std::string kThird = "syd";
  TempDir tmp("isthmus-reload-behind");
  Mesh mesh(tmp, {kLeader, kFollower, kThird}, {{kFirst, kLeader}});
  Region& old_leader = mesh[kLeader];
  Region& next_leader = mesh[kFollower];
  Region& third = mesh[kThird];
  mesh.start_nats();
  old_leader.js().create_stream({{"name", kFirst}, {"subjects", {"covenant.countries.>"}}, {"num_replicas", 1}});
  old_leader.js().publish_bulk(messages("covenant.countries.created", 1, 20));
  mesh.start_daemons();
  replicated(old_leader, next_leader, kFirst, "at start");
  replicated(old_leader, third, kFirst, "at start");
  // ams's daemon is down while iad takes 2,080 more (more than one part of
  // a walk down the replica), which syd copies; then iad is lost, and ams,
  // made the leader, takes writes of its own at the same sequences.
  next_leader.daemon.terminate();
  old_leader.js().publish_bulk(messages("covenant.countries.created", 21, 2080));
  replicated(old_leader, third, kFirst, "while ams is down");
  old_leader.daemon.terminate();
  for (Region* r : {&old_leader, &next_leader, &third}) set_leader(*r, kFirst, kFollower);
  next_leader.daemon.start();
  next_leader.js().publish_bulk(messages("covenant.countries.updated", 10'001, 2090));
  reload(third, "streams[0].leader");
  // iad comes back as a follower. Neither its last message (2100, its own)
  // nor syd's (2100, copied from iad) is ams's.
  old_leader.daemon.start();
  const std::string kSide = "ISTHMUS_FOREIGN_" + kFirst;
  for (Region* r : {&old_leader, &third}) {
    const std::string why = r == &old_leader ? "(sequence 2100) was not written by Isthmus, and ams's message at "
                                               "that sequence was first stored at 20"
                                             : "(sequence 2100) came from region iad, not ams, and ams's message at "
                                               "that sequence was first stored at 20";
    check_for(
        20s,
        [&](std::string& st) {
          auto h = r->daemon.http_get("/healthz");
          st = h.body;
          return h.status == 503 && h.body.find(why) != std::string::npos;
        },
        r->name + " diverged");
    if (r == &third) {
      // A rebuild asked for as soon as it diverged (should the divergence
      // still be looking for where its foreign messages begin, the rebuild
      // looks itself, in parts): the same are kept aside, once.
      auto res = r->daemon.http_post("/v1/streams/" + kFirst + "/rebuild");
      INFO(res.body);
      CHECK(res.status == 202);
      continue;
    }
    check_for(
        20s,
        [&](std::string& st) {
          auto side = r->js().stream_info(kSide);
          st = side ? std::to_string(side->messages) : std::string("no side stream");
          return side && side->messages == 2100;
        },
        r->name + ": every message not known to be ams's kept aside");
    // Which of them ams holds is not known there, so all are kept (the
    // 2,080 ams never got among them).
    auto side = r->js().read_stream(kSide);
    REQUIRE(side.size() == 2100);
    CHECK(side.front().payload == "{\"n\":1}");
    CHECK(side[20].payload == "{\"n\":21}");
    CHECK(side.back().payload == "{\"n\":2100}");
    auto res = r->daemon.http_post("/v1/streams/" + kFirst + "/rebuild");
    INFO(res.body);
    CHECK(res.status == 202);
  }
  for (Region* r : {&old_leader, &third}) {
    replicated(next_leader, *r, kFirst, "after the rebuild");
    check_for(
        15s, [&](std::string& st) { return same_messages(next_leader, *r, kFirst, st); },
        r->name + " holds what ams holds after the rebuild");
    check_for(
        15s,
        [&](std::string& st) {
          auto h = r->daemon.http_get("/healthz");
          st = h.body;
          return h.status == 200;
        },
        r->name + " healthy after the rebuild");
    CHECK(r->js().require_stream_info(kFirst).last_seq == 2110);
    CHECK(r->js().require_stream_info(kSide).messages == 2100);  // (each kept once)
  }
}
