// The side stream's names, subjects and headers; foreign-message
// classification; description markers; sync progress.
#include "replication/side_stream.h"

#include <catch2/catch.hpp>

#include "replication/lag_json.h"
#include "replication/rebuild_progress.h"
#include "replication/sync_progress.h"

using namespace isthmus::replication;

namespace {

std::string get(const Headers& h, std::string_view k) {
  for (const auto& [key, v] : h) {
    if (key == k) return v;
  }
  return "<absent>";
}

Headers isthmus_headers(const std::string& region, uint64_t seq) {
  Origin o;
  o.region = region;
  o.seq = seq;
  o.time_ns = 1;
  return replica_headers({{"X-A", "1"}}, o);
}

}  // namespace

TEST_CASE("side stream: name, subjects, configuration", "[replication][divergence]") {
  CHECK(side_stream_name("COVENANT_COUNTRIES") == "ISTHMUS_FOREIGN_COVENANT_COUNTRIES");
  CHECK(side_subject("COVENANT_COUNTRIES", 501) == "$ISTHMUS.FOREIGN.COVENANT_COUNTRIES.501");
  CHECK(side_stream_subjects("X") == "$ISTHMUS.FOREIGN.X.>");
  auto c = side_stream_config("X", "memory", 3);
  CHECK(c["name"] == "ISTHMUS_FOREIGN_X");
  CHECK(c["subjects"] == nlohmann::json::array({"$ISTHMUS.FOREIGN.X.>"}));
  CHECK(c["retention"] == "limits");
  CHECK(c["discard"] == "old");
  CHECK(c["storage"] == "memory");
  CHECK(c["num_replicas"] == 3);
  CHECK(c["max_msgs"] == -1);
  CHECK(c["max_bytes"] == -1);
  CHECK(c["max_age"] == 0);
}

TEST_CASE("foreign messages: no origin, other region, other sequence", "[replication][divergence]") {
  CHECK(foreign_reason(isthmus_headers("iad", 7), 7, "iad").empty());
  CHECK_THAT(foreign_reason({}, 7, "iad"), Catch::Contains("no Isthmus origin"));
  CHECK_THAT(foreign_reason({{"X-Foreign", "yes"}}, 7, "iad"), Catch::Contains("no Isthmus origin"));
  CHECK_THAT(foreign_reason(isthmus_headers("syd", 7), 7, "iad"), Catch::Contains("origin region syd"));
  CHECK_THAT(foreign_reason(isthmus_headers("iad", 6), 7, "iad"), Catch::Contains("origin sequence 6"));
}

TEST_CASE("side headers: original headers escaped, origin of the copy added", "[replication][divergence]") {
  Headers original = {{"X-Foreign", "yes"}, {"Nats-Msg-Id", "m-1"}, {"Nats-Expected-Stream", "S"}};
  Headers h = side_headers(original, "S", "a.b", 42, 1795765414249169923, "2026-11-27T07:43:34.249169923Z",
                           "no Isthmus origin headers");
  CHECK(get(h, "X-Foreign") == "yes");
  CHECK(get(h, "Nats-Msg-Id") == "<absent>");
  CHECK(get(h, "Isthmus-Orig-Nats-Msg-Id") == "m-1");
  CHECK(get(h, "Isthmus-Orig-Nats-Expected-Stream") == "S");
  CHECK(get(h, "Isthmus-Foreign-Stream") == "S");
  CHECK(get(h, "Isthmus-Foreign-Subject") == "a.b");
  CHECK(get(h, "Isthmus-Foreign-Seq") == "42");
  CHECK(get(h, "Isthmus-Foreign-Time") == "1795765414249169923");
  CHECK(get(h, "Isthmus-Foreign-Stored") == "2026-11-27T07:43:34.249169923Z");
  CHECK(get(h, "Isthmus-Foreign-Reason") == "no Isthmus origin headers");
}

