#include <catch2/catch.hpp>

#include "replication/unanswered_pace.h"

using isthmus::replication::UnansweredPace;

namespace {
constexpr int64_t kS = 1'000'000'000;
}

TEST_CASE("unanswered pace: the first unanswered attempt changes nothing, later ones wait 5 s doubling to 60 s",
          "[replication][pace]") {
  UnansweredPace p;
  CHECK(p.note(true, 0) == 0);
  CHECK_FALSE(p.holding(1));
  CHECK_FALSE(p.pausing());
  CHECK(p.note(true, 10 * kS) == 5 * kS);
  CHECK(p.pausing());
  CHECK(p.holding(10 * kS));
  CHECK(p.holding(15 * kS - 1));
  CHECK_FALSE(p.holding(15 * kS));
  int64_t t = 15 * kS;
  for (int64_t want : {10, 20, 40, 60, 60, 60}) {
    CHECK(p.note(true, t) == want * kS);
    CHECK(p.holding(t + want * kS - 1));
    CHECK_FALSE(p.holding(t + want * kS));
    t += want * kS;
  }
}

TEST_CASE("unanswered pace: an answer, or a failure of another kind, starts over", "[replication][pace]") {
  UnansweredPace p;
  p.note(true, 0);
  CHECK(p.note(true, kS) == 5 * kS);
  CHECK(p.note(false, 2 * kS) == 0);
  CHECK_FALSE(p.holding(2 * kS));
  CHECK_FALSE(p.pausing());
  // In a row again from the start: the first is free.
  CHECK(p.note(true, 3 * kS) == 0);
  CHECK(p.note(true, 4 * kS) == 5 * kS);
  p.reset();
  CHECK_FALSE(p.holding(4 * kS));
  CHECK(p.note(true, 5 * kS) == 0);
}

TEST_CASE("unanswered pace: with three free in a row, the fourth unanswered attempt sets the first pause",
          "[replication][pace]") {
  UnansweredPace p(3);
  CHECK(p.note(true, 0) == 0);
  CHECK(p.note(true, 4 * kS) == 0);
  CHECK(p.note(true, 8 * kS) == 0);
  CHECK_FALSE(p.pausing());
  CHECK(p.note(true, 12 * kS) == 5 * kS);
  CHECK(p.holding(16 * kS));
  CHECK(p.note(false, 17 * kS) == 0);
  CHECK(p.note(true, 18 * kS) == 0);  // three free again
}
