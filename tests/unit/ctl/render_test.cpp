// isthmusctl's tables and formatting helpers, from JSON shaped like the
// daemon's (daemon/app/api.cpp, daemon/replication/{leader,follower}.cpp).
#include "report/render.h"

#include <catch2/catch.hpp>

using namespace isthmus::report;
using Json = nlohmann::json;

TEST_CASE("table: aligned columns, numbers right-aligned, no trailing spaces", "[ctl][render]") {
  Table t({{"NAME"}, {"STATE"}, {"COUNT", Table::Align::kRight}});
  t.add_row({"a", "up", "7"});
  t.add_row({"longer-name", "connecting", "12345"});
  t.add_row({"short"});  // padded with empty cells
  CHECK(t.render() ==
        "NAME         STATE       COUNT\n"
        "a            up              7\n"
        "longer-name  connecting  12345\n"
        "short\n");
}

TEST_CASE("format helpers", "[ctl][render]") {
  CHECK(format_bytes(0) == "0 B");
  CHECK(format_bytes(1023) == "1023 B");
  CHECK(format_bytes(1024) == "1.0 KiB");
  CHECK(format_bytes(1536) == "1.5 KiB");
  CHECK(format_bytes(150 * 1024) == "150 KiB");
  CHECK(format_bytes(5ull << 30) == "5.0 GiB");

  const int64_t s = 1000000000;
  CHECK(format_age(0) == "0s");
  CHECK(format_age(59 * s + s / 2) == "59s");
  CHECK(format_age(65 * s) == "1m05s");
  CHECK(format_age(3720 * s) == "1h02m");
  CHECK(format_age((3 * 86400 + 4 * 3600 + 5) * s) == "3d04h");
  CHECK(format_age(-1) == "-");

  CHECK(format_rtt_ms(0.4213) == "0.42ms");
  CHECK(format_rtt_ms(12.34) == "12.3ms");
  CHECK(format_rtt_ms(250.4) == "250ms");
}

TEST_CASE("durations for --interval and --timeout", "[ctl][render]") {
  CHECK(*parse_duration_ms("500ms") == 500);
  CHECK(*parse_duration_ms("1s") == 1000);
  CHECK(*parse_duration_ms("1.5s") == 1500);
  CHECK(*parse_duration_ms("2m") == 120000);
  CHECK(*parse_duration_ms("2") == 2000);
  for (const char* bad : {"", "s", "1h", "1 s", "-1s", "1.s", ".5s", "1..5s", "0s", "0.1ms", "2m30s", "61m"}) {
    INFO(bad);
    CHECK_FALSE(parse_duration_ms(bad));
  }
}

