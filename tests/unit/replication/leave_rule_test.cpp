#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "replication/server_watch.h"

using isthmus::replication::LeaveRule;
using isthmus::replication::ServerProbe;

TEST_CASE("leave rule: a server without JetStream is left after 10 s of such answers, not before",
          "[replication][server]") {
  LeaveRule r;
  const std::string why = "no JetStream";
  // Every 2 s: 0, 2, ..., 8 s are not enough.
  for (int64_t t = 0; t < 10'000; t += 2000) CHECK_FALSE(r.observe(ServerProbe::kNoJetStream, 1000 + t, why));
  CHECK(r.observe(ServerProbe::kNoJetStream, 11'000, why));
  CHECK(r.reason() == "no JetStream for 10 s");
}

TEST_CASE("leave rule: a good answer, or a long gap between bad ones, starts the count again",
          "[replication][server]") {
  LeaveRule r;
  CHECK_FALSE(r.observe(ServerProbe::kNoJetStream, 0, "x"));
  CHECK_FALSE(r.observe(ServerProbe::kNoJetStream, 6000, "x"));
  // A meta leader elected: the server serves again.
  CHECK_FALSE(r.observe(ServerProbe::kServes, 8000, ""));
  CHECK_FALSE(r.observe(ServerProbe::kNoJetStream, 10'000, "x"));
  CHECK_FALSE(r.observe(ServerProbe::kNoJetStream, 16'000, "x"));
  // Unanswered probes (a slow server) neither count nor clear...
  CHECK_FALSE(r.observe(ServerProbe::kUnknown, 17'000, ""));
  CHECK_FALSE(r.observe(ServerProbe::kRefused, 18'000, ""));
  CHECK(r.observe(ServerProbe::kNoJetStream, 20'000, "x"));
  // ...but a bad answer long after the last one starts a new run: a blip,
  // then only timeouts, then one more bad answer is no 10 s of them.
  LeaveRule q;
  CHECK_FALSE(q.observe(ServerProbe::kNoJetStream, 0, "x"));
  for (int64_t t = 1000; t < 12'000; t += 1000) CHECK_FALSE(q.observe(ServerProbe::kUnknown, t, ""));
  CHECK_FALSE(q.observe(ServerProbe::kNoJetStream, 12'000, "x"));
  CHECK_FALSE(q.observe(ServerProbe::kNoJetStream, 20'000, "x"));
  CHECK(q.observe(ServerProbe::kNoJetStream, 22'000, "x"));
  // Only timeouts: never left.
  LeaveRule z;
  for (int64_t t = 0; t < 600'000; t += 2000) CHECK_FALSE(z.observe(ServerProbe::kUnknown, t, ""));
}

TEST_CASE("leave rule: with every server failing, each further leave waits twice as long, up to 120 s",
          "[replication][server]") {
  LeaveRule r;
  int64_t t = 0;
  std::vector<int64_t> waits;
  for (int leaves = 0; leaves < 6; ++leaves) {
    r.reset();  // connected to the next server
    const int64_t start = t;
    while (!r.observe(ServerProbe::kNoJetStream, t, "x")) t += 1000;
    waits.push_back(t - start);
    t += 1000;
  }
  CHECK(waits == std::vector<int64_t>{10'000, 20'000, 40'000, 80'000, 120'000, 120'000});
  // A server that serves: back to 10 s.
  r.observe(ServerProbe::kServes, t, "");
  CHECK(r.wait_ms() == LeaveRule::kFirstLeaveMs);
}