TEST_CASE("description markers round-trip and replace each other", "[replication][divergence]") {
  const std::string base = "Isthmus replica of S";
  CHECK(parse_marker(base).kind == Marker::Kind::kNone);
  std::string d = with_marker(base, {Marker::Kind::kDiverged, 501});
  CHECK(d == "Isthmus replica of S; isthmus:diverged=501");
  Marker m = parse_marker(d);
  CHECK(m.kind == Marker::Kind::kDiverged);
  CHECK(m.seq == 501);
  d = with_marker(d, {Marker::Kind::kRebuildRequested, 501});
  CHECK(d == "Isthmus replica of S; isthmus:rebuild=requested@501");
  CHECK(parse_marker(d).kind == Marker::Kind::kRebuildRequested);
  CHECK(parse_marker(d).seq == 501);
  d = with_marker(d, {Marker::Kind::kRebuildRequested, 0});
  CHECK(d == "Isthmus replica of S; isthmus:rebuild=requested");
  CHECK(parse_marker(d).seq == 0);
  d = with_marker(d, {Marker::Kind::kRebuildSyncing, 0});
  CHECK(parse_marker(d).kind == Marker::Kind::kRebuildSyncing);
  CHECK(with_marker(d, {}) == base);
  CHECK(with_marker("", {}) == "");
  // Garbage after the separator is no marker.
  CHECK(parse_marker("x; isthmus:diverged=").kind == Marker::Kind::kNone);
  CHECK(parse_marker("x; isthmus:diverged=12a").kind == Marker::Kind::kNone);
  CHECK(parse_marker("x; isthmus:whatever").kind == Marker::Kind::kNone);
}

TEST_CASE("rebuild progress: done, to go, rate, estimated time, in the initial sync's shape",
          "[replication][divergence]") {
  RebuildProgress p;
  const int64_t s = 1'000'000'000;
  CHECK_FALSE(p.snapshot(0, 10, s).started);
  p.start(99, 99, 10 * s);  // leader first_seq 100, nothing applied yet
  auto j = sync_json(p.snapshot(99, 1099, 10 * s));
  CHECK(j["kind"] == "rebuild");
  CHECK(j["state"] == "syncing");
  CHECK(j["done"] == 0);
  CHECK(j["to_go"] == 1000);
  CHECK(j["rate_per_s"] == 0.0);
  CHECK(j["eta_s"].is_null());
  j = sync_json(p.snapshot(599, 1099, 11 * s));  // 500 in 1 s
  CHECK(j["done"] == 500);
  CHECK(j["to_go"] == 500);
  CHECK(j["rate_per_s"].get<double>() == Approx(500.0));
  CHECK(j["eta_s"].get<double>() == Approx(1.0));
  CHECK(j["elapsed_s"].get<double>() == Approx(1.0));
  // The window forgets old samples: after 20 s at 100 msg/s the rate is 100.
  for (int i = 1; i <= 20; ++i) p.sample(599 + 100 * static_cast<uint64_t>(i), (11 + i) * s);
  j = sync_json(p.snapshot(2599, 3000, 31 * s));
  CHECK(j["rate_per_s"].get<double>() == Approx(100.0).epsilon(0.05));
  j = sync_json(p.snapshot(3000, 3000, 32 * s));
  CHECK(j["eta_s"] == 0.0);
  CHECK(j["state"] == "syncing");  // until the follower's check says caught up
  p.caught_up(33 * s);
  j = sync_json(p.snapshot(3000, 3000, 34 * s));
  CHECK(j["state"] == "caught_up");
  CHECK(j["elapsed_s"].get<double>() == Approx(23.0));  // 10 s to 33 s, then stopped
  // Latched: more to go later (live traffic before the mark is cleared)
  // does not make it syncing again.
  j = sync_json(p.snapshot(3000, 3100, 35 * s));
  CHECK(j["state"] == "caught_up");
  CHECK(j["to_go"] == 100);
  // Every key of the initial sync's object, and no other.
  SyncProgress initial;
  initial.start(0, 0, 10);
  nlohmann::json ij = sync_json(initial.snapshot());
  CHECK(ij["kind"] == "initial");
  for (const auto& [k, v] : ij.items()) CHECK(j.contains(k));
  CHECK(ij.size() == j.size());
}