TEST_CASE("lag table: leader with two followers, follower diverged", "[ctl][render]") {
  Json leader = Json::parse(R"({"region":"iad","streams":[
    {"stream":"COVENANT_USERS","leader":"iad","role":"leader","state":"replicating","first_seq":1,"last_seq":120345,
     "followers":[
       {"region":"ams","state":"replicating","leader_last_seq":120345,"applied_seq":120345,"seq_lag":0,
        "messages_sent":120345,"bytes_sent":9000000,"unacked":0,"unacked_bytes":0,
        "oldest_unreplicated_age_ms":0,"newest_applied_age_ms":0,
        "time_lag":{"current_ms":21.46,"p50_ms":20.1,"p95_ms":25.0,"p99_ms":31.2,"clock_offset_known":true},
        "sync":{"state":"caught_up","done":120345,"to_go":0,"rate_per_s":0,"eta_s":0}},
       {"region":"syd","state":"syncing","leader_last_seq":120345,"applied_seq":98000,"seq_lag":22345,
        "messages_sent":98000,"bytes_sent":7000000,"oldest_unreplicated_age_ms":65250.0,
        "time_lag":{"current_ms":1250.0,"p50_ms":900,"p95_ms":1200,"p99_ms":1400,"clock_offset_known":false},
        "sync":{"state":"syncing","done":98000,"to_go":22345,"rate_per_s":12345.6,"eta_s":1.8}}]},
    {"stream":"ALERTS_INCIDENTS","leader":"iad","role":"leader","state":"replicating","first_seq":0,"last_seq":0,
     "followers":[]}]})");
  CHECK(render_lag(leader) ==
        "region iad\n"
        "\n"
        "STREAM            ROLE    LEADER  FOLLOWER  STATE        LEADER SEQ  APPLIED SEQ  SEQ LAG  TIME LAG     P99    AGE  PROGRESS\n"
        "COVENANT_USERS    leader  iad     ams       replicating      120345       120345        0    21.5ms  31.2ms      0  caught up\n"
        "COVENANT_USERS    leader  iad     syd       syncing          120345        98000    22345    1.25s?   1.40s  1m05s  syncing 81.4% 12.3k/s eta 1s\n"
        "ALERTS_INCIDENTS  leader  iad     -         replicating           0            -        -         -       -      -  -\n");

  Json follower = Json::parse(R"({"region":"ams","streams":[
    {"stream":"COVENANT_USERS","leader":"iad","role":"follower","state":"diverged",
     "detail":"leader sequence 7 was stored at replica sequence 8",
     "followers":[{"region":"ams","leader_last_seq":10,"applied_seq":6,"seq_lag":4,"queued":0,"inflight":0,
                   "newest_applied_age_ms":3725000,"time_lag":{"current_ms":null,"clock_offset_known":false}}]}]})");
  CHECK(render_lag(follower) ==
        "region ams\n"
        "\n"
        "STREAM          ROLE      LEADER  FOLLOWER  STATE     LEADER SEQ  APPLIED SEQ  SEQ LAG  TIME LAG  P99    AGE  PROGRESS\n"
        "COVENANT_USERS  follower  iad     ams       diverged          10            6        4         -    -  1h02m  -\n"
        "\n"
        "COVENANT_USERS: diverged: leader sequence 7 was stored at replica sequence 8\n");

  CHECK(render_lag(Json::parse(R"({"region":"syd","streams":[]})")) == "region syd\n\nno replicated streams\n");
  CHECK_THROWS_AS(render_lag(Json::parse(R"({"region":"x","streams":{}})")), Json::exception);

  // --problems: the syncing follower only (ams is replicating, caught up,
  // age 0; the stream without followers is replicating).
  CHECK(render_lag(leader, true) ==
        "region iad\n"
        "\n"
        "1 of 3 rows need a look (not replicating, AGE 1s or more, syncing, or no recent report)\n"
        "\n"
        "STREAM          ROLE    LEADER  FOLLOWER  STATE    LEADER SEQ  APPLIED SEQ  SEQ LAG  TIME LAG    P99    AGE  PROGRESS\n"
        "COVENANT_USERS  leader  iad     syd       syncing      120345        98000    22345    1.25s?  1.40s  1m05s  syncing 81.4% 12.3k/s eta 1s\n");
  // Every row fine: the count alone.
  Json fine = leader;
  fine["streams"][0]["followers"].erase(1);
  CHECK(render_lag(fine, true) ==
        "region iad\n\n0 of 2 rows need a look (not replicating, AGE 1s or more, syncing, or no recent report)\n");
  // A row whose AGE is a second or more, though replicating, needs a look.
  Json slow = fine;
  slow["streams"][0]["followers"][0]["oldest_unreplicated_age_ms"] = 1500.0;
  slow["streams"][0]["followers"][0]["seq_lag"] = 30;
  CHECK(render_lag(slow, true).find("1 of 2 rows need a look") != std::string::npos);
  CHECK(render_lag(follower, true).find("1 of 1 rows need a look") != std::string::npos);
}

