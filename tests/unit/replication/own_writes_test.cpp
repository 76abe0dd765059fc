// check_own_writes() (daemon/replication/foreign.h) against a real
// nats-server with JetStream: the check a follower runs before it resumes
// over places an earlier pipeline's writes took after it restarted (a
// nats-server stalled past the acknowledgement timeout stores them late).
// It must pass Isthmus's writes of their own sequence, name the first
// message that is not one (no origin headers, another region, another
// sequence), skip deleted sequences, and delete the fillers it passes
// (their confirmation was lost with the pipeline).
#include <nats/nats.h>

#include <catch2/catch.hpp>
#include <string>

#include "nats_server.h"
#include "replication/foreign.h"
#include "replication/headers.h"
#include "util.h"

using namespace harness;
using isthmus::replication::check_own_writes;

namespace {

harness::OutMsg own(uint64_t origin_seq, const std::string& region = "iad", bool filler = false) {
  harness::OutMsg m;
  m.subject = "r.x";
  m.payload = "payload " + std::to_string(origin_seq);
  isthmus::replication::Origin o;
  o.region = region;
  o.seq = origin_seq;
  o.time_ns = 1'700'000'000'000'000'000 + static_cast<int64_t>(origin_seq);
  for (auto& h : isthmus::replication::replica_headers({{"App", "v"}}, o)) m.headers.push_back(h);
  if (filler) m.headers.emplace_back(std::string(isthmus::replication::kHdrFiller), "1");
  return m;
}

}  // namespace

TEST_CASE("check_own_writes passes Isthmus's own writes and names the first that is not one", "[foreign]") {
  TempDir tmp("isthmus-own-writes");
  NatsServer server("r", tmp.subdir("r"));
  server.start();
  JetStream js(server.url());
  js.create_stream({{"name", "R"}, {"subjects", {"r.>"}}, {"storage", "memory"}});
  natsConnection* nc = js.connection();

  for (uint64_t s = 1; s <= 5; ++s) js.publish(own(s));
  js.publish(own(6, "iad", true));  // a filler whose confirmation was lost
  js.publish(own(7));
  js.publish(own(8));
  js.delete_msg("R", 3);  // deleted sequences are skipped

  SECTION("all Isthmus's: passes, and the filler is deleted") {
    auto c = check_own_writes(nc, "R", "iad", 2, 8, 5000);
    REQUIRE(c.st.is_ok());
    CHECK(c.foreign_at == 0);
    CHECK(c.checked == 6);  // 2, 4, 5, 6, 7, 8
    CHECK(c.fillers_deleted == 1);
    CHECK_FALSE(js.get_msg("R", 6).has_value());
    CHECK(js.get_msg("R", 7).has_value());
    CHECK(js.require_stream_info("R").last_seq == 8);
  }
  SECTION("a message without origin headers") {
    harness::OutMsg f;
    f.subject = "r.x";
    f.payload = "foreign";
    js.publish(f);  // 9
    js.publish(own(10, "iad", true));  // a filler past it
    auto c = check_own_writes(nc, "R", "iad", 7, 10, 5000);
    REQUIRE(c.st.is_ok());
    CHECK(c.foreign_at == 9);
    CHECK(c.why.find("origin") != std::string::npos);
    CHECK(c.fillers_deleted == 0);
    CHECK(js.get_msg("R", 10).has_value());  // nothing past it is touched
  }
  SECTION("another region's message") {
    js.publish(own(9, "syd"));
    auto c = check_own_writes(nc, "R", "iad", 1, 9, 5000);
    REQUIRE(c.st.is_ok());
    CHECK(c.foreign_at == 9);
    CHECK(c.why.find("syd") != std::string::npos);
  }
  SECTION("Isthmus's write of another sequence") {
    js.publish(own(11));  // stored at 9
    auto c = check_own_writes(nc, "R", "iad", 8, 9, 5000);
    REQUIRE(c.st.is_ok());
    CHECK(c.foreign_at == 9);
    CHECK(c.why.find("11") != std::string::npos);
  }
  SECTION("an empty range checks nothing") {
    auto c = check_own_writes(nc, "R", "iad", 9, 8, 5000);
    REQUIRE(c.st.is_ok());
    CHECK(c.checked == 0);
    CHECK(c.foreign_at == 0);
  }
}

TEST_CASE("foreign_tail_walk finds one past the last message the leader's Isthmus wrote, in parts", "[foreign]") {
  using isthmus::replication::foreign_tail_walk;
  TempDir tmp("isthmus-tail-walk");
  NatsServer server("r", tmp.subdir("r"));
  server.start();
  JetStream js(server.url());
  js.create_stream({{"name", "R"}, {"subjects", {"r.>"}}, {"storage", "memory"}});
  natsConnection* nc = js.connection();
  // 1-3 written by Isthmus from iad, 4-5 copies from ams (an earlier
  // leader), 6-9 a client's, 7 deleted.
  for (uint64_t s = 1; s <= 3; ++s) js.publish(own(s));
  for (uint64_t s = 4; s <= 5; ++s) js.publish(own(s, "ams"));
  for (uint64_t s = 6; s <= 9; ++s) {
    harness::OutMsg m;
    m.subject = "r.x";
    m.payload = "client " + std::to_string(s);
    js.publish(m);
  }
  js.delete_msg("R", 7);

  auto whole = foreign_tail_walk(nc, "R", "iad", 1, 9, 0, 5000);
  REQUIRE(whole);
  CHECK(whole->done);
  CHECK(whole->start == 4);  // ams's copies are not iad's
  auto other = foreign_tail_walk(nc, "R", "ams", 1, 9, 0, 5000);
  REQUIRE(other);
  CHECK(other->start == 6);

  // Two sequences a part: 9-8, 7-6 (7 deleted), 5-4, then 3 ends it.
  uint64_t top = 9, parts = 0;
  isthmus::replication::TailWalk w;
  do {
    auto r = foreign_tail_walk(nc, "R", "iad", 1, top, 2, 5000);
    REQUIRE(r);
    w = *r;
    ++parts;
    if (!w.done) {
      CHECK(w.next == top - 2);
      top = w.next;
    }
  } while (!w.done && parts < 10);
  CHECK(w.start == 4);
  CHECK(parts == 4);

  // Nothing written by the leader's Isthmus: the stream's first sequence.
  auto none = foreign_tail_walk(nc, "R", "syd", 1, 9, 0, 5000);
  REQUIRE(none);
  CHECK(none->done);
  CHECK(none->start == 1);
}