TEST_CASE("lag table: a follower away, its last lag report stale", "[ctl][render]") {
  Json leader = Json::parse(R"({"region":"iad","streams":[
    {"stream":"S","leader":"iad","role":"leader","state":"replicating","first_seq":1,"last_seq":8000,
     "deletes":{"interior":3,"reconciled":true,"limit":100000},
     "followers":[
       {"region":"syd","state":"waiting","leader_last_seq":8000,"applied_seq":4000,"seq_lag":4000,
        "oldest_unreplicated_age_ms":12500.0,
        "time_lag":{"current_ms":1.67,"p50_ms":1.2,"p95_ms":5.0,"p99_ms":10.4,"clock_offset_known":true,
                    "report_age_ms":12600.0},
        "sync":{"kind":"initial","state":"caught_up","done":4000,"to_go":0,"rate_per_s":0,"eta_s":0}},
       {"region":"ams","state":"replicating","leader_last_seq":8000,"applied_seq":8000,"seq_lag":0,
        "oldest_unreplicated_age_ms":0,
        "time_lag":{"current_ms":1.5,"p50_ms":1.2,"p95_ms":5.0,"p99_ms":9.0,"clock_offset_known":true,
                    "report_age_ms":400.0}}]}]})");
  std::string out = render_lag(leader);
  INFO(out);
  CHECK_THAT(out, Catch::Contains("S       leader  iad     syd       waiting"));
  // syd: no time lag or p99 from a 12.6 s old report, and a note says why.
  CHECK_THAT(out, Catch::Contains("4000     4000         -       -  12.5s  -\n"));
  CHECK_THAT(out, Catch::Contains("S -> syd: no lag report for 12.6s (time lag and sync progress unknown)"));
  // ams, whose report is fresh: its figures.
  CHECK_THAT(out, Catch::Contains("1.50ms  9.00ms"));
  // Deletes reconciled: no note.
  CHECK_THAT(out, !Catch::Contains("interior deletes"));
}

TEST_CASE("lag table: a leader over nats.reconcile_max_deleted says so", "[ctl][render]") {
  Json leader = Json::parse(R"({"region":"iad","streams":[
    {"stream":"S","leader":"iad","role":"leader","state":"replicating","first_seq":1,"last_seq":8000,
     "deletes":{"interior":250000,"reconciled":false,"limit":100000},
     "followers":[
       {"region":"ams","state":"replicating","leader_last_seq":8000,"applied_seq":8000,"seq_lag":0,
        "oldest_unreplicated_age_ms":0}]}]})");
  std::string out = render_lag(leader);
  INFO(out);
  CHECK_THAT(out, Catch::Contains("S: 250000 interior deletes exceed nats.reconcile_max_deleted (100000): only "
                                  "removals from the front and live API deletes replicate"));
}

TEST_CASE("lag and progress formatting", "[ctl][render]") {
  CHECK(format_lag_ms(0.42) == "0.42ms");
  CHECK(format_lag_ms(250) == "250ms");
  CHECK(format_lag_ms(1250) == "1.25s");
  CHECK(format_lag_ms(12345) == "12.3s");
  CHECK(format_lag_ms(65000) == "1m05s");
  CHECK(format_lag_ms(-1) == "-");
  CHECK(format_lag_ms(0) == "0");
  CHECK(format_progress(Json::parse(R"({"state":"syncing","done":50,"to_go":150,"rate_per_s":25,"eta_s":6})")) ==
        "syncing 25.0% 25/s eta 6s");
  CHECK(format_progress(Json::parse(R"({"state":"syncing","done":0,"to_go":10,"rate_per_s":0,"eta_s":null})")) ==
        "syncing 0.0%");
  CHECK(format_progress(Json::parse(R"({"state":"caught_up","done":5,"to_go":0})")) == "caught up");
  CHECK(format_progress(Json::parse(
            R"({"kind":"rebuild","state":"syncing","done":50,"to_go":150,"rate_per_s":25,"eta_s":6})")) ==
        "rebuilding 25.0% 25/s eta 6s");
  CHECK(format_progress(Json::parse(R"({"state":"waiting"})")) == "waiting");
}

TEST_CASE("links table", "[ctl][render]") {
  const int64_t s = 1000000000;
  const int64_t now = 1700000000 * s;
  Json links = Json::parse(R"({"region":"iad","links":[
    {"peer":"ams","address":"10.0.0.2:7422","state":"up","role":"dialer","since_ns":0,"rtt_ms":81.234,
     "reconnects":2,"bytes_in":2048,"bytes_out":73400320,"frames_in":10,"frames_out":900,
     "last_close_reason":"stale","last_close_ns":0},
    {"peer":"syd","address":"10.0.0.3:7422","state":"connecting","role":"dialer","since_ns":0,
     "reconnects":0,"bytes_in":0,"bytes_out":0,"frames_in":0,"frames_out":0,
     "last_close_reason":"connect failed","last_close_detail":"connection refused","last_close_ns":0}]})");
  links["links"][0]["since_ns"] = now - 3725 * s;
  links["links"][0]["last_close_ns"] = now - 3730 * s;
  links["links"][1]["since_ns"] = now - 4 * s;
  links["links"][1]["last_close_ns"] = now - 4 * s;
  const std::string table =
      "region iad\n"
      "\n"
      "PEER  STATE       ROLE    SINCE     RTT  RECONNECTS  BYTES IN  BYTES OUT  LAST CLOSE\n"
      "ams   up          dialer  1h02m  81.2ms           2   2.0 KiB   70.0 MiB  stale (1h02m ago)\n"
      "syd   connecting  dialer     4s       -           0       0 B        0 B  connect failed (4s ago)\n"
      "\n"
      "syd: last close: connection refused\n";
  CHECK(render_links(links, now) == table);

  // syd went down 50 s ago by its daemon's GOAWAY; the dials since failed.
  // The down link shows no RTT (the API keeps the last one): the same table.
  links["links"][1]["rtt_ms"] = 152.5;
  links["links"][1]["last_drop_reason"] = "peer_goaway";
  links["links"][1]["last_drop_detail"] = "shutdown";
  links["links"][1]["last_drop_ns"] = now - 50 * s;
  CHECK(render_links(links, now) == table + "syd: the link went down 50s ago: peer_goaway (shutdown)\n");
  // When that close is the last one, the table says it already.
  links["links"][1]["last_close_ns"] = now - 50 * s;
  CHECK(render_links(links, now).find("went down") == std::string::npos);

  CHECK(render_links(Json::parse(R"({"region":"iad","links":[]})"), now) == "region iad\n\nno peers configured\n");
}

TEST_CASE("health", "[ctl][render]") {
  Json ok = Json::parse(R"({"status":"ok","region":"iad","version":"0.1.0","nats":"up",
    "links":{"ams":"up","syd":"up"},"reasons":[],"uptime_s":3725})");
  CHECK(render_health(ok) ==
        "status   ok\n"
        "region   iad\n"
        "version  0.1.0\n"
        "uptime   1h02m\n"
        "nats     up\n"
        "links    ams up, syd up\n");

  Json bad = Json::parse(R"({"status":"unhealthy","region":"ams","version":"0.1.0","nats":"down",
    "links":{},"reasons":["local NATS connection down","stream COVENANT_USERS diverged: x"],"uptime_s":5})");
  CHECK(render_health(bad) ==
        "status   unhealthy\n"
        "region   ams\n"
        "version  0.1.0\n"
        "uptime   5s\n"
        "nats     down\n"
        "links    none\n"
        "reasons:\n"
        "  - local NATS connection down\n"
        "  - stream COVENANT_USERS diverged: x\n");

  // The configuration: its reloads, and a refused one (healthy all the same).
  ok["config"] = Json::parse(R"({"path":"/etc/isthmus/isthmus.toml","reloads":0,"last_reload_ok":true})");
  CHECK_THAT(render_health(ok), Catch::EndsWith("links    ams up, syd up\n"
                                                "config   /etc/isthmus/isthmus.toml\n"));
  ok["config"] = Json::parse(R"({"path":"/etc/isthmus/isthmus.toml","reloads":2,"last_reload_ok":false,
    "last_reload_error":"a restart is needed for: link.listen"})");
  CHECK_THAT(render_health(ok),
             Catch::EndsWith("config   /etc/isthmus/isthmus.toml (2 reloads); the last reload was refused: a restart "
                             "is needed for: link.listen (the running configuration stands)\n"));

  // Durables left on a stream removed at a restart: one line per stream,
  // with the command that deletes each; none, no line.
  ok["config"] = Json::parse(R"({"path":"/etc/isthmus/isthmus.toml","reloads":0,"last_reload_ok":true})");
  ok["leftover_durables"] = Json::object();
  CHECK_THAT(render_health(ok), Catch::EndsWith("config   /etc/isthmus/isthmus.toml\n"));
  ok["leftover_durables"] = Json::parse(R"({"COVENANT_USERS":["isthmus_ams_0","isthmus_syd_1"]})");
  CHECK_THAT(render_health(ok),
             Catch::EndsWith("leftover  COVENANT_USERS, removed at a restart, still has isthmus_ams_0, isthmus_syd_1 "
                             "(each keeps what its region has not stored: nats consumer rm COVENANT_USERS "
                             "isthmus_ams_0; nats consumer rm COVENANT_USERS isthmus_syd_1)\n"));
}

TEST_CASE("render_rebuild: progress, done, stopped, missing", "[ctl][render]") {
  using isthmus::report::render_rebuild;
  nlohmann::json lag = nlohmann::json::parse(R"({"region":"ams","streams":[
    {"stream":"S","role":"follower","leader":"iad","state":"rebuilding","detail":"syncing from iad",
     "followers":[{"region":"ams","sync":{"kind":"rebuild","state":"syncing","done":20297,"to_go":40211,
                   "rate_per_s":15640.2,"eta_s":2.57,"elapsed_s":1.3}}]},
    {"stream":"T","role":"follower","leader":"iad","state":"rebuilding",
     "detail":"keeping foreign messages aside, then deleting and recreating the replica",
     "followers":[{"region":"ams","sync":{"kind":"initial","state":"caught_up","done":19876,"to_go":0,
                   "rate_per_s":0,"eta_s":0,"elapsed_s":3.5}}]},
    {"stream":"U","role":"follower","leader":"iad","state":"replicating","followers":[{}]},
    {"stream":"V","role":"follower","leader":"iad","state":"diverged","detail":"a foreign write","followers":[{}]},
    {"stream":"X","role":"follower","leader":"iad","state":"error","rebuild":"requested",
     "detail":"cannot create the replica: subjects overlap","followers":[{}]},
    {"stream":"Y","role":"follower","leader":"iad","state":"error","detail":"refused","followers":[{}]}]})");
  bool finished = true, failed = true;
  CHECK(render_rebuild(lag, "S", finished, failed) ==
        "S rebuilding: 20297 done, 40211 to go, 15640 msg/s, about 2s left\n");
  CHECK_FALSE(finished);
  CHECK_FALSE(failed);
  {
    // Under a second to go: not "about 0s left".
    nlohmann::json fast = lag;
    fast["streams"][0]["followers"][0]["sync"]["eta_s"] = 0.76;
    fast["streams"][0]["followers"][0]["sync"]["to_go"] = 8312;
    CHECK(render_rebuild(fast, "S", finished, failed) ==
          "S rebuilding: 20297 done, 8312 to go, 15640 msg/s, under 1s left\n");
    // All copied, the switch back pending: the same line while the rate
    // decays, so --watch prints it once.
    fast["streams"][0]["followers"][0]["sync"]["to_go"] = 0;
    fast["streams"][0]["followers"][0]["sync"]["done"] = 60508;
    fast["streams"][0]["followers"][0]["sync"]["eta_s"] = 0;
    const std::string done = render_rebuild(fast, "S", finished, failed);
    CHECK(done == "S rebuilding: 60508 done, 0 to go, finishing\n");
    fast["streams"][0]["followers"][0]["sync"]["rate_per_s"] = 3120.5;
    CHECK(render_rebuild(fast, "S", finished, failed) == done);
    CHECK_FALSE(finished);
    // Nothing to go and no estimate: the follower has not heard from the
    // leader lately, and "0 to go" is as last heard, not done.
    fast["streams"][0]["followers"][0]["sync"]["eta_s"] = nullptr;
    CHECK(render_rebuild(fast, "S", finished, failed) ==
          "S rebuilding: 60508 done, 0 to go as last heard: the leader is out of sight (link down?)\n");
    CHECK_FALSE(finished);
  }
  CHECK_THAT(render_rebuild(lag, "T", finished, failed), Catch::Contains("keeping foreign messages aside"));
  CHECK_FALSE(finished);
  CHECK(render_rebuild(lag, "U", finished, failed) == "U replicating: rebuild done\n");
  CHECK(finished);
  CHECK_FALSE(failed);
  CHECK(render_rebuild(lag, "V", finished, failed) == "V diverged: a foreign write\n");
  CHECK(failed);
  // An error during the rebuild: retried, the watch goes on.
  CHECK_THAT(render_rebuild(lag, "X", finished, failed),
             Catch::StartsWith("X error: cannot create the replica: subjects overlap") &&
                 Catch::Contains("the rebuild goes on"));
  CHECK_FALSE(finished);
  CHECK_FALSE(failed);
  CHECK(render_rebuild(lag, "Y", finished, failed) == "Y error: refused\n");
  CHECK(failed);
  CHECK_THROWS(render_rebuild(lag, "W", finished, failed));
}

TEST_CASE("lag table: a follower past its initial sync but behind now reads 'behind', not 'caught up'",
          "[ctl][render]") {
  Json lag = Json::parse(R"({"region":"iad","streams":[
    {"stream":"ORDERS","leader":"iad","role":"leader","state":"replicating","first_seq":1,"last_seq":8000,
     "followers":[
       {"region":"ams","state":"replicating","leader_last_seq":8000,"applied_seq":4176,"seq_lag":3824,
        "oldest_unreplicated_age_ms":321.0,
        "time_lag":{"current_ms":105.0,"p99_ms":18.6,"clock_offset_known":true},
        "sync":{"state":"caught_up","done":4000,"to_go":0,"rate_per_s":0,"eta_s":0}},
       {"region":"syd","state":"replicating","leader_last_seq":8000,"applied_seq":8000,"seq_lag":0,
        "oldest_unreplicated_age_ms":0,
        "time_lag":{"current_ms":1.0,"p99_ms":6.2,"clock_offset_known":true},
        "sync":{"state":"caught_up","done":8000,"to_go":0,"rate_per_s":0,"eta_s":0}},
       {"region":"fra","state":"replicating","leader_last_seq":8000,"applied_seq":7997,"seq_lag":3,
        "oldest_unreplicated_age_ms":4.5,
        "time_lag":{"current_ms":1.0,"p99_ms":6.2,"clock_offset_known":true},
        "sync":{"state":"caught_up","done":7997,"to_go":0,"rate_per_s":0,"eta_s":0}}]}]})");
  const std::string out = render_lag(lag);
  INFO(out);
  CHECK(out.find("3824") != std::string::npos);
  CHECK(out.find("321ms  behind\n") != std::string::npos);
  CHECK(out.find("0  caught up\n") != std::string::npos);
  // A few messages in flight under steady traffic (4.5 ms old): still "caught up".
  CHECK(out.find("4.50ms  caught up\n") != std::string::npos);
}

TEST_CASE("lag table: a follower whose leader is out of sight (seq lag unknown) and whose age rises reads 'behind'",
          "[ctl][render]") {
  // The follower's own row while its link is down: seq lag and current
  // time lag null, the newest-applied age rising.
  Json lag = Json::parse(R"({"region":"ams","streams":[
    {"stream":"ORDERS","leader":"iad","role":"follower","state":"replicating",
     "followers":[
       {"region":"ams","state":"replicating","leader_last_seq":7666,"applied_seq":7666,"seq_lag":null,
        "newest_applied_age_ms":29900.0,
        "time_lag":{"current_ms":null,"p99_ms":8.2,"clock_offset_known":true},
        "sync":{"state":"caught_up","done":7666,"to_go":0,"rate_per_s":0,"eta_s":null}}]}]})");
  std::string out = render_lag(lag);
  INFO(out);
  CHECK(out.find("29.9s  behind\n") != std::string::npos);
  CHECK(out.find("caught up") == std::string::npos);
  // Just after a blip (age under 100 ms): still "caught up".
  lag["streams"][0]["followers"][0]["newest_applied_age_ms"] = 40.0;
  out = render_lag(lag);
  CHECK(out.find("caught up\n") != std::string::npos);
}

TEST_CASE("lag table: a replica missing messages gets a note and counts as needing a look", "[ctl][render]") {
  Json lag = Json::parse(R"({"region":"ams","streams":[
    {"stream":"ORDERS","leader":"iad","role":"follower","state":"replicating",
     "followers":[
       {"region":"ams","leader_last_seq":250,"applied_seq":250,"seq_lag":0,"newest_applied_age_ms":0,
        "time_lag":{"current_ms":1.0,"p99_ms":6.2,"clock_offset_known":true},
        "missing":{"messages":3,"first_seq":198,"last_seq":200},
        "sync":{"state":"caught_up","done":250,"to_go":0,"rate_per_s":0,"eta_s":0}}]}]})");
  const std::string out = render_lag(lag);
  INFO(out);
  CHECK(out.find("ORDERS -> ams: the replica lacks 3 message(s) the leader holds (sequences 198..200): rebuild to "
                 "repair") != std::string::npos);
  const std::string problems = render_lag(lag, true);
  INFO(problems);
  CHECK(problems.find("1 of 1 rows need a look") != std::string::npos);
}
